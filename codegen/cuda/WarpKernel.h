// The warp-level building blocks of attn-gpu-to-nvvm's patterns: index and f32 arithmetic,
// mma.sync m16n8k16 fragments and ldmatrix, cp.async tile loads and feature maps.
#pragma once

#include "codegen/cuda/Passes.h"
#include "codegen/gpu/transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::attn {

/// Elements of padding per shared-memory row: shifts each row by 16 bytes, so the 8 rows one
/// ldmatrix reads fall in different banks.
inline constexpr int64_t kSmemPad = 8;

/// Per thread: lane, its quad row g = lane / 4 and column pair c = lane % 4 in the mma
/// fragments. Subclasses set the fields they use before calling the helpers.
class WarpKernelBase {
public:
  WarpKernelBase(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  OpBuilder &b;
  Location loc;
  Type elt;                     // f16 or bf16
  Value lane, warp, g, c;

  // ---- scalar helpers ----
  Value idx(int64_t x) { return arith::ConstantIndexOp::create(b, loc, x); }
  Value f32(double x) { return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(float(x))); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value add(Value x, int64_t y) { return y ? add(x, idx(y)) : x; }
  Value mul(Value x, int64_t y) { return arith::MulIOp::create(b, loc, x, idx(y)); }
  Value lt(Value x, Value y) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, x, y);
  }
  Value minIdx(Value x, Value y) { return arith::MinUIOp::create(b, loc, x, y); }
  Value fmax(Value x, Value y) { return arith::MaximumFOp::create(b, loc, x, y); }
  Value fmul(Value x, Value y) { return arith::MulFOp::create(b, loc, x, y); }
  Value fadd(Value x, Value y) { return arith::AddFOp::create(b, loc, x, y); }
  Value fsub(Value x, Value y) { return arith::SubFOp::create(b, loc, x, y); }
  Value select(Value cond, Value x, Value y) { return arith::SelectOp::create(b, loc, cond, x, y); }
  Value ptx(StringRef code, Value x) {
    return NVVM::InlinePtxOp::create(b, loc, TypeRange{b.getF32Type()}, ValueRange{x},
                                     ValueRange{}, code, Value())
        .getResult(0);
  }
  Value ex2(Value x) { return ptx("ex2.approx.ftz.f32 $0, $1;", x); }
  Value shflXor(Value x, int32_t offset) {
    return gpu::ShuffleOp::create(b, loc, x, offset, 32, gpu::ShuffleMode::XOR)
        .getShuffleResult();
  }
  /// Max (or sum) over the four lanes of a quad, which together hold one fragment row.
  Value quadReduce(Value x, bool isMax) {
    for (int32_t offset : {1, 2}) {
      Value other = shflXor(x, offset);
      x = isMax ? fmax(x, other) : fadd(x, other);
    }
    return x;
  }

  // ---- fragments ----
  /// ldmatrix.x4 (or .x2, .x1): lane l addresses row `rowBase + rowOf(l)` of matrix l / 8;
  /// returns the 8x8 fragments as vector<2xT> (this thread's row l / 4, columns 2 (l % 4) +
  /// {0, 1}).
  SmallVector<Value, 4> ldmatrix(Value smem, Value row, Value col, bool transpose,
                                 int64_t count = 4) {
    return ldmatrixAt(smem, ValueRange{row, col}, transpose, count);
  }
  /// The same at any index of `smem` (a swizzled tile's flat view).
  SmallVector<Value, 4> ldmatrixAt(Value smem, ValueRange at, bool transpose, int64_t count = 4) {
    auto vecType = VectorType::get({count, 2}, elt);
    Value frag = nvgpu::LdMatrixOp::create(b, loc, vecType, smem, at, transpose, count);
    SmallVector<Value, 4> parts;
    for (int64_t m = 0; m < count; ++m)
      parts.push_back(vector::ExtractOp::create(b, loc, frag, m));
    return parts;
  }
  /// mma.sync m16n8k16, row x col, f32 accumulate: c += a . b.
  SmallVector<Value, 4> mma(ArrayRef<Value> a, ArrayRef<Value> bb, ArrayRef<Value> acc) {
    auto asI32 = [&](Value x) {
      auto i32v = vector::BitCastOp::create(b, loc, VectorType::get({1}, b.getI32Type()), x);
      return vector::ExtractOp::create(b, loc, i32v, 0).getResult();
    };
    SmallVector<Value> aOps, bOps;
    for (Value x : a)
      aOps.push_back(elt.isBF16() ? asI32(x) : x);
    for (Value x : bb)
      bOps.push_back(elt.isBF16() ? asI32(x) : x);
    Type f32t = b.getF32Type();
    auto resultType = LLVM::LLVMStructType::getLiteral(b.getContext(), {f32t, f32t, f32t, f32t});
    NVVM::MMATypes ptxType = elt.isBF16() ? NVVM::MMATypes::bf16 : NVVM::MMATypes::f16;
    auto op = NVVM::MmaOp::create(
        b, loc, resultType, aOps, bOps, acc, {16, 8, 16}, std::nullopt, std::nullopt,
        std::array<NVVM::MMATypes, 2>{ptxType, ptxType},
        std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row, NVVM::MMALayout::col});
    SmallVector<Value, 4> res;
    for (int64_t e = 0; e < 4; ++e)
      res.push_back(LLVM::ExtractValueOp::create(b, loc, op.getRes(), ArrayRef<int64_t>{e}));
    return res;
  }
  /// Two f32 (lower column first) -> one vector<2xT> operand register.
  Value pack(Value x, Value y) {
    Value v2 = vector::FromElementsOp::create(b, loc, VectorType::get({2}, b.getF32Type()),
                                              ValueRange{x, y});
    return arith::TruncFOp::create(b, loc, VectorType::get({2}, elt), v2);
  }

  // ---- memory ----
  /// The block's dynamic shared memory as bytes.
  Value dynamicSharedMemory() {
    auto type = MemRefType::get({ShapedType::kDynamic}, b.getI8Type(), MemRefLayoutAttrInterface(),
                                gpu::AddressSpaceAttr::get(b.getContext(),
                                                           gpu::AddressSpace::Workgroup));
    return gpu::DynamicSharedMemoryOp::create(b, loc, type);
  }
  Value sharedView(Value base, int64_t byteOffset, int64_t rows, int64_t cols) {
    auto type = MemRefType::get({rows, cols + kSmemPad}, elt, MemRefLayoutAttrInterface(),
                                gpu::AddressSpaceAttr::get(b.getContext(),
                                                           gpu::AddressSpace::Workgroup));
    return memref::ViewOp::create(b, loc, type, base, idx(byteOffset), ValueRange{});
  }
  /// Where tile row r lives in a global tensor: (axis 0, head, row, in range).
  using Row = std::tuple<Value, Value, Value, Value>;
  using RowFn = function_ref<Row(Value)>;
  /// Where element (r, col) of a tile lies in the destination memref (default: [r, col]).
  using IndexFn = function_ref<SmallVector<Value>(Value, Value)>;
  /// Runs body(id) for chunk ids tid, tid + threads, ... below `chunks`: the whole block strides
  /// over a tile; the last round, which may cover fewer chunks than threads, is guarded.
  void forEachChunk(int64_t chunks, Value tid, int64_t threads, function_ref<void(Value)> body) {
    for (int64_t base = 0; base < chunks; base += threads) {
      Value id = add(tid, base);
      if (base + threads <= chunks) {
        body(id);
        continue;
      }
      auto ifOp = scf::IfOp::create(b, loc, lt(id, idx(chunks)), /*withElse=*/false);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
      body(id);
    }
  }
  /// rows x cols of global[axis 0(r), head(r), row(r), :] -> smem with cp.async, 16 bytes
  /// (`perCopy` elements) per copy; rows out of range are zero-filled and read nothing.
  /// Columns start at `colBase` of the global tensor when given (a slice of the channels);
  /// `dstIndex` places them in a tile of another layout (a swizzle).
  void loadTile(Value global, RowFn rowOf, int64_t rows, int64_t cols, Value smem, Value tid,
                int64_t threads, int64_t perCopy = 8, Value colBase = {},
                IndexFn dstIndex = {}) {
    int64_t chunksPerRow = cols / perCopy;
    auto token = nvgpu::DeviceAsyncTokenType::get(b.getContext());
    forEachChunk(rows * chunksPerRow, tid, threads, [&](Value id) {
      Value r = arith::DivUIOp::create(b, loc, id, idx(chunksPerRow));
      Value col = mul(arith::RemUIOp::create(b, loc, id, idx(chunksPerRow)), perCopy);
      auto [outer, headIndex, row, inRange] = rowOf(r);
      Value safeRow = select(inRange, row, idx(0));
      Value srcElems = select(inRange, idx(perCopy), idx(0));
      Value globalCol = colBase ? add(col, colBase) : col;
      SmallVector<Value> dst = dstIndex ? dstIndex(r, col) : SmallVector<Value>{r, col};
      nvgpu::DeviceAsyncCopyOp::create(b, loc, token, smem, dst, global,
                                       ValueRange{outer, headIndex, safeRow, globalCol},
                                       b.getIndexAttr(perCopy), srcElems, b.getUnitAttr());
    });
  }
  /// A feature map (linear attention's phi) applied in place to a landed f16/bf16 tile, 8
  /// elements per thread and step, in f32; a barrier must follow before others read it.
  /// Zero-filled rows past the end map to phi(0): those keys are masked and those queries are
  /// not stored.
  void mapTile(Value tile, Region &feature, int64_t rows, int64_t cols, Value tid,
               int64_t threads) {
    int64_t chunksPerRow = cols / 8;
    auto vec8 = [&](Type t) { return VectorType::get({8}, t); };
    forEachChunk(rows * chunksPerRow, tid, threads, [&](Value id) {
      Value r = arith::DivUIOp::create(b, loc, id, idx(chunksPerRow));
      Value col = mul(arith::RemUIOp::create(b, loc, id, idx(chunksPerRow)), 8);
      Value stored = vector::LoadOp::create(b, loc, vec8(elt), tile, ValueRange{r, col});
      Value x = arith::ExtFOp::create(b, loc, vec8(b.getF32Type()), stored);
      SmallVector<Value> mapped;
      for (int64_t e = 0; e < 8; ++e)
        mapped.push_back(buildInlinedRegion(b, feature, {vector::ExtractOp::create(b, loc, x, e)}));
      Value y = vector::FromElementsOp::create(b, loc, vec8(b.getF32Type()), mapped);
      vector::StoreOp::create(b, loc, arith::TruncFOp::create(b, loc, vec8(elt), y), tile,
                              ValueRange{r, col});
    });
  }
  /// Closes the cp.async group issued so far.
  Value commit() {
    auto token = nvgpu::DeviceAsyncTokenType::get(b.getContext());
    return nvgpu::DeviceAsyncCreateGroupOp::create(b, loc, token, ValueRange{});
  }
  /// Waits until at most `pending` groups are in flight, then syncs the block so every thread
  /// sees every thread's copies.
  void waitGroups(Value group, int32_t pending) {
    nvgpu::DeviceAsyncWaitOp::create(b, loc, group, b.getI32IntegerAttr(pending));
    gpu::BarrierOp::create(b, loc);
  }

};

} // namespace mlir::attn

// attn_gpu.load_operand and attn_gpu.mma -> ldmatrix.x4 and mma.sync m16n8k16, or wgmma
// m64nNk16 reading B from a swizzled tile (the kind attn-gpu-select-mma chose). Each warp owns
// 16 rows of the tile, a warpgroup 64.
#include "codegen/cuda/GPUToNVVM.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attngpu;

/// exp(G[row, d..d+1] - G[from, d..d+1]) (from null: G = 0), from one 8-byte load of each G
/// pair (d is even).
std::pair<Value, Value> mlir::attn::gatePair(WarpKernelBase &t, Value gate, Value row, Value from,
                                             Value d) {
  auto pair = VectorType::get({2}, t.b.getF32Type());
  Value g = vector::LoadOp::create(t.b, t.loc, pair, gate, ValueRange{row, d});
  if (from)
    g = arith::SubFOp::create(t.b, t.loc, g,
                              vector::LoadOp::create(t.b, t.loc, pair, gate, ValueRange{from, d}));
  return {math::ExpOp::create(t.b, t.loc, vector::ExtractOp::create(t.b, t.loc, g, 0)),
          math::ExpOp::create(t.b, t.loc, vector::ExtractOp::create(t.b, t.loc, g, 1))};
}

/// x (vector<2xT>, channels d, d + 1 of one row) times (f0, f1), re-packed.
Value mlir::attn::scalePair(WarpKernelBase &t, Value x, std::pair<Value, Value> f) {
  Value wide = arith::ExtFOp::create(t.b, t.loc, VectorType::get({2}, t.b.getF32Type()), x);
  Value lo = vector::ExtractOp::create(t.b, t.loc, wide, 0);
  Value hi = vector::ExtractOp::create(t.b, t.loc, wide, 1);
  return t.pack(t.fmul(lo, f.first), t.fmul(hi, f.second));
}

namespace {

/// Lane l addresses row (l % 8) + 8 ((l / 8) % 2) of a 16-row block and column 8 ((l / 8) / 2)
/// of a 16-column step: ldmatrix.x4 then returns the A fragment of that step.
struct LoadOperandLowering : OpConversionPattern<LoadOperandOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(LoadOperandOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op, op.getType().getElementType());
    auto [r8, mLow, mHigh] = t.ldmatrixLanes();
    Value rowBase = t.mul(t.warp, 16);
    SmallVector<Value> fragments;
    for (int64_t kk = 0; kk < op.getType().getDimSize(1) / 16; ++kk)
      llvm::append_range(fragments,
                         t.ldmatrix(op.getTile(), t.add(t.add(rowBase, t.mul(mLow, 8)), r8),
                                    t.add(t.mul(mHigh, 8), kk * 16), false));
    rw.replaceOpWithMultiple(op, {fragments});
    return success();
  }
};

Value i64Const(WarpKernelBase &t, int64_t v) {
  return arith::ConstantIntOp::create(t.b, t.loc, t.b.getI64Type(), v);
}

/// The wgmma matrix descriptor of a 128-byte-swizzled operand at shared address `addr` (i64):
/// start address, leading and stride byte offsets (16-byte units) and the swizzle mode.
Value wgmmaDescriptor(WarpKernelBase &t, Value addr, int64_t leading, int64_t stride) {
  Value start = arith::ShRUIOp::create(
      t.b, t.loc, arith::AndIOp::create(t.b, t.loc, addr, i64Const(t, 0x3FFFF)), i64Const(t, 4));
  int64_t fields = ((leading >> 4) & 0x3FFF) << 16 | ((stride >> 4) & 0x3FFF) << 32 |
                   int64_t(1) << 62;  // layout type 1: 128-byte swizzle
  return arith::OrIOp::create(t.b, t.loc, start, i64Const(t, fields));
}

/// The descriptor of k step kk of a swizzled [rows, K] tile read K-major (Q as A; K as B
/// with transpose_b): the step starts 32 bytes further in a 128-byte row, in column block
/// kk / 4 (blocks rows * 128 bytes apart); 8-row groups lie 1024 bytes apart. `base` (i64)
/// is the address of the first row read (a warpgroup's, for A).
Value kMajorDescriptor(WarpKernelBase &t, Value base, int64_t rows, int64_t kk) {
  int64_t offset = (kk * 16 / 64) * rows * 128 + (kk * 16 % 64) * 2;
  return wgmmaDescriptor(t, arith::AddIOp::create(t.b, t.loc, base, i64Const(t, offset)), 16,
                         1024);
}

/// acc += a . B as wgmma m64nNk16 per warpgroup: A from registers (the mma.sync A layout per
/// warp) or a swizzled tile (each warpgroup its 64 rows), B through a descriptor of its
/// swizzled tile, the accumulator in the mma.sync accumulator layout per warp. One asm block
/// fences, issues every k step, commits and waits, so no other instruction touches the
/// accumulators while the tensor cores own them.
LogicalResult lowerWgmma(MmaOp op, OpConversionPattern<MmaOp>::OneToNOpAdaptor adaptor,
                         ConversionPatternRewriter &rw) {
  auto aType = cast<ShapedType>(op.getA().getType());
  auto aTile = dyn_cast<MemRefType>(aType);
  auto accType = cast<RankedTensorType>(op.getAcc().getType());
  ThreadContext t(rw, op.getLoc(), op, aType.getElementType());
  MemRefType bType = op.getB().getType();
  int64_t n = accType.getDimSize(1);
  int64_t kSteps = (aTile ? sharedColumns(aTile) : aType.getDimSize(1)) / 16;
  // B K-major ([N, K], transpose_b), or N-major ([K, N]): k step kk starts 16 rows (2048
  // bytes) further; 8-row groups 1024 bytes apart, 64-column blocks R rows apart.
  bool kMajor = op.getTransposeB();
  int64_t bRows = bType.getDimSize(0);
  Value bBase = sharedAddress(t, adaptor.getB().front());
  SmallVector<Value> aOperands, descriptors;
  if (aTile) {
    // Warpgroup w reads rows 64 w .. 64 w + 63: 64 rows of 128 bytes into each column block.
    Value group = arith::DivUIOp::create(rw, t.loc, t.warp, t.idx(4));
    Value aBase = arith::AddIOp::create(
        rw, t.loc, sharedAddress(t, adaptor.getA().front()),
        arith::IndexCastOp::create(rw, t.loc, rw.getI64Type(), t.mul(group, 64 * 128)));
    for (int64_t kk = 0; kk < kSteps; ++kk)
      aOperands.push_back(kMajorDescriptor(t, aBase, aTile.getDimSize(0), kk));
  } else {
    for (Value x : adaptor.getA()) {
      auto v = vector::BitCastOp::create(rw, t.loc, VectorType::get({1}, rw.getI32Type()), x);
      aOperands.push_back(vector::ExtractOp::create(rw, t.loc, v, 0));
    }
  }
  for (int64_t kk = 0; kk < kSteps; ++kk)
    descriptors.push_back(
        kMajor ? kMajorDescriptor(t, bBase, bRows, kk)
               : wgmmaDescriptor(
                     t, arith::AddIOp::create(rw, t.loc, bBase, i64Const(t, kk * 16 * 128)),
                     bRows * 128, 1024));
  ValueRange acc = adaptor.getAcc();
  // $0 .. $(outs - 1): the accumulators (tied to the last inputs); then A (registers or
  // descriptors), B's descriptors, scale-d.
  int64_t outs = int64_t(acc.size()), aBase = outs;
  int64_t descBase = aBase + int64_t(aOperands.size()), scaleAt = descBase + kSteps;
  std::string type = aType.getElementType().isBF16() ? "bf16" : "f16";
  std::string asmText, constraints, dList;
  llvm::raw_string_ostream os(asmText), cs(constraints), ds(dList);
  for (int64_t i = 0; i < outs; ++i)
    ds << (i ? ", " : "") << "$" << i;
  os << "{\n.reg .pred p;\nsetp.ne.b32 p, $" << scaleAt << ", 0;\nwgmma.fence.sync.aligned;\n";
  for (int64_t kk = 0; kk < kSteps; ++kk) {
    os << "wgmma.mma_async.sync.aligned.m64n" << n << "k16.f32." << type << "." << type << " {"
       << dList << "}, ";
    if (aTile) {
      os << "$" << aBase + kk;
    } else {
      int64_t a0 = aBase + kk * 4;
      os << "{$" << a0 << ", $" << a0 + 1 << ", $" << a0 + 2 << ", $" << a0 + 3 << "}";
    }
    // scale-d, imm-scale-a, imm-scale-b, (imm-trans-a for A in shared memory), imm-trans-b
    os << ", $" << descBase + kk << ", p, 1, 1, " << (aTile ? "0, " : "") << (kMajor ? 0 : 1)
       << ";\n";
  }
  // An async mma leaves its group in flight: attn_gpu.mma_wait waits for it.
  os << "wgmma.commit_group.sync.aligned;\n"
     << (op.getAsync() ? "" : "wgmma.wait_group.sync.aligned 0;\n") << "}";
  for (int64_t i = 0; i < outs; ++i)
    cs << (i ? "," : "") << "=f";
  for (size_t i = 0; i < aOperands.size(); ++i)
    cs << (aTile ? ",l" : ",r");
  for (int64_t kk = 0; kk < kSteps; ++kk)
    cs << ",l";
  cs << ",r";
  for (int64_t i = 0; i < outs; ++i)
    cs << "," << i;
  SmallVector<Value> operands(aOperands);
  operands.append(descriptors);
  operands.push_back(arith::ConstantIntOp::create(rw, t.loc, rw.getI32Type(), 1));  // scale-d
  operands.append(acc.begin(), acc.end());
  SmallVector<Type> fields(outs, rw.getF32Type());
  auto resultType = LLVM::LLVMStructType::getLiteral(rw.getContext(), fields);
  auto inlineAsm = LLVM::InlineAsmOp::create(
      rw, t.loc, resultType, operands, asmText, constraints, /*has_side_effects=*/true,
      /*is_align_stack=*/false, LLVM::tailcallkind::TailCallKind::None,
      LLVM::AsmDialectAttr::get(rw.getContext(), LLVM::AsmDialect::AD_ATT), ArrayAttr());
  SmallVector<Value> result;
  for (int64_t i = 0; i < outs; ++i)
    result.push_back(LLVM::ExtractValueOp::create(rw, t.loc, inlineAsm.getRes(), i));
  rw.replaceOpWithMultiple(op, {result});
  return success();
}

/// wgmma.wait_group `pending` over the accumulator registers of the mmas waited for: each
/// register goes through the asm (tied in and out), so nothing reads an accumulator before
/// the wait, and nothing moves one while the tensor cores write it. mma.sync results are
/// finished already: the wait is then no instruction.
struct MmaWaitLowering : OpConversionPattern<MmaWaitOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(MmaWaitOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    bool wgmma = llvm::any_of(op.getInflight(), [](Value v) {
      auto mma = v.getDefiningOp<MmaOp>();
      return mma && mma.getKind() && *mma.getKind() == MmaKind::wgmma_m64nNk16;
    });
    if (!wgmma) {
      SmallVector<SmallVector<Value>> same;
      for (ValueRange fragment : adaptor.getInflight())
        same.emplace_back(fragment.begin(), fragment.end());
      rw.replaceOpWithMultiple(op, std::move(same));
      return success();
    }
    SmallVector<Value> registers;
    for (ValueRange fragment : adaptor.getInflight())
      registers.append(fragment.begin(), fragment.end());
    int64_t count = int64_t(registers.size());
    std::string constraints;
    llvm::raw_string_ostream cs(constraints);
    for (int64_t i = 0; i < count; ++i)
      cs << (i ? "," : "") << "=f";
    for (int64_t i = 0; i < count; ++i)
      cs << "," << i;
    SmallVector<Type> fields(count, rw.getF32Type());
    auto inlineAsm = LLVM::InlineAsmOp::create(
        rw, op.getLoc(), LLVM::LLVMStructType::getLiteral(rw.getContext(), fields), registers,
        "wgmma.wait_group.sync.aligned " + std::to_string(op.getPending()) + ";", constraints,
        /*has_side_effects=*/true, /*is_align_stack=*/false,
        LLVM::tailcallkind::TailCallKind::None,
        LLVM::AsmDialectAttr::get(rw.getContext(), LLVM::AsmDialect::AD_ATT), ArrayAttr());
    SmallVector<SmallVector<Value>> results;
    int64_t at = 0;
    for (ValueRange fragment : adaptor.getInflight()) {
      results.emplace_back();
      for (size_t i = 0; i < fragment.size(); ++i)
        results.back().push_back(
            LLVM::ExtractValueOp::create(rw, op.getLoc(), inlineAsm.getRes(), at++));
    }
    rw.replaceOpWithMultiple(op, std::move(results));
    return success();
  }
};

/// acc += a . B: one ldmatrix.x4 of B feeds two n8 blocks (16 columns) of one k16 step, an
/// ldmatrix.x2 a last odd n8 block. Gates scale each B register pair (channels k, k + 1).
struct MmaLowering : OpConversionPattern<MmaOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(MmaOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    if (!op.getKind())
      return op.emitOpError("needs its instruction chosen (run attn-gpu-select-mma)");
    if (*op.getKind() == MmaKind::wgmma_m64nNk16)
      return lowerWgmma(op, adaptor, rw);
    auto aType = cast<RankedTensorType>(op.getA().getType());
    ThreadContext t(rw, op.getLoc(), op, aType.getElementType());
    auto [r8, mLow, mHigh] = t.ldmatrixLanes();
    ValueRange a = adaptor.getA();
    SmallVector<SmallVector<Value, 4>> acc;
    for (size_t n = 0; n < adaptor.getAcc().size() / 4; ++n)
      acc.push_back(SmallVector<Value, 4>(adaptor.getAcc().slice(n * 4, 4)));
    int64_t kSteps = aType.getDimSize(1) / 16;
    int64_t blocks = int64_t(acc.size());
    Value gate = op.getGate(), rowBase = gate ? t.mul(t.warp, 16) : Value();
    // Part p of a B load holds channels 16 kk + 2c + 8 (p % 2) (+1): their gate factors.
    auto gateFactors = [&](int64_t kk, Value from) {
      std::array<std::pair<Value, Value>, 2> f;
      for (int64_t high = 0; high < 2; ++high)
        f[high] = gatePair(t, gate, rowBase, from, t.add(t.mul(t.c, 2), kk * 16 + 8 * high));
      return f;
    };
    for (int64_t kk = 0; kk < kSteps; ++kk) {
      ValueRange aStep = a.slice(kk * 4, 4);
      SmallVector<Value> aVec(aStep.begin(), aStep.end());
      std::array<std::pair<Value, Value>, 2> stepFactors;
      if (gate && !op.getGateBlocks())
        stepFactors = gateFactors(kk, Value());
      for (int64_t n0 = 0; n0 < blocks; n0 += 2) {
        int64_t count = n0 + 1 < blocks ? 4 : 2;  // two n8 blocks, or the last one
        // [N, K] storage (K of Q K^T): matrices 0, 1 are the low n8 block's k halves. With .x2
        // only lanes 0-15 address (mHigh = 0 there).
        SmallVector<Value, 4> bf =
            op.getTransposeB()
                ? t.ldmatrix(op.getB(), t.add(t.add(t.mul(mHigh, 8), r8), n0 * 8),
                             t.add(t.mul(mLow, 8), kk * 16), false, count)
                : t.ldmatrix(op.getB(), t.add(t.add(t.mul(mLow, 8), r8), kk * 16),
                             t.add(t.mul(mHigh, 8), n0 * 8), true, count);
        if (gate) {  // gate_blocks: relative to the first row of this 16-column block
          auto f = op.getGateBlocks() ? gateFactors(kk, t.idx(n0 * 8 / 16 * 16)) : stepFactors;
          for (size_t part = 0; part < bf.size(); ++part)
            bf[part] = scalePair(t, bf[part], f[part % 2]);
        }
        acc[n0] = t.mma(aVec, {bf[0], bf[1]}, acc[n0]);
        if (count == 4)
          acc[n0 + 1] = t.mma(aVec, {bf[2], bf[3]}, acc[n0 + 1]);
      }
    }
    SmallVector<Value> result;
    for (auto &tile : acc)
      result.append(tile.begin(), tile.end());
    rw.replaceOpWithMultiple(op, {result});
    return success();
  }
};

} // namespace

void mlir::attn::populateMmaToNVVMPatterns(FragmentTypeConverter &converter,
                                           RewritePatternSet &patterns) {
  patterns.add<LoadOperandLowering, MmaLowering, MmaWaitLowering>(converter, patterns.getContext());
}

// attn-gpu-to-nvvm: the GPU tile level (attn_gpu) -> gpu/nvgpu/nvvm, one pattern file per
// group of ops. Fragments (tensors with a #attn_gpu.frag layout) become the scalars each thread
// holds (a 1:N type conversion), so loops and branches carry plain registers.
#pragma once

#include "codegen/cuda/WarpKernel.h"
#include "codegen/gpu/AttnGPUDialect.h"

#include "mlir/Transforms/DialectConversion.h"

namespace mlir::attn {

/// Fragment tensors -> the values one thread holds (attngpu::valuesPerThread); other types
/// unchanged.
class FragmentTypeConverter : public TypeConverter {
public:
  FragmentTypeConverter();
};

/// The per-thread coordinates a pattern needs at its insertion point: thread id, lane, warp,
/// fragment row g = lane / 4 and column pair c = lane % 4, and the block's thread count (from
/// the enclosing kernel's known block size). CSE merges the repeated index math.
struct ThreadContext : WarpKernelBase {
  ThreadContext(OpBuilder &b, Location loc, Operation *op, Type element = {});
  Value tid;
  /// The threads of the op's role and the first of them: the block's (from 0), or in an
  /// attn_gpu.warp_specialize the consumers' (from 0) or the producer warp's.
  int64_t threads = 0, first = 0;
  /// (head, query) of packed row p: (h + p % pack, p / pack).
  std::pair<Value, Value> packedRow(Value h, Value p, int64_t pack);
  /// (head, query) of the thread's row r (0: g, 1: g + 8 of its warp's 16) of a tile whose
  /// first packed row is i0.
  std::pair<Value, Value> threadRow(Value h, Value i0, int64_t pack, int r);
  /// ldmatrix.x4's lane roles: lane l addresses row r8 = l % 8 of matrix l / 8, whose position
  /// in a 16 x 16 block is (mLow, mHigh) = ((l / 8) % 2, (l / 8) / 2) in 8-element steps.
  struct LdmatrixLanes {
    Value r8, mLow, mHigh;
  };
  LdmatrixLanes ldmatrixLanes();
  /// The accumulator layout's coordinates of the thread's elements: row 16 w + g + 8 r of the
  /// tile (r = 0, 1: the halves of its warp's 16 rows), column 8 n + 2 c + e % 2 of element e
  /// of n-block n.
  Value accRow(int64_t r) { return add(add(mul(warp, 16), g), 8 * r); }
  Value accCol(int64_t n, int64_t e) { return add(mul(c, 2), n * 8 + e % 2); }
  /// The value a region (^bb0(args...)) yields, its body cloned here.
  Value inlineBody(Region &region, ValueRange args);
  /// One thread per element r of the shared f32 vector `vec`: value(p0 + r) where
  /// p0 + r < end, else `fill` (a vector of per-position values: key factors, lse, D).
  void fillPositions(Value vec, Value p0, Value end, double fill,
                     function_ref<Value(Value)> value);
};

/// Where element (r, col) of a swizzled [R, C] 16-bit tile lies in its flat view (col a
/// multiple of 8: the first element of a 16-byte chunk).
SmallVector<Value> swizzledIndex(WarpKernelBase &t, MemRefType tile, Value r, Value col);
/// The shared address (i64) of a converted shared buffer (a swizzled tile's flat view, an
/// mbarrier).
Value sharedAddress(WarpKernelBase &t, Value flat);
/// exp(G[row, d..d+1] - G[from, d..d+1]) of a gate tile (from null: G = 0), d even.
std::pair<Value, Value> gatePair(WarpKernelBase &t, Value gate, Value row, Value from, Value d);
/// An operand register (vector<2xT>) times two f32 factors, re-packed.
Value scalePair(WarpKernelBase &t, Value x, std::pair<Value, Value> f);
/// The first state row warp `warp` owns of a state of `rows` rows held in blocks of
/// `blockRows` (attn_gpu.load_state).
Value stateRowBase(ThreadContext &t, int64_t rows, int64_t blockRows);

void populateFragmentOpsToNVVMPatterns(FragmentTypeConverter &converter,
                                       RewritePatternSet &patterns);
void populateMmaToNVVMPatterns(FragmentTypeConverter &converter, RewritePatternSet &patterns);
void populateCopyToNVVMPatterns(FragmentTypeConverter &converter, RewritePatternSet &patterns);
void populateScoreToNVVMPatterns(FragmentTypeConverter &converter, RewritePatternSet &patterns);
void populateStoreToNVVMPatterns(FragmentTypeConverter &converter, RewritePatternSet &patterns);
void populateDecayToNVVMPatterns(FragmentTypeConverter &converter, RewritePatternSet &patterns);
void populateCombineToNVVMPatterns(FragmentTypeConverter &converter, RewritePatternSet &patterns);
void populateStateToNVVMPatterns(FragmentTypeConverter &converter, RewritePatternSet &patterns);
void populateGateToNVVMPatterns(FragmentTypeConverter &converter, RewritePatternSet &patterns);
void populateProjectToNVVMPatterns(FragmentTypeConverter &converter, RewritePatternSet &patterns);
void populateGradToNVVMPatterns(FragmentTypeConverter &converter, RewritePatternSet &patterns);

} // namespace mlir::attn

// attn-chunk: recurrences in the chunked form. An attn.attention whose weights factor as a
// linear recurrence (norm none, the causal mask j <= i, a score linear in dot whose factor does
// not read j, an optional per-step decay) becomes loops over (b, h) and chunks of positions,
// each an attn.chunk_step that carries a [d, dv] state forward; with a query length of 1
// (decoding) the chunk is 1, the recurrent form S = gamma S + fk(k) v^T, o = c fq(q) S. A
// `state` operand is updated in place. Everything else is left alone.
#include "dialect/transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNCHUNK
#include "dialect/transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

/// Whether `v`, computed inside `block`, reads any of `args` (block arguments).
bool readsAny(Value v, Block &block, ArrayRef<Value> args) {
  if (llvm::is_contained(args, v))
    return true;
  Operation *def = v.getDefiningOp();
  if (!def || def->getBlock() != &block)
    return false;  // defined outside the region: a constant or a captured host value
  return llvm::any_of(def->getOperands(), [&](Value x) { return readsAny(x, block, args); });
}

/// The mask is exactly `j <= i` (cmpi ule/sle of the key index against the query index).
bool isCausal(Region &mask) {
  if (mask.empty())
    return false;
  Block &block = mask.front();
  auto yield = cast<YieldOp>(block.getTerminator());
  auto cmp = yield.getValues()[0].getDefiningOp<arith::CmpIOp>();
  if (!cmp || cmp->getBlock() != &block)
    return false;
  bool le = cmp.getPredicate() == arith::CmpIPredicate::ule ||
            cmp.getPredicate() == arith::CmpIPredicate::sle;
  return le && cmp.getLhs() == block.getArgument(3) && cmp.getRhs() == block.getArgument(2);
}

/// `v` is dot times a factor free of j and of dot: dot itself, a product of such a value with a
/// free factor (either side), its quotient by a free factor, or its negation.
bool isDotTimesFree(Value v, Block &block, Value dot, Value j) {
  if (v == dot)
    return true;
  Operation *def = v.getDefiningOp();
  if (!def || def->getBlock() != &block)
    return false;
  auto free = [&](Value f) { return !readsAny(f, block, {dot, j}); };
  if (auto mul = dyn_cast<arith::MulFOp>(def))
    return (isDotTimesFree(mul.getLhs(), block, dot, j) && free(mul.getRhs())) ||
           (isDotTimesFree(mul.getRhs(), block, dot, j) && free(mul.getLhs()));
  if (auto div = dyn_cast<arith::DivFOp>(def))
    return isDotTimesFree(div.getLhs(), block, dot, j) && free(div.getRhs());
  if (auto neg = dyn_cast<arith::NegFOp>(def))
    return isDotTimesFree(neg.getOperand(), block, dot, j);
  return false;
}

/// The score is dot times a factor free of j (and of dot): linear in dot, so the keys of
/// earlier chunks can be summed into a state.
bool isLinearInDot(Region &score) {
  Block &block = score.front();
  Value s = cast<YieldOp>(block.getTerminator()).getValues()[0];
  return isDotTimesFree(s, block, block.getArgument(4), block.getArgument(3));
}

/// Why `op` cannot be chunked, or null when it can.
const char *notRecurrence(AttentionOp op) {
  if (op.getNorm() != NormKind::none)
    return "norm is not none";
  if (op.getBlockTable() || op.getKScale() || op.getVScale())
    return "paged or quantised K/V";
  if (!isCausal(op.getMask()))
    return "the mask is not j <= i";
  if (!isLinearInDot(op.getScore()))
    return "the score is not dot times a factor free of j";
  return nullptr;
}

struct ChunkRecurrence : OpRewritePattern<AttentionOp> {
  ChunkRecurrence(MLIRContext *ctx, int64_t chunk) : OpRewritePattern(ctx), chunk(chunk) {}

  LogicalResult matchAndRewrite(AttentionOp op, PatternRewriter &rw) const override {
    if (const char *why = notRecurrence(op))
      return rw.notifyMatchFailure(op, why);
    Location loc = op.getLoc();
    auto index = [&](int64_t c) { return arith::ConstantIndexOp::create(rw, loc, c).getResult(); };
    auto dim = [&](Value t, int64_t d) { return memref::DimOp::create(rw, loc, t, d).getResult(); };
    auto loop = [&](Value from, Value to, Value step) {
      auto forOp = scf::ForOp::create(rw, loc, from, to, step);
      rw.setInsertionPointToStart(forOp.getBody());
      return forOp.getInductionVar();
    };
    // The state [d, dv], f32: the op's state s[b, h] in place (initial in, final out), or a
    // buffer allocated once ahead of the loops and zeroed per (b, h).
    auto q = op.getQ().getType();
    int64_t d = q.getDimSize(3), dv = op.getOut().getType().getDimSize(3);
    Value buffer;
    if (!op.getState()) {
      SmallVector<Value> dynamic;
      if (ShapedType::isDynamic(d))
        dynamic.push_back(dim(op.getQ(), 3));
      if (ShapedType::isDynamic(dv))
        dynamic.push_back(dim(op.getOut(), 3));
      buffer = memref::AllocaOp::create(rw, loc, MemRefType::get({d, dv}, rw.getF32Type()),
                                        dynamic);
    }

    Value zero = index(0), one = index(1);
    Value b = loop(zero, dim(op.getQ(), 0), one);
    Value h = loop(zero, dim(op.getQ(), 1), one);
    Value hk = op.getGroup() == 1
                   ? h
                   : arith::DivUIOp::create(rw, loc, h, index(int64_t(op.getGroup()))).getResult();
    Value state = buffer;
    if (buffer) {
      TileFillOp::create(rw, loc, state, rw.getF32FloatAttr(0.0f));
    } else {
      SmallVector<OpFoldResult> offsets = {b, h, rw.getIndexAttr(0), rw.getIndexAttr(0)};
      SmallVector<OpFoldResult> sizes = {rw.getIndexAttr(1), rw.getIndexAttr(1),
                                         memref::getMixedSize(rw, loc, op.getState(), 2),
                                         memref::getMixedSize(rw, loc, op.getState(), 3)};
      SmallVector<OpFoldResult> strides(4, rw.getIndexAttr(1));
      auto type = memref::SubViewOp::inferRankReducedResultType(
          {d, dv}, op.getState().getType(), offsets, sizes, strides);
      state = memref::SubViewOp::create(rw, loc, type, op.getState(), offsets,
                                        sizes, strides);
    }
    // One query position (decoding): the single-step recurrent form, a chunk of 1.
    int64_t size = q.getDimSize(2) == 1 ? 1 : chunk;
    Value n0 = loop(zero, dim(op.getQ(), 2), index(size));
    auto step = ChunkStepOp::create(rw, loc, op.getQ(), op.getK(), op.getV(), state, op.getOut(),
                                    b, h, hk, n0, rw.getI64IntegerAttr(size));
    rw.cloneRegionBefore(op.getScore(), step.getScore(), step.getScore().end());
    rw.cloneRegionBefore(op.getFeatureQ(), step.getFeatureQ(), step.getFeatureQ().end());
    rw.cloneRegionBefore(op.getFeatureK(), step.getFeatureK(), step.getFeatureK().end());
    rw.cloneRegionBefore(op.getDecay(), step.getDecay(), step.getDecay().end());
    rw.cloneRegionBefore(op.getGate(), step.getGate(), step.getGate().end());
    rw.eraseOp(op);
    return success();
  }

  int64_t chunk;
};

struct AttnChunkPass : mlir::attn::impl::AttnChunkBase<AttnChunkPass> {
  using Base::Base;
  void runOnOperation() override {
    if (chunkSize < 1 || chunkSize > 1024) {
      getOperation().emitError() << "attn-chunk: chunk-size must be in [1, 1024], got "
                                 << int64_t(chunkSize);
      return signalPassFailure();
    }
    RewritePatternSet patterns(&getContext());
    patterns.add<ChunkRecurrence>(&getContext(), chunkSize);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace

// attn-chunk: recurrences in the chunked form. An attn.attention whose weights factor as a
// linear recurrence (norm none, the causal mask j <= i or the strict j < i -- the chunk step's
// `strict`, with an optional bonus --, a score linear in dot whose factors each read i or j
// but not both, an optional per-step decay) becomes loops over (b, h) and
// chunks of positions, each an attn.chunk_step that carries a [d, dv] state forward (the
// score's key factors in its key_scale region); with a query length of 1 (decoding) the chunk
// is 1, the recurrent form S = gamma S + fk(k) v^T, o = c fq(q) S. A `state` operand is
// updated in place. Everything else is left alone.
#include "dialect/RecurrenceForm.h"
#include "dialect/transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNCHUNK
#include "dialect/transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;
using attnc::FormFactor;
using attnc::FormShape;
using attnc::RecurrenceForm;

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

/// The recurrence form (dialect/RecurrenceForm.h) over a score region: block arguments i (2),
/// j (3) and dot (4), and the arith ops of the region.
struct RegionForm {
  explicit RegionForm(Region &score)
      : block(score.front()), i(block.getArgument(2)), j(block.getArgument(3)),
        dot(block.getArgument(4)) {}
  Block &block;
  Value i, j, dot;

  FormShape shape(Value v) {
    if (v == dot)
      return FormShape::Dot;
    Operation *def = v.getDefiningOp();
    if (!def || def->getBlock() != &block)
      return FormShape::Other;
    if (isa<arith::MulFOp>(def))
      return FormShape::Mul;
    if (isa<arith::DivFOp>(def))
      return FormShape::Div;
    if (isa<arith::NegFOp>(def))
      return FormShape::Neg;
    return FormShape::Other;
  }
  Value lhs(Value v) { return v.getDefiningOp()->getOperand(0); }
  Value rhs(Value v) { return v.getDefiningOp()->getOperand(1); }
  bool readsI(Value v) { return readsAny(v, block, {i}); }
  bool readsJ(Value v) { return readsAny(v, block, {j}); }
  bool readsDot(Value v) { return readsAny(v, block, {dot}); }
  Value root() { return cast<YieldOp>(block.getTerminator()).getValues()[0]; }
};

/// Erases the ops of `block` whose results are unused and that have no side effects.
void eraseDeadOps(RewriterBase &rw, Block &block) {
  SmallVector<Operation *> ops;
  for (Operation &op : block.without_terminator())
    ops.push_back(&op);
  for (Operation *op : llvm::reverse(ops))  // users before their operands
    if (isOpTriviallyDead(op))
      rw.eraseOp(op);
}

/// Fills the chunk step's score region with the score less its key factors, and its key_scale
/// region (b, h, j) with their product.
void splitScore(RewriterBase &rw, Location loc, Region &score, ChunkStepOp step) {
  RegionForm adapter(score);
  RecurrenceForm<RegionForm, Value> form(adapter);
  (void)form.run(adapter.root());  // notRecurrence() checked that it succeeds
  SmallVector<FormFactor<Value>> key;  // the factors that read j stay out of the score
  for (const FormFactor<Value> &f : form.factors)
    if (f.key)
      key.push_back(f);
  IRMapping map;
  rw.cloneRegionBefore(score, step.getScore(), step.getScore().end(), map);
  // Outermost product first: a key factor's `keep` may be another one's product.
  for (const FormFactor<Value> &f : llvm::reverse(key))
    rw.replaceAllUsesWith(map.lookup(f.product), map.lookup(f.keep));
  eraseDeadOps(rw, step.getScore().front());
  if (key.empty())
    return;
  Block &from = score.front();
  Type idx = rw.getIndexType();
  Block *block = rw.createBlock(&step.getKeyScale(), {}, {idx, idx, idx}, {loc, loc, loc});
  IRMapping keyMap;  // (b, h, j); the key factors read neither i nor dot
  keyMap.map(from.getArgument(0), block->getArgument(0));
  keyMap.map(from.getArgument(1), block->getArgument(1));
  keyMap.map(from.getArgument(3), block->getArgument(2));
  keyMap.map(from.getArgument(2), arith::ConstantIndexOp::create(rw, loc, 0).getResult());
  keyMap.map(from.getArgument(4),
             arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(1.0f)).getResult());
  for (Operation &op : from.without_terminator())
    rw.clone(op, keyMap);
  Value product = arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(1.0f));
  for (const FormFactor<Value> &f : key) {
    Value x = keyMap.lookup(f.factor);
    product = f.divides ? arith::DivFOp::create(rw, loc, product, x).getResult()
                        : arith::MulFOp::create(rw, loc, product, x).getResult();
  }
  YieldOp::create(rw, loc, product);
  eraseDeadOps(rw, *block);
}

/// Why `op` cannot be chunked, or null when it can.
const char *notRecurrence(AttentionOp op) {
  if (op.getNorm() != NormKind::none && op.getNorm() != NormKind::sum)
    return "norm is neither none nor sum";
  if (op.getBlockTable() || op.getKScale() || op.getVScale())
    return "paged or quantised K/V";
  if (!op.getOutput().empty())
    return "an output map (the quadratic form applies it)";
  bool strict = op.getNorm() == NormKind::none && isCausalMask(op.getMask(), /*strict=*/true);
  if (!strict && !isCausalMask(op.getMask(), /*strict=*/false))
    return "the mask is not j <= i (nor j < i with norm none)";
  if (op.getScore().front().getNumArguments() != 5)
    return "the score reads row norms (dot(q, q), dot(k, k))";
  RegionForm adapter(op.getScore());
  if (!RecurrenceForm<RegionForm, Value>(adapter).run(adapter.root()))
    return "the score is not dot times factors that each read i or j, not both";
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
    // buffer allocated once ahead of the loops and zeroed per (b, h). Norm sum adds a column,
    // the running sum of the keys' weights (Sema and the verifier keep a state away from it).
    auto q = op.getQ().getType();
    bool normalize = op.getNorm() == NormKind::sum;
    // A projection w [m, d] (Performer): the features, and the state's rows, run over m.
    Value projection = op.getProjection();
    Value rowsOf = projection ? projection : op.getQ();
    int64_t rowsAxis = projection ? 0 : 3;
    int64_t d = cast<MemRefType>(rowsOf.getType()).getDimSize(rowsAxis),
            dv = op.getOut().getType().getDimSize(3);
    int64_t columns = ShapedType::isDynamic(dv) ? dv : dv + (normalize ? 1 : 0);
    Value buffer;
    if (!op.getState()) {
      SmallVector<Value> dynamic;
      if (ShapedType::isDynamic(d))
        dynamic.push_back(dim(rowsOf, rowsAxis));
      if (ShapedType::isDynamic(dv)) {
        Value extent = dim(op.getOut(), 3);
        dynamic.push_back(normalize ? arith::AddIOp::create(rw, loc, extent, index(1)).getResult()
                                    : extent);
      }
      buffer = memref::AllocaOp::create(rw, loc, MemRefType::get({d, columns}, rw.getF32Type()),
                                        dynamic);
    }

    Value zero = index(0), one = index(1);
    Value b = loop(zero, dim(op.getQ(), 0), one);
    Value h = loop(zero, dim(op.getOut(), 1), one);  // q has fewer with q/k head groups
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
                                    projection, b, h, hk, n0, rw.getI64IntegerAttr(size),
                                    rw.getI64IntegerAttr(int64_t(op.getQkGroup())),
                                    normalize ? rw.getUnitAttr() : UnitAttr(),
                                    op.getRmsEpsAttr(),
                                    isCausalMask(op.getMask(), /*strict=*/true) ? rw.getUnitAttr()
                                                                                : UnitAttr());
    splitScore(rw, loc, op.getScore(), step);
    rw.setInsertionPointAfter(step);
    rw.cloneRegionBefore(op.getFeatureQ(), step.getFeatureQ(), step.getFeatureQ().end());
    rw.cloneRegionBefore(op.getFeatureK(), step.getFeatureK(), step.getFeatureK().end());
    rw.cloneRegionBefore(op.getDecay(), step.getDecay(), step.getDecay().end());
    rw.cloneRegionBefore(op.getGate(), step.getGate(), step.getGate().end());
    rw.cloneRegionBefore(op.getSkip(), step.getSkip(), step.getSkip().end());
    rw.cloneRegionBefore(op.getBonus(), step.getBonus(), step.getBonus().end());
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

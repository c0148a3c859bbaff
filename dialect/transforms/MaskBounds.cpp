// attn-mask-bounds: narrows each query tile's key loop to the keys its mask can allow. The mask
// region is read as a conjunction of affine comparisons between the query index i and the key
// index j (j <= i + c, i - j < w, ...); anything else is treated as "may allow any key".
#include "dialect/transforms/Passes.h"
#include "dialect/transforms/Patterns.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

#include <optional>

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNMASKBOUNDS
#include "dialect/transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

/// a * i + b * j + c over the mask region's query index i and key index j.
struct Affine {
  int64_t a = 0, b = 0, c = 0;
  Affine operator+(const Affine &o) const { return {a + o.a, b + o.b, c + o.c}; }
  Affine operator*(int64_t k) const { return {a * k, b * k, c * k}; }
};

using Bound = KeyBound;

std::optional<Affine> affine(Value v, Value i, Value j, int depth = 0) {
  if (depth > 16)
    return std::nullopt;
  if (v == i)
    return Affine{1, 0, 0};
  if (v == j)
    return Affine{0, 1, 0};
  APInt cst;
  if (matchPattern(v, m_ConstantInt(&cst)))
    return Affine{0, 0, cst.getSExtValue()};
  Operation *def = v.getDefiningOp();
  if (!def || def->getNumOperands() != 2)
    return std::nullopt;
  auto lhs = affine(def->getOperand(0), i, j, depth + 1);
  auto rhs = affine(def->getOperand(1), i, j, depth + 1);
  if (!lhs || !rhs)
    return std::nullopt;
  if (isa<arith::AddIOp>(def))
    return *lhs + *rhs;
  if (isa<arith::SubIOp>(def))
    return *lhs + *rhs * -1;
  if (isa<arith::MulIOp>(def) && !lhs->a && !lhs->b)
    return *rhs * lhs->c;
  if (isa<arith::MulIOp>(def) && !rhs->a && !rhs->b)
    return *lhs * rhs->c;
  return std::nullopt;
}

/// Bounds implied by `lhs - rhs <= k`, when the key index enters with coefficient +-1; false
/// if it does not (the comparison then bounds nothing).
bool boundsOf(const Affine &diff, int64_t k, SmallVectorImpl<Bound> &out) {
  if (diff.b == 1)  // j <= -a i + (k - c)
    out.push_back({false, -diff.a, k - diff.c});
  else if (diff.b == -1)  // j >= a i + (c - k)
    out.push_back({true, diff.a, diff.c - k});
  return diff.b == 1 || diff.b == -1;
}

/// Collects the bounds of a boolean value that must hold for a key to be allowed; returns
/// whether the value is exactly their conjunction.
bool collect(Value cond, Value i, Value j, SmallVectorImpl<Bound> &out) {
  Operation *def = cond.getDefiningOp();
  if (auto both = dyn_cast_or_null<arith::AndIOp>(def)) {
    bool lhsExact = collect(both.getLhs(), i, j, out);
    return collect(both.getRhs(), i, j, out) && lhsExact;
  }
  auto cmp = dyn_cast_or_null<arith::CmpIOp>(def);
  if (!cmp)
    return false;
  auto lhs = affine(cmp.getLhs(), i, j), rhs = affine(cmp.getRhs(), i, j);
  if (!lhs || !rhs)
    return false;
  // Unsigned predicates read the same as signed ones only when both sides are a bare index
  // or a non-negative constant.
  auto plain = [&](const Affine &x) {
    return (x.a + x.b == 1 && !x.c && x.a * x.b == 0) || (!x.a && !x.b && x.c >= 0);
  };
  bool unsignedOk = plain(*lhs) && plain(*rhs);
  Affine diff = *lhs + *rhs * -1, neg = diff * -1;
  using P = arith::CmpIPredicate;
  switch (cmp.getPredicate()) {
  case P::ult: if (!unsignedOk) return false; [[fallthrough]];
  case P::slt: return boundsOf(diff, -1, out);
  case P::ule: if (!unsignedOk) return false; [[fallthrough]];
  case P::sle: return boundsOf(diff, 0, out);
  case P::ugt: if (!unsignedOk) return false; [[fallthrough]];
  case P::sgt: return boundsOf(neg, -1, out);
  case P::uge: if (!unsignedOk) return false; [[fallthrough]];
  case P::sge: return boundsOf(neg, 0, out);
  case P::eq: {
    bool low = boundsOf(diff, 0, out);
    return boundsOf(neg, 0, out) && low;
  }
  default: return false;
  }
}

/// Rewrites the key loop around `tile_scores` to start and stop at the tile's possible keys:
/// over the rows i in [i0, i0 + rows), lower = min_i (a i + c) rounded down to a whole key
/// tile, upper = max_i (a i + c) + 1.
struct NarrowKeyLoop : OpRewritePattern<TileScoresOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(TileScoresOp scores, PatternRewriter &rw) const override {
    auto loop = dyn_cast<scf::ForOp>(scores->getParentOp());
    if (!loop || loop.getInductionVar() != scores.getJ0() || scores.getMask().empty() ||
        loop->hasAttr("attn.mask_bounded"))
      return rw.notifyMatchFailure(scores, "not a masked key loop");
    bool exact;
    SmallVector<Bound> bounds = analyzeMaskBounds(scores.getMask(), exact);
    if (bounds.empty())
      return rw.notifyMatchFailure(scores, "the mask bounds no key range");

    int64_t rows = scores.getS().getType().getDimSize(0);
    int64_t step = scores.getS().getType().getDimSize(1);
    Location loc = scores.getLoc();
    rw.setInsertionPoint(loop);
    auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(rw, loc, v).getResult(); };
    Value i0 = scores.getI0(), iLast = arith::AddIOp::create(rw, loc, i0, cst(rows - 1));
    Value lb = loop.getLowerBound(), ub = loop.getUpperBound();
    for (const Bound &bd : bounds) {
      // The extreme of a i + c over the rows sits at i0 or at the last row.
      Value row = (bd.a >= 0) == bd.lower ? i0 : iLast;
      Value edge = arith::AddIOp::create(
          rw, loc, arith::MulIOp::create(rw, loc, row, cst(bd.a)), cst(bd.c));
      if (bd.lower) {  // floor to a whole tile; keys below 0 do not exist
        Value nonNeg = arith::MaxSIOp::create(rw, loc, edge, cst(0));
        Value tileStart = arith::MulIOp::create(
            rw, loc, arith::DivUIOp::create(rw, loc, nonNeg, cst(step)), cst(step));
        lb = arith::MaxSIOp::create(rw, loc, lb, tileStart);
      } else {
        Value end = arith::AddIOp::create(rw, loc, edge, cst(1));
        ub = arith::MinSIOp::create(rw, loc, ub, arith::MaxSIOp::create(rw, loc, end, cst(0)));
      }
    }
    rw.modifyOpInPlace(loop, [&] {
      loop.getLowerBoundMutable().assign(lb);
      loop.getUpperBoundMutable().assign(ub);
      loop->setAttr("attn.mask_bounded", rw.getUnitAttr());
    });
    return success();
  }
};

struct AttnMaskBoundsPass : mlir::attn::impl::AttnMaskBoundsBase<AttnMaskBoundsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateMaskBoundsPatterns(patterns);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace

SmallVector<KeyBound> mlir::attn::analyzeMaskBounds(Region &mask, bool &exact) {
  SmallVector<KeyBound> bounds;
  Block &block = mask.front();
  exact = collect(cast<YieldOp>(block.getTerminator()).getValues()[0], block.getArgument(2),
                  block.getArgument(3), bounds);
  return bounds;
}

void mlir::attn::populateMaskBoundsPatterns(RewritePatternSet &patterns) {
  patterns.add<NarrowKeyLoop>(patterns.getContext());
}

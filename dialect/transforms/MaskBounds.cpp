// attn-mask-bounds: narrows each query tile's key loop to the keys its mask can allow. The mask
// region is read as a conjunction of affine comparisons between the query index i and the key
// index j (j <= i + c, i - j < w, ...); anything else is treated as "may allow any key".
#include "dialect/transforms/Passes.h"
#include "dialect/transforms/Patterns.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

#include <functional>
#include <optional>

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNMASKBOUNDS
#include "dialect/transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

using Bound = KeyBound;

/// a * i + b * j + c + sum of the opaque terms over the mask region's query index i and key
/// index j; a term is a value of the region that depends on the batch index alone (a
/// per-sequence length read from a param, `j < kv_len[b]`; a block's position offset).
struct Affine {
  int64_t a = 0, b = 0, c = 0;
  SmallVector<OpaqueTerm, 2> terms;
};

/// Terms beyond this many make a bound unknown (the region is then read as allowing any key).
constexpr size_t kMaxTerms = 4;

std::optional<Affine> combine(const Affine &l, const Affine &r, int64_t rs) {
  Affine out{l.a + rs * r.a, l.b + rs * r.b, l.c + rs * r.c, l.terms};
  for (const OpaqueTerm &t : r.terms) {
    auto same = llvm::find_if(out.terms, [&](const OpaqueTerm &o) { return o.first == t.first; });
    if (same != out.terms.end())
      same->second += rs * t.second;
    else
      out.terms.push_back({t.first, rs * t.second});
  }
  llvm::erase_if(out.terms, [](const OpaqueTerm &t) { return t.second == 0; });
  if (out.terms.size() > kMaxTerms)
    return std::nullopt;
  return out;
}

std::optional<Affine> scale(const Affine &v, int64_t k) {
  Affine out{v.a * k, v.b * k, v.c * k, v.terms};
  for (OpaqueTerm &t : out.terms)
    t.second *= k;
  if (!k)
    out.terms.clear();
  return out;
}

/// Whether `v` is computed from the batch index `bArg`, constants, host values and param loads
/// only, by pure ops and memref.load (so it can be evaluated once per query tile, outside the
/// region).
bool batchOnly(Value v, Value bArg, Region &region, int depth = 0) {
  if (v == bArg || !region.isAncestor(v.getParentRegion()))
    return true;
  if (depth > 16 || isa<BlockArgument>(v))
    return false;
  Operation *def = v.getDefiningOp();
  if (def->getNumRegions() || (!isPure(def) && !isa<memref::LoadOp>(def)))
    return false;
  return llvm::all_of(def->getOperands(),
                      [&](Value o) { return batchOnly(o, bArg, region, depth + 1); });
}

std::optional<Affine> affine(Value v, Value i, Value j, Value bArg, Region &region,
                             int depth = 0) {
  if (depth > 16)
    return std::nullopt;
  if (v == i)
    return Affine{1, 0, 0};
  if (v == j)
    return Affine{0, 1, 0};
  APInt cst;
  if (matchPattern(v, m_ConstantInt(&cst)))
    return Affine{0, 0, cst.getSExtValue()};
  // Anything that depends on the batch alone (kv_len[b], kv_len[b] - q_len, ...) is one term.
  if (batchOnly(v, bArg, region))
    return Affine{0, 0, 0, {{v, 1}}};
  Operation *def = v.getDefiningOp();
  if (!def || def->getNumOperands() != 2)
    return std::nullopt;
  auto lhs = affine(def->getOperand(0), i, j, bArg, region, depth + 1);
  auto rhs = affine(def->getOperand(1), i, j, bArg, region, depth + 1);
  if (!lhs || !rhs)
    return std::nullopt;
  auto constant = [](const Affine &x) { return !x.a && !x.b && x.terms.empty(); };
  if (isa<arith::AddIOp>(def))
    return combine(*lhs, *rhs, 1);
  if (isa<arith::SubIOp>(def))
    return combine(*lhs, *rhs, -1);
  if (isa<arith::MulIOp>(def) && constant(*lhs))
    return scale(*rhs, lhs->c);
  if (isa<arith::MulIOp>(def) && constant(*rhs))
    return scale(*lhs, rhs->c);
  return std::nullopt;
}

/// Bounds implied by `lhs - rhs <= k`, when the key index enters with coefficient +-1; false
/// if it does not (the comparison then bounds nothing).
bool boundsOf(const Affine &diff, int64_t k, SmallVectorImpl<Bound> &out) {
  if (diff.b == 1)  // j <= -a i + (k - c) - terms
    out.push_back({false, -diff.a, k - diff.c, scale(diff, -1)->terms});
  else if (diff.b == -1)  // j >= a i + (c - k) + terms
    out.push_back({true, diff.a, diff.c - k, diff.terms});
  return diff.b == 1 || diff.b == -1;
}

/// Collects the bounds of a boolean value that must hold for a key to be allowed; returns
/// whether the value is exactly their conjunction.
bool collect(Value cond, Value i, Value j, Value bArg, Region &region,
             SmallVectorImpl<Bound> &out) {
  Operation *def = cond.getDefiningOp();
  if (auto both = dyn_cast_or_null<arith::AndIOp>(def)) {
    bool lhsExact = collect(both.getLhs(), i, j, bArg, region, out);
    return collect(both.getRhs(), i, j, bArg, region, out) && lhsExact;
  }
  auto cmp = dyn_cast_or_null<arith::CmpIOp>(def);
  if (!cmp)
    return false;
  auto lhs = affine(cmp.getLhs(), i, j, bArg, region);
  auto rhs = affine(cmp.getRhs(), i, j, bArg, region);
  if (!lhs || !rhs)
    return false;
  // Unsigned predicates read the same as signed ones only when both sides are a bare index
  // or a non-negative constant.
  auto plain = [&](const Affine &x) {
    if (!x.terms.empty())
      return false;
    return (x.a + x.b == 1 && !x.c && x.a * x.b == 0) || (!x.a && !x.b && x.c >= 0);
  };
  bool unsignedOk = plain(*lhs) && plain(*rhs);
  std::optional<Affine> d = combine(*lhs, *rhs, -1);
  if (!d)
    return false;
  Affine diff = *d, neg = *scale(diff, -1);
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
    // Packed rows hold queries (i0 + r) / pack.
    int64_t pack = scores.getPack();
    Value i0 = scores.getI0(), iLast = arith::AddIOp::create(rw, loc, i0, cst(rows - 1));
    if (pack > 1) {
      i0 = arith::DivUIOp::create(rw, loc, i0, cst(pack));
      iLast = arith::DivUIOp::create(rw, loc, iLast, cst(pack));
    }
    Value lb, ub;
    std::tie(lb, ub) = narrowKeyRange(rw, loc, scores.getMask(), bounds, i0, iLast,
                                      scores.getB(), IRMapping(), step, loop.getLowerBound(),
                                      loop.getUpperBound());
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
                  block.getArgument(3), block.getArgument(0), mask, bounds);
  return bounds;
}

Value mlir::attn::keyBoundEdge(OpBuilder &b, Location loc, const KeyBound &bound, Value row,
                               Region &mask, Value batch, IRMapping outside) {
  auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v).getResult(); };
  Value edge = arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, row, cst(bound.a)),
                                     cst(bound.c));
  if (bound.terms.empty())
    return edge;
  // Clone the batch-only slices that compute the terms, with the region's batch argument bound.
  outside.map(mask.front().getArgument(0), batch);
  std::function<Value(Value)> clone = [&](Value v) -> Value {
    if (Value mapped = outside.lookupOrNull(v))
      return mapped;
    Operation *def = v.getDefiningOp();
    if (!def || !mask.isAncestor(def->getParentRegion()))
      return v;  // a host value, usable as is
    for (Value operand : def->getOperands())
      clone(operand);
    return b.clone(*def, outside)->getResult(cast<OpResult>(v).getResultNumber());
  };
  for (const OpaqueTerm &term : bound.terms)
    edge = arith::AddIOp::create(b, loc, edge,
                                 arith::MulIOp::create(b, loc, clone(term.first),
                                                       cst(term.second)));
  return edge;
}

std::pair<Value, Value> mlir::attn::narrowKeyRange(OpBuilder &b, Location loc, Region &mask,
                                                   ArrayRef<KeyBound> bounds, Value iFirst,
                                                   Value iLast, Value batch,
                                                   const IRMapping &outside, int64_t step,
                                                   Value lb, Value ub) {
  auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v).getResult(); };
  for (const KeyBound &bd : bounds) {
    // The extreme of a i + c over the rows sits at the first or at the last row.
    Value row = (bd.a >= 0) == bd.lower ? iFirst : iLast;
    Value edge = keyBoundEdge(b, loc, bd, row, mask, batch, outside);
    if (bd.lower) {  // floor to a whole tile; keys below 0 do not exist
      Value nonNeg = arith::MaxSIOp::create(b, loc, edge, cst(0));
      Value tileStart = arith::MulIOp::create(
          b, loc, arith::DivUIOp::create(b, loc, nonNeg, cst(step)), cst(step));
      lb = arith::MaxSIOp::create(b, loc, lb, tileStart);
    } else {
      Value end = arith::AddIOp::create(b, loc, edge, cst(1));
      ub = arith::MinSIOp::create(b, loc, ub, arith::MaxSIOp::create(b, loc, end, cst(0)));
    }
  }
  return {lb, ub};
}

void mlir::attn::populateMaskBoundsPatterns(RewritePatternSet &patterns) {
  patterns.add<NarrowKeyLoop>(patterns.getContext());
}

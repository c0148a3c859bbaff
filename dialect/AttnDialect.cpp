// The `attn` dialect: registration and the verifiers, which state every invariant the passes and
// back ends rely on, in the terms of the variant (heads, keys, value channels, tiles).
#include "dialect/AttnDialect.h"
#include "dialect/AttnVerify.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::attn;

#include "dialect/AttnDialect.cpp.inc"
#include "dialect/AttnEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialect/AttnAttrs.cpp.inc"

#define GET_OP_CLASSES
#include "dialect/AttnOps.cpp.inc"

void AttnDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialect/AttnAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "dialect/AttnOps.cpp.inc"
      >();
}


using namespace mlir::attn::detail;

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

/// k or v against q: the same element type, or quantised storage (i8, e4m3fn, packed i4) with a scale
/// whose axes name canonical axes of the key coordinates (b, hk, j, e).
static LogicalResult verifyKV(Operation *op, StringRef name, Type qElt, MemRefType kv, Value scale,
                              ArrayRef<int64_t> axes, int64_t group) {
  Type elt = kv.getElementType();
  bool quantised = elt.isInteger(8) || isa<Float8E4M3FNType>(elt) || packingOf(kv) > 1;
  if (quantised != bool(scale))
    return op->emitOpError() << name << (quantised ? " is quantised (" : " is not quantised (")
                             << elt << ") but has " << (scale ? "a" : "no") << " scale";
  if (!quantised && elt != qElt)
    return op->emitOpError() << "q and " << name << " must share one element type, got "
                             << qElt << " and " << elt;
  if (!scale)
    return success();
  auto scaleType = cast<MemRefType>(scale.getType());
  if (scaleType.getRank() != int64_t(axes.size()))
    return op->emitOpError() << name << "'s scale has rank " << scaleType.getRank() << " but "
                             << axes.size() << " scale axes";
  for (int64_t a : axes)
    if (a < 0 || a > 3)
      return op->emitOpError() << "scale axes index (b, hk, j, e): 0 to 3, got " << a;
  if (group < 1)
    return op->emitOpError() << "a scale group must be >= 1, got " << group;
  return success();
}

/// A block table comes with a page size > 0, and the pools' slot axis (2) holds that many rows.
static LogicalResult verifyPages(Operation *op, Value table, int64_t pageSize,
                                 ArrayRef<MemRefType> pools) {
  if (bool(table) != (pageSize > 0))
    return op->emitOpError() << "a block table needs a page size > 0 and the reverse, got "
                             << (table ? "a table" : "no table") << " and page_size "
                             << pageSize;
  if (table)
    for (MemRefType pool : pools)
      if (!ShapedType::isDynamic(pool.getDimSize(2)) && pool.getDimSize(2) != pageSize)
        return op->emitOpError() << "a page pool holds " << pool.getDimSize(2)
                                 << " rows per page but page_size is " << pageSize;
  return success();
}

LogicalResult AttentionOp::verify() {
  auto q = getQ().getType(), k = getK().getType(), v = getV().getType(), o = getOut().getType();
  Operation *op = getOperation();
  if (failed(distinctBuffers(op, {{"out", getOut()}, {"lse", getLse()}},
                             {{"q", getQ()}, {"k", getK()}, {"v", getV()}, {"out", getOut()},
                              {"lse", getLse()}, {"state", getState()}})))
    return failure();
  // Canonical axes: q/o [b, h, i, d|dv], k/v [b, hk, j, d|dv].
  // Paged: k/v are page pools [pages, hk, P, d]; axis 0 counts pages, not sequences.
  if (failed(verifyPages(op, getBlockTable(), getPageSize(), {k, v})))
    return failure();
  bool paged = bool(getBlockTable());
  // Shared q/k head groups: q and k have G times fewer heads than v and out.
  int64_t qkGroup = getQkGroup();
  bool grouped = qkGroup > 1;
  if (grouped && (getGroup() != 1 || paged || getKScale() || getVScale()))
    return emitOpError("q/k head groups (qk_group ")
           << qkGroup << ") need group 1 and unpaged, unquantised k and v";
  if (grouped && (failed(sameExtent(op, "q/k head groups", "q", q, 1, "k", k, 1)) ||
                  failed(sameExtent(op, "heads", "v", v, 1, "out", o, 1))))
    return failure();
  if (grouped) {
    int64_t g = q.getDimSize(1), h = o.getDimSize(1);
    if (!ShapedType::isDynamic(g) && !ShapedType::isDynamic(h) && h != g * qkGroup)
      return emitOpError() << "heads (" << h << ") must be q/k head groups (" << g
                           << ") times qk_group (" << qkGroup << ")";
  }
  if ((!paged && failed(sameExtent(op, "batch", "q", q, 0, "k", k, 0))) ||
      failed(sameExtent(op, paged ? "pages" : "batch", "k", k, 0, "v", v, 0)) ||
      failed(sameExtent(op, "batch", "q", q, 0, "out", o, 0)) ||
      failed(sameExtent(op, "head dim", "q", q, 3, "k", k, 3)) ||
      failed(sameExtent(op, "value dim", "v", v, 3, "out", o, 3)) ||
      (!grouped && failed(sameExtent(op, "kv heads", "k", k, 1, "v", v, 1))) ||
      failed(sameExtent(op, "kv length", "k", k, 2, "v", v, 2)) ||
      (!grouped && failed(sameExtent(op, "query heads", "q", q, 1, "out", o, 1))) ||
      failed(sameExtent(op, "query length", "q", q, 2, "out", o, 2)))
    return failure();
  if (failed(verifyKV(op, "k", q.getElementType(), k, getKScale(), getKScaleAxes(),
                      getKScaleGroup())) ||
      failed(verifyKV(op, "v", q.getElementType(), v, getVScale(), getVScaleAxes(),
                      getVScaleGroup())))
    return failure();
  int64_t h = q.getDimSize(1), hk = k.getDimSize(1), group = getGroup();
  if (!grouped && !ShapedType::isDynamic(h) && !ShapedType::isDynamic(hk) && h != hk * group)
    return emitOpError() << "query heads (" << h << ") must be kv heads (" << hk
                         << ") times the group (" << group << ")";
  if (getState()) {
    auto st = getState().getType();
    if (getNorm() != NormKind::none)
      return emitOpError("a state needs norm none (a recurrence), got ")
             << stringifyNormKind(getNorm());
    if (paged || getKScale() || getVScale())
      return emitOpError("a state needs unpaged, unquantised k and v");
    if (failed(sameExtent(op, "batch", "q", q, 0, "state", st, 0)) ||
        failed(sameExtent(op, "query heads", "out", o, 1, "state", st, 1)) ||
        failed(sameExtent(op, "head dim", "q", q, 3, "state", st, 2)) ||
        failed(sameExtent(op, "value dim", "out", o, 3, "state", st, 3)))
      return failure();
  }
  if (auto eps = getRmsEps(); eps && !(eps->convertToFloat() > 0))
    return emitOpError() << "rms_eps must be positive, got " << eps->convertToFloat();
  if (getProjection() && getState())
    return emitOpError("a projection with a state is not supported yet");
  if (failed(verifyProjection(op, getProjection(), q, MemRefType())))
    return failure();
  if (getLse()) {
    if (getNorm() != NormKind::softmax)
      return emitOpError("'lse' is only defined for softmax normalisation");
    SmallVector<Value> lses = {getLse()};
    llvm::append_range(lses, getMoreLse());
    for (Value x : lses) {
      auto lse = cast<MemRefType>(x.getType());
      if (failed(sameExtent(op, "batch", "q", q, 0, "lse", lse, 0)) ||
          failed(sameExtent(op, "query heads", "q", q, 1, "lse", lse, 1)) ||
          failed(sameExtent(op, "query length", "q", q, 2, "lse", lse, 2)))
        return failure();
    }
  }
  return verifyMoreScores();
}

/// Several scores: per extra score a query shaped like q, a key like k, a score region and
/// (with lse) an lse; softmax over plain q, k, v.
LogicalResult AttentionOp::verifyMoreScores() {
  size_t more = getMoreQ().size();
  if (getMoreK().size() != more || getMoreScores().size() != more)
    return emitOpError() << "several scores need a key and a score region per extra query: got "
                         << more << " queries, " << getMoreK().size() << " keys and "
                         << getMoreScores().size() << " regions";
  if (getMoreLse().size() != (getLse() ? more : 0))
    return emitOpError() << "'lses' holds the lse of each extra score when 'lse' is given: "
                         << (getLse() ? more : 0) << " expected, got " << getMoreLse().size();
  if (!more)
    return success();
  if (getNorm() != NormKind::softmax || getBlockTable() || getKScale() || getVScale() ||
      getState() || getProjection() || getQkGroup() > 1 || getUnifiedMax())
    return emitOpError("several scores need norm softmax over plain q, k and v (no pages, "
                       "scales, state, projection, q/k head groups or unified max)");
  Operation *op = getOperation();
  auto q = getQ().getType(), k = getK().getType();
  for (auto [qn, kn] : llvm::zip(getMoreQ(), getMoreK())) {
    auto qt = cast<MemRefType>(qn.getType()), kt = cast<MemRefType>(kn.getType());
    if (qt.getElementType() != q.getElementType() || kt.getElementType() != k.getElementType())
      return emitOpError("every score's q and k have q's and k's element types");
    for (unsigned d = 0; d < 4; ++d)
      if (failed(sameExtent(op, "a dim", "q", q, d, "a score's q", qt, d)) ||
          failed(sameExtent(op, "a dim", "k", k, d, "a score's k", kt, d)))
        return failure();
  }
  return success();
}

/// A per-step region, if present: `decay` ^bb0(b, h, i : index) -> f32, or `gate` with the head
/// channel too, ^bb0(b, h, i, c : index) -> f32.
/// A region of index arguments `args` (e.g. "b, h, i") yielding one f32, if present.
LogicalResult mlir::attn::detail::verifyStepRegion(Operation *op, Region &region,
                                                   StringRef name, StringRef args) {
  if (region.empty())
    return success();
  auto idx = IndexType::get(op->getContext());
  Block &block = region.front();
  unsigned indices = unsigned(llvm::count(args, ',') + 1);
  if (!region.hasOneBlock() || block.getNumArguments() != indices ||
      llvm::any_of(block.getArgumentTypes(), [&](Type t) { return t != idx; }))
    return op->emitOpError() << "'" << name << "' region must have one block taking (" << args
                             << " : index)";
  return verifyYield(op, block, name, Float32Type::get(op->getContext()));
}
static LogicalResult verifyDecay(Operation *op, Region &decay) {
  return verifyStepRegion(op, decay, "decay", "b, h, i");
}
static LogicalResult verifyGate(Operation *op, Region &gate) {
  return verifyStepRegion(op, gate, "gate", "b, h, i, c");
}
static LogicalResult verifyBonus(Operation *op, Region &bonus) {
  return verifyStepRegion(op, bonus, "bonus", "b, h, i, c");
}
/// A per-element region of the output, if present: `skip` (b, h, i, e : index, x : f32) -> f32
/// or `output` (..., y : f32) -> f32.
static LogicalResult verifyElementRegion(Operation *op, Region &region, StringRef name,
                                         StringRef value) {
  if (region.empty())
    return success();
  Block &block = region.front();
  auto idx = IndexType::get(op->getContext());
  auto f32 = Float32Type::get(op->getContext());
  bool ok = region.hasOneBlock() && block.getNumArguments() == 5 &&
            block.getArgument(4).getType() == f32;
  for (unsigned a = 0; ok && a < 4; ++a)
    ok = block.getArgument(a).getType() == idx;
  if (!ok)
    return op->emitOpError() << "'" << name << "' region must have one block taking (b, h, i, "
                             << "e : index, " << value << " : f32)";
  return verifyYield(op, block, name, f32);
}
static LogicalResult verifySkip(Operation *op, Region &skip) {
  return verifyElementRegion(op, skip, "skip", "x");
}
static LogicalResult verifyOutputMap(Operation *op, Region &output) {
  return verifyElementRegion(op, output, "output", "y");
}

LogicalResult AttentionOp::verifyRegions() {
  bool projected = bool(getProjection());
  if (failed(verifyMix(*this, getMix(), 1 + getMoreScores().size())))
    return failure();
  for (Region &score : getMoreScores())
    if (failed(verifyScoreAndMask(getOperation(), score, getMask())))
      return failure();
  if (!getMoreScores().empty() &&
      (!getFeatureQ().empty() || !getFeatureK().empty() || !getDecay().empty() ||
       !getGate().empty() || !getSkip().empty()))
    return emitOpError("several scores take no feature map, decay, gate or skip term");
  if (failed(verifyFeature(*this, getFeatureQ(), "feature_q", projected)) ||
      failed(verifyFeature(*this, getFeatureK(), "feature_k", projected)) ||
      failed(verifyDecay(*this, getDecay())) || failed(verifyGate(*this, getGate())) ||
      failed(verifySkip(*this, getSkip())) || failed(verifyOutputMap(*this, getOutput())) ||
      failed(verifyBonus(*this, getBonus())))
    return failure();
  if (!getBonus().empty() &&
      (getNorm() != NormKind::none || !isCausalMask(getMask(), /*strict=*/true) ||
       !getMoreScores().empty() || projected))
    return emitOpError("a bonus (the current token's term) needs norm none, the mask exactly "
                       "j < i, one score and no projection (a strict-causal recurrence)");
  if (!getOutput().empty() && !getSkip().empty())
    return emitOpError("an output map does not combine with a skip term");
  bool linear = getNorm() == NormKind::none || getNorm() == NormKind::sum;
  for (auto [region, what] : {std::pair(&getSkip(), "a skip term"), std::pair(&getGate(), "a gate")})
    if (!region->empty() && !linear)
      return emitOpError() << what << " needs norm none or sum (a recurrence), got "
                           << stringifyNormKind(getNorm());
  if (!getDecay().empty() && !linear && getNorm() != NormKind::softmax)
    return emitOpError() << "a decay needs norm none, sum (a recurrence) or softmax (a forget "
                            "gate), got "
                         << stringifyNormKind(getNorm());
  if (projected && (!linear || !getGate().empty()))
    return emitOpError("a projection needs norm none or sum (a recurrence) and no gate");
  return verifyScoreAndMask(getOperation(), getScore(), getMask());
}

//===----------------------------------------------------------------------===//
// Tiled level
//===----------------------------------------------------------------------===//

LogicalResult TileScoresOp::verify() {
  auto q = getQ().getType(), k = getK().getType();
  if (failed(verifyPages(*this, getBlockTable(), getPageSize(), {k})))
    return failure();
  if (failed(sameExtent(*this, "head dim", "q", q, 3, "k", k, 3)) ||
      failed(staticRows(*this, "s", getS().getType())))
    return failure();
  if (failed(verifyKV(*this, "k", q.getElementType(), k, getKScale(), getKScaleAxes(),
                      getKScaleGroup())))
    return failure();
  return success();
}

LogicalResult TileScoresOp::verifyRegions() {
  if (failed(verifyFeature(*this, getFeatureQ(), "feature_q")) ||
      failed(verifyFeature(*this, getFeatureK(), "feature_k")) ||
      failed(verifyDecay(*this, getDecay())))
    return failure();
  if (getLogDecay() && getDecay().empty())
    return emitOpError("log_decay adds the log decays to the score: it needs a 'decay' region");
  return verifyScoreAndMask(getOperation(), getScore(), getMask());
}

/// The finished rows' rmsnorm (a positive `rms_eps`) and output map of a store or a merge.
static LogicalResult verifyRowsOut(Operation *op, std::optional<APFloat> eps, Region &output) {
  if (eps && !(eps->convertToFloat() > 0))
    return op->emitOpError() << "rms_eps must be positive, got " << eps->convertToFloat();
  return verifyOutputMap(op, output);
}

LogicalResult TileStoreOp::verifyRegions() {
  if (failed(verifyMix(*this, getMix(), 1 + getMoreAcc().size())))
    return failure();
  return verifyRowsOut(getOperation(), getRmsEps(), getOutput());
}

LogicalResult CombineOp::verifyRegions() {
  return verifyRowsOut(getOperation(), getRmsEps(), getOutput());
}

LogicalResult TileKeyRangeOp::verifyRegions() {
  Block &m = getMask().front();
  auto idx = IndexType::get(getContext());
  if (m.getNumArguments() != 4 ||
      llvm::any_of(m.getArgumentTypes(), [&](Type t) { return t != idx; }))
    return emitOpError("'mask' region must take (b, h, i, j : index)");
  return verifyYield(getOperation(), m, "mask", IntegerType::get(getContext(), 1));
}

LogicalResult ChunkStepOp::verify() {
  auto q = getQ().getType(), k = getK().getType(), v = getV().getType();
  auto state = getState().getType(), out = getOut().getType();
  if (failed(sameExtent(*this, "head dim", "q", q, 3, "k", k, 3)) ||
      failed(sameExtent(*this, "value dim", "v", v, 3, "out", out, 3)) ||
      (!getProjection() && failed(sameExtent(*this, "head dim", "q", q, 3, "state", state, 0))) ||
      failed(verifyProjection(*this, getProjection(), q, state)))
    return failure();
  // norm sum: the state's last column is the running sum of the keys' weights
  int64_t dv = v.getDimSize(3), columns = state.getDimSize(1);
  if (!ShapedType::isDynamic(dv) && !ShapedType::isDynamic(columns) &&
      columns != dv + (getNormalize() ? 1 : 0))
    return emitOpError() << "the state needs " << dv + (getNormalize() ? 1 : 0)
                         << " columns (the value dim" << (getNormalize() ? " + 1: normalize" : "")
                         << "), got " << columns;
  if (auto eps = getRmsEps(); eps && !(eps->convertToFloat() > 0))
    return emitOpError() << "rms_eps must be positive, got " << eps->convertToFloat();
  return success();
}

LogicalResult ChunkStepOp::verifyRegions() {
  Block &s = getScore().front();
  auto idx = IndexType::get(getContext());
  bool indices = s.getNumArguments() == 5;
  for (unsigned a = 0; indices && a < 4; ++a)
    indices = s.getArgument(a).getType() == idx;
  if (!indices || s.getArgument(4).getType() != Float32Type::get(getContext()))
    return emitOpError("'score' region must take (b, h, i, j : index, dot : f32)");
  bool projected = bool(getProjection());
  if (failed(verifyYield(*this, s, "score", Float32Type::get(getContext()))) ||
      failed(verifyFeature(*this, getFeatureQ(), "feature_q", projected)) ||
      failed(verifyFeature(*this, getFeatureK(), "feature_k", projected)))
    return failure();
  if (failed(verifyGate(*this, getGate())) ||
      failed(verifyStepRegion(*this, getKeyScale(), "key_scale", "b, h, j")) ||
      failed(verifySkip(*this, getSkip())) || failed(verifyBonus(*this, getBonus())))
    return failure();
  if (!getBonus().empty() && !getStrict())
    return emitOpError("a bonus (the current token's term) needs 'strict' (a strict-causal "
                       "recurrence: with j <= i the current token is in the state already)");
  if (getStrict() && getNormalize())
    return emitOpError("'strict' does not combine with 'normalize' (norm sum needs j <= i)");
  return verifyDecay(*this, getDecay());
}

LogicalResult TileRowMaxOp::verify() {
  auto s = getS().getType(), m = getM().getType();
  if (failed(staticRows(*this, "s", s)) || failed(staticRows(*this, "m", m)))
    return failure();
  if (s.getDimSize(0) != m.getDimSize(0))
    return emitOpError() << "row statistics hold " << m.getDimSize(0) << " rows but the tile has "
                         << s.getDimSize(0);
  return success();
}

/// The row-statistic buffers and the accumulator of a query tile all have its (static) row count.
static LogicalResult sameRows(Operation *op, MemRefType s, ArrayRef<MemRefType> rowBuffers) {
  if (s.isDynamicDim(0))
    return op->emitOpError() << "a query tile needs a static row count, got " << s;
  // Rows are static; an accumulator's value channels may be dynamic.
  for (MemRefType t : rowBuffers)
    if (t.isDynamicDim(0) || t.getDimSize(0) != s.getDimSize(0))
      return op->emitOpError() << "every buffer of a query tile needs " << s.getDimSize(0)
                               << " static rows, got " << t;
  return success();
}

LogicalResult TileExpSumOp::verify() {
  if (failed(staticRows(*this, "s", getS().getType())))
    return failure();
  return sameRows(*this, getS().getType(), {getM().getType(), getL().getType()});
}

LogicalResult TileOnlineUpdateOp::verify() {
  if (failed(staticRows(*this, "s", getS().getType())))
    return failure();
  return sameRows(*this, getS().getType(),
                  {getM().getType(), getL().getType(), getAcc().getType()});
}

LogicalResult TileMatmulAccOp::verify() {
  auto p = getP().getType(), acc = getAcc().getType(), v = getV().getType();
  if (failed(verifyPages(*this, getBlockTable(), getPageSize(), {v})))
    return failure();
  if (getVScale() && (getVScaleGroup() < 1 ||
                      cast<MemRefType>(getVScale().getType()).getRank() !=
                          int64_t(getVScaleAxes().size())))
    return emitOpError("v's scale needs one scale axis per dim and a group >= 1");
  if (failed(staticRows(*this, "p", p)) || failed(sameRows(*this, p, {acc})))
    return failure();
  if (!compatible(acc.getDimSize(1), valuesAlong(v, 3)))
    return emitOpError() << "accumulator holds " << acc.getDimSize(1)
                         << " value channels but v has " << extentStr(valuesAlong(v, 3));
  return success();
}

LogicalResult TileStoreOp::verify() {
  auto acc = getAcc().getType(), out = getOut().getType();
  bool softmax = getNorm() == NormKind::softmax;
  if (softmax != bool(getL()) || bool(getL()) != bool(getM()))
    return emitOpError("softmax needs the row statistics l and m; other norms take none");
  if (getLse() && !softmax)
    return emitOpError("'lse' is only defined for softmax normalisation");
  if (getL() && failed(sameRows(*this, acc, {getL().getType(), getM().getType()})))
    return failure();
  if (!compatible(acc.getDimSize(1), out.getDimSize(3)))
    return emitOpError() << "accumulator holds " << acc.getDimSize(1)
                         << " value channels but out has " << extentStr(out.getDimSize(3));
  if (getPartOut() && (!getSplit() || !getPartLse()))
    return emitOpError("the split-KV form needs the split index and both partial buffers");
  if (getPartOut() && (!softmax || !getLse()))
    return emitOpError("split-KV partial results need softmax with an 'lse' output");
  if (getPartOut() && !compatible(getPartOut().getType().getDimSize(4), out.getDimSize(3)))
    return emitOpError() << "part_out holds " << extentStr(getPartOut().getType().getDimSize(4))
                         << " value channels but out has " << extentStr(out.getDimSize(3));
  // Several scores: an accumulator, l and m per extra score, one lse each with 'lse'.
  size_t more = getMoreAcc().size();
  if (getMoreL().size() != more || getMoreM().size() != more)
    return emitOpError() << "several scores need l and m per extra accumulator: got " << more
                         << " accumulators, " << getMoreL().size() << " l and "
                         << getMoreM().size() << " m";
  if (getMoreLse().size() != (getLse() ? more : 0))
    return emitOpError() << "'lses' holds the lse of each extra score when 'lse' is given: "
                         << (getLse() ? more : 0) << " expected, got " << getMoreLse().size();
  if (more && (!softmax || getPartOut()))
    return emitOpError("several scores need softmax and no split-KV partial results");
  for (size_t n = 0; n < more; ++n) {
    auto accN = cast<MemRefType>(getMoreAcc()[n].getType());
    if (accN.getShape() != acc.getShape())
      return emitOpError() << "every accumulator has the first one's shape " << acc
                           << ", got " << accN;
    if (failed(sameRows(*this, acc, {cast<MemRefType>(getMoreL()[n].getType()),
                                     cast<MemRefType>(getMoreM()[n].getType())})))
      return failure();
  }
  return success();
}

LogicalResult CombineOp::verify() {
  auto part = getPartOut().getType(), out = getOut().getType();
  for (int64_t d = 0; d < 4; ++d)
    if (!compatible(part.getDimSize(d + 1), out.getDimSize(d)))
      return emitOpError() << "part_out dim " << d + 1 << " ("
                           << extentStr(part.getDimSize(d + 1)) << ") does not match out dim "
                           << d << " (" << extentStr(out.getDimSize(d)) << ")";
  if (!compatible(part.getDimSize(0), getPartLse().getType().getDimSize(0)))
    return emitOpError("part_out and part_lse must hold the same number of splits");
  return success();
}

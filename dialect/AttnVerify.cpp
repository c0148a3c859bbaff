// Checks shared by the verifiers of the attn ops (declared in AttnVerify.h).
#include "dialect/AttnVerify.h"

using namespace mlir;
using namespace mlir::attn;

//===----------------------------------------------------------------------===//
// Shared checks
//===----------------------------------------------------------------------===//

namespace mlir::attn::detail {
/// Two extents agree unless both are static and differ.
bool compatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

std::string extentStr(int64_t e) {
  return ShapedType::isDynamic(e) ? std::string("?") : std::to_string(e);
}

/// Checks that extent `ai` of `a` equals extent `bi` of `b`; `what` names the extent for the user.
/// Extents count values, so a packed (i4) last axis counts two per element.
LogicalResult sameExtent(Operation *op, StringRef what, StringRef aName, MemRefType a, unsigned ai,
                         StringRef bName, MemRefType b, unsigned bi) {
  int64_t x = valuesAlong(a, ai), y = valuesAlong(b, bi);
  if (compatible(x, y))
    return success();
  return op->emitOpError() << what << " differs between " << aName << " (" << extentStr(x)
                           << ") and " << bName << " (" << extentStr(y) << ")";
}

LogicalResult verifyYield(Operation *op, Block &block, StringRef region, Type expected) {
  auto yield = dyn_cast<YieldOp>(block.getTerminator());
  if (!yield || yield.getValues().size() != 1 || yield.getValues()[0].getType() != expected)
    return op->emitOpError() << "'" << region << "' region must yield exactly one " << expected;
  return success();
}

/// score: ^bb0(b, h, i, j : index, dot : f32) -> f32; mask: ^bb0(b, h, i, j : index) -> i1.
/// A feature map, if present: ^bb0(x : f32) -> f32.
/// A feature map: (x : f32) -> f32, or with a projection (`projected`, Performer) required
/// and taking (p, sq : f32), the row's projection on one feature and its sum of squares.
LogicalResult verifyFeature(Operation *op, Region &feature, StringRef name, bool projected) {
  if (feature.empty()) {
    if (projected)
      return op->emitOpError() << "a projection needs a '" << name << "' region";
    return success();
  }
  auto f32 = Float32Type::get(op->getContext());
  unsigned args = projected ? 2 : 1;
  if (!feature.hasOneBlock() || feature.front().getNumArguments() != args ||
      llvm::any_of(feature.front().getArgumentTypes(), [&](Type t) { return t != f32; }))
    return op->emitOpError() << "'" << name << "' region must have one block taking "
                             << (projected ? "(p, sq : f32) with a projection" : "(x : f32)");
  return verifyYield(op, feature.front(), name, f32);
}

/// A projection [m, d] (Performer) of q's head dim; `rows` (the state's, when given) are m.
LogicalResult verifyProjection(Operation *op, Value projection, MemRefType q, MemRefType rows) {
  if (!projection)
    return success();
  auto w = cast<MemRefType>(projection.getType());
  if (w.isDynamicDim(0))  // the lowerings size their feature tiles by it
    return op->emitOpError() << "the projection needs a static feature dim, got " << w;
  if (failed(sameExtent(op, "head dim", "q", q, 3, "projection", w, 1)))
    return failure();
  if (rows && failed(sameExtent(op, "feature dim", "projection", w, 0, "state", rows, 0)))
    return failure();
  return success();
}

LogicalResult verifyScoreAndMask(Operation *op, Region &score, Region &mask) {
  Block &s = score.front();
  auto idx = IndexType::get(op->getContext());
  auto f32 = Float32Type::get(op->getContext());
  auto argsAre = [&](Block &b, unsigned nIndex, bool withDot) {
    if (b.getNumArguments() != nIndex + (withDot ? 1 : 0))
      return false;
    for (unsigned a = 0; a < nIndex; ++a)
      if (b.getArgument(a).getType() != idx)
        return false;
    return !withDot || b.getArgument(nIndex).getType() == f32;
  };
  // (b, h, i, j : index, dot : f32), or with the row norms (..., dot, dot(q, q), dot(k, k))
  unsigned n = s.getNumArguments();
  bool ok = n == 5 || n == 7;
  for (unsigned a = 0; ok && a < n; ++a)
    ok = s.getArgument(a).getType() == (a < 4 ? Type(idx) : Type(f32));
  if (!ok)
    return op->emitOpError("'score' region must take (b, h, i, j : index, dot : f32), or with "
                           "row norms (b, h, i, j : index, dot, qq, kk : f32)");
  if (failed(verifyYield(op, s, "score", f32)))
    return failure();
  if (mask.empty())
    return success();
  if (!mask.hasOneBlock())
    return op->emitOpError("'mask' region must have one block");
  Block &m = mask.front();
  if (!argsAre(m, 4, false))
    return op->emitOpError("'mask' region must take (b, h, i, j : index)");
  return verifyYield(op, m, "mask", IntegerType::get(op->getContext(), 1));
}

LogicalResult staticRows(Operation *op, StringRef name, MemRefType t) {
  if (!t.hasStaticShape())
    return op->emitOpError() << "tile '" << name << "' must have a static shape, got " << t;
  // A tile is a block of one worker's scratch: never empty, never near 2^31 elements.
  constexpr int64_t kMaxTileElements = int64_t(1) << 24;
  if (llvm::is_contained(t.getShape(), 0) || t.getNumElements() > kMaxTileElements)
    return op->emitOpError() << "tile '" << name << "' must have 1 to " << kMaxTileElements
                             << " elements, got " << t;
  return success();
}

LogicalResult distinctBuffers(Operation *op, ArrayRef<std::pair<StringRef, Value>> writes,
                              ArrayRef<std::pair<StringRef, Value>> all) {
  for (auto [name, w] : writes)
    for (auto [other, x] : all)
      if (w && x && w == x && name != other)
        return op->emitOpError() << "'" << name << "' is also '" << other
                                 << "': the op writes it while it reads or writes the other";
  return success();
}

/// A `mix` region of `scores` rows, if present: (b, h, i, e : index, y_0 ... : f32) -> f32.
LogicalResult verifyMix(Operation *op, Region &mix, size_t scores) {
  if (mix.empty() && scores > 1)
    return op->emitOpError() << "several scores (" << scores
                             << ") need a 'mix' region to combine their rows";
  if (!mix.empty() && scores < 2)
    return op->emitOpError("a 'mix' region combines the rows of several scores; this op has one");
  if (mix.empty())
    return success();
  Block &block = mix.front();
  auto idx = IndexType::get(op->getContext());
  auto f32 = Float32Type::get(op->getContext());
  bool ok = mix.hasOneBlock() && block.getNumArguments() == 4 + scores;
  for (unsigned a = 0; ok && a < block.getNumArguments(); ++a)
    ok = block.getArgument(a).getType() == (a < 4 ? Type(idx) : Type(f32));
  if (!ok)
    return op->emitOpError() << "'mix' region must have one block taking (b, h, i, e : index, "
                             << "then one f32 per score: " << scores << ")";
  return verifyYield(op, block, "mix", f32);
}
} // namespace mlir::attn::detail

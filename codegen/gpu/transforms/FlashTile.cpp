// findFlashTile: the ops of a flash-strategy function's query tile and the checks the CUDA
// back end makes of them (FlashTile.h).
#include "codegen/gpu/transforms/FlashTile.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Matchers.h"

using namespace mlir;
using namespace mlir::attngpu;
using attn::CombineOp;
using attn::TileMatmulAccOp;
using attn::TileOnlineUpdateOp;
using attn::TileScoresOp;
using attn::TileStoreOp;

namespace {

template <typename OpTy> OpTy onlyOp(func::FuncOp f, bool required, bool &ok) {
  OpTy found;
  int count = 0;
  f.walk([&](OpTy op) {
    found = op;
    ++count;
  });
  if (count > 1 || (required && count == 0)) {
    f.emitError() << "attn-gpu-distribute expects one '" << OpTy::getOperationName()
                  << "' per flash function (one query tile), found " << count;
    ok = false;
  }
  return found;
}

} // namespace

FailureOr<FlashTile> mlir::attngpu::findFlashTile(func::FuncOp f) {
  FlashTile t;
  bool ok = true;
  if (f->walk([](attn::TileExpSumOp) { return WalkResult::interrupt(); }).wasInterrupted())
    return f.emitError("the GPU back end needs the online softmax (run attn-online-softmax)");
  t.store = onlyOp<TileStoreOp>(f, true, ok);
  t.keyRange = onlyOp<attn::TileKeyRangeOp>(f, false, ok);
  if (!ok)
    return failure();
  // One tile_scores, update (softmax) and tile_matmul_acc per score, in score order.
  SmallVector<TileScoresOp> scores;
  SmallVector<TileOnlineUpdateOp> updates;
  SmallVector<TileMatmulAccOp> matmuls;
  f.walk([&](TileScoresOp op) { scores.push_back(op); });
  f.walk([&](TileOnlineUpdateOp op) { updates.push_back(op); });
  f.walk([&](TileMatmulAccOp op) { matmuls.push_back(op); });
  size_t chains = 1 + t.store.getMoreAcc().size();
  if (scores.size() != chains || matmuls.size() != chains ||
      (!updates.empty() && updates.size() != chains))
    return f.emitError() << "attn-gpu-distribute expects one 'attn.tile_scores', update and "
                            "'attn.tile_matmul_acc' per score of the flash function ("
                         << chains << "), found " << scores.size() << ", " << updates.size()
                         << " and " << matmuls.size();
  for (size_t n = 0; n < chains; ++n) {
    Value acc = n ? t.store.getMoreAcc()[n - 1] : t.store.getAcc();
    if (matmuls[n].getP() != scores[n].getS() || matmuls[n].getAcc() != acc ||
        matmuls[n].getV() != matmuls[0].getV() ||
        (!updates.empty() && updates[n].getS() != scores[n].getS()) ||
        scores[n]->getParentOp() != scores[0]->getParentOp() ||
        scores[n].getH() != scores[0].getH() || scores[n].getI0() != scores[0].getI0() ||
        scores[n].getPack() != scores[0].getPack())
      return f.emitError() << "score " << n << " of the flash function is not a chain of "
                              "tile_scores, update and tile_matmul_acc into the store's "
                              "accumulator over the shared values and query tile";
  }
  t.scores = scores[0], t.matmul = matmuls[0];
  t.update = updates.empty() ? TileOnlineUpdateOp() : updates[0];
  t.moreScores.assign(scores.begin() + 1, scores.end());
  t.moreMatmuls.assign(matmuls.begin() + 1, matmuls.end());
  if (!updates.empty())
    t.moreUpdates.assign(updates.begin() + 1, updates.end());
  t.keyLoop = dyn_cast<scf::ForOp>(t.scores->getParentOp());
  bool inLoop = t.keyLoop && t.keyLoop.getInductionVar() == t.scores.getJ0();
  for (size_t n = 0; inLoop && n < t.chains(); ++n)
    inLoop = t.matmulOf(n)->getParentOp() == t.keyLoop &&
             t.scoresOf(n).getJ0() == t.scores.getJ0() &&
             (!t.update || t.updateOf(n)->getParentOp() == t.keyLoop);
  if (!inLoop)
    return f.emitError("attn.tile_scores, the update and attn.tile_matmul_acc must sit in one "
                       "key loop over j0");
  if ((t.store.getNorm() == attn::NormKind::softmax) != bool(t.update))
    return f.emitError("softmax tiles must be fused by attn-online-softmax");
  auto div = t.scores.getHk().getDefiningOp<arith::DivUIOp>();
  IntegerAttr groupAttr;
  t.pack = t.scores.getPack();
  if (int64_t(t.store.getPack()) != t.pack)
    return f.emitError("attn.tile_scores and attn.tile_store disagree on the GQA packing");
  if (t.pack > 1)
    t.group = t.pack;
  else if (t.scores.getHk() == t.scores.getH())
    t.group = 1;
  else if (div && div.getLhs() == t.scores.getH() &&
           matchPattern(div.getRhs(), m_Constant(&groupAttr)))
    t.group = groupAttr.getInt();
  else
    return f.emitError("cannot find the GQA group (kv head = h / group) of the tiled form");
  if (!t.scores.getDecay().empty() && t.pack > 1)
    return f.emitError("a per-step decay with GQA packing is not supported by the CUDA back "
                       "end yet; compile with --no-pack-gqa");
  if (t.store.getSplit()) {
    t.splitLoop = dyn_cast_or_null<scf::ForOp>(
        cast<BlockArgument>(t.store.getSplit()).getOwner()->getParentOp());
    t.combine = onlyOp<CombineOp>(f, true, ok);
    if (!ok || !t.splitLoop || !t.splitLoop->hasAttr("attn.split_kv"))
      return f.emitError("the split index of attn.tile_store must be attn-split-kv's loop");
  }
  for (auto [axes, group] : {std::pair{t.scores.getKScaleAxes(), t.scores.getKScaleGroup()},
                             std::pair{t.matmul.getVScaleAxes(), t.matmul.getVScaleGroup()}})
    if (llvm::is_contained(axes, 3) && group > 1 && group % 8)
      return f.emitError() << "the CUDA back end needs channel groups of scales that are a "
                              "multiple of 8, got "
                           << group;
  auto s = t.scores.getS().getType();
  auto q = t.scores.getQ().getType(), v = t.matmul.getV().getType();
  t.blockQ = s.getDimSize(0), t.blockK = s.getDimSize(1);
  t.headDim = q.getDimSize(3), t.valueDim = attn::valuesAlong(v, 3);
  t.packedK = attn::packingOf(t.scores.getK().getType());
  t.packedV = attn::packingOf(v);
  Type elt = q.getElementType();
  if (!elt.isF16() && !elt.isBF16())
    return f.emitError() << "the CUDA back end takes f16 or bf16 q, k, v (got " << elt
                         << "); compile with --dtype=bf16";
  if (ShapedType::isDynamic(t.headDim) || ShapedType::isDynamic(t.valueDim))
    return f.emitError("the CUDA back end needs static head and value dims: declare them "
                       "(d = 128) or pass --set d=128");
  if (t.headDim % 16 || t.valueDim % 16 || t.headDim > 256 || t.valueDim > 256)
    return f.emitError() << "head and value dims must be multiples of 16 up to 256, got "
                         << t.headDim << " and " << t.valueDim;
  int64_t warps = t.blockQ / 16;
  if (t.blockQ % 16 || !llvm::is_contained({1, 2, 4, 8}, warps))
    return f.emitError() << "block-q must be 16, 32, 64 or 128 on CUDA, got " << t.blockQ;
  if (t.blockK % 16 || t.blockK > 128)
    return f.emitError() << "block-k must be a multiple of 16 up to 128 on CUDA, got "
                         << t.blockK;
  return t;
}


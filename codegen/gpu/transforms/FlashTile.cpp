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
  if (f->walk([](TileStoreOp store) {
         return store.getMoreAcc().empty() ? WalkResult::advance() : WalkResult::interrupt();
       }).wasInterrupted())
    return f.emitError("not supported yet on the CUDA back end: several scores (a mix of "
                       "attends, e.g. differential attention); the CPU back end runs them");
  t.scores = onlyOp<TileScoresOp>(f, true, ok);
  t.matmul = onlyOp<TileMatmulAccOp>(f, true, ok);
  t.store = onlyOp<TileStoreOp>(f, true, ok);
  t.update = onlyOp<TileOnlineUpdateOp>(f, false, ok);
  t.keyRange = onlyOp<attn::TileKeyRangeOp>(f, false, ok);
  if (!ok)
    return failure();
  t.keyLoop = dyn_cast<scf::ForOp>(t.scores->getParentOp());
  if (!t.keyLoop || t.keyLoop.getInductionVar() != t.scores.getJ0() ||
      t.matmul->getParentOp() != t.keyLoop ||
      (t.update && t.update->getParentOp() != t.keyLoop))
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


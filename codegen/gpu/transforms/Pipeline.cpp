// attn-gpu-pipeline: software pipelining of a key loop's tile copies (FlashAttention-2's order):
// the first tile (K) of the next iteration is copied during the second half of this one, and
// the second tile (V) during the first half, so each wait leaves one copy group in flight.
#include "codegen/gpu/transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/IRMapping.h"

namespace mlir::attngpu {
#define GEN_PASS_DEF_ATTNGPUPIPELINE
#include "codegen/gpu/transforms/Passes.h.inc"
} // namespace mlir::attngpu

using namespace mlir;
using namespace mlir::attngpu;

namespace {

/// One synchronous copy stage of a loop body: copies of key tile j0 = the induction variable
/// into `tile`, then `commit`, a wait for every group (`wait`, numGroups 0) and a barrier.
struct CopyStage {
  SmallVector<CopyKeyTileOp> copies;
  nvgpu::DeviceAsyncCreateGroupOp commit;
  nvgpu::DeviceAsyncWaitOp wait;
  gpu::BarrierOp barrier;
  Value tile;
};

/// The stage that starts at `it` (copies, commit, wait 0, barrier), or failure.
FailureOr<CopyStage> stageAt(Block::iterator it, Block::iterator end, Value iv) {
  CopyStage stage;
  for (; it != end; ++it) {
    auto copy = dyn_cast<CopyKeyTileOp>(*it);
    if (!copy)
      break;
    if (copy.getJ0() != iv || (stage.tile && copy.getTile() != stage.tile))
      return failure();
    stage.tile = copy.getTile();
    stage.copies.push_back(copy);
  }
  if (stage.copies.empty() || it == end)
    return failure();
  stage.commit = dyn_cast<nvgpu::DeviceAsyncCreateGroupOp>(*it++);
  stage.wait = it != end ? dyn_cast<nvgpu::DeviceAsyncWaitOp>(*it++) : nullptr;
  stage.barrier = it != end ? dyn_cast<gpu::BarrierOp>(*it) : nullptr;
  if (!stage.commit || !stage.wait || !stage.barrier || stage.wait.getNumGroups().value_or(0))
    return failure();
  return stage;
}

/// Whether `tile` is used by an op of `block` in [from, to) other than `except`'s copies.
bool usedBetween(Value tile, Operation *from, Operation *to, const CopyStage &except) {
  for (Operation *op = from; op && op != to; op = op->getNextNode()) {
    if (llvm::is_contained(except.copies, dyn_cast<CopyKeyTileOp>(op)))
      continue;
    bool uses = false;
    op->walk([&](Operation *nested) { uses |= llvm::is_contained(nested->getOperands(), tile); });
    if (uses)
      return true;
  }
  return false;
}

/// The key loop's two stages and the prologue's last wait, when the loop has the shape the
/// distribution emits: stage K at the start, stage V later, a barrier before the yield, and
/// no read of K after stage V nor of V before it.
struct KeyLoop {
  scf::ForOp loop;
  CopyStage first, second;
  nvgpu::DeviceAsyncWaitOp prologueWait;
  gpu::BarrierOp tailBarrier;
};

FailureOr<KeyLoop> matchKeyLoop(scf::ForOp loop) {
  KeyLoop k{loop, {}, {}, {}, {}};
  Block *body = loop.getBody();
  Value iv = loop.getInductionVar();
  FailureOr<CopyStage> first = stageAt(body->begin(), body->end(), iv);
  if (failed(first))
    return failure();
  k.first = *first;
  for (auto it = std::next(Block::iterator(k.first.barrier)); it != body->end(); ++it)
    if (isa<CopyKeyTileOp>(*it)) {
      FailureOr<CopyStage> second = stageAt(it, body->end(), iv);
      if (failed(second))
        return failure();
      k.second = *second;
      break;
    }
  if (!k.second.barrier || k.second.tile == k.first.tile)
    return failure();
  Operation *yield = body->getTerminator();
  k.tailBarrier = dyn_cast_or_null<gpu::BarrierOp>(yield->getPrevNode());
  if (!k.tailBarrier || k.tailBarrier == k.second.barrier)
    return failure();
  if (usedBetween(k.first.tile, k.second.copies.front(), yield, k.second) ||
      usedBetween(k.second.tile, &body->front(), k.second.copies.front(), k.first))
    return failure();
  for (Operation *op = loop->getPrevNode(); op; op = op->getPrevNode())
    if (auto wait = dyn_cast<nvgpu::DeviceAsyncWaitOp>(op)) {
      k.prologueWait = wait;
      break;
    }
  if (!k.prologueWait || k.prologueWait.getNumGroups().value_or(0))
    return failure();
  return k;
}

void cloneCopies(OpBuilder &b, const CopyStage &stage, Value iv, Value j0) {
  IRMapping map;
  map.map(iv, j0);
  for (CopyKeyTileOp copy : stage.copies)
    b.clone(*copy, map);
}

void setPending(nvgpu::DeviceAsyncWaitOp wait, int32_t pending) {
  wait.setNumGroupsAttr(IntegerAttr::get(IntegerType::get(wait.getContext(), 32), pending));
}

/// Prologue: K(lower bound) in flight behind the earlier copies. Body: V(j0) issued first, K(j0)
/// waited for; then K(j0 + step) issued, V(j0) waited for. After the loop: drain.
void pipeline(KeyLoop &k) {
  scf::ForOp loop = k.loop;
  Location loc = loop.getLoc();
  Value iv = loop.getInductionVar();
  auto token = nvgpu::DeviceAsyncTokenType::get(loop.getContext());
  OpBuilder b(k.prologueWait);
  cloneCopies(b, k.first, iv, loop.getLowerBound());
  Value group = nvgpu::DeviceAsyncCreateGroupOp::create(b, loc, token, ValueRange{});
  k.prologueWait->setOperand(0, group);
  setPending(k.prologueWait, 1);

  b.setInsertionPoint(k.first.copies.front());
  gpu::BarrierOp::create(b, loc);  // every warp is done reading the previous V tile
  cloneCopies(b, k.second, iv, iv);
  setPending(k.first.wait, 1);

  b.setInsertionPoint(k.second.copies.front());
  gpu::BarrierOp::create(b, loc);  // every warp is done reading K(j0)
  Value next = arith::AddIOp::create(b, loc, iv, loop.getStep());
  cloneCopies(b, k.first, iv, next);
  setPending(k.second.wait, 1);

  for (CopyKeyTileOp copy : llvm::concat<CopyKeyTileOp>(k.first.copies, k.second.copies))
    copy.erase();
  k.tailBarrier.erase();
  b.setInsertionPointAfter(loop);
  Value drain = nvgpu::DeviceAsyncCreateGroupOp::create(b, loc, token, ValueRange{});
  nvgpu::DeviceAsyncWaitOp::create(b, loc, drain, b.getI32IntegerAttr(0));
}

struct AttnGPUPipelinePass : mlir::attngpu::impl::AttnGPUPipelineBase<AttnGPUPipelinePass> {
  void runOnOperation() override {
    SmallVector<KeyLoop> loops;
    getOperation().walk([&](gpu::GPUFuncOp kernel) {
      kernel.walk([&](scf::ForOp loop) {
        if (FailureOr<KeyLoop> k = matchKeyLoop(loop); succeeded(k))
          loops.push_back(*k);
      });
    });
    for (KeyLoop &k : loops)
      pipeline(k);
  }
};

} // namespace

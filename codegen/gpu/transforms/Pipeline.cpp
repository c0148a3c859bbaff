// attn-gpu-pipeline: software pipelining of a loop's tile copies. A flash key loop takes
// FlashAttention-2's order: the first tile (K) of the next iteration is copied during the second
// half of this one, and the second tile (V) during the first half, so each wait leaves one copy
// group in flight. A loop with one copy stage of several tiles (the chunk loop) is double-
// buffered: the next iteration's tiles stream into second buffers while this one computes
// (unless it runs at most once).
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
/// into `tiles` (several: the K tiles of several scores), then `commit`, a wait for every
/// group (`wait`, numGroups 0) and a barrier.
struct CopyStage {
  SmallVector<CopyKeyTileOp> copies;
  nvgpu::DeviceAsyncCreateGroupOp commit;
  nvgpu::DeviceAsyncWaitOp wait;
  gpu::BarrierOp barrier;
  SmallVector<Value, 1> tiles;
};

/// The stage that starts at `it` (copies, commit, wait 0, barrier), or failure.
FailureOr<CopyStage> stageAt(Block::iterator it, Block::iterator end, Value iv) {
  CopyStage stage;
  for (; it != end; ++it) {
    auto copy = dyn_cast<CopyKeyTileOp>(*it);
    if (!copy)
      break;
    if (copy.getJ0() != iv)
      return failure();
    if (!llvm::is_contained(stage.tiles, copy.getTile()))
      stage.tiles.push_back(copy.getTile());
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

/// Whether one of `tiles` is used by an op of `block` in [from, to) other than `except`'s
/// copies.
bool usedBetween(ArrayRef<Value> tiles, Operation *from, Operation *to, const CopyStage &except) {
  for (Operation *op = from; op && op != to; op = op->getNextNode()) {
    if (llvm::is_contained(except.copies, dyn_cast<CopyKeyTileOp>(op)))
      continue;
    bool uses = false;
    op->walk([&](Operation *nested) {
      for (Value tile : tiles)
        uses |= llvm::is_contained(nested->getOperands(), tile);
    });
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
  if (!k.second.barrier ||
      llvm::any_of(k.second.tiles, [&](Value x) { return llvm::is_contained(k.first.tiles, x); }))
    return failure();
  Operation *yield = body->getTerminator();
  k.tailBarrier = dyn_cast_or_null<gpu::BarrierOp>(yield->getPrevNode());
  if (!k.tailBarrier || k.tailBarrier == k.second.barrier)
    return failure();
  if (usedBetween(k.first.tiles, k.second.copies.front(), yield, k.second) ||
      usedBetween(k.second.tiles, &body->front(), k.second.copies.front(), k.first))
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

/// A loop whose body starts with one copy stage of several tiles (copies whose row origins
/// are the induction variable or index arithmetic on it computed just before them, commit,
/// wait 0, barrier), has no other copy, and ends with a barrier after its last read of those
/// tiles (attn-gpu-distribute's chunk loop; the overlapped flash key loop, whose stage copies
/// K of the next key tile and V of this one). Its tiles are alloc_shared results used only
/// inside the loop, or also before it when a barrier separates their last use there from the
/// loop (the overlapped loop's first S).
struct BufferedLoop {
  scf::ForOp loop;
  SmallVector<Operation *> origins;  // the index arithmetic before the copies
  SmallVector<Operation *> copies;
  nvgpu::DeviceAsyncWaitOp wait;
  SmallVector<AllocSharedOp> tiles;
};

Value copyOrigin(Operation *op) {
  if (auto copy = dyn_cast<CopyKeyTileOp>(op))
    return copy.getJ0();
  if (auto copy = dyn_cast<CopyQueryTileOp>(op))
    return copy.getI0();
  return {};
}
Value copyTile(Operation *op) {
  if (auto copy = dyn_cast<CopyKeyTileOp>(op))
    return copy.getTile();
  return cast<CopyQueryTileOp>(op).getTile();
}

FailureOr<BufferedLoop> matchBufferedLoop(scf::ForOp loop) {
  // A loop of at most one iteration (a decoding step) has nothing to overlap: a second set of
  // buffers would only cost shared memory, hence occupancy.
  if (std::optional<APInt> trips = loop.getStaticTripCount(); trips && trips->ule(1))
    return failure();
  BufferedLoop m{loop, {}, {}, {}, {}};
  Block *body = loop.getBody();
  auto it = body->begin();
  // Origins: pure index arithmetic on the induction variable and values from outside.
  llvm::SmallPtrSet<Value, 4> origins = {loop.getInductionVar()};
  auto isOrigin = [&](Operation &op) {
    return isa<arith::ConstantOp, arith::AddIOp, arith::SubIOp, arith::MulIOp>(op) &&
           llvm::all_of(op.getOperands(), [&](Value v) {
             return origins.contains(v) || loop.isDefinedOutsideOfLoop(v);
           });
  };
  for (; it != body->end() && isOrigin(*it); ++it) {
    m.origins.push_back(&*it);
    origins.insert(it->getResult(0));
  }
  for (; it != body->end() && copyOrigin(&*it) && origins.contains(copyOrigin(&*it)); ++it) {
    auto alloc = copyTile(&*it).getDefiningOp<AllocSharedOp>();
    if (!alloc || loop->isAncestor(alloc))
      return failure();
    m.copies.push_back(&*it);
    if (!llvm::is_contained(m.tiles, alloc))
      m.tiles.push_back(alloc);
  }
  if (m.copies.empty() || it == body->end() || !isa<nvgpu::DeviceAsyncCreateGroupOp>(*it++))
    return failure();
  m.wait = it != body->end() ? dyn_cast<nvgpu::DeviceAsyncWaitOp>(*it++) : nullptr;
  if (!m.wait || m.wait.getNumGroups().value_or(0) || it == body->end() ||
      !isa<gpu::BarrierOp>(*it))
    return failure();
  bool otherCopies = false;
  for (Operation &op : llvm::make_range(std::next(it), body->end()))
    op.walk([&](Operation *nested) {
      otherCopies |= isa<CopyKeyTileOp, CopyQueryTileOp, nvgpu::DeviceAsyncCreateGroupOp>(nested);
    });
  if (otherCopies)
    return failure();
  // Uses in the loop, the last one followed by a barrier in the body; uses before the loop
  // (in its block) followed by a barrier before it.
  Operation *lastUse = nullptr, *lastBefore = nullptr;
  for (AllocSharedOp tile : m.tiles)
    for (Operation *user : tile->getUsers()) {
      if (Operation *inBody = body->findAncestorOpInBlock(*user)) {
        if (!lastUse || lastUse->isBeforeInBlock(inBody))
          lastUse = inBody;
        continue;
      }
      Operation *before = loop->getBlock()->findAncestorOpInBlock(*user);
      if (!before || !before->isBeforeInBlock(loop))
        return failure();
      if (!lastBefore || lastBefore->isBeforeInBlock(before))
        lastBefore = before;
    }
  if (!lastUse)
    return failure();
  if (lastBefore) {
    bool separated = false;
    for (Operation *op = lastBefore->getNextNode(); op != loop; op = op->getNextNode())
      separated |= isa<gpu::BarrierOp>(op);
    if (!separated)
      return failure();
  }
  for (Operation *op = lastUse->getNextNode(); op; op = op->getNextNode())
    if (isa<gpu::BarrierOp>(op))
      return m;
  return failure();
}

/// Two buffers per tile, the current one chosen by the iteration's parity: the prologue copies
/// the first iteration's tiles, each iteration copies the next one's into the other buffers
/// and waits for all but that group; the loop drains its last prefetch.
void doubleBuffer(BufferedLoop &m) {
  scf::ForOp loop = m.loop;
  Location loc = loop.getLoc();
  Value iv = loop.getInductionVar();
  auto token = nvgpu::DeviceAsyncTokenType::get(loop.getContext());
  IRMapping other;  // tile -> its second buffer
  for (AllocSharedOp tile : m.tiles) {
    OpBuilder b(tile->getBlock(), std::next(Block::iterator(tile)));
    other.map(tile.getTile(), b.clone(*tile)->getResult(0));
  }
  OpBuilder b(loop);
  IRMapping first;
  first.map(iv, loop.getLowerBound());
  for (Operation *op : llvm::concat<Operation *>(m.origins, m.copies))
    b.clone(*op, first);
  nvgpu::DeviceAsyncCreateGroupOp::create(b, loc, token, ValueRange{});

  b.setInsertionPoint(m.copies.front());
  Value parity = arith::RemUIOp::create(
      b, loc,
      arith::DivUIOp::create(b, loc, arith::SubIOp::create(b, loc, iv, loop.getLowerBound()),
                             loop.getStep()),
      arith::ConstantIndexOp::create(b, loc, 2));
  Value odd = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, parity,
                                    arith::ConstantIndexOp::create(b, loc, 0));
  IRMapping next;
  next.map(iv, arith::AddIOp::create(b, loc, iv, loop.getStep()));
  SmallVector<std::pair<Value, Value>> current;
  llvm::SmallPtrSet<Operation *, 8> selects;
  for (AllocSharedOp tile : m.tiles) {
    Value a = tile.getTile(), second = other.lookup(a);
    auto nextTile = arith::SelectOp::create(b, loc, odd, a, second);
    auto currentTile = arith::SelectOp::create(b, loc, odd, second, a);
    next.map(a, nextTile);
    current.push_back({a, currentTile});
    selects.insert(nextTile);
    selects.insert(currentTile);
  }
  for (Operation *op : llvm::concat<Operation *>(m.origins, m.copies))
    b.clone(*op, next);
  for (Operation *copy : m.copies)
    copy->erase();
  for (auto [tile, cur] : current)
    tile.replaceUsesWithIf(cur, [&](OpOperand &use) {
      return loop->isAncestor(use.getOwner()) && !selects.contains(use.getOwner());
    });
  setPending(m.wait, 1);
  b.setInsertionPointAfter(loop);
  Value drain = nvgpu::DeviceAsyncCreateGroupOp::create(b, loc, token, ValueRange{});
  nvgpu::DeviceAsyncWaitOp::create(b, loc, drain, b.getI32IntegerAttr(0));
}

struct AttnGPUPipelinePass : mlir::attngpu::impl::AttnGPUPipelineBase<AttnGPUPipelinePass> {
  using Base::Base;
  void runOnOperation() override {
    SmallVector<KeyLoop> loops;
    SmallVector<BufferedLoop> buffered;
    getOperation().walk([&](gpu::GPUFuncOp kernel) {
      kernel.walk([&](scf::ForOp loop) {
        if (FailureOr<KeyLoop> k = matchKeyLoop(loop); succeeded(k))
          loops.push_back(*k);
        else if (FailureOr<BufferedLoop> m = matchBufferedLoop(loop); succeeded(m)) {
          bool async = loop.getBody()
                           ->walk([](MmaOp mma) {
                             return mma.getAsync() ? WalkResult::interrupt()
                                                   : WalkResult::advance();
                           })
                           .wasInterrupted();
          if (!async || doubleBufferAsync)
            buffered.push_back(*m);
        }
      });
    });
    for (KeyLoop &k : loops)
      pipeline(k);
    for (BufferedLoop &m : buffered)
      doubleBuffer(m);
  }
};

} // namespace

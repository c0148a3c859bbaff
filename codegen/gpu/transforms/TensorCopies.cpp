// attn-gpu-tensor-copies: on sm_90a, the key and value tiles a kernel copies into swizzled
// tiles go by tensor memory access (TMA) instead of cp.async. One thread issues a tile as a
// few boxes through a descriptor of the tensor (a kernel parameter the runtime encodes) and
// the copy completes on an mbarrier, so the block's threads spend no instruction on address
// arithmetic and copies: the flash key loop is issue-bound on the H200 (bench/METHOD.md).
//
// The pass keeps the kernel's copy schedule (attn-gpu-pipeline's) and changes how copies
// complete. It replays the cp.async group protocol over the kernel body (one level of loop):
// every `nvgpu.device_async_wait` completes the groups older than its count; a tile copied by
// TMA in such a group is then waited for on its own barrier, at the parity of that tile's
// latest copy (copies into a tile are counted: before the loop, per iteration, after it).
// Groups keep their commits (a group of TMA copies alone is empty for cp.async), so the waits
// that still complete cp.async copies keep their counts; a wait that completes none goes, and
// with it the proxy fence behind it (TMA writes through the async proxy that wgmma reads).
// A kernel whose copies do not fit this replay (copies in branches, nested loops, a tile
// copied twice while in flight, a loop whose pending groups differ at entry and exit) keeps
// cp.async throughout.
#include "codegen/gpu/transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <deque>

namespace mlir::attngpu {
#define GEN_PASS_DEF_ATTNGPUTENSORCOPIES
#include "codegen/gpu/transforms/Passes.h.inc"
} // namespace mlir::attngpu

using namespace mlir;
using namespace mlir::attngpu;

namespace {

/// Whether TMA can copy this tile: a whole-tile copy of 16-bit keys or values from a kernel
/// argument into a swizzled tile of its own (not a select between buffers), bounded by the
/// key extent of a kernel argument (TMA zero-fills past the tensor's own extent, which the
/// runtime checks equal for every tensor of the key axis), at most 256 rows.
bool tensorCopyable(CopyKeyTileOp copy, Block &entry) {
  MemRefType tile = copy.getTile().getType();
  auto kv = dyn_cast<BlockArgument>(copy.getKv());
  auto dim = copy.getKvLen().getDefiningOp<memref::DimOp>();
  std::optional<int64_t> axis = dim ? dim.getConstantIndex() : std::nullopt;
  return !copy.getMap() && !copy.getBlockTable() && !copy.getCol0() && isSwizzled(tile) &&
         tile.getElementTypeBitWidth() == 16 &&
         copy.getKv().getType().getElementType() == tile.getElementType() && kv &&
         kv.getOwner() == &entry && copy.getTile().getDefiningOp<AllocSharedOp>() &&
         tile.getDimSize(0) <= 256 && axis == 2 && isa<BlockArgument>(dim.getSource()) &&
         cast<BlockArgument>(dim.getSource()).getOwner() == &entry;
}

/// Copies committed together: the TMA ones and whether any other (cp.async) copy is among them.
struct Group {
  SmallVector<CopyKeyTileOp> tensor;
  bool cpAsync = false;
};

/// Where a count of copies into a tile stands: copies before the loop, per iteration of the
/// loop (those before the point in the body when inside it), after the loop.
struct Count {
  int64_t before = 0, perIteration = 0, inBody = 0, after = 0;
};

/// A wait's rewrite: tensor-copied tiles to wait for (with the count of copies into each at
/// that point, where the phase of the latest is count - 1), and whether it still completes a
/// cp.async copy.
struct WaitPlan {
  nvgpu::DeviceAsyncWaitOp wait;
  SmallVector<std::pair<Value, Count>> tiles;
  bool completesCpAsync = false;
  bool inLoop = false, afterLoop = false;
};

struct Replay {
  Block &entry;
  std::deque<Group> pending;
  Group open;
  llvm::MapVector<Value, Count> counts;  // tile -> copies into it so far
  SmallVector<WaitPlan> waits;
  SmallVector<CopyKeyTileOp> tensorCopies;
  scf::ForOp loop;
  enum class Where { Before, Body, After } where = Where::Before;

  bool inFlight(Value tile) const {
    auto has = [&](const Group &g) {
      return llvm::any_of(g.tensor, [&](CopyKeyTileOp c) { return c.getTile() == tile; });
    };
    return has(open) || llvm::any_of(pending, has);
  }

  LogicalResult copy(Operation *op) {
    auto key = dyn_cast<CopyKeyTileOp>(op);
    if (!key || !tensorCopyable(key, entry)) {
      open.cpAsync = true;
      return success();
    }
    if (inFlight(key.getTile()))
      return failure();
    open.tensor.push_back(key);
    tensorCopies.push_back(key);
    Count &c = counts[key.getTile()];
    (where == Where::Before ? c.before : where == Where::Body ? c.inBody : c.after) += 1;
    return success();
  }

  void wait(nvgpu::DeviceAsyncWaitOp op) {
    size_t keep = std::min<size_t>(op.getNumGroups().value_or(0), pending.size());
    WaitPlan plan{op, {}, false, where == Where::Body, where == Where::After};
    while (pending.size() > keep) {
      Group g = pending.front();
      pending.pop_front();
      plan.completesCpAsync |= g.cpAsync;
      for (CopyKeyTileOp c : g.tensor)
        plan.tiles.push_back({c.getTile(), counts.lookup(c.getTile())});
    }
    waits.push_back(plan);
  }

  static bool isCopy(Operation *op) {
    return isa<CopyKeyTileOp, CopyQueryTileOp, CopyRowsOp, CopyMatrixOp>(op);
  }
  static bool touchesCopies(Operation *op) {
    bool any = false;
    op->walk([&](Operation *nested) {
      any |= isCopy(nested) ||
             isa<nvgpu::DeviceAsyncCreateGroupOp, nvgpu::DeviceAsyncWaitOp>(nested);
    });
    return any;
  }

  LogicalResult block(Block &body) {
    for (Operation &op : body) {
      if (isCopy(&op)) {
        if (failed(copy(&op)))
          return failure();
      } else if (isa<nvgpu::DeviceAsyncCreateGroupOp>(op)) {
        pending.push_back(open);
        open = Group();
      } else if (auto w = dyn_cast<nvgpu::DeviceAsyncWaitOp>(op)) {
        wait(w);
      } else if (auto forOp = dyn_cast<scf::ForOp>(op); forOp && touchesCopies(forOp)) {
        if (loop || where != Where::Before)
          return failure();  // one loop of copies, at the kernel's top level
        loop = forOp;
        where = Where::Body;
        std::deque<Group> atEntry = pending;
        if (!open.tensor.empty() || failed(block(*forOp.getBody())) || !open.tensor.empty())
          return failure();
        auto sameTiles = [](const Group &a, const Group &b) {
          if (a.cpAsync != b.cpAsync || a.tensor.size() != b.tensor.size())
            return false;
          for (size_t i = 0; i < a.tensor.size(); ++i)
            if (CopyKeyTileOp(a.tensor[i]).getTile() != CopyKeyTileOp(b.tensor[i]).getTile())
              return false;
          return true;
        };
        if (pending.size() != atEntry.size() ||
            !llvm::all_of(llvm::zip(pending, atEntry),
                          [&](auto p) { return sameTiles(std::get<0>(p), std::get<1>(p)); }))
          return failure();
        for (auto &[tile, c] : counts) {
          c.perIteration = c.inBody;
          c.inBody = 0;
        }
        where = Where::After;
      } else if (op.getNumRegions() && touchesCopies(&op)) {
        return failure();
      }
    }
    return success();
  }
};


/// The count of copies into a tile at a wait, as an index value (only its parity matters).
Value copiesSoFar(OpBuilder &b, Location loc, const WaitPlan &plan, const Count &c,
                  scf::ForOp loop) {
  auto idx = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v).getResult(); };
  if (!plan.inLoop && !plan.afterLoop)
    return idx(c.before);
  if (c.perIteration % 2 == 0)  // the loop's copies leave the parity as it was
    return idx(c.before + (plan.inLoop ? c.inBody : c.after));
  Value iterations = plan.inLoop ? buildIterationsBefore(b, loc, loop)  // before this one
                                 : buildTripCount(b, loc, loop);
  Value loopCopies = arith::MulIOp::create(b, loc, iterations, idx(c.perIteration));
  return arith::AddIOp::create(b, loc, loopCopies,
                               idx(c.before + (plan.inLoop ? c.inBody : c.after)));
}

/// The kernel's tensor map argument for `kv` (a memref argument) and box rows, appended on
/// first use.
struct TensorMaps {
  explicit TensorMaps(gpu::GPUFuncOp kernel) : kernel(kernel) {}
  gpu::GPUFuncOp kernel;
  SmallVector<TensorMapAttr> maps;
  DenseMap<std::pair<unsigned, int64_t>, Value> args;

  Value of(CopyKeyTileOp copy) {
    unsigned arg = cast<BlockArgument>(copy.getKv()).getArgNumber();
    int64_t rows = copy.getTile().getType().getDimSize(0);
    Value &map = args[{arg, rows}];
    if (!map) {
      MLIRContext *ctx = kernel.getContext();
      unsigned at = kernel.getNumArguments();
      if (failed(kernel.insertArgument(at, LLVM::LLVMPointerType::get(ctx), {}, kernel.getLoc())))
        return {};
      map = kernel.getArgument(at);
      maps.push_back(TensorMapAttr::get(ctx, arg, rows, 64));
    }
    return map;
  }
};

void rewrite(gpu::GPUFuncOp kernel, Replay &r, bool dropBarriers) {
  Location loc = kernel.getLoc();
  MLIRContext *ctx = kernel.getContext();
  // One barrier per tensor-copied tile, initialised before the first copy of the kernel.
  Operation *first = nullptr;
  for (Operation &op : r.entry)
    if (Replay::touchesCopies(&op)) {
      first = &op;
      break;
    }
  OpBuilder b(first);
  auto barrierType = MemRefType::get({1}, IntegerType::get(ctx, 64), MemRefLayoutAttrInterface(),
                                     gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup));
  DenseMap<Value, Value> barrierOf;
  for (auto &[tile, count] : r.counts) {
    Value barrier = AllocSharedOp::create(b, loc, barrierType, IntegerAttr());
    InitBarrierOp::create(b, loc, barrier);
    barrierOf[tile] = barrier;
  }
  gpu::BarrierOp::create(b, loc);

  TensorMaps maps(kernel);
  for (CopyKeyTileOp copy : r.tensorCopies) {
    copy.getMapMutable().assign(maps.of(copy));
    copy.getBarrierMutable().assign(barrierOf.lookup(copy.getTile()));
    copy.removeInteriorAttr();
  }
  for (WaitPlan &plan : r.waits) {
    Operation *next = plan.wait->getNextNode();  // the waits below go between the two
    b.setInsertionPointAfter(plan.wait);
    for (auto &[tile, count] : plan.tiles) {
      count.perIteration = r.counts.lookup(tile).perIteration;  // known once the loop was seen
      Value copies = copiesSoFar(b, loc, plan, count, r.loop);
      Value latest = arith::SubIOp::create(b, loc, copies,
                                           arith::ConstantIndexOp::create(b, loc, 1));
      WaitBarrierOp::create(b, loc, barrierOf.lookup(tile), latest);
    }
    if (plan.completesCpAsync || plan.tiles.empty())
      continue;
    // Nothing of cp.async completes here: no wait, and no proxy fence after it.
    if (auto fence = dyn_cast_or_null<NVVM::FenceProxyOp>(next)) {
      next = fence->getNextNode();
      fence.erase();
    }
    // The block barrier behind such a wait made every thread's cp.async copies visible to
    // all; each thread now waits on the copies' barrier itself. It goes when the stretch since
    // the previous block barrier holds nothing else another thread could need to see: only
    // tensor copies, commits and index arithmetic.
    auto barrier = dyn_cast_or_null<gpu::BarrierOp>(next);
    bool onlyCopies = barrier && dropBarriers;
    for (Operation *op = plan.wait->getPrevNode(); onlyCopies && op && !isa<gpu::BarrierOp>(op);
         op = op->getPrevNode()) {
      auto copy = dyn_cast<CopyKeyTileOp>(op);
      onlyCopies = (copy && copy.getMap()) || isa<nvgpu::DeviceAsyncCreateGroupOp>(op) ||
                   (isMemoryEffectFree(op) && op->getNumRegions() == 0 &&
                    llvm::all_of(op->getResultTypes(),
                                 [](Type t) { return t.isIndex() || t.isInteger(); }));
    }
    plan.wait.erase();
    if (onlyCopies)
      barrier.erase();
  }
  auto launch = kernel->getAttrOfType<LaunchAttr>(kLaunchAttrName);
  if (launch)
    kernel->setAttr(kLaunchAttrName,
                    LaunchAttr::get(ctx, launch.getThreads(), launch.getGrid(),
                                    launch.getSharedMemory(), launch.getSplits(),
                                    launch.getSchedule(), maps.maps));
}

struct AttnGPUTensorCopiesPass
    : mlir::attngpu::impl::AttnGPUTensorCopiesBase<AttnGPUTensorCopiesPass> {
  using Base::Base;
  void runOnOperation() override {
    getOperation().walk([&](gpu::GPUModuleOp module) {
      auto targets = module.getTargetsAttr();
      bool sm90a = targets && llvm::any_of(targets, [](Attribute a) {
                     auto nvvm = dyn_cast<NVVM::NVVMTargetAttr>(a);
                     return nvvm && nvvm.getChip() == "sm_90a";
                   });
      if (!sm90a)
        return;
      module.walk([&](gpu::GPUFuncOp kernel) {
        if (!kernel.isKernel() || kernel.getBody().empty())
          return;
        Replay r{kernel.getBody().front(), {}, {}, {}, {}, {}, {}};
        if (failed(r.block(kernel.getBody().front())) || r.tensorCopies.empty() ||
            !r.open.tensor.empty() ||
            llvm::any_of(r.pending, [](const Group &g) { return !g.tensor.empty(); }))
          return;  // unchanged: cp.async throughout
        rewrite(kernel, r, dropBarriers);
      });
    });
  }
};

} // namespace

Value mlir::attngpu::buildIterationsBefore(OpBuilder &b, Location loc, scf::ForOp loop) {
  return arith::DivUIOp::create(
      b, loc, arith::SubIOp::create(b, loc, loop.getInductionVar(), loop.getLowerBound()),
      loop.getStep());
}

Value mlir::attngpu::buildTripCount(OpBuilder &b, Location loc, scf::ForOp loop) {
  Value lb = loop.getLowerBound(), ub = loop.getUpperBound();
  Value span = arith::SubIOp::create(b, loc, arith::MaxSIOp::create(b, loc, ub, lb), lb);
  return arith::CeilDivUIOp::create(b, loc, span, loop.getStep());
}

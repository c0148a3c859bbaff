// attn-gpu-warp-specialize: on sm_90a, a kernel whose key and value tiles arrive by TMA
// (attn-gpu-tensor-copies) splits into consumer warpgroups, which compute, and a producer
// warp, which issues every tensor copy into a ring of two buffers per tile, as
// FlashAttention-3 and CUTLASS's warp-specialised pipelines do.
//
// The kernel's copy schedule is kept as a sequence: the producer replays the copies of each
// tile in program order (those before the key loop, then each iteration's), copy n of a tile
// landing in buffer n % 2 and signalling that buffer's "full" barrier; before copy n it waits
// until the consumers freed the buffer (copy n - 2's reads done: the buffer's "free" barrier
// at parity (n / 2 + 1) % 2, which a fresh barrier passes for n < 2). The consumers keep the
// original program without the copies: where copy n was issued, every consumer thread has
// finished reading copy n - 1 (the block barrier before the copy said so), so it arrives on
// that buffer's free barrier there; each wait for a tile's copy n becomes a wait on buffer
// n % 2's full barrier at parity n / 2, and the reads behind it take buffer n % 2. The block
// barriers in the key loop that only guarded the refill of a tile go when the loop writes no
// other shared memory; the others synchronise the consumers alone (named barriers).
//
// Registers: the producer warpgroup gives its registers to the consumers (setmaxnreg), under
// a per-thread cap set by the blocks per SM the kernel asks for (nvvm.minctasm).
#include "codegen/gpu/transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::attngpu {
#define GEN_PASS_DEF_ATTNGPUWARPSPECIALIZE
#include "codegen/gpu/transforms/Passes.h.inc"
} // namespace mlir::attngpu

using namespace mlir;
using namespace mlir::attngpu;

namespace {

constexpr int64_t kWarpgroup = 128;
constexpr int64_t kRegisterFile = 65536;      // 32-bit registers per SM
constexpr int64_t kProducerRegisters = 24;    // setmaxnreg's minimum

/// The kernel's shared memory laid out as attn-gpu-allocate-shared will, plus `extra` buffers.
int64_t sharedBytesWith(gpu::GPUFuncOp kernel, ArrayRef<MemRefType> extra) {
  int64_t end = 0;
  auto place = [&](MemRefType type) { end = sharedOffset(end, type) + sharedBytes(type); };
  kernel.walk([&](AllocSharedOp a) { place(a.getTile().getType()); });
  for (MemRefType type : extra)
    place(type);
  return end;
}

/// A tile the kernel copies by TMA, its copies in program order and the waits for them.
struct Ring {
  AllocSharedOp tile;
  Value full;  // the copies' barrier (buffer 0's)
  SmallVector<CopyKeyTileOp> before, inLoop;
  SmallVector<WaitBarrierOp> waits;
  DenseMap<OpOperand *, WaitBarrierOp> readAfter;  // each read of the tile -> its wait
  // The second buffer, its full barrier and both buffers' free barriers (built).
  Value tile1, full1, free0, free1;
};

struct Plan {
  gpu::GPUFuncOp kernel;
  Block *entry = nullptr;  // the kernel's
  Block *body = nullptr;   // the copies' block outside the loop: entry, then the consumers'
  gpu::BarrierOp split;  // the block barrier after the barriers' initialisation
  scf::ForOp loop;       // the key loop (null when every copy precedes it)
  llvm::MapVector<Operation *, Ring> rings;  // by the tile's alloc
  int64_t consumers = 0;                     // warpgroups

  bool beforeSplit(Value v) const {
    if (auto arg = dyn_cast<BlockArgument>(v))
      return arg.getOwner() == entry;
    Operation *def = v.getDefiningOp();
    return def->getBlock() == entry && def->isBeforeInBlock(split);
  }
};

/// Whether `v` can be recomputed in the producer from values before the split and the key
/// loop's induction variable: memory-effect-free ops without regions.
bool recomputable(Plan &p, Value v, unsigned depth = 0) {
  if (p.beforeSplit(v))
    return true;
  if (auto arg = dyn_cast<BlockArgument>(v))
    return p.loop && arg == p.loop.getInductionVar();
  Operation *def = v.getDefiningOp();
  if (depth > 64 || def->getNumRegions() || !isMemoryEffectFree(def))
    return false;
  if (def->getBlock() != p.body && !(p.loop && def->getBlock() == p.loop.getBody()))
    return false;
  return llvm::all_of(def->getOperands(), [&](Value o) { return recomputable(p, o, depth + 1); });
}

/// Whether `op` writes shared memory (other than an mbarrier's or a TMA copy's). The attn_gpu
/// ops declare what they write (their operands' effects); one that declares nothing writes
/// nothing.
bool writesShared(Operation *op) {
  if (isa<WaitBarrierOp, ArriveBarrierOp, gpu::BarrierOp, NVVM::FenceProxyOp,
          nvgpu::DeviceAsyncCreateGroupOp, nvgpu::DeviceAsyncWaitOp>(op))
    return false;
  if (auto copy = dyn_cast<CopyKeyTileOp>(op); copy && copy.getMap())
    return false;
  if (isMemoryEffectFree(op))
    return false;
  auto effects = dyn_cast<MemoryEffectOpInterface>(op);
  if (!effects) {
    if (op->getDialect() && isa<AttnGPUDialect>(op->getDialect()) &&
        !op->hasTrait<OpTrait::HasRecursiveMemoryEffects>())
      return false;
    if (!op->hasTrait<OpTrait::HasRecursiveMemoryEffects>())
      return true;
    bool any = false;
    for (Region &region : op->getRegions())
      region.walk([&](Operation *nested) { any |= nested != op && writesShared(nested); });
    return any;
  }
  SmallVector<MemoryEffects::EffectInstance> list;
  effects.getEffects(list);
  for (auto &e : list) {
    if (!isa<MemoryEffects::Write>(e.getEffect()))
      continue;
    Value v = e.getValue();
    auto type = v ? dyn_cast<MemRefType>(v.getType()) : MemRefType();
    if (!type)
      return true;  // an effect on something unnamed: assume shared
    auto space = dyn_cast_or_null<gpu::AddressSpaceAttr>(type.getMemorySpace());
    if (space && space.getValue() == gpu::AddressSpace::Workgroup)
      return true;
  }
  return false;
}

/// The wait a read of a ring tile follows: the nearest wait on the ring's barrier before the
/// read (its ancestor in the wait's block) with no copy into the tile in between.
WaitBarrierOp waitBefore(Ring &ring, Operation *reader) {
  Operation *at = reader;
  while (at && !llvm::any_of(ring.waits, [&](WaitBarrierOp w) {
           return w->getBlock() == at->getBlock();
         }))
    at = at->getParentOp();
  if (!at)
    return {};
  for (Operation *op = at->getPrevNode(); op; op = op->getPrevNode()) {
    if (auto wait = dyn_cast<WaitBarrierOp>(op); wait && wait.getBarrier() == ring.full)
      return wait;
    if (auto copy = dyn_cast<CopyKeyTileOp>(op); copy && copy.getTile() == ring.tile.getTile())
      return {};
  }
  return {};
}

std::optional<Plan> analyse(gpu::GPUFuncOp kernel, int64_t minConsumers) {
  Plan p;
  p.kernel = kernel;
  p.entry = p.body = &kernel.getBody().front();
  auto launch = kernel->getAttrOfType<LaunchAttr>(kLaunchAttrName);
  if (!launch || launch.getThreads() % kWarpgroup || launch.getTensorMaps().empty())
    return std::nullopt;
  p.consumers = launch.getThreads() / kWarpgroup;
  if (p.consumers < minConsumers)
    return std::nullopt;
  // The split: the block barrier right after the last barrier initialisation.
  for (Operation &op : *p.entry)
    if (isa<InitBarrierOp>(op))
      p.split = dyn_cast_or_null<gpu::BarrierOp>(op.getNextNode());
  if (!p.split)
    return std::nullopt;

  bool ok = true;
  kernel.walk([&](CopyKeyTileOp copy) {
    auto alloc = copy.getTile().getDefiningOp<AllocSharedOp>();
    if (!copy.getMap())
      return;
    if (!alloc || alloc->getBlock() != p.entry || !copy.getBarrier().getDefiningOp<AllocSharedOp>() ||
        !p.beforeSplit(copy.getTile()) || !p.beforeSplit(copy.getBarrier())) {
      ok = false;
      return;
    }
    Ring &ring = p.rings[alloc];
    if (!ring.tile) {
      ring.tile = alloc;
      ring.full = copy.getBarrier();
    }
    ok &= ring.full == copy.getBarrier();
    if (copy->getBlock() == p.entry) {
      ok &= p.split->isBeforeInBlock(copy);
      ring.before.push_back(copy);
      return;
    }
    auto loop = dyn_cast<scf::ForOp>(copy->getParentOp());
    if (!loop || loop->getBlock() != p.entry || (p.loop && p.loop != loop)) {
      ok = false;
      return;
    }
    p.loop = loop;
    ring.inLoop.push_back(copy);
  });
  if (!ok || p.rings.empty())
    return std::nullopt;
  for (auto &[alloc, ring] : p.rings) {
    // Copies before the loop precede it; none follows it.
    for (CopyKeyTileOp c : ring.before)
      if (p.loop && !c->isBeforeInBlock(p.loop))
        return std::nullopt;
    // The barrier is this tile's alone: initialised, signalled by its copies, waited on.
    for (Operation *user : ring.full.getUsers()) {
      if (auto wait = dyn_cast<WaitBarrierOp>(user)) {
        ring.waits.push_back(wait);
        continue;
      }
      auto copy = dyn_cast<CopyKeyTileOp>(user);
      if (!isa<InitBarrierOp>(user) && !(copy && copy.getTile() == alloc->getResult(0)))
        return std::nullopt;
    }
    for (WaitBarrierOp wait : ring.waits) {
      bool inEntry = wait->getBlock() == p.entry,
           inLoop = p.loop && wait->getBlock() == p.loop.getBody();
      if (!(inEntry && p.split->isBeforeInBlock(wait)) && !inLoop)
        return std::nullopt;
      // A wait in the loop before any copy of this iteration waits for the previous one's:
      // at the first iteration that must be a copy before the loop.
      if (inLoop && ring.before.empty() &&
          !llvm::any_of(ring.inLoop, [&](CopyKeyTileOp c) { return c->isBeforeInBlock(wait); }))
        return std::nullopt;
      if (inEntry && (!p.loop || wait->isBeforeInBlock(p.loop)) &&
          !llvm::any_of(ring.before, [&](CopyKeyTileOp c) { return c->isBeforeInBlock(wait); }))
        return std::nullopt;
    }
    // Every read of the tile follows a wait for the copy it reads.
    for (OpOperand &use : alloc->getResult(0).getUses()) {
      auto copy = dyn_cast<CopyKeyTileOp>(use.getOwner());
      if (copy && copy.getTile() == use.get()) {
        if (!copy.getMap())
          return std::nullopt;  // a cp.async copy would bypass the ring
        continue;
      }
      WaitBarrierOp wait = waitBefore(ring, use.getOwner());
      if (!wait)
        return std::nullopt;
      ring.readAfter[&use] = wait;
    }
    // The producer recomputes each copy's operands.
    for (auto *list : {&ring.before, &ring.inLoop})
      for (CopyKeyTileOp c : *list)
        for (Value v : SmallVector<Value>{c.getKv(), c.getB(), c.getHk(), c.getJ0(), c.getKvLen(), c.getMap()})
          if (!recomputable(p, v))
            return std::nullopt;
  }
  // The second buffers and the barriers must fit a block's shared memory.
  SmallVector<MemRefType> extra;
  for (auto &[alloc, ring] : p.rings) {
    extra.push_back(cast<AllocSharedOp>(alloc).getTile().getType());
    extra.append(3, cast<MemRefType>(ring.full.getType()));
  }
  if (sharedBytesWith(kernel, extra) > kSharedPerBlock90)
    return std::nullopt;
  if (p.loop && !llvm::all_of(ValueRange{p.loop.getLowerBound(), p.loop.getUpperBound(),
                                         p.loop.getStep()},
                              [&](Value v) { return recomputable(p, v); }))
    return std::nullopt;
  return p;
}

struct Builder {
  OpBuilder &b;
  Location loc;
  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, loc, x, y); }
  Value odd(Value n) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                 arith::RemUIOp::create(b, loc, n, idx(2)), idx(1));
  }
  Value half(Value n) { return arith::DivUIOp::create(b, loc, n, idx(2)); }
  Value pick(Value isOdd, Value one, Value zero) {
    return arith::SelectOp::create(b, loc, isOdd, one, zero);
  }
  Value iterations(scf::ForOp loop) { return buildIterationsBefore(b, loc, loop); }
};

/// The number of the latest copy into `ring` before `op` (a wait), in program order: copies
/// before the loop count 0 .. a - 1, iteration t's are a + t c + q (q copies of the tile
/// before it in the body), so the latest is one less than the copies so far: q - 1 before the
/// loop, a + t c + q - 1 in it, a + T c - 1 after it.
Value latestCopy(Builder &x, Plan &p, const Ring &ring, Operation *op) {
  int64_t a = ring.before.size(), c = ring.inLoop.size();
  auto countBefore = [&](ArrayRef<CopyKeyTileOp> copies) {
    return int64_t(llvm::count_if(copies, [&](CopyKeyTileOp k) {
      return k->getBlock() == op->getBlock() && k->isBeforeInBlock(op);
    }));
  };
  if (op->getBlock() == p.body && (!p.loop || op->isBeforeInBlock(p.loop)))
    return x.idx(countBefore(ring.before) - 1);
  if (op->getBlock() == p.body)  // after the loop
    return x.add(x.mul(buildTripCount(x.b, x.loc, p.loop), x.idx(c)), x.idx(a - 1));
  return x.add(x.mul(x.iterations(p.loop), x.idx(c)), x.idx(a + countBefore(ring.inLoop) - 1));
}

/// Clones into the producer the ops computing `v` (recomputable): ops of the key loop's body
/// at `inner`, the others at `outer`.
Value materialize(Plan &p, Value v, IRMapping &map, OpBuilder &outer, OpBuilder &inner) {
  if (Value m = map.lookupOrNull(v))
    return m;
  if (p.beforeSplit(v))
    return v;
  Operation *def = v.getDefiningOp();
  for (Value o : def->getOperands())
    materialize(p, o, map, outer, inner);
  bool inLoop = p.loop && def->getBlock() == p.loop.getBody();
  (inLoop ? inner : outer).clone(*def, map);
  return map.lookup(v);
}

/// The second buffer of each tile, its full barrier and the free barriers, before the split.
void addRings(Plan &p) {
  Location loc = p.kernel.getLoc();
  int64_t consumerThreads = p.consumers * kWarpgroup;
  OpBuilder b(p.split);
  for (auto &[alloc, ring] : p.rings) {
    ring.tile1 = b.clone(*alloc)->getResult(0);
    Type barrierType = ring.full.getType();
    auto barrier = [&](int64_t arrivals) {
      Value v = AllocSharedOp::create(b, loc, barrierType, IntegerAttr());
      InitBarrierOp::create(b, loc, v, arrivals);
      return v;
    };
    ring.full1 = barrier(1);
    ring.free0 = barrier(consumerThreads);
    ring.free1 = barrier(consumerThreads);
  }
}

/// Registers: the blocks per SM shared memory allows (two for one consumer warpgroup), the
/// per-thread cap that gives, and the consumers' share once the producer gave up its own
/// (null: the cap needs no reallocation).
DenseI64ArrayAttr registerSplit(Plan &p, int64_t &blocks) {
  int64_t shared = sharedBytesWith(p.kernel, {});
  int64_t threads = (p.consumers + 1) * kWarpgroup;
  blocks = p.consumers == 1 && 2 * (shared + 1024) <= kSharedPerSM90 ? 2 : 1;
  int64_t cap = std::min<int64_t>(255, kRegisterFile / (threads * blocks)) / 8 * 8;
  if (cap >= 248)
    return DenseI64ArrayAttr();
  int64_t consumerRegisters = std::min<int64_t>(
      256, ((p.consumers + 1) * cap - kProducerRegisters) / p.consumers / 8 * 8);
  return DenseI64ArrayAttr::get(p.kernel.getContext(), {consumerRegisters, kProducerRegisters});
}

/// The producer: the copies in program order, each into buffer n % 2 once it is free.
void emitProducer(Plan &p, Block *producer) {
  Location loc = p.kernel.getLoc();
  OpBuilder outer = OpBuilder::atBlockEnd(producer);
  IRMapping map;
  // `at`: where the copy goes; `outside`: where index math outside the key loop goes.
  auto emitCopy = [&](OpBuilder &at, OpBuilder &outside, Ring &ring, CopyKeyTileOp copy,
                      Value n) {
    for (Value v : copy->getOperands())
      if (v != copy.getTile() && v != copy.getBarrier())
        materialize(p, v, map, outside, at);
    Builder x{at, loc};
    Value isOdd = x.odd(n);
    WaitBarrierOp::create(at, loc, x.pick(isOdd, ring.free1, ring.free0),
                          x.add(x.half(n), x.idx(1)));
    Value tile = x.pick(isOdd, ring.tile1, ring.tile.getTile());
    Value full = x.pick(isOdd, ring.full1, ring.full);
    auto clone = cast<CopyKeyTileOp>(at.clone(*copy, map));
    clone.getTileMutable().assign(tile);
    clone.getBarrierMutable().assign(full);
  };
  // The copies of every ring from one list (before the loop, in it), in program order.
  auto inProgramOrder = [&](SmallVector<CopyKeyTileOp> Ring::*list) {
    SmallVector<std::pair<Ring *, CopyKeyTileOp>> copies;
    for (auto &[alloc, ring] : p.rings)
      for (CopyKeyTileOp c : ring.*list)
        copies.push_back({&ring, c});
    llvm::sort(copies, [](auto &l, auto &r) { return l.second->isBeforeInBlock(r.second); });
    return copies;
  };
  for (auto &[ring, copy] : inProgramOrder(&Ring::before)) {
    Builder x{outer, loc};
    int64_t n = llvm::find(ring->before, copy) - ring->before.begin();
    emitCopy(outer, outer, *ring, copy, x.idx(n));
  }
  if (!p.loop)
    return;
  OpBuilder none(p.kernel.getContext());
  Value lb = materialize(p, p.loop.getLowerBound(), map, outer, none);
  Value ub = materialize(p, p.loop.getUpperBound(), map, outer, none);
  Value step = materialize(p, p.loop.getStep(), map, outer, none);
  auto loop = scf::ForOp::create(outer, loc, lb, ub, step);
  map.map(p.loop.getInductionVar(), loop.getInductionVar());
  OpBuilder hoisted(loop);  // loop-invariant index math goes before the loop
  OpBuilder inner = OpBuilder::atBlockTerminator(loop.getBody());
  for (auto &[ring, copy] : inProgramOrder(&Ring::inLoop)) {
    Builder x{inner, loc};
    int64_t q = llvm::find(ring->inLoop, copy) - ring->inLoop.begin();
    Value n = x.add(x.mul(x.iterations(loop), x.idx(ring->inLoop.size())),
                    x.idx(ring->before.size() + q));
    emitCopy(inner, hoisted, *ring, copy, n);
  }
}

/// Block barriers in the key loop that only guarded a tile's refill (the next op with an
/// effect is a copy): the free barriers guard it now. Kept when the loop writes shared memory
/// otherwise.
SmallVector<gpu::BarrierOp> refillGuards(Plan &p) {
  SmallVector<gpu::BarrierOp> guards;
  if (!p.loop)
    return guards;
  bool otherWrites = false;
  p.loop.getBody()->walk([&](Operation *op) { otherWrites |= writesShared(op); });
  Block *body = p.loop.getBody();
  for (auto barrier : body->getOps<gpu::BarrierOp>()) {
    // The next op with an effect, from the body's start again past its end (the next
    // iteration's copies).
    Operation *next = barrier->getNextNode();
    for (bool wrapped = false;;) {
      while (next && (isMemoryEffectFree(next) || isa<scf::YieldOp>(next)) &&
             next->getNumRegions() == 0 && next != barrier)
        next = next->getNextNode();
      if (next || wrapped)
        break;
      wrapped = true;
      next = &body->front();
    }
    auto copy = dyn_cast_or_null<CopyKeyTileOp>(next);
    if (!otherWrites && copy && copy.getMap())
      guards.push_back(barrier);
  }
  return guards;
}

/// The consumers: each wait for copy n becomes one on buffer n % 2's full barrier at parity
/// n / 2 (the reads behind it take buffer n % 2), and where copy n was issued, copy n - 1 has
/// been read: its buffer's free barrier gets an arrival.
void rewireConsumers(Plan &p) {
  Location loc = p.kernel.getLoc();
  for (auto &[alloc, ring] : p.rings)
    for (WaitBarrierOp wait : ring.waits) {
      OpBuilder at(wait);
      Builder x{at, loc};
      Value n = latestCopy(x, p, ring, wait);
      Value isOdd = x.odd(n);
      WaitBarrierOp::create(at, loc, x.pick(isOdd, ring.full1, ring.full), x.half(n));
      Value current = x.pick(isOdd, ring.tile1, ring.tile.getTile());
      for (auto &[use, w] : ring.readAfter)
        if (w == wait)
          use->set(current);
    }
  for (auto &[alloc, ring] : p.rings)
    for (WaitBarrierOp wait : ring.waits)
      wait.erase();
  for (auto &[alloc, ring] : p.rings) {
    int64_t a = ring.before.size(), c = ring.inLoop.size();
    for (auto [q, copy] : llvm::enumerate(ring.before)) {
      if (q > 0) {
        OpBuilder at(copy);
        ArriveBarrierOp::create(at, loc, q % 2 ? ring.free0 : ring.free1);
      }
      copy.erase();
    }
    for (auto [q, copy] : llvm::enumerate(ring.inLoop)) {
      OpBuilder at(copy);
      auto arrive = [&](OpBuilder &ab) {
        Builder y{ab, loc};
        Value prev = y.add(y.mul(y.iterations(p.loop), y.idx(c)), y.idx(a + int64_t(q) - 1));
        ArriveBarrierOp::create(ab, loc, y.pick(y.odd(prev), ring.free1, ring.free0));
      };
      if (a + int64_t(q) > 0) {
        arrive(at);
      } else {  // the loop's first copy of a tile not copied before it: from iteration 1 on
        Value later = arith::CmpIOp::create(at, loc, arith::CmpIPredicate::ugt,
                                            p.loop.getInductionVar(), p.loop.getLowerBound());
        auto guard = scf::IfOp::create(at, loc, later, /*withElseRegion=*/false);
        OpBuilder inside = OpBuilder::atBlockBegin(guard.thenBlock());
        arrive(inside);
      }
      copy.erase();
    }
  }
}

void specialize(Plan &p) {
  gpu::GPUFuncOp kernel = p.kernel;
  Location loc = kernel.getLoc();
  MLIRContext *ctx = kernel.getContext();
  addRings(p);
  int64_t blocks = 1;
  DenseI64ArrayAttr registers = registerSplit(p, blocks);

  // Everything after the split is the consumers' program.
  OpBuilder b(ctx);
  b.setInsertionPointAfter(p.split);
  auto ws = WarpSpecializeOp::create(b, loc, p.consumers, registers);
  Block *consumer = new Block(), *producer = new Block();
  ws.getConsumer().push_back(consumer);
  ws.getProducer().push_back(producer);
  consumer->getOperations().splice(consumer->end(), p.entry->getOperations(),
                                   std::next(ws->getIterator()),
                                   p.entry->getTerminator()->getIterator());
  p.body = consumer;
  emitProducer(p, producer);
  SmallVector<gpu::BarrierOp> guards = refillGuards(p);
  rewireConsumers(p);
  for (gpu::BarrierOp barrier : guards)
    barrier.erase();

  // The launch: a producer warpgroup more, the blocks per SM asked for, the pipeline's shape.
  int64_t threads = (p.consumers + 1) * kWarpgroup;
  auto launch = kernel->getAttrOfType<LaunchAttr>(kLaunchAttrName);
  NamedAttrList schedule(launch.getSchedule());
  schedule.set("consumers", IntegerAttr::get(IntegerType::get(ctx, 64), p.consumers));
  schedule.set("stages", IntegerAttr::get(IntegerType::get(ctx, 64), 2));
  if (registers)
    schedule.set("min_blocks", IntegerAttr::get(IntegerType::get(ctx, 64), blocks));
  else
    schedule.erase("min_blocks");
  kernel->setAttr(kLaunchAttrName,
                  LaunchAttr::get(ctx, threads, launch.getGrid(), launch.getSharedMemory(),
                                  launch.getSplits(), schedule.getDictionary(ctx),
                                  launch.getTensorMaps()));
  kernel.setKnownBlockSizeAttr(OpBuilder(ctx).getDenseI32ArrayAttr({int32_t(threads), 1, 1}));
}

/// Two consumer warpgroups take turns at the key loop's matmuls (FlashAttention-3's
/// ping-pong): a turn wait before each, a pass after it, the first warpgroup holding the turn
/// at the start. Only where every matmul of the loop runs unconditionally (each warpgroup then
/// waits and passes equally often).
void takeTurns(Plan &p) {
  if (p.consumers != 2 || !p.loop)
    return;
  SmallVector<MmaOp> mmas;
  bool nested = false;
  p.loop.getBody()->walk([&](MmaOp mma) {
    if (mma->getBlock() == p.loop.getBody())
      mmas.push_back(mma);
    else
      nested = true;
  });
  if (mmas.empty() || nested)
    return;
  Location loc = p.loop.getLoc();
  OpBuilder b(p.loop);
  TurnOp::create(b, loc, TurnAction::start);
  for (MmaOp mma : mmas) {
    b.setInsertionPoint(mma);
    TurnOp::create(b, loc, TurnAction::wait);
    b.setInsertionPointAfter(mma);
    TurnOp::create(b, loc, TurnAction::pass);
    if (mma.getAsync())
      continue;
    // The turn passes once the matmul is issued, not done: the other warpgroup's queues
    // behind it on the tensor cores (asynchronous, then waited for).
    mma.setAsync(true);
    auto done = MmaWaitOp::create(b, loc, ValueRange{mma.getResult()}, /*pending=*/0);
    mma.getResult().replaceAllUsesExcept(done.getResult(0), done);
  }
}

struct AttnGPUWarpSpecializePass
    : mlir::attngpu::impl::AttnGPUWarpSpecializeBase<AttnGPUWarpSpecializePass> {
  using Base::Base;
  void runOnOperation() override {
    getOperation().walk([&](gpu::GPUFuncOp kernel) {
      if (!kernel.isKernel() || kernel.getBody().empty())
        return;
      std::optional<Plan> plan = analyse(kernel, minConsumers);
      if (!plan)
        return;
      specialize(*plan);
      if (pingpong)
        takeTurns(*plan);
    });
  }
};

} // namespace

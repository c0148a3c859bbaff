// attn-gpu-select-mma: picks the tensor-core instruction of each attn_gpu.mma from its target,
// and with it the layout of the shared tiles the instruction reads.
#include "codegen/gpu/transforms/Passes.h"

#include "llvm/ADT/SetVector.h"

namespace mlir::attngpu {
#define GEN_PASS_DEF_ATTNGPUSELECTMMA
#include "codegen/gpu/transforms/Passes.h.inc"
} // namespace mlir::attngpu

using namespace mlir;
using namespace mlir::attngpu;

namespace {

/// The SM number of a chip name (sm_80 -> 80, sm_90a -> 90), or 0.
int64_t smVersion(StringRef chip) {
  int64_t sm = 0;
  if (!chip.consume_front("sm_") || chip.take_while(llvm::isDigit).getAsInteger(10, sm))
    return 0;
  return sm;
}

/// Whether a 16-bit shared tile can take the 128-byte swizzle: at least one 64-element block
/// of columns, a multiple of 16 (whole k16 steps; a last block partly used, as head dims 96,
/// 160, 224 need; verified on the GPU for the forward and the backward kernels, 2026-12-06)
/// and a multiple of `rowStep` rows.
bool swizzlable(MemRefType tile, int64_t rowStep) {
  int64_t cols = sharedColumns(tile);
  return !isSwizzled(tile) && tile.getElementTypeBitWidth() == 16 && cols % 16 == 0 &&
         cols >= 64 && tile.getDimSize(0) % rowStep == 0;
}

/// Whether `mma` alone allows wgmma m64nNk16: whole warpgroups of rows, 16-bit operands,
/// N <= 256, no gate, and a B tile the swizzle can lay out (its contiguous dimension -- K of a
/// [N, K] tile, N of a [K, N] one -- whole 64-element rows of atoms).
bool wgmmaShapeFits(MmaOp mma) {
  auto a = cast<ShapedType>(mma.getA().getType());
  auto acc = cast<RankedTensorType>(mma.getAcc().getType());
  return !mma.getGate() && a.getDimSize(0) % 64 == 0 && acc.getDimSize(1) <= 256 &&
         a.getElementTypeBitWidth() == 16 &&
         swizzlable(mma.getB().getType(), 8);
}

/// The shared buffers one tile value may be, closed under the selects that mix them
/// (attn-gpu-pipeline's double buffering: `select %odd, %k0, %k1`): they share one layout.
/// `opaque` when a value of the group comes from anything else (a kernel argument, a view).
struct TileGroup {
  SmallVector<Value> values;  // the allocs' and the selects' results
  bool opaque = false;

  explicit TileGroup(AllocSharedOp seed) {
    SmallVector<Value> work{seed.getTile()};
    llvm::SmallPtrSet<Value, 8> seen;
    while (!work.empty()) {
      Value v = work.pop_back_val();
      if (!seen.insert(v.getImpl()).second)
        continue;
      values.push_back(v);
      Operation *def = v.getDefiningOp();
      if (auto select = dyn_cast_or_null<arith::SelectOp>(def)) {
        work.push_back(select.getTrueValue());
        work.push_back(select.getFalseValue());
      } else if (!isa_and_nonnull<AllocSharedOp>(def)) {
        opaque = true;
      }
      for (Operation *user : v.getUsers())
        if (auto select = dyn_cast<arith::SelectOp>(user); select && select.getCondition() != v)
          work.push_back(select.getResult());
    }
  }
  /// Every use of the group's values except the selects within it.
  template <typename Fn> bool allUses(Fn &&fn) const {
    for (Value v : values)
      for (OpOperand &use : v.getUses())
        if (!isa<arith::SelectOp>(use.getOwner()) && !fn(use))
          return false;
    return true;
  }
  /// The tile becomes the swizzle (its padding dropped), every buffer and select alike.
  void swizzle() const {
    auto type = cast<MemRefType>(values.front().getType());
    auto swizzled = MemRefType::get({type.getDimSize(0), sharedColumns(type)},
                                    type.getElementType(), SwizzleAttr::get(type.getContext(), 128),
                                    type.getMemorySpace());
    for (Value v : values)
      v.setType(swizzled);
  }
};

/// Whether a use writes the tile with a copy or a dequantisation (both write any layout).
bool writesTile(OpOperand &use) {
  return isa<CopyQueryTileOp, CopyKeyTileOp, DequantizeOp>(use.getOwner()) &&
         use.getOperandNumber() == 1;
}

/// Whether a use reads the tile in whatever layout it takes (the B of attn_gpu.atomic_add_product
/// follows the swizzle).
bool readsAnyLayout(OpOperand &use) {
  return isa<AtomicAddProductOp>(use.getOwner()) && use.getOperandNumber() == 1;
}

/// The choice of wgmma in one kernel, made before anything changes: the B tiles to swizzle,
/// and the A tiles whose fragments the wgmmas read in place instead. A tile is a TileGroup
/// (double buffers take one layout).
///  - A B tile is swizzled when only copies (or dequantisations) write it and only
///    shape-fitting mmas read it.
///  - An A fragment loaded from a tile (Q) is read from that tile in place when the tile is
///    swizzlable, written only by copies and loaded only for wgmmas (no registers, no
///    ldmatrix). Otherwise it must be computed beside the mma (P, in the same block): a
///    fragment kept in registers across a loop into wgmma was measured to come out wrong
///    (ptxas reused its registers between iterations, 2026-12-04). Failing both, the mma
///    stays mma.sync -- and so do the other readers of its B tile, until nothing changes.
class WgmmaPlan {
public:
  SmallVector<const TileGroup *> bTiles, aTiles;

  explicit WgmmaPlan(gpu::GPUFuncOp kernel) {
    SmallVector<MmaOp> mmas;
    kernel.walk([&](MmaOp mma) { mmas.push_back(mma); });
    llvm::DenseSet<const TileGroup *> refused, bSet;
    llvm::SetVector<const TileGroup *> aSet;
    for (bool changed = true; changed;) {
      changed = false;
      bSet.clear();
      aSet.clear();
      for (MmaOp mma : mmas)
        if (const TileGroup *b = groupOf(mma.getB()); b && !refused.contains(b) && onlyWgmmaReads(*b))
          bSet.insert(b);
      for (MmaOp mma : mmas) {
        const TileGroup *b = groupOf(mma.getB());
        if (!b || !bSet.contains(b))
          continue;
        Operation *def = mma.getA().getDefiningOp();
        auto load = dyn_cast_or_null<LoadOperandOp>(def);
        const TileGroup *a = load ? groupOf(load.getTile()) : nullptr;
        if (a && readableInPlace(*a, bSet)) {
          aSet.insert(a);
          continue;
        }
        if (def && def->getBlock() == mma->getBlock())  // recomputed every time the mma runs
          continue;
        refused.insert(b);
        changed = true;
      }
    }
    for (auto &group : groups)
      if (bSet.contains(group.get()))
        bTiles.push_back(group.get());
    aTiles.assign(aSet.begin(), aSet.end());
  }

  /// The group of a tile value (nullptr: not a plain shared buffer).
  const TileGroup *groupOf(Value tile) {
    if (auto known = index.find(tile.getImpl()); known != index.end())
      return known->second;
    auto select = tile.getDefiningOp<arith::SelectOp>();
    AllocSharedOp seed = tile.getDefiningOp<AllocSharedOp>();
    for (Value v = tile; !seed && select; select = v.getDefiningOp<arith::SelectOp>()) {
      v = select.getTrueValue();
      seed = v.getDefiningOp<AllocSharedOp>();
    }
    if (!seed)
      return nullptr;
    groups.push_back(std::make_unique<TileGroup>(seed));
    const TileGroup *group = groups.back().get();
    for (Value v : group->values)
      index[v.getImpl()] = group->opaque ? nullptr : group;
    return index.lookup(tile.getImpl());
  }

private:
  SmallVector<std::unique_ptr<TileGroup>> groups;
  llvm::DenseMap<void *, const TileGroup *> index;

  /// Every use of a B tile is a write (copy, dequantisation) or the B of an mma that fits.
  static bool onlyWgmmaReads(const TileGroup &tile) {
    return tile.allUses([](OpOperand &use) {
      auto mma = dyn_cast<MmaOp>(use.getOwner());
      return writesTile(use) || readsAnyLayout(use) ||
             (mma && use.getOperandNumber() == 1 && wgmmaShapeFits(mma));
    });
  }
  /// An A tile: copies write it, and it is loaded only as the A operand of mmas whose B tiles
  /// are swizzled.
  bool readableInPlace(const TileGroup &tile,
                       const llvm::DenseSet<const TileGroup *> &bSet) {
    Value first = tile.values.front();
    if (!swizzlable(cast<MemRefType>(first.getType()), 64))
      return false;
    return tile.allUses([&](OpOperand &use) {
      if (writesTile(use) || readsAnyLayout(use))
        return true;
      auto load = dyn_cast<LoadOperandOp>(use.getOwner());
      return load && llvm::all_of(load->getUses(), [&](OpOperand &l) {
               auto mma = dyn_cast<MmaOp>(l.getOwner());
               return mma && l.getOperandNumber() == 0 && bSet.contains(groupOf(mma.getB()));
             });
    });
  }
};

/// wgmma reads shared memory through the async proxy, cp.async and st.shared write it through
/// the generic one: after each wait that lands copies (and each dequantisation into a swizzled
/// tile), every thread fences its writes into the async proxy before the barrier that
/// publishes them.
void fenceCopiesForTensorCores(gpu::GPUFuncOp kernel) {
  auto fenceAfter = [](Operation *op) {
    OpBuilder b(op->getContext());
    b.setInsertionPointAfter(op);
    NVVM::FenceProxyOp::create(
        b, op->getLoc(), NVVM::ProxyKindAttr::get(b.getContext(), NVVM::ProxyKind::async_shared),
        NVVM::SharedSpaceAttr::get(b.getContext(), NVVM::SharedSpace::shared_cta));
  };
  kernel.walk([&](Operation *op) {
    // A dequantisation's stores into a swizzled tile are generic-proxy writes too.
    auto dequantize = dyn_cast<DequantizeOp>(op);
    if (isa<nvgpu::DeviceAsyncWaitOp>(op) ||
        (dequantize && isSwizzled(dequantize.getTile().getType())))
      fenceAfter(op);
  });
}

/// The launch ABI's schedule records the choice for the manifest and reports: `wgmma` = 1 when
/// any of the kernel's mmas is wgmma, 0 when all are mma.sync (absent without mmas).
void recordChoice(gpu::GPUFuncOp kernel) {
  auto launch = kernel->getAttrOfType<LaunchAttr>(kLaunchAttrName);
  bool any = false, wgmma = false;
  kernel.walk([&](MmaOp mma) {
    any = true;
    wgmma |= *mma.getKind() == MmaKind::wgmma_m64nNk16;
  });
  if (!launch || !any)
    return;
  MLIRContext *ctx = kernel.getContext();
  NamedAttrList schedule(launch.getSchedule() ? launch.getSchedule() : DictionaryAttr::get(ctx));
  schedule.set("wgmma", IntegerAttr::get(IntegerType::get(ctx, 64), wgmma ? 1 : 0));
  kernel->setAttr(kLaunchAttrName,
                  LaunchAttr::get(ctx, launch.getThreads(), launch.getGrid(),
                                  launch.getSharedMemory(), launch.getSplits(),
                                  schedule.getDictionary(ctx), launch.getTensorMaps()));
}

struct AttnGPUSelectMMAPass : mlir::attngpu::impl::AttnGPUSelectMMABase<AttnGPUSelectMMAPass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    WalkResult result = getOperation().walk([&](gpu::GPUModuleOp module) {
      StringRef chip;
      if (ArrayAttr targets = module.getTargetsAttr())
        for (Attribute t : targets)
          if (auto nvvm = dyn_cast<NVVM::NVVMTargetAttr>(t))
            chip = nvvm.getChip();
      if (smVersion(chip) < 80) {
        module.emitError() << "attnc's tensor-core kernels need sm_80 or newer, got '" << chip
                           << "'";
        return WalkResult::interrupt();
      }
      // sm_90a (the arch-specific feature set wgmma needs): wgmma where the plan allows.
      if (chip == "sm_90a")
        module.walk([&](gpu::GPUFuncOp kernel) {
          WgmmaPlan plan(kernel);
          if (plan.bTiles.empty())
            return;
          auto wgmma = MmaKindAttr::get(ctx, MmaKind::wgmma_m64nNk16);
          for (const TileGroup *b : plan.bTiles) {
            b->swizzle();
            b->allUses([&](OpOperand &use) {
              if (auto mma = dyn_cast<MmaOp>(use.getOwner()))
                mma.setKindAttr(wgmma);
              return true;
            });
          }
          for (const TileGroup *a : plan.aTiles) {
            SmallVector<LoadOperandOp> loads;
            a->allUses([&](OpOperand &use) {
              if (auto load = dyn_cast<LoadOperandOp>(use.getOwner()))
                loads.push_back(load);
              return true;
            });
            a->swizzle();  // never also a B tile: its only readers are loads
            for (LoadOperandOp load : loads) {
              load.getResult().replaceAllUsesWith(load.getTile());
              load.erase();
            }
          }
          fenceCopiesForTensorCores(kernel);
        });
      // mma.sync with ldmatrix fragments runs on every chip from sm_80 on.
      auto sync = MmaKindAttr::get(ctx, MmaKind::mma_sync_m16n8k16);
      module.walk([&](MmaOp mma) {
        if (!mma.getKind())
          mma.setKindAttr(sync);
      });
      module.walk([&](gpu::GPUFuncOp kernel) { recordChoice(kernel); });
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace

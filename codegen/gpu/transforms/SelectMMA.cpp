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

/// Whether a 16-bit shared tile can take the 128-byte swizzle: whole 64-element rows of atoms
/// and a multiple of `rowStep` rows.
bool swizzlable(MemRefType tile, int64_t rowStep) {
  return !isSwizzled(tile) && tile.getElementTypeBitWidth() == 16 &&
         sharedColumns(tile) % 64 == 0 && tile.getDimSize(0) % rowStep == 0;
}

/// Whether `mma` alone allows wgmma m64nNk16: whole warpgroups of rows, 16-bit operands,
/// N <= 256, no gate, and B in a tile of its own that the swizzle can lay out (its contiguous
/// dimension -- K of a [N, K] tile, N of a [K, N] one -- whole 64-element rows of atoms).
bool wgmmaShapeFits(MmaOp mma) {
  auto a = cast<ShapedType>(mma.getA().getType());
  auto acc = cast<RankedTensorType>(mma.getAcc().getType());
  if (mma.getGate() || a.getDimSize(0) % 64 || acc.getDimSize(1) > 256 ||
      a.getElementTypeBitWidth() != 16)
    return false;
  auto alloc = mma.getB().getDefiningOp<AllocSharedOp>();
  return alloc && swizzlable(alloc.getTile().getType(), 8);
}

/// The choice of wgmma in one kernel, made before anything changes: the B tiles to swizzle,
/// and the A tiles whose fragments the wgmmas read in place instead.
///  - A B tile is swizzled when only copies (or dequantisations) write it and only
///    shape-fitting mmas read it.
///  - An A fragment loaded from a tile (Q) is read from that tile in place when the tile is
///    swizzlable, written only by copies and loaded only for wgmmas (no registers, no
///    ldmatrix). Otherwise it must be computed beside the mma (P, in the same block): a
///    fragment kept in registers across a loop into wgmma was measured to come out wrong
///    (ptxas reused its registers between iterations, 2026-12-04). Failing both, the mma
///    stays mma.sync -- and so do the other readers of its B tile, until nothing changes.
struct WgmmaPlan {
  llvm::SetVector<AllocSharedOp> bTiles, aTiles;

  explicit WgmmaPlan(gpu::GPUFuncOp kernel) {
    SmallVector<MmaOp> mmas;
    kernel.walk([&](MmaOp mma) { mmas.push_back(mma); });
    llvm::DenseSet<Operation *> refused;  // B tiles ruled out
    for (bool changed = true; changed;) {
      changed = false;
      bTiles.clear();
      aTiles.clear();
      for (MmaOp mma : mmas) {
        auto alloc = mma.getB().getDefiningOp<AllocSharedOp>();
        if (alloc && !refused.contains(alloc) && onlyWgmmaReads(alloc))
          bTiles.insert(alloc);
      }
      for (MmaOp mma : mmas) {
        auto b = mma.getB().getDefiningOp<AllocSharedOp>();
        if (!b || !bTiles.contains(b))
          continue;
        Operation *def = mma.getA().getDefiningOp();
        bool local = def && def->getBlock() == mma->getBlock();
        auto load = dyn_cast_or_null<LoadOperandOp>(def);
        AllocSharedOp aTile = load ? load.getTile().getDefiningOp<AllocSharedOp>() : nullptr;
        if (aTile && readableInPlace(aTile)) {
          aTiles.insert(aTile);
          continue;
        }
        if (local)  // recomputed (or reloaded) every time the mma runs
          continue;
        refused.insert(b);
        changed = true;
      }
    }
  }

private:
  /// Every use of a B tile is a copy or a dequantisation into it (both write any layout) or an
  /// mma that fits.
  static bool onlyWgmmaReads(AllocSharedOp alloc) {
    for (OpOperand &use : alloc.getTile().getUses()) {
      if (isa<CopyKeyTileOp, DequantizeOp>(use.getOwner()) && use.getOperandNumber() == 1)
        continue;
      auto mma = dyn_cast<MmaOp>(use.getOwner());
      if (!mma || mma.getB() != alloc.getTile() || !wgmmaShapeFits(mma))
        return false;
    }
    return true;
  }
  /// An A tile: copies write it, and it is loaded only as the A operand of mmas whose B tiles
  /// are swizzled.
  bool readableInPlace(AllocSharedOp alloc) const {
    if (!swizzlable(alloc.getTile().getType(), 64))
      return false;
    for (OpOperand &use : alloc.getTile().getUses()) {
      if (isa<CopyQueryTileOp, CopyKeyTileOp>(use.getOwner()) && use.getOperandNumber() == 1)
        continue;
      auto load = dyn_cast<LoadOperandOp>(use.getOwner());
      if (!load)
        return false;
      for (OpOperand &l : load->getUses()) {
        auto mma = dyn_cast<MmaOp>(l.getOwner());
        auto b = mma ? mma.getB().getDefiningOp<AllocSharedOp>() : nullptr;
        if (!mma || l.getOperandNumber() != 0 || !b || !bTiles.contains(b))
          return false;
      }
    }
    return true;
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

/// A tile's layout becomes the swizzle (its padding dropped).
void swizzle(AllocSharedOp alloc) {
  MemRefType type = alloc.getTile().getType();
  alloc.getTile().setType(MemRefType::get({type.getDimSize(0), sharedColumns(type)},
                                          type.getElementType(),
                                          SwizzleAttr::get(type.getContext(), 128),
                                          type.getMemorySpace()));
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
          for (AllocSharedOp b : plan.bTiles) {
            swizzle(b);
            for (Operation *user : b.getTile().getUsers())
              if (auto mma = dyn_cast<MmaOp>(user))
                mma.setKindAttr(wgmma);
          }
          for (AllocSharedOp a : plan.aTiles) {
            swizzle(a);
            for (Operation *user : llvm::make_early_inc_range(a.getTile().getUsers()))
              if (auto load = dyn_cast<LoadOperandOp>(user)) {
                load.getResult().replaceAllUsesWith(a.getTile());
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
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace

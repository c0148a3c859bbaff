// attn-gpu-select-mma: picks the tensor-core instruction of each attn_gpu.mma from its target.
#include "codegen/gpu/transforms/Passes.h"

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

struct AttnGPUSelectMMAPass : mlir::attngpu::impl::AttnGPUSelectMMABase<AttnGPUSelectMMAPass> {
  void runOnOperation() override {
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
      // mma.sync with ldmatrix fragments runs on every chip from sm_80 on (sm_90a included,
      // until its warpgroup kind is selected here).
      auto kind = MmaKindAttr::get(&getContext(), MmaKind::mma_sync_m16n8k16);
      module.walk([&](MmaOp mma) { mma.setKindAttr(kind); });
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace

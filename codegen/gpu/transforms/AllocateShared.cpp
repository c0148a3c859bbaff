// attn-gpu-allocate-shared: byte offsets of a kernel's shared tiles, and its total, which the
// launch ABI (and so the manifest) carries.
#include "codegen/gpu/transforms/Passes.h"

#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

namespace mlir::attngpu {
#define GEN_PASS_DEF_ATTNGPUALLOCATESHARED
#include "codegen/gpu/transforms/Passes.h.inc"
} // namespace mlir::attngpu

using namespace mlir;
using namespace mlir::attngpu;

namespace {

struct AttnGPUAllocateSharedPass
    : mlir::attngpu::impl::AttnGPUAllocateSharedBase<AttnGPUAllocateSharedPass> {
  void runOnOperation() override {
    SmallVector<NamedAttribute> launches;
    bool failed = false;
    getOperation().walk([&](gpu::GPUFuncOp kernel) {
      int64_t end = 0;
      bool any = false;
      kernel.walk([&](AllocSharedOp alloc) {
        any = true;
        int64_t offset = sharedOffset(end, alloc.getTile().getType());
        alloc.setOffsetAttr(IntegerAttr::get(IntegerType::get(&getContext(), 64), offset));
        end = offset + sharedBytes(alloc.getTile().getType());
      });
      if (auto launch = kernel->getAttrOfType<LaunchAttr>(kLaunchAttrName)) {
        // A kernel built without shared tiles (the recurrence builders) keeps its own count.
        int64_t shared = any ? end : launch.getSharedMemory();
        // More than a block may have (sm_80: 163 KB, sm_90a: 227 KB) could never launch.
        auto module = kernel->getParentOfType<gpu::GPUModuleOp>();
        auto targets = module ? module.getTargetsAttr() : ArrayAttr();
        bool sm90 = targets && llvm::any_of(targets, [](Attribute a) {
                      auto nvvm = dyn_cast<NVVM::NVVMTargetAttr>(a);
                      return nvvm && nvvm.getChip().starts_with("sm_90");
                    });
        int64_t limit = sm90 ? kSharedPerBlock90 : kSharedPerBlock80;
        if (shared > limit) {
          kernel.emitError() << "kernel '" << kernel.getName() << "' needs " << shared
                             << " bytes of shared memory per block, more than the "
                             << (sm90 ? "sm_90a" : "sm_80") << " limit of " << limit
                             << "; hint: smaller tiles (--block-q, --block-k)";
          failed = true;
          return;
        }
        DictionaryAttr schedule = launch.getSchedule();
        // A request for n blocks per SM (min_blocks) becomes nvvm.minctasm (ptxas bounds the
        // registers for it) when n blocks' shared memory fits an SM (228 KB, 1 KB of it
        // reserved per block); otherwise it is dropped from the schedule.
        if (auto request = schedule ? schedule.getAs<IntegerAttr>("min_blocks") : nullptr) {
          int64_t blocks = request.getInt();
          NamedAttrList choices(schedule);
          if (blocks * (shared + 1024) <= kSharedPerSM90)  // only sm_90a asks
            kernel->setAttr(NVVM::NVVMDialect::getMinctasmAttrName(),
                            IntegerAttr::get(IntegerType::get(&getContext(), 32), blocks));
          else
            choices.erase("min_blocks");
          schedule = choices.getDictionary(&getContext());
        }
        launch = LaunchAttr::get(&getContext(), launch.getThreads(), launch.getGrid(), shared,
                                 launch.getSplits(), schedule, launch.getTensorMaps());
        kernel->setAttr(kLaunchAttrName, launch);
        launches.push_back(NamedAttribute(kernel.getNameAttr(), launch));
      }
    });
    if (failed)
      return signalPassFailure();
    // The module keeps every kernel's launch ABI past serialisation (gpu-module-to-binary
    // replaces the kernels), for the manifest.
    if (!launches.empty())
      getOperation()->setAttr(kLaunchesAttrName, DictionaryAttr::get(&getContext(), launches));
  }
};

} // namespace

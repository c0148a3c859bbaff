// attn-gpu-allocate-shared: byte offsets of a kernel's shared tiles, and its total, which the
// launch ABI (and so the manifest) carries.
#include "codegen/gpu/transforms/Passes.h"

namespace mlir::attngpu {
#define GEN_PASS_DEF_ATTNGPUALLOCATESHARED
#include "codegen/gpu/transforms/Passes.h.inc"
} // namespace mlir::attngpu

using namespace mlir;
using namespace mlir::attngpu;

namespace {

int64_t bytesOf(MemRefType type) {
  return type.getNumElements() * ((type.getElementTypeBitWidth() + 7) / 8);
}

struct AttnGPUAllocateSharedPass
    : mlir::attngpu::impl::AttnGPUAllocateSharedBase<AttnGPUAllocateSharedPass> {
  void runOnOperation() override {
    SmallVector<NamedAttribute> launches;
    getOperation().walk([&](gpu::GPUFuncOp kernel) {
      int64_t end = 0;
      bool any = false;
      kernel.walk([&](AllocSharedOp alloc) {
        any = true;
        // A swizzled tile's atoms are 1024-byte aligned: the swizzle XORs address bits.
        int64_t align = isSwizzled(alloc.getTile().getType()) ? 1024 : 16;
        int64_t offset = (end + align - 1) / align * align;
        alloc.setOffsetAttr(IntegerAttr::get(IntegerType::get(&getContext(), 64), offset));
        end = offset + bytesOf(alloc.getTile().getType());
      });
      if (auto launch = kernel->getAttrOfType<LaunchAttr>(kLaunchAttrName)) {
        // A kernel built without shared tiles (the recurrence builders) keeps its own count.
        launch = LaunchAttr::get(&getContext(), launch.getThreads(), launch.getGrid(),
                                 any ? end : launch.getSharedMemory(), launch.getSplits(),
                                 launch.getSchedule());
        kernel->setAttr(kLaunchAttrName, launch);
        launches.push_back(NamedAttribute(kernel.getNameAttr(), launch));
      }
    });
    // The module keeps every kernel's launch ABI past serialisation (gpu-module-to-binary
    // replaces the kernels), for the manifest.
    if (!launches.empty())
      getOperation()->setAttr(kLaunchesAttrName, DictionaryAttr::get(&getContext(), launches));
  }
};

} // namespace

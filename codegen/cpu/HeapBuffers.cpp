// attn-cpu-heap-buffers: the host lowering's scratch buffers (attn-tile's per-query-tile
// accumulators, attn-chunk's state, the chunk step's tiles, the backward's rows) are allocas.
// One of more than kStackBytes, or of a size known only at run time, would overflow the
// thread's stack for wide heads (a [64 x 32768] f32 accumulator is 8 MiB): it becomes a heap
// allocation (memref.alloc) freed at the end of the block that holds it.
#include "codegen/cpu/Passes.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNCPUHEAPBUFFERS
#include "codegen/cpu/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;

namespace {

/// Buffers up to this size stay on the stack (a chunk step's 64 x 64 f32 weights are 16 KiB).
constexpr int64_t kStackBytes = 64 * 1024;

bool tooBigForTheStack(memref::AllocaOp alloca) {
  MemRefType type = alloca.getType();
  if (!type.hasStaticShape())
    return true;
  int64_t bits = type.getElementTypeBitWidth();
  int64_t elements = type.getNumElements();
  return elements > kStackBytes * 8 / std::max<int64_t>(bits, 1);
}

struct AttnCPUHeapBuffersPass
    : mlir::attn::impl::AttnCPUHeapBuffersBase<AttnCPUHeapBuffersPass> {
  void runOnOperation() override {
    SmallVector<memref::AllocaOp> allocas;
    getOperation().walk([&](memref::AllocaOp op) {
      if (tooBigForTheStack(op))
        allocas.push_back(op);
    });
    for (memref::AllocaOp alloca : allocas) {
      // Freed before its block's terminator: it must not leave the block through it.
      Block *block = alloca->getBlock();
      if (llvm::any_of(alloca->getUsers(),
                       [&](Operation *user) { return user == block->getTerminator(); }))
        continue;
      OpBuilder b(alloca);
      auto heap = memref::AllocOp::create(b, alloca.getLoc(), alloca.getType(),
                                          alloca.getDynamicSizes(), alloca.getSymbolOperands(),
                                          alloca.getAlignmentAttr());
      alloca.replaceAllUsesWith(heap.getResult());
      alloca.erase();
      b.setInsertionPoint(block->getTerminator());
      memref::DeallocOp::create(b, heap.getLoc(), heap.getResult());
    }
  }
};

} // namespace

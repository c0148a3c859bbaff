// attn-gpu-select-strategy: records which kernel family each tiled function becomes.
#include "codegen/gpu/transforms/Passes.h"

namespace mlir::attngpu {
#define GEN_PASS_DEF_ATTNGPUSELECTSTRATEGY
#include "codegen/gpu/transforms/Passes.h.inc"
} // namespace mlir::attngpu

using namespace mlir;
using namespace mlir::attngpu;

namespace {

/// The chunk kernel's tensor cores need head and value dims that are multiples of 16; the
/// scan kernel takes the others (Mamba-1, S4D).
StrategyKind chunkStrategy(attn::ChunkStepOp step) {
  int64_t d = step.getQ().getType().getDimSize(3), dv = step.getOut().getType().getDimSize(3);
  if (Value w = step.getProjection())  // Performer: the state's rows are the feature dim
    d = cast<MemRefType>(w.getType()).getDimSize(0);
  bool known = !ShapedType::isDynamic(d) && !ShapedType::isDynamic(dv);
  return known && (d % 16 || dv % 16) ? StrategyKind::scan : StrategyKind::chunk;
}

struct AttnGPUSelectStrategyPass
    : mlir::attngpu::impl::AttnGPUSelectStrategyBase<AttnGPUSelectStrategyPass> {
  void runOnOperation() override {
    for (auto f : getOperation().getOps<func::FuncOp>()) {
      StrategyKind kind = StrategyKind::flash;
      f.walk([&](attn::ChunkStepOp step) { kind = chunkStrategy(step); });
      f.walk([&](attn::AttentionGradOp) { kind = StrategyKind::backward; });
      f->setAttr(kStrategyAttrName, StrategyKindAttr::get(&getContext(), kind));
    }
  }
};

} // namespace

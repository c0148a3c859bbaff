// Phase functions of the attnc pipeline and their registration under names.
#include "compiler/pipeline/Pipeline.h"

#include "codegen/cpu/Passes.h"
#include "codegen/cuda/Passes.h"
#include "codegen/gpu/transforms/Passes.h"
#include "dialect/transforms/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

namespace attnc {

bool parseStage(const std::string &name, Stage &stage) {
  static const std::pair<const char *, Stage> names[] = {
      {"ast", Stage::AST},     {"attn", Stage::Attn}, {"tiled", Stage::Tiled},
      {"llvm", Stage::LLVM},   {"ptx", Stage::PTX}};
  for (const auto &[n, s] : names)
    if (name == n) {
      stage = s;
      return true;
    }
  return false;
}

void buildAttnToTiledPipeline(mlir::OpPassManager &pm, const PipelineOptions &options) {
  // Global positions for blocks of a longer sequence (a no-op without marked arguments); first,
  // so the backward differentiates the offset score.
  pm.addNestedPass<mlir::func::FuncOp>(mlir::attn::createAttnPositionOffsets());
  if (options.backward) {  // before any form is chosen: the backward differentiates the variant
    mlir::attn::AttnGradOptions grad;
    grad.gradOnly = options.backwardOnly;
    pm.addPass(mlir::attn::createAttnGrad(grad));
  }
  if (options.chunk) {
    mlir::attn::AttnChunkOptions chunk;
    chunk.chunkSize = options.chunkSize;
    pm.addNestedPass<mlir::func::FuncOp>(mlir::attn::createAttnChunk(chunk));
  }
  mlir::attn::AttnTileOptions tile;
  tile.blockQ = options.blockQ ? options.blockQ : 64;
  tile.blockK = options.blockK ? options.blockK : defaultBlockK(options.chip);
  tile.narrowBlockK = options.blockK ? 0 : defaultNarrowBlockK(options.chip);
  // sm_90a: plain softmax attention at head dims 96-128 in 128 x 128 tiles, which
  // attn-gpu-warp-specialize gives two consumer warpgroups taking turns (H100, 2026-12-06:
  // dense and GQA d128 0.97-1.13x at 1k-16k, causal d96 1.26x; bench/METHOD.md)
  tile.plainTile = !options.blockQ && !options.blockK && options.chip == "sm_90a" &&
                           options.tensorCopies
                       ? 128
                       : 0;
  pm.addNestedPass<mlir::func::FuncOp>(mlir::attn::createAttnTile(tile));
  if (options.onlineSoftmax)
    pm.addNestedPass<mlir::func::FuncOp>(mlir::attn::createAttnOnlineSoftmax());
  if (options.packGQA)
    pm.addNestedPass<mlir::func::FuncOp>(mlir::attn::createAttnPackGQA());
  if (options.maskBounds)  // after the fusion, which needs both softmax loops over the same keys
    pm.addNestedPass<mlir::func::FuncOp>(mlir::attn::createAttnMaskBounds());
  if (options.maskBounds && options.blockPlan)  // masks that read params: the block plan
    pm.addNestedPass<mlir::func::FuncOp>(mlir::attn::createAttnBlockPlan());
  if (options.splitKV && options.onlineSoftmax)  // splits the narrowed key loop
    pm.addNestedPass<mlir::func::FuncOp>(mlir::attn::createAttnSplitKV());
  pm.addPass(mlir::createCanonicalizerPass());
  pm.addPass(mlir::createCSEPass());
}

void buildTiledToCPUPipeline(mlir::OpPassManager &pm) { mlir::attn::buildCPUToLLVMPipeline(pm); }

void buildTiledToCUDAPipeline(mlir::OpPassManager &pm, const PipelineOptions &options) {
  // The tiled level -> the GPU tile level (flash, chunk and scan kernels), then the scheduling
  // choices on it, then one conversion pattern per op.
  pm.addPass(mlir::attngpu::createAttnGPUSelectStrategy());
  mlir::attngpu::AttnGPUDistributeOptions distribute;
  distribute.chip = options.chip;
  distribute.valueSlice = options.valueSlice;
  distribute.overlap = options.overlap;
  distribute.dqAtomic = options.dqAtomic;
  distribute.blockPlan = options.maskBounds && options.blockPlan;
  pm.addPass(mlir::attngpu::createAttnGPUDistribute(distribute));
  mlir::attngpu::AttnGPUPipelineOptions pipeline;
  // Warp specialisation overlaps the copies itself (a producer ring), from synchronous stages.
  pipeline.doubleBufferAsync = !(options.warpSpecialize && options.tensorCopies);
  pm.addPass(mlir::attngpu::createAttnGPUPipeline(pipeline));
  pm.addPass(mlir::attngpu::createAttnGPUSelectMMA());
  if (options.tensorCopies)
    pm.addPass(mlir::attngpu::createAttnGPUTensorCopies());
  if (options.tensorCopies) {
    mlir::attngpu::AttnGPUWarpSpecializeOptions specialize;
    specialize.minConsumers = options.warpSpecialize ? 1 : 2;
    pm.addPass(mlir::attngpu::createAttnGPUWarpSpecialize(specialize));
  }
  pm.addPass(mlir::attngpu::createAttnGPUAllocateShared());
  pm.addPass(mlir::attngpu::createAttnGPUNarrowIndex());
  pm.addPass(mlir::attn::createAttnGPUToNVVM());
  mlir::attn::buildCUDAToPTXPipeline(pm);
}

namespace {
struct TiledPipelineOptions : mlir::PassPipelineOptions<TiledPipelineOptions> {
  Option<int64_t> blockQ{*this, "block-q", llvm::cl::desc("Rows per query tile"),
                         llvm::cl::init(64)};
  Option<int64_t> blockK{*this, "block-k", llvm::cl::desc("Columns per key tile"),
                         llvm::cl::init(32)};
  Option<bool> onlineSoftmax{*this, "online-softmax",
                             llvm::cl::desc("Fuse the softmax passes (attn-online-softmax)"),
                             llvm::cl::init(true)};
  Option<bool> maskBounds{*this, "mask-bounds",
                          llvm::cl::desc("Skip key tiles the mask cannot allow"),
                          llvm::cl::init(true)};
  Option<bool> packGQA{*this, "pack-gqa",
                       llvm::cl::desc("Share query tiles between the heads of a GQA group"),
                       llvm::cl::init(true)};
  Option<bool> splitKV{*this, "split-kv",
                       llvm::cl::desc("Split key ranges, merge with attn.combine"),
                       llvm::cl::init(true)};
  Option<bool> chunk{*this, "chunk", llvm::cl::desc("Recurrences in the chunked form (attn-chunk)"),
                     llvm::cl::init(true)};
  Option<int64_t> chunkSize{*this, "chunk-size", llvm::cl::desc("Positions per chunk"),
                            llvm::cl::init(64)};
};
struct CUDAPipelineOptions : mlir::PassPipelineOptions<CUDAPipelineOptions> {
  Option<std::string> chip{*this, "chip", llvm::cl::desc("Target SM"), llvm::cl::init("sm_80")};
  Option<int64_t> valueSlice{*this, "value-slice",
                             llvm::cl::desc("Value channels per block of the chunk kernel"),
                             llvm::cl::init(0)};
};
}  // namespace

void registerAttncPipelines() {
  mlir::PassPipelineRegistration<TiledPipelineOptions>(
      "attn-to-tiled", "attn.attention -> the tiled level shared by the back ends",
      [](mlir::OpPassManager &pm, const TiledPipelineOptions &o) {
        PipelineOptions options;
        options.blockQ = o.blockQ;
        options.blockK = o.blockK;
        options.onlineSoftmax = o.onlineSoftmax;
        options.maskBounds = o.maskBounds;
        options.packGQA = o.packGQA;
        options.splitKV = o.splitKV;
        options.chunk = o.chunk;
        options.chunkSize = o.chunkSize;
        buildAttnToTiledPipeline(pm, options);
      });
  mlir::PassPipelineRegistration<CUDAPipelineOptions>(
      "attn-cuda-to-ptx", "tiled attn level -> gpu.binary with PTX",
      [](mlir::OpPassManager &pm, const CUDAPipelineOptions &o) {
        PipelineOptions options;
        options.chip = o.chip;
        options.valueSlice = o.valueSlice;
        buildTiledToCUDAPipeline(pm, options);
      });
  mlir::PassPipelineRegistration<>("attn-cpu-to-llvm",
                                   "tiled attn level -> LLVM dialect for the host",
                                   [](mlir::OpPassManager &pm) { buildTiledToCPUPipeline(pm); });
}

}  // namespace attnc

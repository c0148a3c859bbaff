// attnc's pipeline as phase functions over one options struct: attn -> tiled -> target. The same
// functions back the CLI, the C++ API and the named pipelines that attnc-opt and lit run.
#pragma once

#include "mlir/Pass/PassManager.h"

#include <cstdint>
#include <string>

namespace attnc {

/// Ordered stages of the driver; compilation can stop after any of them.
enum class Stage { AST, Attn, Tiled, LLVM };
bool parseStage(const std::string &name, Stage &stage);

struct PipelineOptions {
  int64_t blockQ = 64;
  int64_t blockK = 64;
  bool onlineSoftmax = true;
};

/// attn.attention -> tiled level (attn-tile, attn-online-softmax).
void buildAttnToTiledPipeline(mlir::OpPassManager &pm, const PipelineOptions &options);
/// tiled level -> LLVM dialect for the host (CPU back end).
void buildTiledToCPUPipeline(mlir::OpPassManager &pm);

/// Registers "attn-to-tiled" and "attn-cpu-to-llvm" for attnc-opt.
void registerAttncPipelines();

}  // namespace attnc

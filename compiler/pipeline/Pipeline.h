// attnc's pipeline as phase functions over one options struct: attn -> tiled -> target. The same
// functions back the CLI, the C++ API and the named pipelines that attnc-opt and lit run.
#pragma once

#include "mlir/Pass/PassManager.h"

#include <cstdint>
#include <string>

namespace attnc {

/// Ordered stages of the driver; compilation can stop after any of them.
/// LLVM (the host) and PTX (CUDA) are two targets after the shared tiled level.
enum class Stage { AST, Attn, Tiled, LLVM, PTX };
bool parseStage(const std::string &name, Stage &stage);

struct PipelineOptions {
  // 0: automatic, 64, or on sm_90a (with TMA) 128 rows and 128 keys for plain softmax
  // attention at head dims 96-128 (attn-tile's plain-tile), warp-specialised with ping-pong
  int64_t blockQ = 0;
  int64_t blockK = 0;   // 0: defaultBlockK(chip)
  bool onlineSoftmax = true;
  bool maskBounds = true;  // attn-mask-bounds: skip key tiles the mask cannot allow
  bool blockPlan = true;   // attn-block-plan: key ranges of masks that read params
  bool packGQA = true;     // attn-pack-gqa: the heads of a GQA group share each query tile
  bool splitKV = true;     // attn-split-kv: key ranges split at launch, merged by attn.combine
  bool chunk = true;       // attn-chunk: recurrences in the chunked form (CPU back end)
  int64_t chunkSize = 64;
  int64_t valueSlice = 0;  // value channels per block of the CUDA chunk kernel (0: automatic)
  int64_t splits = 0;      // forced split count (0: the runtime's heuristic; CPU runs use 1)
  std::string chip = "sm_80";  // CUDA target: sm_80 (mma.sync; runs on sm_80+) or sm_90a
  bool overlap = false;  // sm_90a flash kernels: a tile's softmax under the next tile's Q K^T
  // sm_90a: key/value tiles copied by TMA (attn-gpu-tensor-copies; 1.02-1.26x on the H200)
  bool tensorCopies = true;
  // sm_90a, with tensorCopies: a producer warp issues the TMA copies into a ring of two
  // buffers per tile, the consumer warpgroups compute (attn-gpu-warp-specialize). Kernels of
  // two or more consumer warpgroups (128-row tiles) are specialised anyway; this asks for
  // every TMA kernel
  bool warpSpecialize = false;
  bool backward = false;  // attn-grad: each variant also gets <name>_grad (CPU and CUDA)
  bool backwardOnly = false;  // with backward: only <name>_grad (the forwards are dropped)
  bool dqAtomic = false;  // CUDA backward: dQ by f32 atomics from the dK/dV kernel
};

/// Keys per tile unless asked: 32 for mma.sync (sm_80; +9-23% over 64 on the H100), 64 for
/// wgmma (sm_90a; 1.06-1.30x over 32 on the H200, bench/METHOD.md 2026-12-04). On sm_90a a
/// variant whose head or value dim is not a multiple of 64 runs on mma.sync and takes
/// defaultNarrowBlockK (attn-tile's narrow-block-k): 32, without the spills that 64 keys cost
/// head dims 208-240 (ptxas, 2026-12-04).
inline int64_t defaultBlockK(const std::string &chip) { return chip == "sm_90a" ? 64 : 32; }
inline int64_t defaultNarrowBlockK(const std::string &chip) { return chip == "sm_90a" ? 32 : 0; }

/// Whether attn-split-kv applies: softmax variants in online-softmax form.
inline bool splitsKeys(const PipelineOptions &o, bool softmax) {
  return o.splitKV && o.onlineSoftmax && softmax;
}

/// attn.attention -> tiled level (attn-chunk, attn-tile, attn-online-softmax, attn-pack-gqa,
/// attn-mask-bounds, attn-split-kv).
void buildAttnToTiledPipeline(mlir::OpPassManager &pm, const PipelineOptions &options);
/// tiled level -> LLVM dialect for the host (CPU back end).
void buildTiledToCPUPipeline(mlir::OpPassManager &pm);

/// tiled level -> gpu.binary holding PTX (CUDA back end).
void buildTiledToCUDAPipeline(mlir::OpPassManager &pm, const PipelineOptions &options);

/// Registers "attn-to-tiled", "attn-cpu-to-llvm" and "attn-cuda-to-ptx" for attnc-opt.
void registerAttncPipelines();

}  // namespace attnc

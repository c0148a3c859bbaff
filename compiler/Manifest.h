// The JSON manifest that ships with each kernel (docs/manifest.md): entry, arguments with dtypes,
// dims and layout constraints, launch formulas and shared memory. Read by runtime/.
#pragma once

#include "compiler/frontend/AST.h"
#include "compiler/pipeline/Pipeline.h"

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace attnc {

/// SHA-256 of a text, as "sha256:<64 hex digits>": the manifests' spec hash, the JIT cache's
/// keys and its entries' checksums (a digest, not a guard against accidents only).
std::string hashText(const std::string &text);

/// A kernel's launch ABI as the lowering wrote it onto the IR (attn_gpu.launch): threads per
/// block, dynamic shared memory, and per grid axis (kernel argument, dim, scale, divisor):
/// ceil(extent * scale / divisor) blocks; `splits`: axis x also counts split-KV splits.
struct KernelLaunch {
  int64_t threads = 0, sharedMemory = 0;
  bool splits = false;
  std::vector<std::array<int64_t, 4>> grid;
  std::map<std::string, int64_t> schedule;  // the schedule's choices (tile, chunk, scan)
  // TMA descriptors the kernel takes after its memrefs: {argument, box rows, box columns}.
  std::vector<std::array<int64_t, 3>> tensorMaps;
};

/// The manifest of the CUDA kernel compiled for `v` with these options. `launches` holds the
/// launch ABI of each kernel (by name) read from the compiled IR (Compiler::launchesByKernel):
/// block, grid, shared memory, split-KV and the schedule's choices come from there.
std::string buildManifest(const Variant &v, const PipelineOptions &options,
                          const std::string &ptxFile, const std::string &specText,
                          const std::map<std::string, KernelLaunch> &launches = {});

/// The manifest of `v`'s backward kernels, `<name>_grad` (dQ and D) then `<name>_grad_dkdv`
/// (docs/manifest.md, "backward"): the forward's arguments read, dout, dq, dk, dv and the
/// gradients of the float params the score reads.
std::string buildGradManifest(const Variant &v, const PipelineOptions &options,
                              const std::string &ptxFile, const std::string &specText,
                              const std::map<std::string, KernelLaunch> &launches);

/// The manifest of the same kernel built for the host by the CPU back end (attnc.h's "cpu"
/// target): `"arch": "host"`, the arguments and dims of `cudaManifest` without its launch
/// geometry (ptx, block, grid, tile, shared memory, split_kv, backward) or alignment rules.
std::string hostManifest(const std::string &cudaManifest);

}  // namespace attnc

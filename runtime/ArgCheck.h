// Checks a launch's arguments against the kernel manifest and works out the launch (dim
// extents, grid, block, shared memory; for split_kv kernels the number of splits, the combine
// launch and the workspace layout). Pure, with no CUDA calls, so that every rule and every
// message is unit-tested on machines without a GPU; the runtime adds the device-pointer check,
// the device's SM count, and the workspace memory.
#pragma once

#include "runtime/Manifest.h"
#include "runtime/attnc_runtime.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace attnc::rt {

/// One argument as the caller holds it. Sizes and strides are in elements, in the canonical
/// order of the manifest's `dims` for that argument (rank 0: both may be null). A packed (i4)
/// argument counts its last axis and all its strides in bytes.
struct TensorArg {
  uint64_t data = 0;
  int32_t dtype = 0;  // a DType code
  int32_t rank = 0;
  const int64_t *sizes = nullptr;
  const int64_t *strides = nullptr;
};

/// A runtime-allocated f32 array passed to a kernel as a memref: contiguous, row-major.
struct Workspace {
  std::vector<int64_t> sizes, strides;  // in elements
  int64_t offset = 0;                   // bytes from the start of the kernel's workspace
  int64_t bytes = 0;
};

struct LaunchPlan {
  std::vector<int64_t> dimSizes;  // per Manifest::dims; -1 for a dim nothing determines
  std::array<uint32_t, 3> grid{}, block{};
  uint32_t sharedMemory = 0;
  bool empty = false;             // a grid axis is 0: there is no work and nothing to launch
  // Split-KV (set by applySplits; checkArgs applies 1 split): the main kernel's grid without the
  // splits factor, the combine launch and the workspace holding the partial results.
  int64_t splits = 1;
  std::array<uint32_t, 3> baseGrid{}, combineGrid{}, combineBlock{};
  Workspace oPartial, lsePartial;  // [S, b, h, i, dv] and [S, b, h, i]
  int64_t workspaceBytes = 0;      // both, lsePartial 256-byte aligned after oPartial
  // Backward kernels: the dK/dV launch, whether the main (dQ) grid is empty, and D [b, h, i].
  std::array<uint32_t, 3> dkdvGrid{};
  bool mainEmpty = false;
  Workspace delta;
  Workspace dqAccum;  // dQ by atomics: [b, h, i, width] f32 after D (256-byte aligned)
  Workspace dy;       // through an output expression: [b, h, i, width], 16 bits, after those
  Workspace sums;     // a forget gate: [b, slots x h, i] f32 (dS's sums, the log decays), after
  std::array<uint32_t, 3> decayGrid{};  // and its last kernel's launch
  // The block plan (manifest block_plan): its grid and its i32 entries [z, y, x, 2] in the
  // workspace, after the split-KV partial results (placed by applyBlockPlan).
  std::array<uint32_t, 3> planGrid{};
  Workspace blockPlan;
};

/// The C ABI's descriptors as TensorArgs (`args` may be null with nargs > 0: checkArgs and
/// checkTensors report it).
inline std::vector<TensorArg> tensorArgs(const attnc_tensor *args, int32_t nargs) {
  std::vector<TensorArg> out(nargs > 0 ? size_t(nargs) : 0);
  for (int32_t a = 0; args && a < nargs; ++a)
    out[size_t(a)] = {reinterpret_cast<uint64_t>(args[a].data), args[a].dtype, args[a].rank,
                      args[a].sizes, args[a].strides};
  return out;
}

/// True if the tensor has at least one element (only those are dereferenced by a kernel).
bool hasElements(const TensorArg &t);

/// Validates `args` (count, dtype, rank, extents by dim name, static and derived dims, strides,
/// alignment, null pointers) and sets `dimSizes` (per Manifest::dims): checkArgs without the
/// launch, what the CPU back end's host kernels need.
bool checkTensors(const Manifest &m, const TensorArg *args, size_t count,
                  std::vector<int64_t> &dimSizes, std::string &error);

/// Validates `args` (count, dtype, rank, extents by dim name, static and derived dims, strides,
/// alignment, null pointers, grid limits) and fills `plan`; false with a message that names the
/// argument, the axis, what was expected and what was given.
bool checkArgs(const Manifest &m, const TensorArg *args, size_t count, LaunchPlan &plan,
               std::string &error);

/// attnc_rt_combine's arguments: part_out f32 [S, b, h, i, dv], part_lse f32 [S, b, h, i],
/// out [b, h, i, dv] of the kernel's output dtype and lse f32 [b, h, i], canonical order, any
/// non-negative strides, S >= 2, dv the kernel's static value dim where it has one, and
/// out / lse not overlapping the partial results. Sets `grid` to the combine launch: the
/// manifest's split_kv.combine_grid over these rows i, heads h and batch b (a manifest without
/// split_kv, a host kernel's: the extents i, h, b); `empty` when one of them is 0.
bool checkCombineArgs(const Manifest &m, const TensorArg *args, size_t count,
                      std::array<uint32_t, 3> &grid, bool &empty, std::string &error);

/// The split-count heuristic, fitted to the H100 decode sweep (bench/results/2026-11-22-decode.md):
/// decoding runs fastest with about 1.5 blocks per SM in all: more splits only add partial-result
/// traffic, prologues and combine work, and more resident blocks per SM gain nothing for a kernel
/// that streams K and V. `baseBlocks`: blocks of the main grid without splits; `keyTiles`:
/// ceil(kv_len / block_k), or -1 if unknown.
///  1. baseBlocks >= smCount (a wave of one block per SM already), or no split allowed: 1.
///  2. cap = min(maxSplits, max(1, keyTiles / minTilesPerSplit)) (maxSplits if keyTiles < 0).
///  3. S = min(cap, round(1.5 * smCount / baseBlocks)), at least 1,
///  4. lowered to ceil(keyTiles / ceil(keyTiles / S)): the fewest splits that give each split
///     as few key tiles as S does.
int64_t splitHeuristic(int64_t baseBlocks, int64_t keyTiles, int64_t maxSplits,
                       int64_t minTilesPerSplit, int64_t smCount);

/// The number of splits for a launch of a split_kv kernel checked into `plan`: the manifest's
/// `splits` if > 0, else `override` if > 0, else splitHeuristic; then clamped to
/// [1, min(max_splits, ceil(kv_len / block_k))] (the kv_len bound is skipped where no argument
/// determines kv_len) and so that the grid axes with "splits" stay within CUDA's limits.
int64_t chooseSplits(const Manifest &m, const LaunchPlan &plan, int64_t override, int64_t smCount);

/// Sets plan.splits = `splits` and computes the grids and the workspace layout for it; false
/// with a message if a grid axis or the workspace size goes over a limit.
bool applySplits(const Manifest &m, int64_t splits, LaunchPlan &plan, std::string &error);

/// With a block plan: its grid and its place in the workspace, after what the launch has
/// placed there already (call after applySplits); false if the grid goes over a limit.
bool applyBlockPlan(const Manifest &m, LaunchPlan &plan, std::string &error);

}  // namespace attnc::rt

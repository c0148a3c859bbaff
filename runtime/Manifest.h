// The kernel manifest (docs/manifest.md, `attnc-kernel-manifest/1`) parsed and validated into
// plain structs. No CUDA and no JSON types here, so tests and tools can include it anywhere.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace attnc::rt {

inline constexpr const char *kManifestFormat = "attnc-kernel-manifest/1";

/// Element types, numbered as the C ABI's attnc_dtype. I4 packs two signed 4-bit values per byte
/// (low nibble first); its arguments say so with `"packed": 2` and count their last axis in bytes.
enum class DType : int32_t { F32 = 0, F16 = 1, BF16 = 2, I32 = 3, I8 = 4, F8E4M3 = 5, I4 = 6 };
inline constexpr int32_t kLastDType = int32_t(DType::I4);
const char *dtypeName(DType t);
/// Bytes per addressable unit: the element, or for I4 the byte holding two of them.
int64_t dtypeBytes(DType t);

/// State: a recurrence's f32 state, read (initial) and overwritten (final) in place.
enum class ArgKind { Input, Param, Output, Lse, State };

struct Dim {
  std::string name;
  std::string role;              // batch, q_head, kv_head, q_seq, kv_seq, head_dim, value_dim, ...
  int64_t staticSize = -1;       // >= 0: the extent is fixed by the spec
  int derivedSource = -1;        // index into Manifest::dims; >= 0: extent = source / divisor
  int64_t divisor = 1;
  int64_t minSize = 0;           // the smallest extent the kernel accepts (1: a param axis
                                 // read at clamped computed indices cannot be empty)
};

struct Arg {
  std::string name;
  ArgKind kind = ArgKind::Input;
  DType dtype = DType::F32;
  std::vector<int> dims;         // canonical (kernel) order, indices into Manifest::dims
  std::vector<int> storageDims;  // the spec's declared order: a permutation of `dims`
  bool unitStrideLast = false;
  int64_t alignment = 1;         // bytes, a power of two
  int64_t rowAlignment = 0;      // bytes; 0: no constraint
  int64_t packed = 1;            // values per byte along the last canonical axis (2 for i4)
  bool zeroed = false;           // an f32 output the kernels add into: the runtime zeroes it
  bool writes() const {
    return kind == ArgKind::Output || kind == ArgKind::Lse || kind == ArgKind::State;
  }
};

/// One launch-grid axis: ceil(extent of `dim` * scale / divisor), times the number of KV splits
/// if `splits`; {"dim": d} has divisor 1.
struct GridAxis {
  int dim = -1;                  // -1: a fixed number of blocks, `blocks`
  int64_t blocks = 0;
  int64_t divisor = 1;
  int64_t scale = 1;             // GQA packing: 4 query heads per block make i * 4 rows
  bool splits = false;
};

/// Split-KV (FlashDecoding) launches: the main kernel writes per-split partial results into a
/// runtime-owned f32 workspace, a combine kernel of the same module reduces them into o and lse.
struct SplitKV {
  std::string combineEntry;
  std::array<uint32_t, 3> combineBlock{};
  std::array<GridAxis, 3> combineGrid{};
  int64_t maxSplits = 1;
  int64_t splits = 0;            // > 0: fixed at compile time; 0: runtime override or heuristic
  int64_t blockK = 1;            // keys per tile of the main kernel
  int64_t minTilesPerSplit = 1;  // the heuristic gives each split at least this many key tiles
  // The combine kernel takes the main kernel's arguments and partial buffers (it applies an
  // output expression, which may read params) instead of (part_out, part_lse, out, lse).
  bool combineTakesArguments = false;
  int pagesPerSeq = -1;          // paged variants: the dim of pages per sequence (manifest "paged")
  int64_t pageSize = 0;          //   and the page size: kv_len = extent(pagesPerSeq) * pageSize
  // Indices into Manifest::dims / Manifest::args that size the workspace and feed the combine.
  int batch = -1, qHead = -1, qSeq = -1, valueDim = -1, kvSeq = -1;
  int outputArg = -1, lseArg = -1;
};

/// Backward kernels (attn-grad): the main entry computes D = rowsum(dO O) into a runtime-owned
/// f32 workspace [b, h, i] and dQ; then the dK/dV kernel, with the same arguments and the
/// workspace, on the same stream.
struct Backward {
  std::string dkdvEntry;
  // dQ by atomics (optional): `entry` zeroes the f32 accumulator dQacc [b, h, i, width] in the
  // workspace after D, the dK/dV kernel adds into it, then dqEntry (entry's grid and block, no
  // dynamic shared memory) converts it to dq. Empty: entry computes dq itself.
  std::string dqEntry;
  int64_t dqAccumWidth = 0;
  // Through an output expression (optional): entry writes dy [b, h, i, width] in the 16-bit
  // type of q into the workspace after D (and dQacc); the dK/dV kernel reads it. 0: none.
  int64_t dyWidth = 0;
  // Several scores (a mix of attends): D and dy hold one slot per score, [b, scores x h, i]
  // and [b, scores x h, i, width] (score n's rows at head n h + head).
  int64_t scores = 1;
  // A forget gate (optional): a workspace of decaySlots x [b, h, i] f32 after D (dQacc, dy)
  // -- the dQ kernel writes the cumulative log decays the dK/dV kernel reads, both write dS's
  // row and column sums -- and decayEntry (decayBlock, decayGrid), launched last, turns the
  // sums into the log decays' gradients (when the decay reads params).
  int64_t decaySlots = 0;
  std::string decayEntry;
  std::array<uint32_t, 3> decayBlock{};
  std::array<GridAxis, 3> decayGrid{};
  std::array<uint32_t, 3> dkdvBlock{};
  std::array<GridAxis, 3> dkdvGrid{};
  uint32_t dkdvSharedMemory = 0;
  std::array<int, 3> deltaDims{};  // indices into Manifest::dims
};

/// The block plan (attn-block-plan): a kernel launched before the main one that writes, per
/// query tile, the keys its mask may allow (and those it allows for every row) into a
/// runtime-owned i32 workspace [grid z, grid y, grid x, kBlockPlanValues], which both kernels
/// take after their arguments.
inline constexpr int64_t kBlockPlanValues = 5;  // i32 values per entry (the compiler's KeyScan)

struct BlockPlan {
  std::string entry;
  std::array<uint32_t, 3> block{};
  std::array<GridAxis, 3> grid{};
};

/// A TMA descriptor the main kernel takes by value after all its memref parameters (in the
/// order of Manifest::tensorMaps): of argument `arg` (a rank-4 16-bit input with a contiguous
/// last axis), boxes of `rows` x `columns` elements (columns * 2 = 128 bytes, swizzled).
struct TensorMap {
  int arg = -1;                  // index into Manifest::args
  int64_t rows = 0, columns = 0;
};

struct Manifest {
  std::string text;              // the JSON as given
  std::string compiler, variant, entry, ptx, arch, specHash;
  int archMajor = 0, archMinor = 0;
  char archSuffix = 0;           // 'a' (arch-specific, exact match) or 'f' (family), else 0
  std::array<uint32_t, 3> block{};
  std::array<GridAxis, 3> grid{};
  /// Thread-block clusters the PTX declares (.reqnctapercluster, sm_90+): each grid axis a
  /// multiple of its extent. {1, 1, 1}: none.
  std::array<uint32_t, 3> cluster{1, 1, 1};
  uint32_t dynamicSharedMemory = 0;
  std::vector<Dim> dims;
  std::vector<Arg> args;
  std::optional<SplitKV> splitKV;
  std::optional<Backward> backward;
  std::optional<BlockPlan> blockPlan;
  std::vector<TensorMap> tensorMaps;

  /// `"arch": "host"`: a kernel of the CPU back end (attnc.h's cpu target), run in process; it
  /// has no PTX, block or grid, and the CUDA runtime refuses to load it.
  bool host() const { return arch == "host"; }
  int dimIndex(std::string_view name) const;
  /// "q, k, v, o, lse": for messages about the argument list.
  std::string argNames() const;
};

/// Parses and validates; false with a message naming the offending field ("manifest: field
/// 'args[3].dtype': ..."). `text` need not be NUL-terminated.
bool parseManifest(std::string_view text, Manifest &out, std::string &error);

}  // namespace attnc::rt

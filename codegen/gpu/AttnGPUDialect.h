// The GPU tile level (`attn_gpu`): shared-memory tiles, register fragments whose layouts are
// tensor encodings, and the ops the CUDA conversion lowers one pattern each (AttnGPUOps.td).
#pragma once

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <optional>

#include "codegen/gpu/AttnGPUDialect.h.inc"
#include "codegen/gpu/AttnGPUEnums.h.inc"
#define GET_ATTRDEF_CLASSES
#include "codegen/gpu/AttnGPUAttrs.h.inc"
#define GET_OP_CLASSES
#include "codegen/gpu/AttnGPUOps.h.inc"

namespace mlir::attngpu {

/// The fragment layout of a tensor type, if it has one.
std::optional<FragmentKind> fragmentKind(Type type);

/// A fragment tensor type of `shape` and `element` in layout `kind`.
RankedTensorType fragmentType(ArrayRef<int64_t> shape, Type element, FragmentKind kind);

/// Values one thread holds of a fragment: acc [R, C]: C / 8 * 4 scalars; operand_a [R, K]:
/// K / 16 * 4 pairs (vector<2xT>); rows [R]: 2.
int64_t valuesPerThread(RankedTensorType type);

/// Elements of padding per row of a 16-bit shared tile (16 bytes: ldmatrix's 8 rows then fall
/// in different banks).
inline constexpr int64_t kSharedPad = 8;

/// Whether a shared tile is in the `#attn_gpu.swizzle` layout (read by wgmma).
bool isSwizzled(MemRefType tile);
/// Elements a swizzled tile occupies: its rows times its columns rounded up to whole column
/// blocks (a last block partly used is still a whole [rows, 64] slab of the layout).
int64_t swizzledElements(MemRefType tile);

/// Bytes a shared buffer occupies, and its alignment (a swizzled tile's atoms are 1024-byte
/// aligned: the swizzle XORs address bits).
int64_t sharedBytes(MemRefType buffer);
inline int64_t sharedAlignment(MemRefType buffer) { return isSwizzled(buffer) ? 1024 : 16; }
/// Where attn-gpu-allocate-shared places `buffer` after `end` bytes: its aligned offset.
inline int64_t sharedOffset(int64_t end, MemRefType buffer) {
  int64_t align = sharedAlignment(buffer);
  return (end + align - 1) / align * align;
}
/// Shared memory per SM on sm_90 (1 KB of it reserved per block), and the most one block may
/// have: sm_90's opt-in maximum, sm_80's.
inline constexpr int64_t kSharedPerSM90 = 228 * 1024;
inline constexpr int64_t kSharedPerBlock90 = 227 * 1024;
inline constexpr int64_t kSharedPerBlock80 = 163 * 1024;

/// The logical columns of a rank-2 shared tile: a padded 16-bit tile's minus its padding, a
/// swizzled or byte tile's as typed.
int64_t sharedColumns(MemRefType tile);

/// The name of the discardable attribute that holds a kernel's launch ABI.
/// Rows (b, h, i) of attn.combine's kernel per block: its 4 warps take one row at a time, the
/// lanes over the value channels (a ring merges as many rows as the sequence has).
inline constexpr int64_t kCombineRowsPerBlock = 16;
inline constexpr llvm::StringLiteral kLaunchAttrName = "attn_gpu.launch";
/// The name of the module attribute that maps each kernel's name to its launch ABI.
inline constexpr llvm::StringLiteral kLaunchesAttrName = "attn_gpu.launches";
/// The name of the discardable attribute that holds a tiled function's strategy.
inline constexpr llvm::StringLiteral kStrategyAttrName = "attn_gpu.strategy";

} // namespace mlir::attngpu

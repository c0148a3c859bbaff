// The GPU tile level (`attn_gpu`): a thread block's view of the tiled attn ops. Tiles live in
// shared memory (memrefs in the workgroup address space) or distributed over the block's
// threads as register fragments: ranked tensors whose encoding (`#attn_gpu.frag<...>`) says
// which thread holds which element, as TritonGPU's layouts do. Each op is lowered once, by one
// conversion pattern (codegen/cuda/*ToNVVM.cpp); elementwise arith/math on fragments is lowered
// element by element.
#ifndef ATTN_GPU_OPS_TD
#define ATTN_GPU_OPS_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/IR/EnumAttr.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Dialect/LLVMIR/LLVMOpBase.td"

def AttnGPU_Dialect : Dialect {
  let name = "attn_gpu";
  let cppNamespace = "::mlir::attngpu";
  let summary = "The GPU tile level of attnc: shared-memory tiles and register fragments";
  let description = [{
    Produced by `attn-gpu-distribute` from the tiled attn level, lowered to gpu/nvgpu/nvvm by
    `attn-gpu-to-nvvm`. Layout encodings (fragment kinds) are attributes on tensor types; the
    MMA instruction is an attribute chosen by `attn-gpu-select-mma`; shared-memory offsets are
    assigned by `attn-gpu-allocate-shared`, which records the block's total on the kernel.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect", "::mlir::scf::SCFDialect", "::mlir::gpu::GPUDialect",
    "::mlir::nvgpu::NVGPUDialect", "::mlir::LLVM::LLVMDialect"
  ];
  let useDefaultAttributePrinterParser = 1;
}

class AttnGPU_Op<string mnemonic, list<Trait> traits = []> :
    Op<AttnGPU_Dialect, mnemonic, traits>;

//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

def AttnGPU_FragmentKind : I32EnumAttr<"FragmentKind", "how a tile is spread over threads", [
  I32EnumAttrCase<"acc", 0>, I32EnumAttrCase<"operand_a", 1>, I32EnumAttrCase<"rows", 2>,
  I32EnumAttrCase<"warp_acc", 3>]> {
  let cppNamespace = "::mlir::attngpu";
  let genSpecializedAttr = 0;
}

/// `#attn_gpu.frag<acc>`: an [R, C] f32 tile in the accumulator layout of mma m16n8k16: warp w
/// owns rows 16w .. 16w + 15; lane l holds, per 8-column block n, the four elements
/// (g, 2c), (g, 2c + 1), (g + 8, 2c), (g + 8, 2c + 1) with g = l / 4, c = l % 4 (n-block major).
/// `#attn_gpu.frag<operand_a>`: an [R, K] f16/bf16 tile as mma's A operand: per 16-column step,
/// four pairs (g, 2c..), (g + 8, 2c..), (g, 8 + 2c..), (g + 8, 8 + 2c..).
/// `#attn_gpu.frag<rows>`: one value per row a thread holds (rows g and g + 8 of its warp); the
/// four lanes of a quad may hold different values (per-thread partial sums) until an
/// `attn_gpu.quad_reduce` makes them agree.
/// `#attn_gpu.frag<warp_acc>`: an [R, C] f32 tile that every warp holds for itself (its own
/// block of rows of a larger tile, such as a recurrence's state): per 16-row m-tile, the
/// accumulator layout (m-tile major). The ops that read or write it say which rows a warp owns.
def AttnGPU_FragmentAttr : EnumAttr<AttnGPU_Dialect, AttnGPU_FragmentKind, "frag"> {
  let assemblyFormat = "`<` $value `>`";
}

def AttnGPU_ReduceKind : I32EnumAttr<"ReduceKind", "a row reduction", [
  I32EnumAttrCase<"max", 0>, I32EnumAttrCase<"min", 1>, I32EnumAttrCase<"sum", 2>]> {
  let cppNamespace = "::mlir::attngpu";
  let genSpecializedAttr = 0;
}
def AttnGPU_ReduceAttr : EnumAttr<AttnGPU_Dialect, AttnGPU_ReduceKind, "reduce"> {
  let assemblyFormat = "`<` $value `>`";
}

/// `mma_sync_m16n8k16`: per warp, ldmatrix'd B fragments (every chip from sm_80 on).
/// `wgmma_m64nNk16`: per warpgroup of 4 warps (64 rows), B read by the tensor cores from a
/// `#attn_gpu.swizzle` tile through a matrix descriptor, A and the accumulator in registers in
/// the same per-warp layouts as mma.sync's (sm_90a).
def AttnGPU_MmaKind : I32EnumAttr<"MmaKind", "the tensor-core instruction of attn_gpu.mma", [
  I32EnumAttrCase<"mma_sync_m16n8k16", 0>, I32EnumAttrCase<"wgmma_m64nNk16", 1>]> {
  let cppNamespace = "::mlir::attngpu";
  let genSpecializedAttr = 0;
}
def AttnGPU_MmaAttr : EnumAttr<AttnGPU_Dialect, AttnGPU_MmaKind, "mma"> {
  let assemblyFormat = "`<` $value `>`";
}

def AttnGPU_StrategyKind : I32EnumAttr<"StrategyKind", "the kernel family of a tiled function", [
  I32EnumAttrCase<"flash", 0>, I32EnumAttrCase<"chunk", 1>, I32EnumAttrCase<"scan", 2>,
  I32EnumAttrCase<"backward", 3>]> {
  let cppNamespace = "::mlir::attngpu";
  let genSpecializedAttr = 0;
}
/// `#attn_gpu.strategy<flash>` on a tiled function (attn-gpu-select-strategy).
def AttnGPU_StrategyAttr : EnumAttr<AttnGPU_Dialect, AttnGPU_StrategyKind, "strategy"> {
  let assemblyFormat = "`<` $value `>`";
}

/// `#attn_gpu.swizzle<128>`: the layout of a [R, C] shared tile of 16-bit elements that the
/// tensor cores read through a wgmma matrix descriptor (and TMA writes): C / 64 column blocks of
/// [R, 64] elements (128 bytes a row), block after block; in a block, the 16-byte chunk c of
/// row r lies at chunk c ^ (r % 8) of its row (the 128-byte swizzle, over 1024-byte aligned
/// 8-row atoms: 8 rows read at one column fall in 8 different bank groups, no padding).
/// Not a strided layout: only the ops that know it (copies, wgmma) address such a tile.
def AttnGPU_SwizzleAttr : AttrDef<AttnGPU_Dialect, "Swizzle", [
    DeclareAttrInterfaceMethods<MemRefLayoutAttrInterface,
                                ["isIdentity", "verifyLayout", "getStridesAndOffset"]>]> {
  let mnemonic = "swizzle";
  let summary = "The 128-byte swizzled layout of a shared tile read by wgmma";
  let parameters = (ins "int64_t":$bytes);
  let assemblyFormat = "`<` $bytes `>`";
  let extraClassDeclaration = [{
    /// Elements of a row of one column block (bytes / element size).
    int64_t blockColumns(::mlir::Type element) const;
  }];
}

/// One grid axis: ceil(extent(kernel argument `arg`, dim `dim`) * scale / divisor) blocks; with
/// `arg` -1, `scale` blocks (a block plan's head axis when its mask does not read the head).
def AttnGPU_GridAxisAttr : AttrDef<AttnGPU_Dialect, "GridAxis"> {
  let mnemonic = "axis";
  let summary = "A grid axis as a kernel argument's extent, scaled and divided (rounded up)";
  let parameters = (ins "int64_t":$arg, "int64_t":$dim, "int64_t":$scale, "int64_t":$divisor);
  let assemblyFormat = "`<` `arg` $arg `dim` $dim `*` $scale `ceil_div` $divisor `>`";
}

/// A tensor-memory-access descriptor the kernel takes (a CUtensorMap, 128 bytes, by value as a
/// grid constant): of its memref argument `arg`, a rank-4 tensor of 16-bit elements with a
/// contiguous last axis, read in boxes of `rows` (axis 2) x `columns` (axis 3, 128 bytes: the
/// 128-byte swizzle) elements at one index of axes 0 and 1. The runtime encodes it at launch
/// from the tensor's pointer, sizes and strides (cuTensorMapEncodeTiled; out-of-range
/// elements read as zeros).
def AttnGPU_TensorMapAttr : AttrDef<AttnGPU_Dialect, "TensorMap"> {
  let mnemonic = "tensor_map";
  let summary = "A TMA descriptor of a kernel argument, passed by value";
  let parameters = (ins "int64_t":$arg, "int64_t":$rows, "int64_t":$columns);
  let assemblyFormat = "`<` `arg` $arg `box` $rows `x` $columns `>`";
}

/// The launch ABI of a kernel, written onto its gpu.func by the lowering and read back by the
/// manifest (never recomputed): threads per block, the grid's x, y, z axes, the dynamic
/// shared memory in bytes, whether axis x also counts split-KV splits, the schedule's
/// choices the manifest reports (tile sizes, chunk rows, value slice, scan lanes) and the
/// tensor maps it takes after its memref arguments, in order (attn-gpu-tensor-copies).
def AttnGPU_LaunchAttr : AttrDef<AttnGPU_Dialect, "Launch"> {
  let mnemonic = "launch";
  let summary = "Threads, grid axes and dynamic shared memory of a kernel";
  let parameters = (ins "int64_t":$threads,
                        ArrayRefParameter<"::mlir::attngpu::GridAxisAttr">:$grid,
                        "int64_t":$sharedMemory, "bool":$splits,
                        OptionalParameter<"::mlir::DictionaryAttr">:$schedule,
                        OptionalArrayRefParameter<"::mlir::attngpu::TensorMapAttr">:$tensorMaps);
  let assemblyFormat = [{
    `<` `threads` `=` $threads `,` `grid` `=` `[` $grid `]` `,` `shared_memory` `=`
    $sharedMemory `,` `splits` `=` $splits (`,` `schedule` `=` $schedule^)?
    (`,` `tensor_maps` `=` `[` $tensorMaps^ `]`)? `>`
  }];
}

//===----------------------------------------------------------------------===//
// Types
//===----------------------------------------------------------------------===//

def AttnGPU_Fragment : RankedTensorOf<[F32, F16, BF16, I1]>;
def AttnGPU_Shared : MemRefOf<[F32, F16, BF16, I8, I64, F8E4M3FN]>;
def AttnGPU_Barrier : MemRefRankOf<[I64], [1]>;
def AttnGPU_Global4 : MemRefRankOf<[F32, F16, BF16, I8, F8E4M3FN], [4]>;
def AttnGPU_GlobalOut : MemRefOf<[F32, F16, BF16]>;

def AttnGPU_YieldOp : AttnGPU_Op<"yield", [Pure, Terminator, ReturnLike]> {
  let summary = "Yields the value of a score, mask, feature or decay region";
  let arguments = (ins Variadic<AnyType>:$values);
  let assemblyFormat = "($values^ `:` type($values))? attr-dict";
}

include "AttnGPUCopyOps.td"
include "AttnGPUFragmentOps.td"
include "AttnGPURecurrenceOps.td"
include "AttnGPUGradOps.td"

#endif // ATTN_GPU_OPS_TD

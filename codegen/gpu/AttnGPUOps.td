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

//===----------------------------------------------------------------------===//
// Shared memory and global -> shared copies
//===----------------------------------------------------------------------===//

def AttnGPU_AllocSharedOp : AttnGPU_Op<"alloc_shared"> {
  let summary = "A tile of the block's dynamic shared memory";
  let description = [{
    `offset` (bytes into the dynamic shared memory) is assigned by attn-gpu-allocate-shared, in
    program order, each tile 16-byte aligned. 16-bit tiles are padded by 8 elements per row so
    the 8 rows one ldmatrix reads fall in different banks (the pad is in the type).
  }];
  let arguments = (ins OptionalAttr<I64Attr>:$offset);
  let results = (outs AttnGPU_Shared:$tile);
  let assemblyFormat = "attr-dict `:` type($tile)";
  let hasVerifier = 1;
}

def AttnGPU_CopyQueryTileOp : AttnGPU_Op<"copy_query_tile"> {
  let summary = "Starts the async copy of a query tile into shared memory";
  let description = [{
    Row r of `tile` receives q[b, h + p % pack, p / pack, :] with p = i0 + r (GQA packing: the
    rows of a tile hold the heads of a group, query-major); rows past the query length are
    zero-filled and read nothing. The block's threads share the copy (cp.async, 16 bytes a
    copy); it completes at the next `nvgpu.device_async_wait` that covers its group.
  }];
  let arguments = (ins Arg<AttnGPU_Global4, "", [MemRead]>:$q,
                       Arg<AttnGPU_Shared, "", [MemWrite]>:$tile,
                       Index:$b, Index:$h, Index:$i0,
                       DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<1>]>, "1">:$pack);
  let assemblyFormat = [{
    $q `[` $b `,` $h `,` $i0 `]` `->` $tile attr-dict `:` type($q) `->` type($tile)
  }];
  let hasVerifier = 1;
}

def AttnGPU_CopyKeyTileOp : AttnGPU_Op<"copy_key_tile", [AttrSizedOperandSegments]> {
  let summary = "Starts the async copy of a key (or value) tile into shared memory";
  let description = [{
    Row r of `tile` receives the stored row of key j = j0 + r of kv head hk, or zeros for
    j >= kv_len. With `pages %table` the source is a page pool and key j is row j % P of page
    table[b, j / P] (clamped into the table and the pool, so a bad entry cannot read outside);
    when P is a multiple of the tile's rows the table is read once per tile. A quantised source
    (i8, e4m3, i4 as bytes) lands as stored, in a staging tile for attn_gpu.dequantize. With
    `columns_from %c0` the tile holds the stored channels c0 .. c0 + width (a value slice).
    With `interior` (not with pages), a tile that lies inside kv_len takes a branch whose
    copies have no per-row range checks: fewer instructions per copy, at the cost of the
    copy code twice (the flash softmax kernels gain registers from it, measured; other
    kernels lose them).

    Without `by`, the block's threads share the copy (cp.async, 16 bytes a copy) and it
    completes at the next `nvgpu.device_async_wait` that covers its group. With `by %map
    signals %barrier` (attn-gpu-tensor-copies, sm_90a), one thread copies the tile by tensor
    memory access through the TMA descriptor `map` of `kv` (a kernel argument, boxes of 64
    columns into the swizzled tile's column blocks; kv_len must be the tensor's own extent,
    past which TMA reads zeros) and arrives on the mbarrier `barrier` expecting the tile's
    bytes: the copy completes when that barrier's phase does (attn_gpu.wait_barrier).
  }];
  let arguments = (ins Arg<AttnGPU_Global4, "", [MemRead]>:$kv,
                       Arg<AttnGPU_Shared, "", [MemWrite]>:$tile,
                       Index:$b, Index:$hk, Index:$j0, Index:$kv_len,
                       Optional<MemRefRankOf<[I32], [2]>>:$block_table,
                       Optional<Index>:$col0,
                       Optional<LLVM_AnyPointer>:$map,
                       Arg<Optional<AttnGPU_Barrier>, "", [MemWrite]>:$barrier,
                       DefaultValuedAttr<I64Attr, "0">:$page_size, UnitAttr:$interior);
  let assemblyFormat = [{
    $kv `[` $b `,` $hk `,` $j0 `]` `below` $kv_len (`pages` $block_table^)?
    (`columns_from` $col0^)? `->` $tile (`by` $map^ `signals` $barrier)? attr-dict
    `:` type($kv) (`pages` type($block_table)^)? `->` type($tile)
    (`by` type($map)^ `,` type($barrier))?
  }];
  let hasVerifier = 1;
}

def AttnGPU_InitBarrierOp : AttnGPU_Op<"init_barrier"> {
  let summary = "Initialises an mbarrier in shared memory for `arrivals` arrivals per phase";
  let description = [{
    One thread initialises the mbarrier (`barrier`, 8 bytes of shared memory) with an
    expected arrival count of `arrivals` (default 1: the thread that issues a tensor copy;
    a warp-specialised kernel's "tile free" barriers count every consumer thread) and fences
    the initialisation; a block barrier must follow before any thread uses it.
  }];
  let arguments = (ins Arg<AttnGPU_Barrier, "", [MemWrite]>:$barrier,
                       DefaultValuedAttr<I64Attr, "1">:$arrivals);
  let assemblyFormat = "$barrier (`arrivals` $arrivals^)? attr-dict `:` type($barrier)";
  let hasVerifier = 1;
}

def AttnGPU_ArriveBarrierOp : AttnGPU_Op<"arrive_barrier"> {
  let summary = "Each executing thread arrives once on an mbarrier (release)";
  let description = [{
    mbarrier.arrive with release semantics at CTA scope: the thread's earlier reads of the
    shared memory the barrier guards are done before a waiter of the phase proceeds. A
    warp-specialised kernel's consumers arrive on a tile's "free" barrier after their last
    read of it, so the producer may refill it.
  }];
  let arguments = (ins Arg<AttnGPU_Barrier, "", [MemRead, MemWrite]>:$barrier);
  let assemblyFormat = "$barrier attr-dict `:` type($barrier)";
  let hasVerifier = 1;
}

def AttnGPU_TurnAction : I32EnumAttr<"TurnAction", "a step of the consumers' ping-pong", [
  I32EnumAttrCase<"start", 0>, I32EnumAttrCase<"wait", 1>, I32EnumAttrCase<"pass", 2>]> {
  let cppNamespace = "::mlir::attngpu";
}

def AttnGPU_TurnOp : AttnGPU_Op<"turn"> {
  let summary = "Ping-pong of the consumer warpgroups: wait for this warpgroup's turn, or pass it";
  let description = [{
    In the consumer region of an attn_gpu.warp_specialize, the consumer warpgroups take turns
    in round-robin order (FlashAttention-3's ping-pong: one warpgroup's GEMMs while the others
    run their softmax). `wait`: until the previous warpgroup passed the turn to this one;
    `pass`: hand it to the next; `start` (once, before the first wait): the first warpgroup
    holds the turn. Named barriers 2 + warpgroup of two warpgroups' threads (bar.sync by the
    waiter, bar.arrive by the passer). Every consumer warpgroup must wait and pass equally
    often: turns go around ops every consumer thread runs the same number of times.
  }];
  let arguments = (ins AttnGPU_TurnAction:$action);
  let assemblyFormat = "$action attr-dict";
  let hasVerifier = 1;
}

def AttnGPU_WarpSpecializeOp : AttnGPU_Op<"warp_specialize", [NoTerminator]> {
  let summary = "Consumer warpgroups and a producer warpgroup, each running its own region";
  let description = [{
    The block's threads split by warpgroup (128 threads): the first `consumers` warpgroups
    run the `consumer` region, the last warpgroup the `producer` region (its first warp
    only; the others exit). With `registers`, each role first re-balances the register file
    (setmaxnreg: consumers raise their count to the first number, the producer lowers its
    to the second). In the consumer region the block's threads are the consumers' (copies
    shared by the block, fragment layouts) and barriers are named barriers of the consumers
    alone; in the producer region the leader of a copy is the producer's first thread.
    attn-gpu-warp-specialize builds it.
  }];
  let arguments = (ins ConfinedAttr<I64Attr, [IntMinValue<1>]>:$consumers,
                       OptionalAttr<DenseI64ArrayAttr>:$registers);
  let regions = (region SizedRegion<1>:$consumer, SizedRegion<1>:$producer);
  let assemblyFormat = [{
    `consumers` `(` $consumers `)` (`registers` $registers^)? $consumer `producer` $producer
    attr-dict
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// Threads of the consumer warpgroups (the producer's first thread is this index).
    int64_t getConsumerThreads() { return getConsumers() * 128; }
  }];
}

def AttnGPU_WaitBarrierOp : AttnGPU_Op<"wait_barrier"> {
  let summary = "Waits for the phase of an mbarrier with the given parity to complete";
  let description = [{
    Every thread waits until the phase of `barrier` whose parity is `phase` % 2 has completed
    (mbarrier.try_wait.parity, retried): the tensor copies that signalled it have landed and
    their data is visible to the thread, to the generic and the async proxy alike.
  }];
  let arguments = (ins Arg<AttnGPU_Barrier, "", [MemRead, MemWrite]>:$barrier, Index:$phase);
  let assemblyFormat = "$barrier `phase` $phase attr-dict `:` type($barrier)";
  let hasVerifier = 1;
}

def AttnGPU_DequantizeOp : AttnGPU_Op<"dequantize"> {
  let summary = "Dequantises a landed staging tile of K or V into a 16-bit tile";
  let description = [{
    tile[r, e] = stage value (key j0 + r, channel e) * scale[coordinates of (b, hk, j, e) on
    `axes`, e / group on the channel axis], rounded to the tile's type; i8 stages with
    `packing = 2` hold two signed nibbles per byte (low first). Rows past kv_len were
    zero-filled and stay 0. Every thread of the block takes part; a barrier must follow.
  }];
  let arguments = (ins Arg<AttnGPU_Shared, "", [MemRead]>:$stage,
                       Arg<AttnGPU_Shared, "", [MemWrite]>:$tile,
                       Arg<MemRefOf<[F32, F16, BF16]>, "", [MemRead]>:$scale,
                       Index:$b, Index:$hk, Index:$j0, Index:$kv_len,
                       DenseI64ArrayAttr:$axes,
                       DefaultValuedAttr<I64Attr, "1">:$group,
                       DefaultValuedAttr<I64Attr, "1">:$packing);
  let assemblyFormat = [{
    $stage `->` $tile `[` $b `,` $hk `,` $j0 `]` `below` $kv_len `scale` $scale attr-dict `:`
    type($stage) `->` type($tile) `,` type($scale)
  }];
}

def AttnGPU_MapTileOp : AttnGPU_Op<"map_tile"> {
  let summary = "Applies a feature map to every element of a landed 16-bit tile, in place";
  let arguments = (ins Arg<AttnGPU_Shared, "", [MemRead, MemWrite]>:$tile);
  let regions = (region SizedRegion<1>:$feature);
  let assemblyFormat = "$tile attr-dict `:` type($tile) $feature";
}

def AttnGPU_LogDecayPrefixOp : AttnGPU_Op<"log_decay_prefix", [AttrSizedOperandSegments]> {
  let summary = "Cumulative log decays of a tile of positions, into shared memory";
  let description = [{
    cum[c] = base + log gamma(b, h, p0) + ... + log gamma(b, h, p0 + c) for c < dim(cum, 0),
    where gamma is the `decay` region and base = sum over p < p0 of log gamma(b, h, p) -- or,
    with `carry %x`, base = x[0], which then becomes the tile's total (the next key tile
    continues from it). With `total_to %t` (and `carry`), only carry[0] = sum over p < t is
    written. With `relative`, base = 0 (a recurrence chunk's own decays). With `exclusive
    %x` (a strict-causal recurrence's queries, which read the state before their own step),
    x[c] = cum[c] - log gamma(b, h, p0 + c) is written too. Positions past the query length
    are clamped (their keys are masked). Warp 0 computes the prefix sums (a shuffle scan), so
    dim(cum, 0) is at most 32 or a multiple of 32; barriers before and after.
  }];
  let arguments = (ins Arg<MemRefRankOf<[F32], [1]>, "", [MemRead, MemWrite]>:$cum,
                       Index:$b, Index:$h, Index:$p0, Index:$q_len,
                       Optional<MemRefRankOf<[F32], [1]>>:$carry,
                       Arg<Optional<MemRefRankOf<[F32], [1]>>, "", [MemWrite]>:$exclusive,
                       UnitAttr:$total_only, UnitAttr:$relative);
  let regions = (region SizedRegion<1>:$decay);
  let assemblyFormat = [{
    $cum `[` $b `,` $h `,` $p0 `]` `below` $q_len (`carry` $carry^)?
    (`exclusive` $exclusive^)? attr-dict `:`
    type($cum) (`,` type($carry)^)? (`exclusive` type($exclusive)^)? $decay
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Register fragments
//===----------------------------------------------------------------------===//

def AttnGPU_LoadOperandOp : AttnGPU_Op<"load_operand"> {
  let summary = "Reads a shared 16-bit tile as the A operand fragments of the block's warps";
  let arguments = (ins Arg<AttnGPU_Shared, "", [MemRead]>:$tile);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$tile attr-dict `:` type($tile) `->` type($result)";
  let hasVerifier = 1;
}

def AttnGPU_MmaOp : AttnGPU_Op<"mma"> {
  let summary = "acc += a . B on tensor cores, B read from a shared tile";
  let description = [{
    With `transpose_b`, B is stored [N, K] (the K tile of S = Q K^T) and
    acc[r, n] += sum_k a[r, k] * B[n, k]; otherwise B is stored [K, N] (the V tile of
    O += P V) and acc[r, n] += sum_k a[r, k] * B[k, n]. `kind` is the instruction, chosen by
    attn-gpu-select-mma; attn-gpu-to-nvvm needs it set. acc's columns are a multiple of 8.
    `a` is an operand fragment, or (wgmma only) a swizzled shared tile [rows, K] that the
    tensor cores read through a descriptor: each warpgroup its own 64 rows.

    With `gate %G` (f32 [rows, K]: a gated recurrence chunk's cumulative log gates per
    position and channel), warp w's B element (k, n) is multiplied by exp(G[16 w, k]), or with
    `gate_blocks` by exp(G[16 w, k] - G[16 floor(n / 16), k]): the exact factors of q~ S and
    q~ K~^T (attn_gpu.gate_operand, attn_gpu.gate_keys) that keep every product in range.

    `async`: the product is only issued (one commit group of its own when the kind is wgmma);
    its result is in flight and its one use is an attn_gpu.mma_wait, which gives the finished
    accumulator. Work between the two runs while the tensor cores compute. mma.sync is
    synchronous anyway: there `async` changes nothing.
  }];
  let arguments = (ins Arg<AnyTypeOf<[AttnGPU_Fragment, AttnGPU_Shared]>, "", [MemRead]>:$a,
                       Arg<AttnGPU_Shared, "", [MemRead]>:$b,
                       AttnGPU_Fragment:$acc,
                       Arg<Optional<MemRefRankOf<[F32], [2]>>, "", [MemRead]>:$gate,
                       UnitAttr:$transpose_b, UnitAttr:$gate_blocks,
                       OptionalAttr<AttnGPU_MmaAttr>:$kind, UnitAttr:$async);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = [{
    $a `,` $b `,` $acc (`gate` $gate^)? attr-dict `:` type($a) `,` type($b) `,` type($acc)
    (`gate` type($gate)^)? `->` type($result)
  }];
  let hasVerifier = 1;
}

def AttnGPU_MmaWaitOp : AttnGPU_Op<"mma_wait"> {
  let summary = "Waits for asynchronous mmas: their accumulators, finished";
  let description = [{
    Each operand is the in-flight result of an `async` attn_gpu.mma; the results are the same
    accumulators once at most `pending` of the commit groups issued after the oldest of them
    are still running (wgmma.wait_group `pending`: groups finish in issue order, so
    `pending = 1` waits for every group but the last one issued). Only the accumulators
    listed here may be read afterwards; an mma still in flight must be waited for by a later
    mma_wait.
  }];
  let arguments = (ins Variadic<AttnGPU_Fragment>:$inflight,
                       ConfinedAttr<I64Attr, [IntMinValue<0>]>:$pending);
  let results = (outs Variadic<AttnGPU_Fragment>:$results);
  let assemblyFormat = "$inflight attr-dict `:` type($inflight) `->` type($results)";
  let builders = [OpBuilder<(ins "::mlir::ValueRange":$inflight, "int64_t":$pending)>];
  let hasVerifier = 1;
}

def AttnGPU_ScoreOp : AttnGPU_Op<"score", [AttrSizedOperandSegments]> {
  let summary = "Masked score evaluation on an accumulator tile of dot products";
  let description = [{
    result[r, c] = score(b, hr, ir, j, s[r, c]) where mask(b, hr, ir, j) holds and j < kv_len,
    `fill` elsewhere; (hr, ir) = (h + p % pack, p / pack) for p = i0 + r (rows past the query
    length are evaluated as its last row and never stored), j = j0 + c. With `cum_q`/`cum_k`
    (a per-step decay) the score is multiplied by exp(cum_q[r] - cum_k[c]) (with `log_decay`,
    a forget-gate softmax, it gains cum_q[r] - cum_k[c]), with
    `key_scale %f` by f[c] (a recurrence's key factors). A key tile that
    lies inside kv_len (and that an exact affine mask fully allows, or for which `full` holds:
    a block plan's verdict that the mask allows every element) takes a branch without range
    checks (and without the mask).

    `transposed` (the backward's key-major tiles, pack 1, no decay or key factors): rows are
    keys and columns queries, result[r, c] = score(b, h, i0 + c, j0 + r, s[r, c]) where the
    mask holds, j0 + r < kv_len and i0 + c < q_len, `fill` elsewhere.

    With `norms %nq, %nk` (the row norms dot(q, q) and dot(k, k) of the tile's rows and keys,
    attn_gpu.row_squares) the score region takes (b, h, i, j, dot, nq[r], nk[c]).
  }];
  let arguments = (ins AttnGPU_Fragment:$s, Index:$b, Index:$h, Index:$i0, Index:$j0,
                       Index:$q_len, Index:$kv_len,
                       Optional<MemRefRankOf<[F32], [1]>>:$cum_q,
                       Optional<MemRefRankOf<[F32], [1]>>:$cum_k,
                       Optional<MemRefRankOf<[F32], [1]>>:$key_scale,
                       Optional<MemRefRankOf<[F32], [1]>>:$q_norms,
                       Optional<MemRefRankOf<[F32], [1]>>:$k_norms,
                       Optional<I1>:$full,
                       F32Attr:$fill,
                       DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<1>]>, "1">:$pack,
                       UnitAttr:$transposed, UnitAttr:$log_decay);
  let results = (outs AttnGPU_Fragment:$result);
  let regions = (region SizedRegion<1>:$score, AnyRegion:$mask);
  let assemblyFormat = [{
    $s `[` $b `,` $h `,` $i0 `,` $j0 `]` `below` $q_len `,` $kv_len
    (`decay` $cum_q^ `,` $cum_k)? (`key_scale` $key_scale^)? (`norms` $q_norms^ `,` $k_norms)?
    (`full` $full^)? attr-dict `:` type($s)
    (`,` type($cum_q)^ `,` type($cum_k))? (`key_scale` type($key_scale)^)?
    (`norms` type($q_norms)^ `,` type($k_norms))?
    `->` type($result) `score` $score (`mask` $mask^)?
  }];
  let hasVerifier = 1;
}

def AttnGPU_RowReduceOp : AttnGPU_Op<"row_reduce", [Pure]> {
  let summary = "Each thread's reduction of its elements of each row it holds";
  let description = [{
    acc fragment -> rows fragment. The result is per thread: a full row reduction also needs
    attn_gpu.quad_reduce (the four lanes of a quad share a row).
  }];
  let arguments = (ins AttnGPU_Fragment:$x, AttnGPU_ReduceAttr:$kind);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$kind $x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

def AttnGPU_QuadReduceOp : AttnGPU_Op<"quad_reduce", [Pure, AllTypesMatch<["x", "result"]>]> {
  let summary = "Reduces a rows fragment over the four lanes that share each row";
  let arguments = (ins AttnGPU_Fragment:$x, AttnGPU_ReduceAttr:$kind);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$kind $x attr-dict `:` type($x)";
  let hasVerifier = 1;
}

def AttnGPU_ClusterPublishOp : AttnGPU_Op<"cluster_publish"> {
  let summary = "Publishes a rows fragment to the blocks of a thread-block cluster";
  let description = [{
    The first lane of each quad (x holds each row's value in every lane of its quad, as after
    quad_reduce) writes its rows to scratch[slot + r], then every thread arrives on the
    cluster barrier (barrier.cluster.arrive, release): the first half of a cluster-wide
    reduction whose attn_gpu.cluster_gather may come much later, so the wait for the slowest
    block of the cluster overlaps other work. The kernel declares its cluster
    (`nvvm.cluster_dim`, sm_90a); every thread of every block runs publish and gather
    alternately, the same number of times. A slot is rewritten only after a gather of a later
    publish (two slots alternating do: the barrier between orders every block's reads of the
    old values before the new write).
  }];
  let arguments = (ins AttnGPU_Fragment:$x,
                       Arg<MemRefRankOf<[F32], [1]>, "", [MemWrite]>:$scratch, Index:$slot);
  let assemblyFormat = "$x `,` $scratch `[` $slot `]` attr-dict `:` type($x) `,` type($scratch)";
  let hasVerifier = 1;
}

def AttnGPU_ClusterGatherOp : AttnGPU_Op<"cluster_gather"> {
  let summary = "Sums the rows every block of the cluster published";
  let description = [{
    Waits on the cluster barrier (barrier.cluster.wait, acquire: every block's
    cluster_publish has landed), then result[r] = the sum over the blocks c of the cluster,
    in rank order, of block c's scratch[slot + r], read through distributed shared memory
    (mapa, ld.shared::cluster). Every block gets the same sums, bit for bit. An output
    rmsnorm whose value channels are split over the blocks of a cluster (the chunk kernel)
    sums its rows' squares with publish and gather.
  }];
  let arguments = (ins Arg<MemRefRankOf<[F32], [1]>, "", [MemRead]>:$scratch, Index:$slot);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$scratch `[` $slot `]` attr-dict `:` type($scratch) `->` type($result)";
  let hasVerifier = 1;
}

def AttnGPU_ClusterSyncOp : AttnGPU_Op<"cluster_sync"> {
  let summary = "barrier.cluster arrive and wait: no block goes on (or exits) before all arrive";
  let description = [{
    After the last cluster_gather: a block's shared memory must outlive its peers' reads of it.
  }];
  let assemblyFormat = "attr-dict";
  let hasVerifier = 1;
}

def AttnGPU_BroadcastRowsOp : AttnGPU_Op<"broadcast_rows", [Pure]> {
  let summary = "An accumulator tile whose every element is its row's value";
  let arguments = (ins AttnGPU_Fragment:$x);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

def AttnGPU_ToOperandOp : AttnGPU_Op<"to_operand", [Pure]> {
  let summary = "An f32 accumulator tile rounded to 16 bits as the A operand of the next mma";
  let description = [{
    The S accumulators of two 8-column blocks are exactly the A fragment of one 16-column k
    step (FlashAttention-2's P): no data moves between threads.
  }];
  let arguments = (ins AttnGPU_Fragment:$x);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

def AttnGPU_ColumnsOp : AttnGPU_Op<"columns", [Pure]> {
  let summary = "A block of an accumulator tile's columns (no data moves)";
  let description = [{ result[r, c] = x[r, from + c]; `from` and the widths are multiples of
    8, so the result is a subset of each thread's registers. }];
  let arguments = (ins AttnGPU_Fragment:$x, I64Attr:$from);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$x `[` $from `]` attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

def AttnGPU_VoteAllOp : AttnGPU_Op<"vote_all"> {
  let summary = "Whether a boolean rows fragment holds in every row of the warp";
  let arguments = (ins AttnGPU_Fragment:$x);
  let results = (outs I1:$result);
  let assemblyFormat = "$x attr-dict `:` type($x)";
}

//===----------------------------------------------------------------------===//
// Stores
//===----------------------------------------------------------------------===//

def AttnGPU_StoreTileOp : AttnGPU_Op<"store_tile", [AttrSizedOperandSegments]> {
  let summary = "Writes an accumulator tile to rows of the output";
  let description = [{
    Row r (query p / pack of head h + p % pack, p = i0 + r) goes to out[b, head, query, :] --
    or, with `split s`, to out[s, b, head, query, :] of a rank-5 partial buffer -- for the
    queries below q_len, rounded to the output's element type; with `columns_from %c0` the
    tile's columns are the output's c0 .. (a value slice).
  }];
  let arguments = (ins AttnGPU_Fragment:$x, Arg<AttnGPU_GlobalOut, "", [MemWrite]>:$out,
                       Index:$b, Index:$h, Index:$i0, Index:$q_len, Variadic<Index>:$split,
                       Optional<Index>:$col0,
                       DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<1>]>, "1">:$pack);
  let assemblyFormat = [{
    $x `->` $out `[` $b `,` $h `,` $i0 `]` (`split` $split^)? (`columns_from` $col0^)?
    `below` $q_len attr-dict `:` type($x) `->` type($out)
  }];
  let hasVerifier = 1;
}

def AttnGPU_LoadTileOp : AttnGPU_Op<"load_tile"> {
  let summary = "Reads rows of a global f32 tensor into the accumulator layout";
  let description = [{
    The inverse of attn_gpu.store_tile: element (r, c) is src[b, h, i0 + r, c] for
    i0 + r < q_len, 0 past it (the backward's f32 dQ accumulator, converted to dq).
  }];
  let arguments = (ins Arg<MemRefRankOf<[F32], [4]>, "", [MemRead]>:$src, Index:$b, Index:$h,
                       Index:$i0, Index:$q_len);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = [{
    $src `[` $b `,` $h `,` $i0 `]` `below` $q_len attr-dict `:` type($src) `->` type($result)
  }];
  let hasVerifier = 1;
}

def AttnGPU_ShareTileOp : AttnGPU_Op<"share_tile"> {
  let summary = "Rounds an accumulator tile to 16 bits into a padded shared tile";
  let description = [{
    Element (r, c) of the [R, C] tile goes to row r, column c of the [R, C + pad] shared tile
    (each warp its 16 rows), so that an op of another layout can read it -- the backward's dS
    for its dQ product. Readers of the tile's previous contents must be past a barrier; a
    barrier must follow before it is read.
  }];
  let arguments = (ins AttnGPU_Fragment:$x, Arg<AttnGPU_Shared, "", [MemWrite]>:$tile);
  let assemblyFormat = "$x `->` $tile attr-dict `:` type($x) `->` type($tile)";
  let hasVerifier = 1;
}

def AttnGPU_AtomicAddProductOp : AttnGPU_Op<"atomic_add_product"> {
  let summary = "Adds A^T B of two shared tiles into rows of a global f32 tensor, atomically";
  let description = [{
    out[b, h, i0 + r, c] += sum_k A[k, r] B[k, c] for r < R (A's columns), i0 + r < q_len and
    c < C (B's columns), with A [K, R] and B [K, C] 16-bit shared tiles (padded, or B
    swizzled): the backward's dQ += dS^T K from its key-major kernel, where blocks of
    different key tiles add into the same rows. The block's warps split the product into
    16 x 32 pieces (mma.sync m16n8k16, both operands by ldmatrix.trans) and add each element
    with one f32 reduction to global memory. The tiles must be landed and published (a
    barrier) before; `out` must not be read by the same kernel.
  }];
  let arguments = (ins Arg<AttnGPU_Shared, "", [MemRead]>:$a, Arg<AttnGPU_Shared, "", [MemRead]>:$b,
                       Arg<MemRefRankOf<[F32], [4]>, "", [MemRead, MemWrite]>:$out,
                       Index:$batch, Index:$h, Index:$i0, Index:$q_len);
  let assemblyFormat = [{
    $a `,` $b `->` $out `[` $batch `,` $h `,` $i0 `]` `below` $q_len attr-dict `:` type($a) `,`
    type($b) `->` type($out)
  }];
  let hasVerifier = 1;
}

def AttnGPU_StoreRowsOp : AttnGPU_Op<"store_rows"> {
  let summary = "Writes one value per row (the log-sum-exp) for the rows in range";
  let arguments = (ins AttnGPU_Fragment:$x, Arg<MemRefOf<[F32]>, "", [MemWrite]>:$out,
                       Index:$b, Index:$h, Index:$i0, Index:$q_len, Variadic<Index>:$split,
                       DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<1>]>, "1">:$pack);
  let assemblyFormat = [{
    $x `->` $out `[` $b `,` $h `,` $i0 `]` (`split` $split^)? `below` $q_len attr-dict `:`
    type($x) `->` type($out)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Recurrences (the chunk strategy): the state, gates, key factors, projections
//===----------------------------------------------------------------------===//

def AttnGPU_LoadStateOp : AttnGPU_Op<"load_state"> {
  let summary = "Reads each warp's block of rows of a recurrence state from global memory";
  let description = [{
    The state of (b, h) is state[b, h, :, :] (f32, `rows` rows). Warp w owns the R rows
    from (w mod (rows / R)) * R of the [R, C] result (R = max(16, rows / warps), so warps share
    blocks when rows < 16 * warps) and reads their columns c0 .. c0 + C.
  }];
  let arguments = (ins Arg<MemRefRankOf<[F32], [4]>, "", [MemRead]>:$state, Index:$b, Index:$h,
                       Index:$col0, ConfinedAttr<I64Attr, [IntMinValue<16>]>:$rows);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = [{
    $state `[` $b `,` $h `,` $col0 `]` attr-dict `:` type($state) `->` type($result)
  }];
  let hasVerifier = 1;
}

def AttnGPU_StoreStateOp : AttnGPU_Op<"store_state"> {
  let summary = "Writes each warp's block of rows of a recurrence state to global memory";
  let description = [{ The inverse of attn_gpu.load_state (warps sharing a block write the
    same values). }];
  let arguments = (ins AttnGPU_Fragment:$x, Arg<MemRefRankOf<[F32], [4]>, "", [MemWrite]>:$state,
                       Index:$b, Index:$h, Index:$col0,
                       ConfinedAttr<I64Attr, [IntMinValue<16>]>:$rows);
  let assemblyFormat = [{
    $x `->` $state `[` $b `,` $h `,` $col0 `]` attr-dict `:` type($x) `->` type($state)
  }];
  let hasVerifier = 1;
}

def AttnGPU_ShareStateOp : AttnGPU_Op<"share_state"> {
  let summary = "Rounds each warp's block of the state to 16 bits into a shared tile";
  let description = [{
    Row d of the padded [rows, C + pad] tile receives the state's row d, so that the next
    chunk's q S reads it as an mma B operand. Readers of the tile's previous contents must be
    past a barrier; a barrier must follow before it is read.
  }];
  let arguments = (ins AttnGPU_Fragment:$x, Arg<AttnGPU_Shared, "", [MemWrite]>:$tile);
  let assemblyFormat = "$x `->` $tile attr-dict `:` type($x) `->` type($tile)";
  let hasVerifier = 1;
}

def AttnGPU_StateUpdateOp : AttnGPU_Op<"state_update", [AttrSizedOperandSegments]> {
  let summary = "Decays a recurrence state and adds a chunk's keys times values";
  let description = [{
    For the chunk of positions n0 + c (c < R, the K and V tiles' rows; `last` = the chunk's
    last row) and each warp's block of state rows d (attn_gpu.load_state's ownership):

      S'[d, e] = S[d, e] exp(cum[last]) exp(G[last, d])
               + sum_{c, n0 + c < keys_end} K[c, d] exp(cum[last] - cum[c]) f[c]
                                            exp(G[last, d] - G[16 floor(c / 16), d]) V[c, e]

    with `cum` (cumulative log decays), `key_scale %f` (key factors) and `gate %G` (cumulative
    log gates; the K tile then holds K~ of attn_gpu.gate_keys) each optional. With `normalize`
    the state has 8 more columns than V: column C - 8 is the running sum of the keys' weights
    (V's column of ones), the others stay 0. A key's weight is zeroed after all its factors, so
    the factors of clamped positions past the end cannot poison the state.
  }];
  let arguments = (ins AttnGPU_Fragment:$s, Arg<AttnGPU_Shared, "", [MemRead]>:$k,
                       Arg<AttnGPU_Shared, "", [MemRead]>:$v, Index:$n0, Index:$last,
                       Index:$keys_end,
                       Arg<Optional<MemRefRankOf<[F32], [1]>>, "", [MemRead]>:$cum,
                       Arg<Optional<MemRefRankOf<[F32], [1]>>, "", [MemRead]>:$key_scale,
                       Arg<Optional<MemRefRankOf<[F32], [2]>>, "", [MemRead]>:$gate,
                       UnitAttr:$normalize);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = [{
    $s `,` $k `,` $v `[` $n0 `]` `last` $last `below` $keys_end (`decay` $cum^)?
    (`key_scale` $key_scale^)? (`gate` $gate^)? attr-dict `:` type($s) `,` type($k) `,`
    type($v) (`decay` type($cum)^)? (`key_scale` type($key_scale)^)? (`gate` type($gate)^)?
    `->` type($result)
  }];
  let hasVerifier = 1;
}

def AttnGPU_MapElementsOp : AttnGPU_Op<"map_elements"> {
  let summary = "Applies a region of the positions and the value to every accumulator element";
  let description = [{
    result[r, c] = f(b, h, min(i0 + r, q_len - 1), j0 + c, x[r, c]): a score that is linear in
    its dot applied to q S, a skip term applied to V's values, or a flash kernel's output map
    applied to its finished rows. With `pack` G > 1 (GQA-packed rows) row p = i0 + r is query
    p / G of head h + p % G. With `and %y, ...` (fragments of x's type) the region also takes
    y[r, c], ... after x[r, c]: the mix of several scores' rows.
  }];
  let arguments = (ins AttnGPU_Fragment:$x, Variadic<AttnGPU_Fragment>:$more, Index:$b,
                       Index:$h, Index:$i0, Index:$j0, Index:$q_len,
                       DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<1>]>, "1">:$pack);
  let results = (outs AttnGPU_Fragment:$result);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $x (`and` $more^)? `[` $b `,` $h `,` $i0 `,` $j0 `]` `below` $q_len attr-dict `:` type($x)
    (`and` type($more)^)? `->` type($result) $body
  }];
  let hasVerifier = 1;
}

def AttnGPU_LoadRowsOp : AttnGPU_Op<"load_rows"> {
  let summary = "A rows fragment from a shared f32 vector (one value per tile row)";
  let arguments = (ins Arg<MemRefRankOf<[F32], [1]>, "", [MemRead]>:$values);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$values attr-dict `:` type($values) `->` type($result)";
  let hasVerifier = 1;
}

def AttnGPU_LoadAccOp : AttnGPU_Op<"load_acc"> {
  let summary = "Reads a shared 16-bit tile into the accumulator layout, widened to f32";
  let arguments = (ins Arg<AttnGPU_Shared, "", [MemRead]>:$tile);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$tile attr-dict `:` type($tile) `->` type($result)";
  let hasVerifier = 1;
}

def AttnGPU_GateOperandOp : AttnGPU_Op<"gate_operand", [Pure]> {
  let summary = "Scales q's A fragments by its gates relative to the warp's first row";
  let description = [{
    result[r, k] = a[r, k] exp(G[r, k] - G[16 w, k]) for warp w's rows: q~ of a gated chunk,
    finite while 16 steps of a channel's gates multiply to more than e^-88. With `strict` (a
    strict-causal recurrence: row r reads the state before its step) G[r - 1, k] replaces
    G[r, k] (0 for row 0).
  }];
  let arguments = (ins AttnGPU_Fragment:$a, Arg<MemRefRankOf<[F32], [2]>, "", [MemRead]>:$gate,
                       UnitAttr:$strict);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$a `,` $gate attr-dict `:` type($a) `,` type($gate) `->` type($result)";
  let hasVerifier = 1;
}

def AttnGPU_RowSquaresOp : AttnGPU_Op<"row_squares"> {
  let summary = "The sum of squares of each row of a shared 16-bit tile, into a shared vector";
  let description = [{
    norms[r] = sum_e tile[r, e]^2 (in f32) for every row r of `norms` (at most the tile's
    rows), the tile padded or swizzled: the row norms dot(q, q) of a Q tile or dot(k, k) of a
    K tile that a score reads. Lanes take 16-byte chunks of a row, a shuffle reduction sums
    them. Readers of the previous contents must be past a barrier; a barrier must follow
    before it is read.
  }];
  let arguments = (ins Arg<AttnGPU_Shared, "", [MemRead]>:$tile,
                       Arg<MemRefRankOf<[F32], [1]>, "", [MemWrite]>:$norms);
  let assemblyFormat = "$tile `->` $norms attr-dict `:` type($tile) `->` type($norms)";
  let hasVerifier = 1;
}

def AttnGPU_RowDotOp : AttnGPU_Op<"row_dot"> {
  let summary = "Weighted dot products of the matching rows of two shared tiles";
  let description = [{
    A rows fragment: for each row r the block's warps hold (attn_gpu.load_rows' rows),
    result[r] = sum_{e < columns} A[r, e] * B[r, e] * weight(b, h, min(p0 + r, q_len - 1), e):
    a strict-causal recurrence's bonus dot of query i and key i (A the chunk's Q tile, B its K
    tile, both after any feature map). The four lanes of a quad share a row: each takes every
    fourth channel, then a quad reduction.
  }];
  let arguments = (ins Arg<AttnGPU_Shared, "", [MemRead]>:$a, Arg<AttnGPU_Shared, "", [MemRead]>:$b,
                       Index:$batch, Index:$h, Index:$p0, Index:$q_len,
                       ConfinedAttr<I64Attr, [IntMinValue<1>]>:$columns);
  let results = (outs AttnGPU_Fragment:$result);
  let regions = (region SizedRegion<1>:$weight);
  let assemblyFormat = [{
    $a `,` $b `[` $batch `,` $h `,` $p0 `]` `below` $q_len attr-dict `:` type($a) `,` type($b)
    `->` type($result) $weight
  }];
  let hasVerifier = 1;
}

def AttnGPU_LogGatePrefixOp : AttnGPU_Op<"log_gate_prefix"> {
  let summary = "Cumulative log gates of a chunk per position and channel, into shared memory";
  let description = [{
    G[r, e] = log gate(b, h, p0, e) + ... + log gate(b, h, p0 + r, e) for every row r and
    channel e of G (positions past q_len clamped), one thread per channel walking the rows.
    Barriers before and after.
  }];
  let arguments = (ins Arg<MemRefRankOf<[F32], [2]>, "", [MemWrite]>:$cum,
                       Index:$b, Index:$h, Index:$p0, Index:$q_len);
  let regions = (region SizedRegion<1>:$gate);
  let assemblyFormat = [{
    $cum `[` $b `,` $h `,` $p0 `]` `below` $q_len attr-dict `:` type($cum) $gate
  }];
}

def AttnGPU_GateKeysOp : AttnGPU_Op<"gate_keys"> {
  let summary = "K~ = K exp(G[c0] - G[c]) in place, c0 the first row of c's 16-row block";
  let description = [{ Every thread takes part; a barrier follows. }];
  let arguments = (ins Arg<AttnGPU_Shared, "", [MemRead, MemWrite]>:$tile,
                       Arg<MemRefRankOf<[F32], [2]>, "", [MemRead]>:$gate);
  let assemblyFormat = "$tile `,` $gate attr-dict `:` type($tile) `,` type($gate)";
}

def AttnGPU_KeyFactorsOp : AttnGPU_Op<"key_factors"> {
  let summary = "A region of the key position for each row of a chunk, into shared memory";
  let description = [{
    f[r] = key_scale(b, h, p0 + r) for p0 + r < end, else 0; one thread per row. Readers of the
    previous contents must be past a barrier; a barrier must follow before it is read.
  }];
  let arguments = (ins Arg<MemRefRankOf<[F32], [1]>, "", [MemWrite]>:$factors,
                       Index:$b, Index:$h, Index:$p0, Index:$end);
  let regions = (region SizedRegion<1>:$key_scale);
  let assemblyFormat = [{
    $factors `[` $b `,` $h `,` $p0 `]` `below` $end attr-dict `:` type($factors) $key_scale
  }];
}

def AttnGPU_ProjectTileOp : AttnGPU_Op<"project_tile"> {
  let summary = "Random-feature projection of a tile's rows (Performer), on tensor cores";
  let description = [{
    feature[r, m] = f(raw[r, :] . w[m, :], raw[r, :] . raw[r, :]) for each warp's 16 rows, with
    w the shared [M, D] projection; a barrier must follow before the features are read.
  }];
  let arguments = (ins Arg<AttnGPU_Shared, "", [MemRead]>:$raw,
                       Arg<AttnGPU_Shared, "", [MemRead]>:$w,
                       Arg<AttnGPU_Shared, "", [MemWrite]>:$feature);
  let regions = (region SizedRegion<1>:$map);
  let assemblyFormat = [{
    $raw `,` $w `->` $feature attr-dict `:` type($raw) `,` type($w) `->` type($feature) $map
  }];
  let hasVerifier = 1;
}

def AttnGPU_CopyMatrixOp : AttnGPU_Op<"copy_matrix"> {
  let summary = "Copies a whole global matrix into a 16-bit shared tile, converting it";
  let description = [{ Synchronous loads and stores by every thread; a barrier must follow. }];
  let arguments = (ins Arg<MemRefRankOf<[F32, F16, BF16], [2]>, "", [MemRead]>:$source,
                       Arg<AttnGPU_Shared, "", [MemWrite]>:$tile);
  let assemblyFormat = "$source `->` $tile attr-dict `:` type($source) `->` type($tile)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// The backward pass
//===----------------------------------------------------------------------===//

def AttnGPU_ScoreGradOp : AttnGPU_Op<"score_grad",
    [AllTypesMatch<["dot", "ds", "result"]>]> {
  let summary = "The score's derivative on an accumulator tile, param gradients accumulated";
  let description = [{
    result[r, c] = score_grad(b, h, i, j, dot[r, c], ds[r, c]) with (i, j) = (i0 + r, j0 + c),
    or (i0 + c, j0 + r) when `transposed` (key-major tiles): dS turned into the gradient of
    the dot product. The region's attn_gpu.accumulate ops add into param gradients in global
    memory, for the elements whose ds is not 0 (masked, out-of-range and padded elements
    have ds = 0 and add nothing); an accumulation whose indices read neither i nor j is
    summed over the warp first, one atomic add per warp and tile. Positions past q_len and
    kv_len are clamped for the region's reads.
  }];
  let arguments = (ins AttnGPU_Fragment:$dot, AttnGPU_Fragment:$ds,
                       Index:$b, Index:$h, Index:$i0, Index:$j0, Index:$q_len, Index:$kv_len,
                       UnitAttr:$transposed);
  let results = (outs AttnGPU_Fragment:$result);
  let regions = (region SizedRegion<1>:$score_grad);
  let assemblyFormat = [{
    $dot `,` $ds `[` $b `,` $h `,` $i0 `,` $j0 `]` `below` $q_len `,` $kv_len attr-dict `:`
    type($dot) `->` type($result) $score_grad
  }];
  let hasVerifier = 1;
}

def AttnGPU_AccumulateOp : AttnGPU_Op<"accumulate", [HasParent<"ScoreGradOp">]> {
  let summary = "Adds a value into an element of a param gradient in global memory";
  let arguments = (ins F32:$value, Arg<MemRefOf<[F32]>, "", [MemRead, MemWrite]>:$grad,
                       Variadic<Index>:$indices);
  let assemblyFormat = "$value `->` $grad `[` $indices `]` attr-dict `:` type($grad)";
  let hasVerifier = 1;
}

def AttnGPU_CopyRowsOp : AttnGPU_Op<"copy_rows"> {
  let summary = "One f32 value per query of a tile, from global [b, h, i] into shared memory";
  let description = [{
    values[r] = src[b, h, i0 + r] for i0 + r < q_len, `fill` past it (lse and D of a query
    tile in the backward). Synchronous loads by the first threads; a barrier must follow.
  }];
  let arguments = (ins Arg<MemRefRankOf<[F32], [3]>, "", [MemRead]>:$src,
                       Arg<MemRefRankOf<[F32], [1]>, "", [MemWrite]>:$values,
                       Index:$b, Index:$h, Index:$i0, Index:$q_len, F32Attr:$fill);
  let assemblyFormat = [{
    $src `[` $b `,` $h `,` $i0 `]` `below` $q_len `->` $values attr-dict `:` type($src) `->`
    type($values)
  }];
}

def AttnGPU_LoadColumnsOp : AttnGPU_Op<"load_columns"> {
  let summary = "An accumulator tile whose element (r, c) is a shared f32 vector's value c";
  let arguments = (ins Arg<MemRefRankOf<[F32], [1]>, "", [MemRead]>:$values);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$values attr-dict `:` type($values) `->` type($result)";
  let hasVerifier = 1;
}

#endif // ATTN_GPU_OPS_TD

// Passes of the GPU tile level: from the tiled attn level to attn_gpu, and the scheduling
// choices made on it. Each pass has one source file named after it and one lit test.
#ifndef ATTN_GPU_PASSES_TD
#define ATTN_GPU_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnGPUSelectStrategy : Pass<"attn-gpu-select-strategy", "::mlir::ModuleOp"> {
  let summary = "Record the kernel family of each tiled function as #attn_gpu.strategy";
  let description = [{
    A function holding an `attn.chunk_step` is a chunked recurrence: `chunk` (tensor cores),
    or `scan` when its head or value dim is not a multiple of 16. Any other tiled function is
    `flash` (query tiles streaming key tiles). Later passes read the attribute instead of
    re-deciding.

    Before: `func.func @v(...) { ... attn.tile_scores ... }`
    After:  `func.func @v(...) attributes {attn_gpu.strategy = #attn_gpu.strategy<flash>}`
  }];
  let dependentDialects = ["::mlir::attngpu::AttnGPUDialect"];
}

def AttnGPUDistribute : Pass<"attn-gpu-distribute", "::mlir::ModuleOp"> {
  let summary = "Map tiled functions to thread blocks at the GPU tile level";
  let description = [{
    Each `#attn_gpu.strategy<flash>` function becomes a `gpu.func` kernel in a `gpu.module`:
    the parallel loops over batch, heads, query tiles (and split-KV splits) become the grid
    (x: splits x query tiles, y: heads, or kv heads when GQA-packed, z: batch), each tile op
    becomes attn_gpu ops on shared-memory tiles and register fragments, and the tile buffers
    (scores, running max and sum, accumulator) become fragment values carried by the key
    loop. The online-softmax update is spelled out step by step (row max, new max, rescale
    factor, exponentials, row sum, accumulator rescale). Tile copies (cp.async) are emitted
    synchronously, each waited for before its tile is read: attn-gpu-pipeline overlaps them
    with the computation. The launch
    ABI (threads, grid) is written as `attn_gpu.launch`; `attn.combine` becomes a second kernel,
    `<name>_combine`.

    A `#attn_gpu.strategy<chunk>` function (an `attn.chunk_step`) becomes the chunked
    recurrence: one block per (value slice, head, batch) walks its chunks in order, the state
    a `#attn_gpu.frag<warp_acc>` fragment carried by the chunk loop; per chunk, P = Q K^T under
    attn_gpu.score (mask c <= r, decays, key factors), O = factor * q S + P V (mma on the
    16-bit shared copy of S), then attn_gpu.state_update. A `scan` function becomes the
    per-thread scan (state columns in registers, gpu/scf/arith only).

    A `backward` function (an `attn.attention_grad`) becomes two kernels in one module
    (FlashAttention-2's backward by recomputation, docs/backward.md): `<name>` walks the key
    tiles of one query tile (grid: query tiles, heads, batch) and writes D = rowsum(dO * O)
    to a workspace and dQ, with the param gradients accumulated by attn_gpu.score_grad;
    `<name>_dkdv` walks the query tiles of every head of a GQA group for one key tile (grid:
    key tiles, kv heads, batch), key-major (`transposed` scores), and writes dK and dV. Both
    take the workspace D as a last argument, [b, h, i] f32.

    Before: `func.func @v(...) { scf.for ... { attn.tile_scores ... attn.tile_store ... } }`
    After:  `gpu.module @v_kernels [#nvvm.target<...>] { gpu.func @v(...) kernel { attn_gpu.* } }`
  }];
  let options = [
    Option<"chip", "chip", "std::string", "\"sm_80\"", "Target SM (sm_80, sm_90a)">,
    Option<"blockPlan", "block-plan", "bool", "true",
           "Backward kernels of masks that read params get a block plan">,
    Option<"valueSlice", "value-slice", "int64_t", "0",
           "Value channels per block of the chunk kernel (0: automatic)">,
    Option<"dqAtomic", "dq-atomic", "bool", "false",
           "Backward: dQ added by f32 atomics from the dK/dV kernel (5 matmuls, not 7)">,
    Option<"overlap", "overlap", "bool", "false",
           "sm_90a flash kernels: each key tile's softmax under the next tile's Q K^T "
           "(async wgmma; measured slower on the H200, bench/METHOD.md)">,
  ];
  let dependentDialects = ["::mlir::attngpu::AttnGPUDialect", "::mlir::gpu::GPUDialect",
                           "::mlir::NVVM::NVVMDialect", "::mlir::nvgpu::NVGPUDialect",
                           "::mlir::scf::SCFDialect", "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect", "::mlir::memref::MemRefDialect"];
}

def AttnGPUPipeline : Pass<"attn-gpu-pipeline", "::mlir::ModuleOp"> {
  let summary = "Overlap a key loop's tile copies with its computation (two stages)";
  let description = [{
    For a kernel loop whose body copies the key tile j0 of K, waits, computes with it, copies
    the key tile j0 of V, waits, computes with it and ends with a barrier (attn-gpu-distribute's
    flash loop): K(first) is issued in the prologue behind the earlier copies; each iteration
    issues V(j0) first and waits only for K(j0), then issues K(j0 + step) and waits only for
    V(j0) -- one copy group stays in flight (FlashAttention-2's order) -- and the loop drains
    its last prefetch. A loop that reads K after V's copy, or V before it, is left alone.

    A loop whose body starts with one copy stage of several tiles (origins: the induction
    variable or index arithmetic on it computed just before the copies) is double-buffered:
    the chunk loop, and the overlapped flash loop (K of the next key tile, V of this one). Its
    tiles may also be read before the loop when a barrier separates that read from the loop.

    Before: `scf.for %j0 { copy K(j0); wait 0; ...; copy V(j0); wait 0; ...; barrier }`
    After:  `copy K(lb); scf.for %j0 { barrier; copy V(j0); wait 1; ...; barrier; copy K(j0 + s); wait 1; ... }; wait 0`
  }];
  let options = [
    Option<"doubleBufferAsync", "double-buffer-async", "bool", "true",
           "Double-buffer a loop with asynchronous mmas (the overlapped flash loop); false "
           "keeps its copy stage synchronous for attn-gpu-warp-specialize, whose producer "
           "fills a ring of buffers instead">
  ];
  let dependentDialects = ["::mlir::attngpu::AttnGPUDialect", "::mlir::nvgpu::NVGPUDialect",
                           "::mlir::arith::ArithDialect"];
}

def AttnGPUSelectMMA : Pass<"attn-gpu-select-mma", "::mlir::ModuleOp"> {
  let summary = "Choose the tensor-core instruction of each attn_gpu.mma";
  let description = [{
    Sets `kind` on every `attn_gpu.mma` from the target chip of its gpu.module, and with it the
    layout of the B tiles. On sm_90a an mma takes `wgmma_m64nNk16` when its rows are whole
    warpgroups (64), N <= 256, it has no gate, and its B tile is a tile of its own that only
    copies write and only such mmas read, with whole 64-element rows in its contiguous
    dimension: that tile becomes `#attn_gpu.swizzle<128>` (unpadded), which the tensor cores
    read through a descriptor. Every other mma (and every mma before sm_90a) takes
    `mma_sync_m16n8k16` (ldmatrix fragments from padded tiles).

    Before: `%k = attn_gpu.alloc_shared : memref<64x136xbf16, 3>` `attn_gpu.mma %a, %k, %s {transpose_b}`
    After (sm_90a):  `%k = attn_gpu.alloc_shared : memref<64x128xbf16, #attn_gpu.swizzle<128>, 3>`
    `attn_gpu.mma %a, %k, %s {kind = #attn_gpu.mma<wgmma_m64nNk16>, transpose_b}`
  }];
  let dependentDialects = ["::mlir::attngpu::AttnGPUDialect"];
}

def AttnGPUTensorCopies : Pass<"attn-gpu-tensor-copies", "::mlir::ModuleOp"> {
  let summary = "Copy swizzled key and value tiles by TMA, completing on mbarriers (sm_90a)";
  let description = [{
    In sm_90a kernels, every `attn_gpu.copy_key_tile` of 16-bit keys or values from a kernel
    argument into a swizzled tile of its own gets `by %map signals %barrier`: one thread
    copies it by tensor memory access through a descriptor that the kernel takes as a new
    trailing parameter (recorded in its `#attn_gpu.launch` as `tensor_maps`, encoded by the
    runtime), and the copy completes on an mbarrier of its tile (`attn_gpu.init_barrier` at
    the kernel's start). The cp.async group protocol is replayed (one loop level): each
    `nvgpu.device_async_wait` that completes such a copy is followed by
    `attn_gpu.wait_barrier` at the parity of the tile's latest copy (counted before, in and
    after the loop); a wait that completes no cp.async copy is dropped with its proxy fence,
    and so is the block barrier behind it when only copies, commits and index arithmetic lie
    between it and the previous block barrier (each thread waits on the mbarrier itself).
    Kernels whose copies do not fit the replay keep cp.async.

    Before: `attn_gpu.copy_key_tile %k[%b, %h, %j] below %n -> %t {interior}`
            `%g = nvgpu.device_async_create_group` `nvgpu.device_async_wait %g {numGroups = 0}`
    After:  `attn_gpu.copy_key_tile %k[%b, %h, %j] below %n -> %t by %map signals %bar`
            `%g = nvgpu.device_async_create_group` `attn_gpu.wait_barrier %bar phase %p`
  }];
  let options = [
    Option<"dropBarriers", "drop-barriers", "bool", "true",
           "Drop the block barrier behind a dropped wait when only copies precede it since the "
           "last barrier (each thread waits on the mbarrier itself)">
  ];
  let dependentDialects = ["::mlir::attngpu::AttnGPUDialect", "::mlir::LLVM::LLVMDialect",
                           "::mlir::arith::ArithDialect"];
}

def AttnGPUWarpSpecialize : Pass<"attn-gpu-warp-specialize", "::mlir::ModuleOp"> {
  let summary = "Split a TMA kernel into consumer warpgroups and a producer warp over a ring of tiles";
  let description = [{
    In a kernel whose key and value tiles arrive by TMA (attn-gpu-tensor-copies), each such
    tile gets a second buffer, a second "full" barrier and two "free" barriers, and the
    program after the barriers' initialisation becomes the consumer region of an
    `attn_gpu.warp_specialize` whose producer region replays the tile copies in program
    order: copy n of a tile goes to buffer n % 2 once the consumers freed it (a wait on its
    free barrier at parity n / 2 + 1, which a fresh barrier passes for n < 2). The
    consumers' copies become arrivals on the free barrier of the previous copy's buffer (every
    consumer thread has read it there: the block barrier before the copy said so), their
    waits wait on buffer n % 2's full barrier at parity n / 2, and the reads after a wait take
    buffer n % 2. Block barriers of the key loop that only guarded a refill go unless the loop
    writes shared memory otherwise. The launch gets a producer warpgroup (128 threads more),
    the schedule `consumers` and `stages`, and, where the register file is the limit,
    `min_blocks` with setmaxnreg counts on the op (the producer down to 24 registers).
    Kernels with copies inside branches or nested loops, a tile read
    without a wait before it, or whose second buffers would not fit a block's shared memory
    (227 KB) are left alone. With two consumer warpgroups (`pingpong`), each
    matmul of the key loop is bracketed by `attn_gpu.turn wait` / `attn_gpu.turn pass` (and
    `attn_gpu.turn start` before the loop), so the warpgroups' GEMMs alternate and each one's
    softmax runs under the other's GEMMs; not when a matmul of the loop lies in a branch.

    Before: `attn_gpu.copy_key_tile %v[..., %j] ... -> %t by %map signals %bar` ...
            `attn_gpu.wait_barrier %bar phase %n` `attn_gpu.mma %p, %t, ...`
    After:  `attn_gpu.warp_specialize consumers(1) registers [232, 24] {`
            `  attn_gpu.arrive_barrier %free_prev` ... `attn_gpu.wait_barrier %full_n phase %half`
            `  attn_gpu.mma %p, %buffer_n, ... } producer {`
            `  scf.for ... { attn_gpu.wait_barrier %free_n phase %h1`
            `    attn_gpu.copy_key_tile ... -> %buffer_n by %map signals %full_n } }`
  }];
  let options = [
    Option<"minConsumers", "min-consumers", "int64_t", "1",
           "Specialise only kernels of at least this many consumer warpgroups (the pipeline "
           "asks for 2 unless --warp-specialize: a 64-row kernel gains nothing from it)">,
    Option<"pingpong", "pingpong", "bool", "true",
           "With two consumer warpgroups, they take turns at the key loop's matmuls "
           "(attn_gpu.turn around each): one's softmax under the other's GEMMs">
  ];
  let dependentDialects = ["::mlir::attngpu::AttnGPUDialect", "::mlir::arith::ArithDialect",
                           "::mlir::scf::SCFDialect"];
}

def AttnGPUNarrowIndex : Pass<"attn-gpu-narrow-index", "::mlir::ModuleOp"> {
  let summary = "Evaluate the score, mask and score-gradient regions' integer math in 32 bits";
  let description = [{
    The regions of attn_gpu.score and attn_gpu.score_grad compute positions, buckets and
    gathered indices in `index` (64-bit on the GPU), once per score element: 64-bit adds,
    compares and selects take two instructions, and 64-bit int <-> float conversions
    (ALiBi's (j - i) * slope, floor) run far slower than their 32-bit forms. An interval
    analysis bounds every integer value of the region (positions lie in [0, 2^31 - 2], the
    runtime's limit on an extent; i32 params in the i32 range; constants exact; +, -, *,
    min, max, select, guarded division; a float clamped by min/max before fptosi), and each
    integer op whose operands and result all fit in i32 is rewritten to its i32 form, with
    casts where a narrowed value meets one that stays wide (memory indices stay index). The
    result is identical: no value that fits in i32 wraps in either width.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

def AttnGPUAllocateShared : Pass<"attn-gpu-allocate-shared", "::mlir::ModuleOp"> {
  let summary = "Place each attn_gpu.alloc_shared tile in the kernel's dynamic shared memory";
  let description = [{
    Assigns byte offsets to the kernel's shared tiles in program order, each 16-byte aligned
    (a swizzled tile 1024-byte aligned, as its atoms need),
    and writes the total into the kernel's `attn_gpu.launch` (`shared_memory`). The module
    records every kernel's launch in `attn_gpu.launches` (kernel name -> #attn_gpu.launch),
    which outlives serialisation and which the manifest reads.

    Before: `%q = attn_gpu.alloc_shared : memref<64x136xbf16, 3>` `%k = attn_gpu.alloc_shared ...`
    After:  `%q = attn_gpu.alloc_shared {offset = 0} ...` `%k = attn_gpu.alloc_shared {offset = 17408} ...`
  }];
  let dependentDialects = ["::mlir::attngpu::AttnGPUDialect"];
}

#endif // ATTN_GPU_PASSES_TD

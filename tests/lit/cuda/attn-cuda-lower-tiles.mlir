// attn-cuda-lower-tiles: the chunk and scan strategies -> their recurrence kernels (CUDAChunk.cpp,
// CUDAScan.cpp); a flash function must have gone through attn-gpu-distribute.
// RUN: attnc %specs/retnet.attn --emit=tiled -o %t.mlir
// RUN: attnc-opt %t.mlir --attn-gpu-select-strategy --attn-cuda-lower-tiles | FileCheck %s --implicit-check-not=attn.
// RUN: attnc %specs/s4d.attn --emit=tiled -o %ts.mlir
// RUN: attnc-opt %ts.mlir --attn-gpu-select-strategy --attn-cuda-lower-tiles=chip=sm_90a | FileCheck %s --check-prefix=SCAN
// RUN: attnc %specs/alibi.attn --emit=tiled -o %tf.mlir
// RUN: not attnc-opt %tf.mlir --attn-gpu-select-strategy --attn-cuda-lower-tiles 2>&1 | FileCheck %s --check-prefix=FLASH

// RetNet, chunks of 64: 4 warps per (value slice, head, batch), the state on tensor cores.
// CHECK: gpu.module @retnet_kernels [#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">]
// The launch ABI: grid (value slices of 32, heads, batch) as extents of the output (argument 3),
// the shared memory of the builder's layout, the schedule the manifest reports.
// CHECK: gpu.func @retnet({{.*}}) kernel attributes {attn_gpu.launch = #attn_gpu.launch<threads = 128, grid = [<arg 3 dim 3 * 1 ceil_div 32>, <arg 3 dim 1 * 1 ceil_div 1>, <arg 3 dim 0 * 1 ceil_div 1>], shared_memory = {{[0-9]+}}, splits = false, schedule = {block_k = 64 : i64, block_q = 64 : i64, chunk = 64 : i64, rows = 64 : i64, value_slice = 32 : i64, warps = 4 : i64}>
// CHECK: nvgpu.device_async_copy
// CHECK: nvvm.mma.sync
// CHECK: gpu.return

// SCAN: gpu.module @s4d_kernels [#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">]
// SCAN: gpu.func @s4d({{.*}}) kernel attributes {attn_gpu.launch = #attn_gpu.launch<threads = 128, {{.*}} schedule = {{{.*}}lanes = {{[0-9]+}}
// SCAN: gpu.shuffle

// FLASH: error: attn-cuda-lower-tiles lowers one attn.chunk_step per function; a flash-strategy function goes through attn-gpu-distribute

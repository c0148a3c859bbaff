// RUN: attnc %specs/alibi.attn --emit=tiled -o %t.mlir
// RUN: attnc-opt %t.mlir --attn-cuda-lower-tiles | FileCheck %s --implicit-check-not=attn.
// RUN: attnc %specs/alibi.attn --emit=tiled --block-q=32 --block-k=32 -o %t32.mlir
// RUN: attnc-opt %t32.mlir --attn-cuda-lower-tiles=chip=sm_90a | FileCheck %s --check-prefix=SMALL
// RUN: attnc %specs/alibi.attn --emit=tiled --dtype=f32 -o %tf32.mlir
// RUN: not attnc-opt %tf32.mlir --attn-cuda-lower-tiles 2>&1 | FileCheck %s --check-prefix=F32
// RUN: attnc %specs/alibi.attn --emit=tiled --no-online-softmax -o %t2p.mlir
// RUN: not attnc-opt %t2p.mlir --attn-cuda-lower-tiles 2>&1 | FileCheck %s --check-prefix=TWOPASS
// RUN: attnc %specs/causal.attn --emit=tiled -o %tdyn.mlir
// RUN: not attnc-opt %tdyn.mlir --attn-cuda-lower-tiles 2>&1 | FileCheck %s --check-prefix=DYN
// RUN: attnc %specs/alibi.attn --emit=tiled --block-q=48 -o %t48.mlir
// RUN: not attnc-opt %t48.mlir --attn-cuda-lower-tiles 2>&1 | FileCheck %s --check-prefix=BQ

// ALiBi, causal, bf16, d = 128, tiles 64 x 64: 4 warps.
// CHECK: module attributes {gpu.container_module}
// CHECK: gpu.module @alibi_kernels [#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">]
// CHECK: gpu.func @alibi(%[[Q:[a-z0-9]+]]: memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>, {{.*}}) kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// Grid: x = query tile, y = head, z = batch; kv head = h / 1 folded away.
// CHECK-DAG: gpu.thread_id x
// CHECK-DAG: gpu.block_id x
// CHECK-DAG: gpu.block_id y
// CHECK-DAG: gpu.block_id z
// CHECK: gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
// CHECK: memref.view {{.*}} to memref<64x136xbf16, #gpu.address_space<workgroup>>
// Q tile, zero-filled past the end, then A fragments.
// CHECK: nvgpu.device_async_copy %[[Q]][{{.*}}], {{.*}}, 8, %{{.*}} {bypassL1}
// CHECK: nvgpu.device_async_wait
// CHECK: gpu.barrier
// CHECK: nvgpu.ldmatrix {{.*}} {numTiles = 4 : i32, transpose = false}
// The key loop carries m, l (2 rows each) and 16 x 4 accumulators.
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32) {
// CHECK: nvvm.mma.sync {{.*}} multiplicandAPtxType = #nvvm.mma_type<bf16>, {{.*}} shape = #nvvm.shape<m = 16, n = 8, k = 16>
// The score region (slope[h] * (j - i)) and the causal mask, per element.
// CHECK: memref.load %{{.*}}[%{{.*}}] : memref<?xf32, strided<[?], offset: ?>>
// CHECK: arith.cmpi sle
// Online softmax: quad max, ex2, rescale.
// CHECK: gpu.shuffle  xor
// CHECK: nvvm.inline_ptx "ex2.approx.ftz.f32 $0, $1;"
// P . V with transposed V fragments.
// CHECK: nvgpu.ldmatrix {{.*}} {numTiles = 4 : i32, transpose = true}
// CHECK: scf.yield
// Epilogue: out in bf16, lse = m + ln(l).
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: nvvm.inline_ptx "lg2.approx.f32 $0, $1;"
// CHECK: gpu.return

// SMALL: gpu.module @alibi_kernels [#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">]
// SMALL: known_block_size = array<i32: 64, 1, 1>
// SMALL: memref<32x136xbf16, #gpu.address_space<workgroup>>

// F32: the CUDA back end takes f16 or bf16 q, k, v (got 'f32'); compile with --dtype=bf16
// TWOPASS: the CUDA back end needs the online softmax (run attn-online-softmax)
// DYN: the CUDA back end needs static head and value dims: declare them (d = 128) or pass --set d=128
// BQ: block-q must be 16, 32, 64 or 128 on CUDA, got 48

// ProjectToNVVM.cpp: Performer's random features. copy_matrix converts w [32, 64] f32 into its
// padded bf16 tile (64 threads, 32 elements each). project_tile: each warp's 16 rows of x as A
// fragments (4 channel steps), their squared norms (a quad reduction: xor shuffles 1, 2), then
// a loop over the 16-feature blocks: x w^T on tensor cores (2 column tiles x 4 channel steps),
// the map per element (here exp(x.w - |x|^2 / 2)), stored as bf16 pairs.
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

// CHECK-LABEL: gpu.func @project
// CHECK-COUNT-32: arith.truncf %{{.*}} : f32 to bf16
// CHECK-NOT: memref.load %arg0
// CHECK: gpu.barrier
// CHECK-COUNT-4: nvgpu.ldmatrix %{{.*}} {numTiles = 4 : i32, transpose = false} : memref<32x72xbf16
// CHECK: gpu.shuffle  xor %{{.*}}, %c1_i32, %c32_i32 : f32
// CHECK: gpu.shuffle  xor %{{.*}}, %c2_i32, %c32_i32 : f32
// CHECK: scf.for %{{.*}} = %c0 to %c32 step %c16 {
// CHECK-COUNT-8: nvvm.mma.sync
// CHECK-NOT: nvvm.mma.sync
// CHECK: llvm.inline_asm asm_dialect = att "ex2.approx.ftz.f32 $0, $1;"
// CHECK: vector.store %{{.*}} : memref<32x40xbf16, #gpu.address_space<workgroup>>, vector<2xbf16>
// CHECK: gpu.return
!raw = memref<32x72xbf16, #gpu.address_space<workgroup>>
!wt = memref<32x72xbf16, #gpu.address_space<workgroup>>
!ft = memref<32x40xbf16, #gpu.address_space<workgroup>>
gpu.module @m {
  gpu.func @project(%w: memref<32x64xf32>) kernel
      attributes {known_block_size = array<i32: 64, 1, 1>} {
    %x = attn_gpu.alloc_shared {offset = 0 : i64} : !raw
    %wt = attn_gpu.alloc_shared {offset = 4608 : i64} : !wt
    %ft = attn_gpu.alloc_shared {offset = 9216 : i64} : !ft
    attn_gpu.copy_matrix %w -> %wt : memref<32x64xf32> -> !wt
    gpu.barrier
    attn_gpu.project_tile %x, %wt -> %ft : !raw, !wt -> !ft {
    ^bb0(%xw: f32, %xx: f32):
      %half = arith.constant 0.5 : f32
      %n = arith.mulf %xx, %half : f32
      %d = arith.subf %xw, %n : f32
      %e = math.exp %d : f32
      attn_gpu.yield %e : f32
    }
    gpu.return
  }
}

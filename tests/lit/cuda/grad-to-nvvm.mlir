// GradToNVVM.cpp: the backward's dQ by atomics. share_tile rounds each thread's accumulator
// pairs into the padded shared tile (8 pairs per thread for a 64 x 32 tile over 4 warps);
// atomic_add_product splits dS^T K (32 x 128 here: 2 x 4 pieces of 16 x 32) over the warps,
// each piece 4 k steps of one ldmatrix.trans of A and two of B, 4 mma.sync per step, then
// 16 f32 atomic adds guarded by the query range; with a swizzled B its rows are addressed
// through the swizzle (a flat view, one index); load_tile reads the f32 rows back (0 past
// q_len, the row index clamped).
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

!dt = memref<64x40xbf16, #gpu.address_space<workgroup>>
!kt = memref<64x136xbf16, #gpu.address_space<workgroup>>
!ks = memref<64x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>

// CHECK-LABEL: gpu.func @product
// CHECK-COUNT-16: memref.load %arg0
// CHECK-COUNT-8: vector.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}] : memref<64x40xbf16, #gpu.address_space<workgroup>>, vector<2xbf16>
// CHECK-NOT: vector.store
// CHECK: scf.for %[[P:.*]] = %{{.*}} to %c8 step %c4
// CHECK: nvgpu.ldmatrix %{{.*}} {numTiles = 4 : i32, transpose = true} : memref<64x40xbf16, #gpu.address_space<workgroup>>
// CHECK: nvgpu.ldmatrix %{{.*}} {numTiles = 4 : i32, transpose = true} : memref<64x136xbf16, #gpu.address_space<workgroup>>
// CHECK-COUNT-2: nvvm.mma.sync
// CHECK: nvgpu.ldmatrix %{{.*}} {numTiles = 4 : i32, transpose = true} : memref<64x136xbf16, #gpu.address_space<workgroup>>
// CHECK-COUNT-14: nvvm.mma.sync
// CHECK-NOT: nvvm.mma.sync
// CHECK: scf.if
// CHECK-COUNT-8: memref.atomic_rmw addf %{{.*}}, %arg3[%arg4, %arg5, %{{.*}}, %{{.*}}] : (f32, memref<?x?x?x?xf32>) -> f32
// CHECK: scf.if
// CHECK-COUNT-8: memref.atomic_rmw addf
// CHECK-NOT: memref.atomic_rmw
// CHECK: gpu.return
gpu.module @m {
  gpu.func @product(%src: memref<?x?x?x?xf32>, %d: !dt, %k: !kt,
                    %dq: memref<?x?x?x?xf32>, %b: index, %h: index, %i0: index, %n: index) kernel
      attributes {known_block_size = array<i32: 128, 1, 1>} {
    %ds = attn_gpu.load_tile %src[%b, %h, %i0] below %n : memref<?x?x?x?xf32> -> tensor<64x32xf32, #attn_gpu.frag<acc>>
    attn_gpu.share_tile %ds -> %d : tensor<64x32xf32, #attn_gpu.frag<acc>> -> !dt
    gpu.barrier
    attn_gpu.atomic_add_product %d, %k -> %dq[%b, %h, %i0] below %n : !dt, !kt -> memref<?x?x?x?xf32>
    gpu.return
  }
}

// CHECK-LABEL: gpu.func @swizzled
// CHECK: scf.for
// CHECK: nvgpu.ldmatrix %{{.*}}[%{{.*}}, %{{.*}}] {numTiles = 4 : i32, transpose = true} : memref<64x40xbf16, #gpu.address_space<workgroup>>
// CHECK: arith.xori
// CHECK: nvgpu.ldmatrix %{{.*}}[%{{.*}}] {numTiles = 4 : i32, transpose = true} : memref<8192xbf16, #gpu.address_space<workgroup>>
// CHECK: gpu.return
gpu.module @s {
  gpu.func @swizzled(%d: !dt, %dq: memref<?x?x?x?xf32>, %b: index, %h: index,
                     %i0: index, %n: index) kernel
      attributes {known_block_size = array<i32: 128, 1, 1>} {
    %k = attn_gpu.alloc_shared {offset = 0 : i64} : !ks
    attn_gpu.atomic_add_product %d, %k -> %dq[%b, %h, %i0] below %n : !dt, !ks -> memref<?x?x?x?xf32>
    gpu.return
  }
}

// CHECK-LABEL: gpu.func @load
// CHECK-COUNT-32: memref.load %arg0[%arg1, %arg2, %{{.*}}, %{{.*}}] : memref<?x?x?x?xf32>
// CHECK-NOT: memref.load
// CHECK: arith.select
// CHECK: gpu.return
gpu.module @l {
  gpu.func @load(%acc: memref<?x?x?x?xf32>, %b: index, %h: index, %i0: index, %n: index,
                 %out: memref<?x?x?x64xbf16>) kernel
      attributes {known_block_size = array<i32: 128, 1, 1>} {
    %t = attn_gpu.load_tile %acc[%b, %h, %i0] below %n : memref<?x?x?x?xf32> -> tensor<64x64xf32, #attn_gpu.frag<acc>>
    attn_gpu.store_tile %t -> %out[%b, %h, %i0] below %n : tensor<64x64xf32, #attn_gpu.frag<acc>> -> memref<?x?x?x64xbf16>
    gpu.return
  }
}

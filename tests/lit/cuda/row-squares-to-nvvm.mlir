// attn_gpu.row_squares: the row norms dot(q, q) / dot(k, k) of a shared tile. Each row's
// 16-byte chunks go to a group of lanes (d 64: 8 chunks, 8 lanes, 16 rows per pass of 128
// threads); a lane squares its 8 elements in f32, xor shuffles sum the group (4, 2, 1), the
// group's first lane stores. A swizzled tile (wgmma's) is read through the swizzle's flat
// view; d 96 (12 chunks) takes 16 lanes, the last 4 contributing 0.
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

!padded = memref<64x72xbf16, #gpu.address_space<workgroup>>
!swizzled = memref<64x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
!wide = memref<32x104xbf16, #gpu.address_space<workgroup>>
!norms = memref<64xf32, #gpu.address_space<workgroup>>
!norms32 = memref<32xf32, #gpu.address_space<workgroup>>

// CHECK-LABEL: gpu.func @padded
// CHECK: arith.remui %thread_id_x, %c8 : index
// CHECK: vector.load %{{.*}}[%{{.*}}, %{{.*}}] : memref<64x72xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// CHECK: arith.extf %{{.*}} : vector<8xbf16> to vector<8xf32>
// CHECK-COUNT-8: arith.mulf
// CHECK: gpu.shuffle  xor %{{.*}}, %c4_i32
// CHECK: gpu.shuffle  xor %{{.*}}, %c2_i32
// CHECK: gpu.shuffle  xor %{{.*}}, %c1_i32
// CHECK: scf.if
// CHECK: memref.store %{{.*}}, %arg1[%{{.*}}] : memref<64xf32, #gpu.address_space<workgroup>>
// Four passes of 16 rows.
// CHECK-COUNT-3: memref.store %{{.*}}, %arg1
// CHECK-NOT: memref.store
// CHECK: gpu.return

// CHECK-LABEL: gpu.func @swizzled
// CHECK: arith.remui %thread_id_x, %c16 : index
// CHECK: arith.xori
// CHECK: vector.load %{{.*}}[%{{.*}}] : memref<8192xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// CHECK: gpu.shuffle  xor %{{.*}}, %c8_i32
// CHECK: gpu.return

// CHECK-LABEL: gpu.func @partial_group
// CHECK: arith.remui %thread_id_x, %c16 : index
// CHECK: arith.cmpi ult, %{{.*}}, %c12 : index
// CHECK: arith.select
// CHECK: gpu.shuffle  xor %{{.*}}, %c8_i32
// CHECK: gpu.return
gpu.module @m {
  gpu.func @padded(%t: !padded, %n: !norms) kernel
      attributes {known_block_size = array<i32: 128, 1, 1>} {
    attn_gpu.row_squares %t -> %n : !padded -> !norms
    gpu.return
  }
  gpu.func @swizzled(%n: !norms) kernel
      attributes {known_block_size = array<i32: 128, 1, 1>} {
    %t = attn_gpu.alloc_shared {offset = 0 : i64} : !swizzled
    attn_gpu.row_squares %t -> %n : !swizzled -> !norms
    gpu.return
  }
  gpu.func @partial_group(%t: !wide, %n: !norms32) kernel
      attributes {known_block_size = array<i32: 128, 1, 1>} {
    attn_gpu.row_squares %t -> %n : !wide -> !norms32
    gpu.return
  }
}

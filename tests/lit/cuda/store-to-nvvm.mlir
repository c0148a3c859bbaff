// StoreToNVVM.cpp: each thread writes its rows (g, g + 8 of its warp) when their query is below
// q_len: 16 x 16 acc -> 4 elements per row at columns 2c, 2c + 1 (+ 8), rounded to bf16; with a
// split index, f32 into the partial buffer; a row value (lse) by lane c = 0 of each quad.
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

#acc = #attn_gpu.frag<acc>
#rows = #attn_gpu.frag<rows>
!o = memref<?x?x?x16xbf16, strided<[?, ?, ?, 1], offset: ?>>

// CHECK-LABEL: gpu.func @stores
// CHECK: scf.if %{{.*}} -> (f32, f32, f32, f32, f32, f32, f32, f32)
// CHECK: scf.if
// CHECK-COUNT-4: arith.truncf %{{.*}} : f32 to bf16
// CHECK: scf.if
// CHECK-COUNT-4: memref.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<?x?x?x16xbf16
// CHECK: memref.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<?x?x?x?x?xf32>
// CHECK: arith.cmpi eq, %{{.*}}, %c0
// CHECK: memref.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] : memref<?x?x?xf32>
gpu.module @m {
  gpu.func @stores(%scale: memref<?xf32>, %out: !o, %part: memref<?x?x?x?x?xf32>, %lse: memref<?x?x?xf32>,
                   %b: index, %h: index, %i0: index, %n: index, %split: index) kernel
      attributes {known_block_size = array<i32: 32, 1, 1>} {
    %one = arith.constant dense<1.0> : tensor<16x16xf32, #acc>
    // Scores read from a param, so nothing folds away.
    %x = attn_gpu.score %one[%b, %h, %i0, %i0] below %n, %n {fill = 0.0 : f32} : tensor<16x16xf32, #acc> -> tensor<16x16xf32, #acc> score {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index, %dot: f32):
      %c = memref.load %scale[%hh] : memref<?xf32>
      attn_gpu.yield %c : f32
    }
    %r = attn_gpu.row_reduce <sum> %x : tensor<16x16xf32, #acc> -> tensor<16xf32, #rows>
    attn_gpu.store_tile %x -> %out[%b, %h, %i0] below %n : tensor<16x16xf32, #acc> -> !o
    attn_gpu.store_tile %x -> %part[%b, %h, %i0] split %split below %n : tensor<16x16xf32, #acc> -> memref<?x?x?x?x?xf32>
    attn_gpu.store_rows %r -> %lse[%b, %h, %i0] below %n : tensor<16xf32, #rows> -> memref<?x?x?xf32>
    gpu.return
  }
}

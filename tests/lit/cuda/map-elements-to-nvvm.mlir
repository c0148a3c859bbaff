// ScoreToNVVM.cpp's map_elements: the region inlined once per accumulator element of the thread
// (16 x 16: 8), at its row's query and head and its column. With pack = 4 (GQA-packed rows), row
// p = i0 + r is query p / 4 of head h + p % 4, the query clamped below q_len.
// With `and %y` (several scores' rows mixed) the region takes the same element of each operand.
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

#acc = #attn_gpu.frag<acc>

// CHECK-LABEL: gpu.func @packed_map
// The row of the thread's first element (warp * 16 + lane / 4), packed: head h + p % 4,
// query min(p / 4, q_len - 1).
// CHECK: %[[P:.*]] = arith.addi %arg4, %{{.*}} : index
// CHECK: %[[R:.*]] = arith.remui %[[P]], %c4
// CHECK: %[[H:.*]] = arith.addi %arg3, %[[R]]
// CHECK: %[[Q:.*]] = arith.divui %[[P]], %c4
// CHECK: %[[QC:.*]] = arith.minui %[[Q]], %{{.*}}
// CHECK: memref.load %arg0[%arg2, %[[H]], %[[QC]], %{{.*}}]
// CHECK-COUNT-7: memref.load %arg0
// CHECK-NOT: memref.load %arg0
// CHECK: gpu.return
gpu.module @m {
  gpu.func @packed_map(%g: memref<?x?x?x16xf32>, %out: memref<?x?x?x16xf32>, %b: index,
                       %h: index, %i0: index, %n: index) kernel
      attributes {known_block_size = array<i32: 32, 1, 1>} {
    %c0 = arith.constant 0 : index
    %one = arith.constant dense<1.0> : tensor<16x16xf32, #acc>
    %y = attn_gpu.map_elements %one[%b, %h, %i0, %c0] below %n {pack = 4 : i64}
        : tensor<16x16xf32, #acc> -> tensor<16x16xf32, #acc> {
    ^bb0(%bb: index, %hh: index, %i: index, %e: index, %x: f32):
      %gate = memref.load %g[%bb, %hh, %i, %e] : memref<?x?x?x16xf32>
      %r = arith.mulf %x, %gate : f32
      attn_gpu.yield %r : f32
    }
    attn_gpu.store_tile %y -> %out[%b, %h, %i0] below %n {pack = 4 : i64}
        : tensor<16x16xf32, #acc> -> memref<?x?x?x16xf32>
    gpu.return
  }

  // CHECK-LABEL: gpu.func @mix_two
  // Each element: x - w y, x and y the operands' elements at the same position (8 each).
  // CHECK-COUNT-8: arith.subf %cst{{.*}}, %{{.*}} : f32
  // CHECK-NOT: arith.subf
  // CHECK: gpu.return
  gpu.func @mix_two(%g: memref<?x?x?x16xf32>, %out: memref<?x?x?x16xf32>, %b: index, %h: index, %i0: index, %n: index) kernel
      attributes {known_block_size = array<i32: 32, 1, 1>} {
    %c0 = arith.constant 0 : index
    %x = arith.constant dense<1.0> : tensor<16x16xf32, #acc>
    %y = arith.constant dense<3.0> : tensor<16x16xf32, #acc>
    %m = attn_gpu.map_elements %x and %y[%b, %h, %i0, %c0] below %n
        : tensor<16x16xf32, #acc> and tensor<16x16xf32, #acc> -> tensor<16x16xf32, #acc> {
    ^bb0(%bb: index, %hh: index, %i: index, %e: index, %x1: f32, %y1: f32):
      %w = memref.load %g[%bb, %hh, %i, %e] : memref<?x?x?x16xf32>
      %t = arith.mulf %y1, %w : f32
      %r = arith.subf %x1, %t : f32
      attn_gpu.yield %r : f32
    }
    attn_gpu.store_tile %m -> %out[%b, %h, %i0] below %n
        : tensor<16x16xf32, #acc> -> memref<?x?x?x16xf32>
    gpu.return
  }
}

// RUN: attnc-opt %s --split-input-file --attn-online-softmax | FileCheck %s

// The two key loops of a softmax query tile become one: the scores are computed once and
// tile_online_update rescales l and the accumulator as the running max grows.
// CHECK-LABEL: func.func @fuse
// CHECK-SAME: (%[[Q:.*]]: memref<?x?x?x64xf32>, %[[O:.*]]: memref<?x?x?x64xf32>, %[[LSE:.*]]: memref<?x?x?xf32>, %[[X:.*]]: index, %[[N:.*]]: index)
// CHECK: attn.tile_fill %[[M:.*]], 0xFF800000
// CHECK: scf.for %[[J:.*]] = %{{.*}} to %[[N]] step %{{.*}} {
// CHECK-NEXT: attn.tile_scores %[[Q]], %[[Q]][%[[X]], %[[X]], %[[X]], %[[X]], %[[J]]] -> %[[S:.*]] {fill
// CHECK: attn.tile_online_update %[[S]], %[[M]], %[[L:.*]], %[[ACC:.*]] :
// CHECK-NEXT: attn.tile_matmul_acc %[[S]], %[[Q]][%[[X]], %[[X]], %[[J]]] -> %[[ACC]]
// CHECK-NEXT: }
// CHECK-NOT: scf.for
// CHECK-NOT: attn.tile_row_max
// CHECK-NOT: attn.tile_exp_sum
// CHECK: attn.tile_store %[[ACC]], %[[L]], %[[M]] -> %[[O]]
func.func @fuse(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>,
                %x: index, %n: index) {
  %c0 = arith.constant 0 : index
  %c16 = arith.constant 16 : index
  %s = memref.alloca() : memref<32x16xf32>
  %acc = memref.alloca() : memref<32x64xf32>
  %m = memref.alloca() : memref<32xf32>
  %l = memref.alloca() : memref<32xf32>
  attn.tile_fill %acc, 0.0 : memref<32x64xf32>
  attn.tile_fill %m, 0xFF800000 : memref<32xf32>
  attn.tile_fill %l, 0.0 : memref<32xf32>
  scf.for %j = %c0 to %n step %c16 {
    attn.tile_scores %q, %q[%x, %x, %x, %x, %j] -> %s {fill = 0xFF800000 : f32}
        : memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<32x16xf32>
      score {
      ^bb0(%b: index, %h: index, %i: index, %jj: index, %dot: f32):
        attn.yield %dot : f32
      }
    attn.tile_row_max %s -> %m : memref<32x16xf32> -> memref<32xf32>
  }
  scf.for %j = %c0 to %n step %c16 {
    attn.tile_scores %q, %q[%x, %x, %x, %x, %j] -> %s {fill = 0xFF800000 : f32}
        : memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<32x16xf32>
      score {
      ^bb0(%b: index, %h: index, %i: index, %jj: index, %dot: f32):
        attn.yield %dot : f32
      }
    attn.tile_exp_sum %s, %m -> %l : memref<32x16xf32>, memref<32xf32> -> memref<32xf32>
    attn.tile_matmul_acc %s, %q[%x, %x, %j] -> %acc : memref<32x16xf32>, memref<?x?x?x64xf32> -> memref<32x64xf32>
  }
  attn.tile_store %acc, %l, %m -> %o[%x, %x, %x], %lse {norm = #attn.norm<softmax>}
      : memref<32x64xf32>, memref<32xf32>, memref<32xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
  return
}

// -----

// The max loop visits other key tiles than the accumulation loop: fusing would be wrong.
// CHECK-LABEL: func.func @different_bounds
// CHECK: attn.tile_row_max
// CHECK: attn.tile_exp_sum
// CHECK-NOT: attn.tile_online_update
func.func @different_bounds(%q: memref<?x?x?x64xf32>, %x: index, %n: index, %n2: index) {
  %c0 = arith.constant 0 : index
  %c16 = arith.constant 16 : index
  %s = memref.alloca() : memref<32x16xf32>
  %acc = memref.alloca() : memref<32x64xf32>
  %m = memref.alloca() : memref<32xf32>
  %l = memref.alloca() : memref<32xf32>
  scf.for %j = %c0 to %n step %c16 {
    attn.tile_row_max %s -> %m : memref<32x16xf32> -> memref<32xf32>
  }
  scf.for %j = %c0 to %n2 step %c16 {
    attn.tile_exp_sum %s, %m -> %l : memref<32x16xf32>, memref<32xf32> -> memref<32xf32>
    attn.tile_matmul_acc %s, %q[%x, %x, %j] -> %acc : memref<32x16xf32>, memref<?x?x?x64xf32> -> memref<32x64xf32>
  }
  return
}

// -----

// The max loop does more than reduce into m (it also writes the accumulator): it must stay.
// CHECK-LABEL: func.func @max_loop_has_other_work
// CHECK: attn.tile_row_max
// CHECK: attn.tile_exp_sum
// CHECK-NOT: attn.tile_online_update
func.func @max_loop_has_other_work(%q: memref<?x?x?x64xf32>, %x: index, %n: index) {
  %c0 = arith.constant 0 : index
  %c16 = arith.constant 16 : index
  %s = memref.alloca() : memref<32x16xf32>
  %acc = memref.alloca() : memref<32x64xf32>
  %m = memref.alloca() : memref<32xf32>
  %l = memref.alloca() : memref<32xf32>
  scf.for %j = %c0 to %n step %c16 {
    attn.tile_row_max %s -> %m : memref<32x16xf32> -> memref<32xf32>
    attn.tile_fill %acc, 0.0 : memref<32x64xf32>
  }
  scf.for %j = %c0 to %n step %c16 {
    attn.tile_exp_sum %s, %m -> %l : memref<32x16xf32>, memref<32xf32> -> memref<32xf32>
    attn.tile_matmul_acc %s, %q[%x, %x, %j] -> %acc : memref<32x16xf32>, memref<?x?x?x64xf32> -> memref<32x64xf32>
  }
  return
}


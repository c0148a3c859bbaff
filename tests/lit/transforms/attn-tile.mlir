// RUN: attnc-opt %s --split-input-file --attn-tile="block-q=32 block-k=16" | FileCheck %s
// RUN: not attnc-opt %s --split-input-file --attn-tile="block-q=0" 2>&1 | FileCheck %s --check-prefix=BAD

// BAD: attn-tile: block-q and block-k must be in [1, 1024], got 0 and 32

// Softmax: two exact passes over the key tiles (row max, then exp/sum/accumulate).
// CHECK-LABEL: func.func @causal_gqa
// CHECK-SAME: (%[[Q:.*]]: memref<?x?x?x64xf32>, %[[K:.*]]: memref<?x?x?x64xf32>, %[[V:.*]]: memref<?x?x?x32xf32>, %[[O:.*]]: memref<?x?x?x32xf32>, %[[LSE:.*]]: memref<?x?x?xf32>)
// CHECK-DAG: %[[S:.*]] = memref.alloca() : memref<32x16xf32>
// CHECK-DAG: %[[ACC:.*]] = memref.alloca() : memref<32x32xf32>
// CHECK-DAG: %[[M:.*]] = memref.alloca() : memref<32xf32>
// CHECK-DAG: %[[L:.*]] = memref.alloca() : memref<32xf32>
// CHECK-DAG: %[[G:.*]] = arith.constant 4 : index
// CHECK: scf.for %[[B:.*]] = {{.*}} {
// CHECK: scf.for %[[H:.*]] = {{.*}} {
// CHECK: scf.for %[[I0:.*]] = %{{.*}} to %{{.*}} step %[[C32:.*]] {
// CHECK: %[[HK:.*]] = arith.divui %[[H]], %[[G]] : index
// CHECK: attn.tile_fill %[[ACC]], 0.000000e+00
// CHECK: attn.tile_fill %[[M]], 0xFF800000
// CHECK: attn.tile_fill %[[L]], 0.000000e+00
// CHECK: scf.for %[[J0:.*]] = %{{.*}} to %[[KVLEN:.*]] step %[[C16:.*]] {
// CHECK: attn.tile_scores %[[Q]], %[[K]][%[[B]], %[[H]], %[[HK]], %[[I0]], %[[J0]]] -> %[[S]] {fill = 0xFF800000 : f32}
// CHECK: } mask {
// CHECK: attn.tile_row_max %[[S]] -> %[[M]]
// CHECK-NEXT: }
// CHECK: scf.for %[[J1:.*]] = %{{.*}} to %[[KVLEN]] step %[[C16]] {
// CHECK: attn.tile_scores %[[Q]], %[[K]][%[[B]], %[[H]], %[[HK]], %[[I0]], %[[J1]]] -> %[[S]]
// CHECK: attn.tile_exp_sum %[[S]], %[[M]] -> %[[L]]
// CHECK-NEXT: attn.tile_matmul_acc %[[S]], %[[V]][%[[B]], %[[HK]], %[[J1]]] -> %[[ACC]]
// CHECK-NEXT: }
// CHECK: attn.tile_store %[[ACC]], %[[L]], %[[M]] -> %[[O]][%[[B]], %[[H]], %[[I0]]], %[[LSE]] {norm = #attn.norm<softmax>}
// CHECK-NOT: attn.attention
func.func @causal_gqa(%q: memref<?x?x?x64xf32>, %k: memref<?x?x?x64xf32>, %v: memref<?x?x?x32xf32>,
                      %o: memref<?x?x?x32xf32>, %lse: memref<?x?x?xf32>) {
  attn.attention %q, %k, %v -> %o, %lse {group = 4 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x32xf32> -> memref<?x?x?x32xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c = arith.cmpi ule, %j, %i : index
      attn.yield %c : i1
    }
  return
}

// -----

// Sigmoid is elementwise: folded into the score region, masked entries filled with 0, one pass,
// no row statistics. A dynamic value dim gives a dynamic accumulator.
// CHECK-LABEL: func.func @sigmoid_dynamic_dv
// CHECK: %[[DV:.*]] = memref.dim %{{.*}}, %{{.*}} : memref<?x?x?x?xbf16>
// CHECK: %[[ACC:.*]] = memref.alloca(%[[DV]]) : memref<32x?xf32>
// CHECK-NOT: attn.tile_fill %{{.*}}, 0xFF800000
// CHECK: scf.for
// CHECK: attn.tile_scores {{.*}} {fill = 0.000000e+00 : f32}
// CHECK: ^bb0({{.*}}, %[[DOT:.*]]: f32):
// CHECK: %[[NEG:.*]] = arith.negf %[[DOT]] : f32
// CHECK: %[[E:.*]] = math.exp %[[NEG]] : f32
// CHECK: %[[DEN:.*]] = arith.addf %{{.*}}, %[[E]] : f32
// CHECK: %[[SIG:.*]] = arith.divf %{{.*}}, %[[DEN]] : f32
// CHECK: attn.yield %[[SIG]] : f32
// CHECK-NOT: attn.tile_row_max
// CHECK-NOT: attn.tile_exp_sum
// CHECK: attn.tile_matmul_acc
// CHECK: attn.tile_store %[[ACC]] -> {{.*}} {norm = #attn.norm<sigmoid>}
func.func @sigmoid_dynamic_dv(%q: memref<?x?x?x?xbf16>, %o: memref<?x?x?x?xbf16>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<sigmoid>}
      : memref<?x?x?x?xbf16>, memref<?x?x?x?xbf16>, memref<?x?x?x?xbf16> -> memref<?x?x?x?xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

// ReLU² folds max(s, 0)^2 into the score.
// CHECK-LABEL: func.func @relu2
// CHECK: %[[R:.*]] = arith.maximumf %{{.*}}, %{{.*}} : f32
// CHECK: %[[SQ:.*]] = arith.mulf %[[R]], %[[R]] : f32
// CHECK: attn.yield %[[SQ]] : f32
func.func @relu2(%q: memref<?x?x?x?xf32>, %o: memref<?x?x?x?xf32>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<relu2>}
      : memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32> -> memref<?x?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// RUN: attnc-opt %s --attn-tile="block-q=32 block-k=16" | FileCheck %s
// RUN: attnc-opt %s --attn-tile="block-q=32 block-k=16" --attn-online-softmax | FileCheck %s --check-prefix=ONLINE

// Several scores (differential attention): each score gets its own scores tile, row statistics
// and accumulator, and is visited in the same key loops over the shared v; the store mixes the
// normalised rows and writes each score's lse.
// CHECK-LABEL: func.func @two_scores
// CHECK-SAME: (%[[Q:[^:]*]]: {{.*}}, %[[K:[^:]*]]: {{.*}}, %[[V:[^:]*]]: {{.*}}, %[[Q2:[^:]*]]: {{.*}}, %[[K2:[^:]*]]: {{.*}}, %[[O:[^:]*]]: {{.*}}, %[[LSE:[^:]*]]: {{.*}}, %[[LSE2:[^:]*]]: {{.*}}, %[[LAMBDA:[^:]*]]: memref<?xf32>)
// CHECK: scf.for %[[J:.*]] = %{{.*}} step %c16 {
// CHECK: attn.tile_scores %[[Q]], %[[K]][{{.*}}, %[[J]]] -> %[[S1:[^ ]*]]
// CHECK: attn.tile_row_max %[[S1]] -> %[[M1:[^ ]*]]
// CHECK: attn.tile_scores %[[Q2]], %[[K2]][{{.*}}, %[[J]]] -> %[[S2:[^ ]*]]
// CHECK: arith.mulf %{{.*}}, %{{.*}} : f32
// CHECK: attn.tile_row_max %[[S2]] -> %[[M2:[^ ]*]]
// CHECK: scf.for %[[J2:.*]] = %{{.*}} step %c16 {
// CHECK: attn.tile_scores %[[Q]], %[[K]]
// CHECK: attn.tile_exp_sum %[[S1]], %[[M1]] -> %[[L1:[^ ]*]]
// CHECK-NEXT: attn.tile_matmul_acc %[[S1]], %[[V]][{{.*}}] -> %[[ACC1:[^ ]*]]
// CHECK: attn.tile_scores %[[Q2]], %[[K2]]
// CHECK: attn.tile_exp_sum %[[S2]], %[[M2]] -> %[[L2:[^ ]*]]
// CHECK-NEXT: attn.tile_matmul_acc %[[S2]], %[[V]][{{.*}}] -> %[[ACC2:[^ ]*]]
// CHECK: attn.tile_store %[[ACC1]], %[[L1]], %[[M1]] scores(%[[ACC2]]) (%[[L2]]) (%[[M2]]) -> %[[O]][{{.*}}], %[[LSE]] lses %[[LSE2]] {norm = #attn.norm<softmax>, rms_eps = {{.*}}}
// CHECK: mix {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %[[H:.*]]: index, %{{.*}}: index, %{{.*}}: index, %[[Y1:.*]]: f32, %[[Y2:.*]]: f32):
// CHECK-NEXT: %[[L:.*]] = memref.load %[[LAMBDA]][%[[H]]]
// CHECK-NEXT: %[[T:.*]] = arith.mulf %[[L]], %[[Y2]]
// CHECK-NEXT: arith.subf %[[Y1]], %[[T]]

// The online softmax fuses both: one key loop, one update per score, each rescaling its own
// accumulator.
// ONLINE-LABEL: func.func @two_scores
// ONLINE: scf.for
// ONLINE: attn.tile_scores %arg0, %arg1{{.*}} -> %[[S1:[^ ]*]]
// ONLINE: attn.tile_online_update %[[S1]], %[[M1:[^,]*]], %[[L1:[^,]*]], %[[ACC1:[^ ]*]] :
// ONLINE-NEXT: attn.tile_matmul_acc %[[S1]], %arg2{{.*}} -> %[[ACC1]]
// ONLINE: attn.tile_scores %arg3, %arg4{{.*}} -> %[[S2:[^ ]*]]
// ONLINE: attn.tile_online_update %[[S2]], %[[M2:[^,]*]], %[[L2:[^,]*]], %[[ACC2:[^ ]*]] :
// ONLINE-NEXT: attn.tile_matmul_acc %[[S2]], %arg2{{.*}} -> %[[ACC2]]
// ONLINE-NEXT: }
// ONLINE-NOT: attn.tile_row_max
// ONLINE-NOT: attn.tile_exp_sum
// ONLINE: attn.tile_store %[[ACC1]], %[[L1]], %[[M1]] scores(%[[ACC2]]) (%[[L2]]) (%[[M2]])
func.func @two_scores(%q: memref<?x?x?x16xf32>, %k: memref<?x?x?x16xf32>, %v: memref<?x?x?x16xf32>,
                      %q2: memref<?x?x?x16xf32>, %k2: memref<?x?x?x16xf32>,
                      %o: memref<?x?x?x16xf32>, %lse: memref<?x?x?xf32>, %lse2: memref<?x?x?xf32>,
                      %lambda: memref<?xf32>) {
  attn.attention %q, %k, %v scores %q2 by %k2 -> %o, %lse lses %lse2 {group = 1 : i64, norm = #attn.norm<softmax>, rms_eps = 1.0e-05 : f32}
      : memref<?x?x?x16xf32>, memref<?x?x?x16xf32>, memref<?x?x?x16xf32> scores memref<?x?x?x16xf32> by memref<?x?x?x16xf32>
     -> memref<?x?x?x16xf32>, memref<?x?x?xf32> lses memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c = arith.cmpi ule, %j, %i : index
      attn.yield %c : i1
    } mix {
    ^bb0(%b: index, %h: index, %i: index, %e: index, %y1: f32, %y2: f32):
      %l = memref.load %lambda[%h] : memref<?xf32>
      %t = arith.mulf %l, %y2 : f32
      %r = arith.subf %y1, %t : f32
      attn.yield %r : f32
    } more_scores {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      %c = arith.constant 0.5 : f32
      %s = arith.mulf %dot, %c : f32
      attn.yield %s : f32
    }
  return
}

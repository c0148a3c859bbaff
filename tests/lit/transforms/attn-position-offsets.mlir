// RUN: attnc-opt %s --attn-position-offsets | FileCheck %s
// RUN: attnc-opt %s --attn-position-offsets --attn-tile="block-q=32 block-k=16" --attn-online-softmax --attn-mask-bounds | FileCheck %s --check-prefix=BOUNDS

// Causal with a document param: the comparison reads global positions, the param its own rows.
// CHECK-LABEL: func.func @ring_block
// CHECK-SAME: %[[QO:[a-z0-9]+]]: memref<i32>, %[[KO:[a-z0-9]+]]: memref<i32>,
// CHECK-NOT: attn.position_offset
// CHECK: score {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %{{.*}}: index, %[[SI:.*]]: index, %[[SJ:.*]]: index, %[[DOT:.*]]: f32):
// CHECK-NEXT: %[[LQ:.*]] = memref.load %[[QO]][] : memref<i32>
// CHECK-NEXT: %[[CQ:.*]] = arith.index_cast %[[LQ]] : i32 to index
// CHECK-NEXT: %[[GI:.*]] = arith.addi %[[SI]], %[[CQ]] : index
// CHECK-NEXT: %[[LK:.*]] = memref.load %[[KO]][] : memref<i32>
// CHECK-NEXT: %[[CK:.*]] = arith.index_cast %[[LK]] : i32 to index
// CHECK-NEXT: %[[GJ:.*]] = arith.addi %[[SJ]], %[[CK]] : index
// CHECK-NEXT: %[[REL:.*]] = arith.subi %[[GI]], %[[GJ]] : index
// CHECK: mask {
// CHECK-NEXT: ^bb0(%[[B:.*]]: index, %{{.*}}: index, %[[MI:.*]]: index, %[[MJ:.*]]: index):
// CHECK: %[[MGI:.*]] = arith.addi %[[MI]], %{{.*}} : index
// CHECK: %[[MGJ:.*]] = arith.addi %[[MJ]], %{{.*}} : index
// CHECK: %[[DQ:.*]] = memref.load %{{.*}}[%[[B]], %[[MI]]] : memref<?x?xi32>
// CHECK: %[[DK:.*]] = memref.load %{{.*}}[%[[B]], %[[MJ]]] : memref<?x?xi32>
// CHECK: arith.cmpi sle, %[[MGJ]], %[[MGI]] : index

// The key loop's bound carries both offsets: keys up to i0 + 31 + q_offset - k_offset.
// BOUNDS-LABEL: func.func @ring_block
// BOUNDS: scf.for %[[I0:.*]] = %{{.*}} to %{{.*}} step %c32 {
// BOUNDS: %[[LAST:.*]] = arith.addi %[[I0]], %c31{{.*}} : index
// BOUNDS-DAG: memref.load %arg1[] : memref<i32>
// BOUNDS-DAG: memref.load %arg2[] : memref<i32>
// BOUNDS: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c16
// BOUNDS: } {attn.mask_bounded}
func.func @ring_block(%q: memref<?x?x?x64xf32>, %qo: memref<i32> {attn.position_offset = "q"},
                      %ko: memref<i32> {attn.position_offset = "k"}, %doc_q: memref<?x?xi32>,
                      %doc_k: memref<?x?xi32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>) {
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      %rel = arith.subi %i, %j : index
      %r = arith.index_cast %rel : index to i64
      %f = arith.sitofp %r : i64 to f32
      %s = arith.subf %dot, %f : f32
      attn.yield %s : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %dq = memref.load %doc_q[%b, %i] : memref<?x?xi32>
      %dk = memref.load %doc_k[%b, %j] : memref<?x?xi32>
      %same = arith.cmpi eq, %dq, %dk : i32
      %c = arith.cmpi sle, %j, %i : index
      %both = arith.andi %same, %c : i1
      attn.yield %both : i1
    }
  return
}

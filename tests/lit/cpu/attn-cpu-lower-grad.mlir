// attn-cpu-lower-grad: the backward by recomputation as scalar loops. The param gradient is
// zeroed, dq, dk and dv accumulate in f32 scratch (and a dq row per query), each allowed key's P is
// exp(s - lse) (0 on a row whose lse is -inf), dS = P (dP - D), and score_grad's
// attn.accumulate becomes a load, an add and a store.
// RUN: attnc-opt %s --attn-cpu-lower-grad | FileCheck %s --implicit-check-not=attn.

// CHECK-LABEL: func.func @alibi_grad
// CHECK: scf.for %[[X:.*]] = {{.*}} {
// CHECK: memref.store %{{.*}}, %arg10[%[[X]]] : memref<?xf32>
// CHECK: %[[DQS:.*]] = memref.alloc({{.*}}) : memref<?x?x?x16xf32>
// CHECK: %[[DK:.*]] = memref.alloc({{.*}}) : memref<?x?x?x16xf32>
// CHECK: %[[DV:.*]] = memref.alloc({{.*}}) : memref<?x?x?x16xf32>
// CHECK: %[[DQ:.*]] = memref.alloc(%{{.*}}) : memref<?xf32>
// Per (b, h, i): D = dout . out, the row's lse and whether it is -inf ...
// CHECK: scf.for %[[B:.*]] = {{.*}} {
// CHECK: scf.for %[[H:.*]] = {{.*}} {
// CHECK: scf.for %[[I:.*]] = {{.*}} {
// CHECK: %[[D:.*]] = scf.for {{.*}} iter_args
// CHECK: %[[LSE:.*]] = memref.load %arg4[%[[B]], %[[H]], %[[I]]]
// CHECK: %[[EMPTY:.*]] = arith.cmpf oeq, %[[LSE]], %{{.*}} : f32
// ... then per allowed key: the dot, the score, P, dP and dS ...
// CHECK: scf.for %[[J:.*]] = {{.*}} {
// CHECK: %[[ALLOWED:.*]] = arith.cmpi ule, %[[J]], %[[I]]
// CHECK: scf.if %[[ALLOWED]] {
// CHECK: %[[DOT:.*]] = scf.for {{.*}} iter_args
// CHECK: %[[S:.*]] = arith.addf %[[DOT]], %{{.*}} : f32
// CHECK: %[[DP:.*]] = scf.for {{.*}} iter_args
// CHECK: %[[SL:.*]] = arith.subf %[[S]], %[[LSE]]
// CHECK: %[[E:.*]] = math.exp %[[SL]]
// CHECK: %[[P:.*]] = arith.select %[[EMPTY]], %{{.*}}, %[[E]]
// CHECK: %[[DPD:.*]] = arith.subf %[[DP]], %[[D]]
// CHECK: %[[DS:.*]] = arith.mulf %[[P]], %[[DPD]]
// ... score_grad: dslope[h] += dS, dDot = dS ...
// CHECK: %[[OLD:.*]] = memref.load %arg10[%[[H]]]
// CHECK: %[[NEW:.*]] = arith.addf %[[OLD]], %[[DS]]
// CHECK: memref.store %[[NEW]], %arg10[%[[H]]]
// ... dq row, dk and dv.
// CHECK: arith.mulf %[[DS]], %{{.*}}
// CHECK: memref.store %{{.*}}, %[[DQ]]
// CHECK: memref.store %{{.*}}, %[[DK]]
// CHECK: arith.mulf %[[P]], %{{.*}}
// CHECK: memref.store %{{.*}}, %[[DV]]
// The dq row added into dq's accumulator (several scores may share a query); after the
// loops dq, dk and dv into theirs.
// CHECK: memref.store %{{.*}}, %[[DQS]][%[[B]], %[[H]], %[[I]], %{{.*}}]
// CHECK: memref.store %{{.*}}, %arg6[
// CHECK: memref.store %{{.*}}, %arg7[
// CHECK: memref.store %{{.*}}, %arg8[
// CHECK: memref.dealloc
!t = memref<?x?x?x16xf32>
func.func @alibi_grad(%q: !t, %k: !t, %v: !t, %o: !t, %lse: memref<?x?x?xf32>, %do: !t, %dq: !t, %dk: !t, %dv: !t, %slope: memref<?xf32>, %dslope: memref<?xf32>) {
  attn.attention_grad %q, %k, %v, %o, %do lse %lse -> %dq, %dk, %dv {group = 1 : i64, norm = #attn.norm<softmax>} : !t, !t, !t, !t, !t lse memref<?x?x?xf32> -> !t, !t, !t score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    %m = memref.load %slope[%h] : memref<?xf32>
    %s = arith.addf %dot, %m : f32
    attn.yield %s : f32
  } mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c = arith.cmpi ule, %j, %i : index
    attn.yield %c : i1
  } score_grad {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %g: f32):
    attn.accumulate %g -> %dslope[%h] : memref<?xf32>
    attn.yield %g : f32
  }
  return
}

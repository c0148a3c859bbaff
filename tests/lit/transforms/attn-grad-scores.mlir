// attn-grad of several scores (differential attention): the grad op takes every score's q, k
// and lse, a gradient buffer per distinct tensor (a query two scores read has one: more_dq is
// dq), the forward's mix and its reverse-mode derivative mix_grad ((b, h, i, e, y_0, y_1, g) ->
// g dmix/dy_n, accumulating g dmix/dp into the params the mix reads), and the extra scores'
// regions followed by their score_grads.
// RUN: attnc-opt %s --split-input-file --attn-grad=grad-only | FileCheck %s
// The op prints and parses back:
// RUN: attnc-opt %s --split-input-file --attn-grad=grad-only | attnc-opt --split-input-file | FileCheck %s

!t = memref<?x?x?x16xf32>
!lse = memref<?x?x?xf32>

// y_0 - lambda[h] y_1: dmix/dy_0 = g, dmix/dy_1 = -g lambda, dlambda += -g y_1.
// CHECK-LABEL: func.func @two_scores_grad
// CHECK-SAME: (%[[Q:[^:]*]]: {{.*}}, %[[K:[^:]*]]: {{.*}}, %[[V:[^:]*]]: {{.*}}, %[[Q2:[^:]*]]: {{.*}}, %[[K2:[^:]*]]: {{.*}}, %[[O:[^:]*]]: {{.*}}, %[[L:[^:]*]]: {{.*}}, %[[L2:[^:]*]]: {{.*}}, %[[LAMBDA:[^:]*]]: memref<?xf32>, %[[DO:[^:]*]]: {{.*}}, %[[DQ:[^:]*]]: {{.*}}, %[[DK:[^:]*]]: {{.*}}, %[[DV:[^:]*]]: {{.*}}, %[[DQ2:[^:]*]]: {{.*}}, %[[DK2:[^:]*]]: {{.*}}, %[[DLAMBDA:[^:]*]]: memref<?xf32, strided<[?], offset: ?>>)
// CHECK: attn.attention_grad %[[Q]], %[[K]], %[[V]], %[[O]], %[[DO]] lse %[[L]] scores %[[Q2]] by %[[K2]] lses %[[L2]] -> %[[DQ]], %[[DK]], %[[DV]] more %[[DQ2]] by %[[DK2]]
// CHECK: } mix {
// CHECK: } mix_grad {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %[[H:[^:]*]]: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: f32, %[[Y1:[^:]*]]: f32, %[[G:[^:]*]]: f32):
// CHECK-NEXT: %[[LH:.*]] = memref.load %[[LAMBDA]][%[[H]]]
// CHECK-NEXT: %[[NG:.*]] = arith.negf %[[G]]
// CHECK-NEXT: %[[TOL:.*]] = arith.mulf %[[NG]], %[[Y1]]
// CHECK-NEXT: %[[TOY1:.*]] = arith.mulf %[[NG]], %[[LH]]
// CHECK-NEXT: attn.accumulate %[[TOL]] -> %[[DLAMBDA]][%[[H]]]
// CHECK-NEXT: attn.yield %[[G]], %[[TOY1]] : f32, f32
// The extra score (dot * 0.5), then its score_grad (g * 0.5).
// CHECK: } more_scores {
// CHECK: arith.mulf %{{.*}}, %[[C:.*]] : f32
// CHECK: }, {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: f32, %[[G2:[^:]*]]: f32):
// CHECK: %[[R:.*]] = arith.mulf %[[G2]], %{{.*}} : f32
// CHECK-NEXT: attn.yield %[[R]] : f32
func.func @two_scores(%q: !t, %k: !t, %v: !t, %q2: !t, %k2: !t, %o: !t, %lse: !lse, %lse2: !lse,
                      %lambda: memref<?xf32>) {
  attn.attention %q, %k, %v scores %q2 by %k2 -> %o, %lse lses %lse2 {group = 1 : i64, norm = #attn.norm<softmax>, rms_eps = 1.0e-05 : f32}
      : !t, !t, !t scores !t by !t -> !t, !lse lses !lse
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

// -----

// One query read by both scores: one gradient buffer (more_dq is dq); max routes g to the
// larger row.
// CHECK-LABEL: func.func @shared_q_grad
// CHECK-SAME: (%[[Q:[^:]*]]: {{.*}}, %[[K:[^:]*]]: {{.*}}, %[[V:[^:]*]]: {{.*}}, %[[K2:[^:]*]]: {{.*}}, %[[O:[^:]*]]: {{.*}}, %[[L:[^:]*]]: {{.*}}, %[[L2:[^:]*]]: {{.*}}, %[[DO:[^:]*]]: {{.*}}, %[[DQ:[^:]*]]: {{.*}}, %[[DK:[^:]*]]: {{.*}}, %[[DV:[^:]*]]: {{.*}}, %[[DK2:[^:]*]]: {{.*}})
// CHECK: attn.attention_grad %[[Q]], %[[K]], %[[V]], %[[O]], %[[DO]] lse %[[L]] scores %[[Q]] by %[[K2]] lses %[[L2]] -> %[[DQ]], %[[DK]], %[[DV]] more %[[DQ]] by %[[DK2]]
// CHECK: } mix_grad {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %[[A:[^:]*]]: f32, %[[B:[^:]*]]: f32, %[[G:[^:]*]]: f32):
// CHECK-NEXT: %[[GE:.*]] = arith.cmpf oge, %[[A]], %[[B]]
// CHECK: %[[TOA:.*]] = arith.select %[[GE]], %[[G]], %{{.*}}
// CHECK: %[[TOB:.*]] = arith.select %[[GE]], %{{.*}}, %[[G]]
// CHECK-NEXT: attn.yield %[[TOA]], %[[TOB]] : f32, f32

!t = memref<?x?x?x16xf32>
!lse = memref<?x?x?xf32>
func.func @shared_q(%q: !t, %k: !t, %v: !t, %k2: !t, %o: !t, %lse: !lse, %lse2: !lse) {
  attn.attention %q, %k, %v scores %q by %k2 -> %o, %lse lses %lse2 {group = 1 : i64, norm = #attn.norm<softmax>}
      : !t, !t, !t scores !t by !t -> !t, !lse lses !lse
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mix {
    ^bb0(%b: index, %h: index, %i: index, %e: index, %y1: f32, %y2: f32):
      %r = arith.maximumf %y1, %y2 : f32
      attn.yield %r : f32
    } more_scores {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      %s = math.tanh %dot : f32
      attn.yield %s : f32
    }
  return
}

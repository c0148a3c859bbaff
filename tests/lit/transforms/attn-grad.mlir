// attn-grad: each variant gets <name>_grad with attn.attention_grad, whose score_grad region is
// the score differentiated in reverse mode: g ds/d(dot) is yielded, g ds/dp accumulated into
// the gradient of every float param element the score loads. The mask is not differentiated.
// RUN: attnc-opt %s --split-input-file --attn-grad | FileCheck %s
// grad-only (the JIT's backward compile, beside the forward's): the forwards are erased.
// RUN: attnc-opt %s --split-input-file --attn-grad=grad-only | FileCheck %s --check-prefix=ONLY
// ONLY-NOT: func.func @softcap(
// ONLY: func.func @softcap_grad(
// ONLY-NOT: func.func @softcap(

!t = memref<?x?x?x64xf32>
!lse = memref<?x?x?xf32>

// Soft-capping, s = 30 tanh(dot / 30): ds/d(dot) = 30 (1 - tanh^2) / 30, with 1 - tanh(u)^2
// as sech(u)^2 = 4 e / (1 + e)^2, e = exp(-2 |u|) (no cancellation where tanh saturates).
// CHECK-LABEL: func.func @softcap_grad
// CHECK-SAME: (%[[Q:.*]]: memref<?x?x?x64xf32>, %[[K:.*]]: memref<?x?x?x64xf32>, %[[V:.*]]: memref<?x?x?x64xf32>, %[[O:.*]]: memref<?x?x?x64xf32>, %[[L:.*]]: memref<?x?x?xf32>, %[[DO:.*]]: memref<?x?x?x64xf32>, %[[DQ:.*]]: memref<?x?x?x64xf32>, %[[DK:.*]]: memref<?x?x?x64xf32>, %[[DV:.*]]: memref<?x?x?x64xf32>)
// CHECK-SAME: attn.grad_of = @softcap
// CHECK: attn.attention_grad %[[Q]], %[[K]], %[[V]], %[[O]], %[[DO]] lse %[[L]] -> %[[DQ]], %[[DK]], %[[DV]] {group = 1 : i64, norm = #attn.norm<softmax>}
// CHECK: score {
// CHECK: math.tanh
// CHECK: } mask {
// CHECK: arith.cmpi ule
// CHECK: } score_grad {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %[[DOT:.*]]: f32, %[[G:.*]]: f32):
// CHECK: %[[X:.*]] = arith.divf %[[DOT]], %[[C30:.*]] : f32
// CHECK: %[[GC:.*]] = arith.mulf %[[G]], %[[C30]] : f32
// CHECK: %[[A:.*]] = math.absf %[[X]] : f32
// CHECK: %[[M2:.*]] = arith.constant -2.000000e+00 : f32
// CHECK: %[[A2:.*]] = arith.mulf %[[M2]], %[[A]] : f32
// CHECK: %[[E:.*]] = math.exp %[[A2]] : f32
// CHECK: %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK: %[[P:.*]] = arith.addf %[[ONE]], %[[E]] : f32
// CHECK: %[[P2:.*]] = arith.mulf %[[P]], %[[P]] : f32
// CHECK: %[[FOUR:.*]] = arith.constant 4.000000e+00 : f32
// CHECK: %[[E4:.*]] = arith.mulf %[[FOUR]], %[[E]] : f32
// CHECK: %[[D:.*]] = arith.divf %[[E4]], %[[P2]] : f32
// CHECK: %[[GX:.*]] = arith.mulf %[[GC]], %[[D]] : f32
// CHECK: %[[GDOT:.*]] = arith.divf %[[GX]], %[[C30]] : f32
// CHECK-NEXT: attn.yield %[[GDOT]] : f32
func.func @softcap(%q: !t, %k: !t, %v: !t, %o: !t, %lse: !lse) {
  attn.attention %q, %k, %v -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>} : !t, !t, !t -> !t, !lse score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    %c30 = arith.constant 30.0 : f32
    %x = arith.divf %dot, %c30 : f32
    %t = math.tanh %x : f32
    %s = arith.mulf %c30, %t : f32
    attn.yield %s : f32
  } mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c = arith.cmpi ule, %j, %i : index
    attn.yield %c : i1
  }
  return
}

// -----

!t = memref<?x?x?x64xf32>
!lse = memref<?x?x?xf32>

// ALiBi, s = dot + slope[h] (j - i): d(dot) = g, and g (j - i) accumulates into dslope[h].
// CHECK-LABEL: func.func @alibi_grad
// CHECK-SAME: %[[DSLOPE:[^:]*]]: memref<?xf32, strided<[?], offset: ?>>) attributes {attn.grad_of = @alibi}
// CHECK: score_grad {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %[[H:.*]]: index, %[[I:.*]]: index, %[[J:.*]]: index, %{{.*}}: f32, %[[G:.*]]: f32):
// CHECK: %[[D:.*]] = arith.subi %[[J]], %[[I]] : index
// CHECK: %[[F:.*]] = arith.sitofp
// CHECK: %[[GS:.*]] = arith.mulf %[[G]], %[[F]] : f32
// CHECK: attn.accumulate %[[GS]] -> %[[DSLOPE]][%[[H]]] : memref<?xf32, strided<[?], offset: ?>>
// CHECK-NEXT: attn.yield %[[G]] : f32
func.func @alibi(%q: !t, %k: !t, %v: !t, %slope: memref<?xf32>, %o: !t, %lse: !lse) {
  attn.attention %q, %k, %v -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>} : !t, !t, !t -> !t, !lse score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    %m = memref.load %slope[%h] : memref<?xf32>
    %d = arith.subi %j, %i : index
    %di = arith.index_cast %d : index to i64
    %df = arith.sitofp %di : i64 to f32
    %bias = arith.mulf %m, %df : f32
    %s = arith.addf %dot, %bias : f32
    attn.yield %s : f32
  }
  return
}

// -----

!t = memref<?x?x?x64xf32>
!lse = memref<?x?x?xf32>

// A bias table read at (h, i, j) and an integer param (document ids, no gradient) in the mask;
// sigmoid norm (no lse). exp and a quotient by a param: s = exp(dot) / temp[h] + bias[h, i, j].
// CHECK-LABEL: func.func @table_grad
// CHECK-SAME: %[[DO:[^:]*]]: memref<?x?x?x64xf32>, %{{[^:]*}}: memref<?x?x?x64xf32>, %{{[^:]*}}: memref<?x?x?x64xf32>, %{{[^:]*}}: memref<?x?x?x64xf32>, %[[DTEMP:[^:]*]]: memref<?xf32, strided<[?], offset: ?>>, %[[DBIAS:[^:]*]]: memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>)
// CHECK: attn.attention_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[DO]] -> {{.*}} {group = 1 : i64, norm = #attn.norm<sigmoid>}
// CHECK: score_grad {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %[[H:.*]]: index, %[[I:.*]]: index, %[[J:.*]]: index, %[[DOT:.*]]: f32, %[[G:.*]]: f32):
// CHECK: %[[TEMP:.*]] = memref.load %{{.*}}[%[[H]]]
// CHECK: %[[E:.*]] = math.exp %[[DOT]]
// CHECK: %[[R:.*]] = arith.divf %[[E]], %[[TEMP]]
// The bias takes g as it is ...
// CHECK: attn.accumulate %[[G]] -> %[[DBIAS]][%[[H]], %[[I]], %[[J]]]
// ... dot g exp(dot) / temp, the temperature -g r / temp.
// CHECK: %[[GE:.*]] = arith.divf %[[G]], %[[TEMP]]
// CHECK: %[[GR:.*]] = arith.mulf %[[G]], %[[R]]
// CHECK: %[[GRT:.*]] = arith.divf %[[GR]], %[[TEMP]]
// CHECK: %[[NEG:.*]] = arith.negf %[[GRT]]
// CHECK: %[[GDOT:.*]] = arith.mulf %[[GE]], %[[E]]
// CHECK: attn.accumulate %[[NEG]] -> %[[DTEMP]][%[[H]]]
// CHECK-NEXT: attn.yield %[[GDOT]] : f32
func.func @table(%q: !t, %k: !t, %v: !t, %temp: memref<?xf32>, %bias: memref<?x?x?xf32>,
                 %doc: memref<?x?xi32>, %o: !t) {
  attn.attention %q, %k, %v -> %o {group = 1 : i64, norm = #attn.norm<sigmoid>} : !t, !t, !t -> !t score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    %t = memref.load %temp[%h] : memref<?xf32>
    %e = math.exp %dot : f32
    %r = arith.divf %e, %t : f32
    %c = memref.load %bias[%h, %i, %j] : memref<?x?x?xf32>
    %s = arith.addf %r, %c : f32
    attn.yield %s : f32
  } mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %di = memref.load %doc[%b, %i] : memref<?x?xi32>
    %dj = memref.load %doc[%b, %j] : memref<?x?xi32>
    %same = arith.cmpi eq, %di, %dj : i32
    attn.yield %same : i1
  }
  return
}

// -----

!t = memref<?x?x?x64xf32>

// max and select route g to the operand they chose; a score free of dot yields 0 for it.
// CHECK-LABEL: func.func @choose_grad
// CHECK: score_grad {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %{{.*}}: index, %[[I:.*]]: index, %[[J:.*]]: index, %[[DOT:.*]]: f32, %[[G:.*]]: f32):
// CHECK: %[[C:.*]] = arith.cmpi ult, %[[J]], %[[I]]
// CHECK: %[[GM:.*]] = arith.select %[[C]], %[[G]], %{{.*}} : f32
// CHECK: %[[FIRST:.*]] = arith.cmpf oge, %[[DOT]], %{{.*}} : f32
// CHECK: %[[GD:.*]] = arith.select %[[FIRST]], %[[GM]], %{{.*}} : f32
// CHECK-NEXT: attn.yield %[[GD]] : f32
func.func @choose(%q: !t, %k: !t, %v: !t, %o: !t) {
  attn.attention %q, %k, %v -> %o {group = 1 : i64, norm = #attn.norm<relu2>} : !t, !t, !t -> !t score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    %zero = arith.constant 0.0 : f32
    %m = arith.maximumf %dot, %zero : f32
    %c = arith.cmpi ult, %j, %i : index
    %s = arith.select %c, %m, %zero : f32
    attn.yield %s : f32
  }
  return
}

// -----

!t = memref<?x?x?x64xf32>
!lse = memref<?x?x?xf32>

// An output gate after an rmsnorm, F = z sigmoid(g[b, h, i, e]): output_grad yields
// G dF/dz = G sigmoid(g) and accumulates G z sigmoid'(g) = G z sigmoid(g) (1 - sigmoid(g))
// (through the division of 1 by 1 + exp(-g)) into dg[b, h, i, e]; rms_eps passes on.
// CHECK-LABEL: func.func @gated_grad
// CHECK-SAME: %[[DG:[^:]*]]: memref<?x?x?x64xf32, strided<[?, ?, ?, ?], offset: ?>>) attributes {attn.grad_of = @gated}
// CHECK: attn.attention_grad
// CHECK-SAME: rms_eps = 9.99999974E-6 : f32
// CHECK: score_grad {
// CHECK-NOT: attn.accumulate
// CHECK: } output_grad {
// CHECK-NEXT: ^bb0(%[[B:.*]]: index, %[[H:.*]]: index, %[[I:.*]]: index, %[[E:.*]]: index, %[[Z:.*]]: f32, %[[G:.*]]: f32):
// CHECK: %[[X:.*]] = memref.load %{{.*}}[%[[B]], %[[H]], %[[I]], %[[E]]]
// CHECK: %[[SIG:.*]] = arith.divf
// CHECK: %[[DZ:.*]] = arith.mulf %[[G]], %[[SIG]] : f32
// CHECK: %[[GZ:.*]] = arith.mulf %[[G]], %[[Z]] : f32
// CHECK: attn.accumulate %{{.*}} -> %[[DG]][%[[B]], %[[H]], %[[I]], %[[E]]]
// CHECK: attn.yield %[[DZ]] : f32
func.func @gated(%q: !t, %k: !t, %v: !t, %g: !t, %o: !t, %lse: !lse) {
  attn.attention %q, %k, %v -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>, rms_eps = 1.0e-5 : f32} : !t, !t, !t -> !t, !lse score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn.yield %dot : f32
  } output {
  ^bb0(%b: index, %h: index, %i: index, %e: index, %z: f32):
    %x = memref.load %g[%b, %h, %i, %e] : !t
    %one = arith.constant 1.0 : f32
    %n = arith.negf %x : f32
    %ex = math.exp %n : f32
    %den = arith.addf %one, %ex : f32
    %sig = arith.divf %one, %den : f32
    %r = arith.mulf %z, %sig : f32
    attn.yield %r : f32
  }
  return
}

// -----

!t = memref<?x?x?x64xf32>
!lse = memref<?x?x?xf32>

// A forget gate (a decay under softmax): the backward keeps the decay and gets a decay_grad
// region (b, h, t, g) that accumulates g d log gamma(t)/dp: here gamma = sigmoid(f) =
// 1 / (1 + exp(-f)), whose log has the derivative 1 - sigmoid(f); the decay's param gets a
// gradient.
// CHECK-LABEL: func.func @forget_grad
// CHECK-SAME: %[[DF:[^:]*]]: memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>)
// CHECK: } decay {
// CHECK: math.exp
// CHECK: } decay_grad {
// CHECK-NEXT: ^bb0(%[[B:.*]]: index, %[[H:.*]]: index, %[[T:.*]]: index, %[[G:.*]]: f32):
// CHECK: memref.load %{{.*}}[%[[B]], %[[H]], %[[T]]]
// CHECK: math.exp
// CHECK: attn.accumulate %{{.*}} -> %[[DF]][%[[B]], %[[H]], %[[T]]]
// CHECK: attn.yield{{$}}
func.func @forget(%q: !t, %k: !t, %v: !t, %o: !t, %lse: !lse, %f: memref<?x?x?xf32>) {
  attn.attention %q, %k, %v -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
      : !t, !t, !t -> !t, !lse
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      attn.yield %m : i1
    } decay {
    ^bb0(%b: index, %h: index, %i: index):
      %x = memref.load %f[%b, %h, %i] : memref<?x?x?xf32>
      %one = arith.constant 1.0 : f32
      %nx = arith.negf %x : f32
      %e = math.exp %nx : f32
      %den = arith.addf %one, %e : f32
      %g = arith.divf %one, %den : f32
      attn.yield %g : f32
    }
  return
}

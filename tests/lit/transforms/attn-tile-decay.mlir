// RUN: attnc-opt %s --attn-tile="block-q=32 block-k=16" | FileCheck %s

// A decay fixed per head (it does not read i) folds into the quadratic form's score:
// s * exp((i - j) * log(gamma(b, h))) = s * gamma^(i - j).
// CHECK-LABEL: func.func @fixed_decay
// CHECK: attn.tile_scores
// CHECK: score {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %{{.*}}: index, %[[I:.*]]: index, %[[J:.*]]: index, %[[DOT:.*]]: f32):
// CHECK: %[[GAMMA:.*]] = arith.subf
// CHECK: %[[STEPS:.*]] = arith.subi %[[I]], %[[J]] : index
// CHECK: %[[LOG:.*]] = math.log %[[GAMMA]] : f32
// CHECK: %[[W:.*]] = math.exp
// CHECK: %[[S:.*]] = arith.mulf %[[DOT]], %[[W]] : f32
// CHECK: attn.yield %[[S]] : f32
// CHECK-NOT: decay {
func.func @fixed_decay(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      attn.yield %m : i1
    } decay {
    ^bb0(%b: index, %h: index, %i: index):
      %one = arith.constant 1.0 : f32
      %hi = arith.index_cast %h : index to i64
      %hf = arith.sitofp %hi : i64 to f32
      %e = math.exp %hf : f32
      %g = arith.subf %one, %e : f32
      attn.yield %g : f32
    }
  return
}

// A per-step decay (it reads i) stays a region of the tile op: the quadratic form multiplies
// each score by gamma(j + 1) ... gamma(i) (CPU: a product; CUDA: cumulative logs per tile).
// CHECK-LABEL: func.func @step_decay
// CHECK: attn.tile_scores
// CHECK: } decay {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %{{.*}}: index, %{{.*}}: index):
// CHECK: memref.load
func.func @step_decay(%q: memref<?x?x?x64xf32>, %dt: memref<?x?x?xf32>, %o: memref<?x?x?x64xf32>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      attn.yield %m : i1
    } decay {
    ^bb0(%b: index, %h: index, %i: index):
      %g = memref.load %dt[%b, %h, %i] : memref<?x?x?xf32>
      attn.yield %g : f32
    }
  return
}

// With softmax the decay scales the weights exp(s): a decay fixed per head folds in as
// s + (i - j) * log gamma(b, h) (an ALiBi-like bias), no exp.
// CHECK-LABEL: func.func @fixed_forget_gate
// CHECK: attn.tile_scores
// CHECK: score {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %{{.*}}: index, %[[I:.*]]: index, %[[J:.*]]: index, %[[DOT:.*]]: f32):
// CHECK: %[[STEPS:.*]] = arith.subi %[[I]], %[[J]] : index
// CHECK: %[[LOG:.*]] = math.log %{{.*}} : f32
// CHECK: %[[BIAS:.*]] = arith.mulf %{{.*}}, %[[LOG]] : f32
// CHECK: %[[S:.*]] = arith.addf %[[DOT]], %[[BIAS]] : f32
// CHECK-NEXT: attn.yield %[[S]] : f32
// CHECK-NOT: decay {
// CHECK: attn.tile_store
func.func @fixed_forget_gate(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      attn.yield %m : i1
    } decay {
    ^bb0(%b: index, %h: index, %i: index):
      %g = arith.constant 0.9 : f32
      attn.yield %g : f32
    }
  return
}

// A per-step forget gate stays a region, marked log_decay: the score gains
// log gamma(j + 1) + ... + log gamma(i). A gate written exp(x) gives x itself as its log.
// CHECK-LABEL: func.func @step_forget_gate
// CHECK: attn.tile_scores
// CHECK-SAME: log_decay
// CHECK: } decay {
// CHECK: math.exp
// CHECK-LABEL: func.func @fixed_exp_forget_gate
// CHECK: score {
// CHECK: %[[X:.*]] = arith.constant -5.000000e-01 : f32
// CHECK-NOT: math.log
// CHECK: arith.mulf %{{.*}}, %[[X]] : f32
func.func @step_forget_gate(%q: memref<?x?x?x64xf32>, %lf: memref<?x?x?xf32>, %o: memref<?x?x?x64xf32>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      attn.yield %m : i1
    } decay {
    ^bb0(%b: index, %h: index, %i: index):
      %x = memref.load %lf[%b, %h, %i] : memref<?x?x?xf32>
      %g = math.exp %x : f32
      attn.yield %g : f32
    }
  return
}
func.func @fixed_exp_forget_gate(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      attn.yield %m : i1
    } decay {
    ^bb0(%b: index, %h: index, %i: index):
      %x = arith.constant -0.5 : f32
      %g = math.exp %x : f32
      attn.yield %g : f32
    }
  return
}

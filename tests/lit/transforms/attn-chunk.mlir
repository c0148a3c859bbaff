// RUN: attnc-opt %s --split-input-file --attn-chunk="chunk-size=16" | FileCheck %s
// RUN: not attnc-opt %s --split-input-file --attn-chunk="chunk-size=0" 2>&1 | FileCheck %s --check-prefix=BAD

// BAD: attn-chunk: chunk-size must be in [1, 1024], got 0

// A recurrence (norm none, mask j <= i, score = dot * c, per-step decay, feature maps): loops
// over batch and heads, a zeroed [d, dv] state, one attn.chunk_step per 16 positions carrying
// the regions along. GQA: the kv head is h / group.
// CHECK-LABEL: func.func @decayed
// CHECK-SAME: (%[[Q:.*]]: memref<?x?x?x64xf32>, %[[K:.*]]: memref<?x?x?x64xf32>, %[[V:.*]]: memref<?x?x?x32xf32>, %[[P:.*]]: memref<?x?x?xf32>, %[[O:.*]]: memref<?x?x?x32xf32>)
// CHECK: %[[S:.*]] = memref.alloca() : memref<64x32xf32>
// CHECK: scf.for %[[B:.*]] = {{.*}} {
// CHECK: scf.for %[[H:.*]] = {{.*}} {
// CHECK: %[[HK:.*]] = arith.divui %[[H]], %c2
// CHECK: attn.tile_fill %[[S]], 0.000000e+00
// CHECK: scf.for %[[N0:.*]] = %c0 to %{{.*}} step %c16 {
// CHECK: attn.chunk_step %[[Q]], %[[K]], %[[V]][%[[B]], %[[H]], %[[HK]], %[[N0]]] state %[[S]] -> %[[O]] {chunk = 16 : i64}
// CHECK: score {
// CHECK: arith.mulf
// CHECK: } feature_q {
// CHECK: } decay {
// CHECK: memref.load %[[P]]
// CHECK-NOT: attn.attention
func.func @decayed(%q: memref<?x?x?x64xf32>, %k: memref<?x?x?x64xf32>, %v: memref<?x?x?x32xf32>,
                   %dt: memref<?x?x?xf32>, %o: memref<?x?x?x32xf32>) {
  attn.attention %q, %k, %v -> %o {group = 2 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x32xf32> -> memref<?x?x?x32xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      %c = arith.constant 0.125 : f32
      %s = arith.mulf %dot, %c : f32
      attn.yield %s : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      attn.yield %m : i1
    } feature_q {
    ^bb0(%x: f32):
      %c0 = arith.constant 0.0 : f32
      %r = arith.maximumf %x, %c0 : f32
      attn.yield %r : f32
    } decay {
    ^bb0(%b: index, %h: index, %i: index):
      %g = memref.load %dt[%b, %h, %i] : memref<?x?x?xf32>
      %e = math.exp %g : f32
      attn.yield %e : f32
    }
  return
}

// -----

// A strict-causal recurrence (RWKV: mask j < i, a gate per channel, the bonus of the current
// token): the chunk step is `strict` and carries the bonus region.
// CHECK-LABEL: func.func @strict_bonus
// CHECK: attn.chunk_step {{.*}} {chunk = 16 : i64, strict}
// CHECK: } gate {
// CHECK: memref.load %arg2
// CHECK: } bonus {
// CHECK: memref.load %arg3
// CHECK-NOT: attn.attention
func.func @strict_bonus(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>,
                        %w: memref<?x?x?x64xf32>, %u: memref<?x64xf32>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ult, %j, %i : index
      attn.yield %m : i1
    } gate {
    ^bb0(%b: index, %h: index, %i: index, %c: index):
      %g = memref.load %w[%b, %h, %i, %c] : memref<?x?x?x64xf32>
      %e = math.exp %g : f32
      attn.yield %e : f32
    } bonus {
    ^bb0(%b: index, %h: index, %i: index, %c: index):
      %x = memref.load %u[%h, %c] : memref<?x64xf32>
      attn.yield %x : f32
    }
  return
}

// -----

// Linear in dot through a chain: -(c1 * (dot * c2)) / c3, the factors free of j.
// CHECK-LABEL: func.func @chained_factor
// CHECK: attn.chunk_step
func.func @chained_factor(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      %c = arith.constant 0.5 : f32
      %ii = arith.index_cast %i : index to i64
      %fi = arith.sitofp %ii : i64 to f32
      %a = arith.mulf %dot, %c : f32
      %m = arith.mulf %fi, %a : f32
      %n = arith.negf %m : f32
      %s = arith.divf %n, %c : f32
      attn.yield %s : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      attn.yield %m : i1
    }
  return
}

// -----

// Key factors (Mamba's dt_j): a score dot * (ci * kj) / kd * ki2 splits into the score region
// dot * ci (what does not read j) and a key_scale region (b, h, j) with kj / kd * ki2, the
// outermost product replaced first; i and dot are not read there. A skip term comes along.
// CHECK-LABEL: func.func @key_factors
// CHECK: attn.chunk_step
// CHECK: score {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %{{.*}}: index, %[[I:.*]]: index, %{{.*}}: index, %[[DOT:.*]]: f32):
// CHECK-NEXT: %[[II:.*]] = arith.index_cast %[[I]]
// CHECK-NEXT: %[[FI:.*]] = arith.sitofp %[[II]]
// CHECK-NEXT: %[[S:.*]] = arith.mulf %[[DOT]], %[[FI]] : f32
// CHECK-NEXT: attn.yield %[[S]] : f32
// CHECK-NEXT: } key_scale {
// CHECK-NEXT: ^bb0(%[[B:.*]]: index, %[[H:.*]]: index, %[[J:.*]]: index):
// CHECK: memref.load %{{.*}}[%[[B]], %[[J]], %[[H]]]
// CHECK: %[[KD:.*]] = arith.sitofp
// CHECK: %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT: %[[M1:.*]] = arith.mulf %[[ONE]], %[[KJ:.*]] : f32
// CHECK-NEXT: %[[M2:.*]] = arith.divf %[[M1]], %[[KD]] : f32
// CHECK-NEXT: %[[M3:.*]] = arith.mulf %[[M2]], %[[KJ]] : f32
// CHECK-NEXT: attn.yield %[[M3]] : f32
// CHECK-NEXT: } skip {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %[[X:.*]]: f32):
// CHECK-NEXT: attn.yield %[[X]] : f32
func.func @key_factors(%q: memref<?x?x?x64xf32>, %dt: memref<?x?x?xf32>, %o: memref<?x?x?x64xf32>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      %ii = arith.index_cast %i : index to i64
      %ci = arith.sitofp %ii : i64 to f32
      %kj = memref.load %dt[%b, %j, %h] : memref<?x?x?xf32>
      %jj = arith.index_cast %j : index to i64
      %kd = arith.sitofp %jj : i64 to f32
      %mixed = arith.mulf %ci, %kj : f32
      %a = arith.mulf %dot, %mixed : f32
      %d = arith.divf %a, %kd : f32
      %s = arith.mulf %d, %kj : f32
      attn.yield %s : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      attn.yield %m : i1
    } skip {
    ^bb0(%b: index, %h: index, %i: index, %e: index, %x: f32):
      attn.yield %x : f32
    }
  return
}

// -----

// q/k head groups (Mamba-2's B/C groups): the head loop runs over out's heads, and chunk_step
// carries qk_group (q and k read at h / 4).
// CHECK-LABEL: func.func @qk_groups
// CHECK-SAME: %[[O:[^:]*]]: memref<?x?x?x32xf32>)
// CHECK: %[[H:.*]] = memref.dim %[[O]], %c1
// CHECK: scf.for %{{.*}} = %c0 to %[[H]] step %c1
// CHECK: attn.chunk_step {{.*}} {chunk = 16 : i64, qk_group = 4 : i64}
func.func @qk_groups(%c: memref<?x?x?x64xf32>, %x: memref<?x?x?x32xf32>, %o: memref<?x?x?x32xf32>) {
  attn.attention %c, %c, %x -> %o {group = 1 : i64, norm = #attn.norm<none>, qk_group = 4 : i64}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x32xf32> -> memref<?x?x?x32xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      attn.yield %m : i1
    }
  return
}

// -----

// Not recurrences, left for attn-tile: softmax; a mask other than j <= i or j < i; a score factor
// that reads i and j (ALiBi-like); a score not linear in dot (dot + 1).
// CHECK-LABEL: func.func @not_recurrences
// CHECK-NOT: attn.chunk_step
// CHECK-COUNT-4: attn.attention
func.func @not_recurrences(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>) {
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      attn.yield %m : i1
    }
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ne, %j, %i : index
      attn.yield %m : i1
    }
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      %d = arith.subi %i, %j : index
      %di = arith.index_cast %d : index to i64
      %df = arith.sitofp %di : i64 to f32
      %s = arith.mulf %dot, %df : f32
      attn.yield %s : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      attn.yield %m : i1
    }
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      %one = arith.constant 1.0 : f32
      %s = arith.addf %dot, %one : f32
      attn.yield %s : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      attn.yield %m : i1
    }
  return
}

// -----

// A state: chunk_step works in place on the subview state[b, h] (the initial state in, the
// final one out), with no buffer and no zero fill.
// CHECK-LABEL: func.func @stateful
// CHECK-SAME: %[[ST:[^:]*]]: memref<?x?x64x32xf32>)
// CHECK-NOT: memref.alloca
// CHECK-NOT: attn.tile_fill
// CHECK: scf.for %[[B:.*]] = {{.*}} {
// CHECK: scf.for %[[H:.*]] = {{.*}} {
// CHECK: %[[SV:.*]] = memref.subview %[[ST]][%[[B]], %[[H]], 0, 0] [1, 1, 64, 32] [1, 1, 1, 1] : memref<?x?x64x32xf32> to memref<64x32xf32, strided<[32, 1], offset: ?>>
// CHECK: attn.chunk_step {{.*}} state %[[SV]] -> {{.*}} {chunk = 16 : i64}
func.func @stateful(%q: memref<?x?x?x64xf32>, %v: memref<?x?x?x32xf32>, %o: memref<?x?x?x32xf32>,
                    %st: memref<?x?x64x32xf32>) {
  attn.attention %q, %q, %v -> %o state %st {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x32xf32> -> memref<?x?x?x32xf32>
        state memref<?x?x64x32xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      attn.yield %m : i1
    }
  return
}

// -----

// One query position (decoding): the single-step recurrent form, chunks of 1 whatever the
// chunk-size option says.
// CHECK-LABEL: func.func @single_step
// CHECK: attn.chunk_step {{.*}} {chunk = 1 : i64}
func.func @single_step(%q: memref<?x?x1x64xf32>, %k: memref<?x?x1x64xf32>,
                       %v: memref<?x?x1x32xf32>, %o: memref<?x?x1x32xf32>,
                       %st: memref<?x?x64x32xf32>) {
  attn.attention %q, %k, %v -> %o state %st {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x1x64xf32>, memref<?x?x1x64xf32>, memref<?x?x1x32xf32> -> memref<?x?x1x32xf32>
        state memref<?x?x64x32xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      attn.yield %m : i1
    }
  return
}

// -----

// Norm sum and an output rmsnorm: the state gains a column (the weights' running sum) and the
// chunk step is marked normalize, with the epsilon carried along.
// CHECK-LABEL: func.func @normalised
// CHECK: %[[S:.*]] = memref.alloca() : memref<64x33xf32>
// CHECK: attn.tile_fill %[[S]], 0.000000e+00
// CHECK: attn.chunk_step {{.*}} state %[[S]] -> {{.*}} {chunk = 16 : i64, normalize, rms_eps = 9.99999997E-7 : f32}
// CHECK-SAME: memref<64x33xf32>
func.func @normalised(%q: memref<?x?x?x64xf32>, %v: memref<?x?x?x32xf32>, %o: memref<?x?x?x32xf32>) {
  attn.attention %q, %q, %v -> %o {group = 1 : i64, norm = #attn.norm<sum>, rms_eps = 1.0e-6 : f32}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x32xf32> -> memref<?x?x?x32xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      attn.yield %m : i1
    }
  return
}

// -----

// A projection w [m, d] (Performer): the state has m rows, and the chunk step reads w.
// CHECK-LABEL: func.func @projected
// CHECK: %[[S:.*]] = memref.alloca() : memref<128x33xf32>
// CHECK: attn.chunk_step {{.*}} state %[[S]] -> %{{.*}} proj %{{.*}} {chunk = 16 : i64, normalize}
// CHECK: feature_q {
// CHECK-NEXT: ^bb0(%{{.*}}: f32, %{{.*}}: f32):
func.func @projected(%q: memref<?x?x?x64xf32>, %v: memref<?x?x?x32xf32>, %w: memref<128x64xf32>,
                     %o: memref<?x?x?x32xf32>) {
  attn.attention %q, %q, %v -> %o proj %w {group = 1 : i64, norm = #attn.norm<sum>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x32xf32> -> memref<?x?x?x32xf32>
        proj memref<128x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      attn.yield %m : i1
    } feature_q {
    ^bb0(%p: f32, %sq: f32):
      %e = math.exp %p : f32
      attn.yield %e : f32
    } feature_k {
    ^bb0(%p: f32, %sq: f32):
      %e = math.exp %p : f32
      attn.yield %e : f32
    }
  return
}

// RUN: attnc-opt %s --split-input-file --attn-tile="block-q=32 block-k=16" --attn-online-softmax --attn-mask-bounds | FileCheck %s


// Causal (j <= i): keys up to the tile's last row, i0 + 32 (exclusive).
// CHECK-LABEL: func.func @causal
// CHECK: scf.for %[[I0:.*]] = %{{.*}} to %{{.*}} step %c32 {
// CHECK: %[[KV:.*]] = memref.dim %{{.*}}, %{{.*}} : memref<?x?x?x64xf32>
// CHECK: %[[LAST:.*]] = arith.addi %[[I0]], %c31{{.*}} : index
// CHECK: %[[EDGE:.*]] = arith.addi %{{.*}}, %{{.*}} : index
// CHECK: %[[END:.*]] = arith.addi %[[EDGE]], %{{.*}} : index
// CHECK: %[[POS:.*]] = arith.maxsi %[[END]], %{{.*}} : index
// CHECK: %[[UB:.*]] = arith.minsi %[[KV]], %[[POS]] : index
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[UB]] step %{{.*}} {
// CHECK-NEXT: attn.tile_scores
// CHECK: } {attn.mask_bounded}
func.func @causal(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>) {
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c = arith.cmpi sle, %j, %i : index
      attn.yield %c : i1
    }
  return
}

// -----

// Sliding window (j <= i && i - j < 100): the loop starts at the tile holding key i0 - 99.
// CHECK-LABEL: func.func @window
// CHECK: %[[LOW:.*]] = arith.addi %{{.*}}, %c-99{{.*}} : index
// CHECK: %[[NN:.*]] = arith.maxsi %[[LOW]], %{{.*}} : index
// CHECK: %[[T:.*]] = arith.divui %[[NN]], %c16{{.*}} : index
// CHECK: %[[START:.*]] = arith.muli %[[T]], %c16{{.*}} : index
// CHECK: %[[LB:.*]] = arith.maxsi %{{.*}}, %[[START]] : index
// CHECK: scf.for %{{.*}} = %[[LB]] to %{{.*}} step %{{.*}} {
func.func @window(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>) {
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c100 = arith.constant 100 : index
      %causal = arith.cmpi sle, %j, %i : index
      %d = arith.subi %i, %j : index
      %near = arith.cmpi slt, %d, %c100 : index
      %both = arith.andi %causal, %near : i1
      attn.yield %both : i1
    }
  return
}

// -----

// A disjunction (prefix-LM: j <= i || j < prefix[b]) or a param-dependent mask proves nothing:
// the key loop is left alone.
// CHECK-LABEL: func.func @prefix
// CHECK-NOT: attn.mask_bounded
func.func @prefix(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>, %prefix: memref<?xi32>) {
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %p = memref.load %prefix[%b] : memref<?xi32>
      %pi = arith.index_cast %p : i32 to index
      %causal = arith.cmpi sle, %j, %i : index
      %inPrefix = arith.cmpi slt, %j, %pi : index
      %either = arith.ori %causal, %inPrefix : i1
      attn.yield %either : i1
    }
  return
}

// -----

// Unsigned comparisons of expressions that may be negative (j - i) are not read as bounds.
// CHECK-LABEL: func.func @unsigned_difference
// CHECK-NOT: attn.mask_bounded
func.func @unsigned_difference(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>) {
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c8 = arith.constant 8 : index
      %d = arith.subi %j, %i : index
      %c = arith.cmpi ult, %d, %c8 : index
      attn.yield %c : i1
    }
  return
}

// -----

// A per-sequence length read from a param (decoding: j < kv_len[b]) and a causal bound offset by
// it (j <= kv_len[b] - q_len + i): the loads are hoisted out of the region, with the tile's batch.
// CHECK-LABEL: func.func @kv_lens
// CHECK: scf.for %[[B:.*]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK: %[[LEN:.*]] = memref.load %{{.*}}[%[[B]]] : memref<?xi32>
// CHECK: %[[LENI:.*]] = arith.index_cast %[[LEN]] : i32 to index
// CHECK: arith.minsi %{{.*}}, %{{.*}} : index
// CHECK: %[[LEN2:.*]] = memref.load %{{.*}}[%[[B]]] : memref<?xi32>
// CHECK: %[[LEN2I:.*]] = arith.index_cast %[[LEN2]] : i32 to index
// CHECK: %[[PAST:.*]] = arith.subi %[[LEN2I]], %{{.*}} : index
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK-NEXT: attn.tile_scores
// CHECK: } {attn.mask_bounded}
func.func @kv_lens(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>, %lens: memref<?xi32>) {
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c2 = arith.constant 2 : index
      %len = memref.load %lens[%b] : memref<?xi32>
      %n = arith.index_cast %len : i32 to index
      %in = arith.cmpi slt, %j, %n : index
      %qlen = memref.dim %q, %c2 : memref<?x?x?x64xf32>
      %past = arith.subi %n, %qlen : index
      %pos = arith.addi %past, %i : index
      %causal = arith.cmpi sle, %j, %pos : index
      %both = arith.andi %in, %causal : i1
      attn.yield %both : i1
    }
  return
}

// -----

// A length that depends on the query head is not a per-tile bound: nothing is narrowed.
// CHECK-LABEL: func.func @per_head_length
// CHECK-NOT: attn.mask_bounded
func.func @per_head_length(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>, %lens: memref<?xi32>) {
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %len = memref.load %lens[%h] : memref<?xi32>
      %n = arith.index_cast %len : i32 to index
      %in = arith.cmpi slt, %j, %n : index
      attn.yield %in : i1
    }
  return
}

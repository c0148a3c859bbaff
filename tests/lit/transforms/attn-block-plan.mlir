// RUN: attnc-opt %s --split-input-file --attn-tile="block-q=32 block-k=16" --attn-online-softmax --attn-mask-bounds --attn-block-plan | FileCheck %s

// Document masking (doc_q[b, i] == doc_k[b, j] && j <= i): the mask reads params, so
// attn-mask-bounds narrows only by j <= i; the block plan's key range narrows further.
// CHECK-LABEL: func.func @document
// CHECK: scf.for %[[I0:.*]] = %{{.*}} to %{{.*}} step %c32 {
// CHECK: %[[UB:.*]] = arith.minsi %{{.*}}, %{{.*}} : index
// CHECK: %[[LO:[a-z_0-9]*]], %[[HI:[a-z_0-9]*]], %{{.*}}, %{{.*}} = attn.tile_key_range[%{{.*}}, %{{.*}}, %[[I0]]] queries %{{.*}} keys %{{.*}} {block_k = 16 : i64, rows = 32 : i64} mask {
// CHECK:   memref.load %{{.*}}[%{{.*}}, %{{.*}}] : memref<?x?xi32>
// CHECK:   attn.yield %{{.*}} : i1
// CHECK: }
// CHECK: %[[FROM:.*]] = arith.maxsi %{{.*}}, %[[LO]] : index
// CHECK: %[[TO:.*]] = arith.minsi %[[UB]], %[[HI]] : index
// CHECK: scf.for %{{.*}} = %[[FROM]] to %[[TO]] step %c16
// CHECK-NEXT: attn.tile_scores
// CHECK: } {attn.block_planned, attn.mask_bounded}
func.func @document(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>,
                    %doc_q: memref<?x?xi32>, %doc_k: memref<?x?xi32>) {
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %dq = memref.load %doc_q[%b, %i] : memref<?x?xi32>
      %dk = memref.load %doc_k[%b, %j] : memref<?x?xi32>
      %same = arith.cmpi eq, %dq, %dk : i32
      %causal = arith.cmpi sle, %j, %i : index
      %both = arith.andi %same, %causal : i1
      attn.yield %both : i1
    }
  return
}

// -----

// Prefix-LM (j <= i || j < prefix[b]): a disjunction attn-mask-bounds cannot read; the plan
// bounds it.
// CHECK-LABEL: func.func @prefix
// CHECK: attn.tile_key_range
// CHECK: } {attn.block_planned}
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

// Masks attn-mask-bounds reads exactly (causal; a length read from a param), and masks that
// read no param, need no plan.
// CHECK-LABEL: func.func @exact
// CHECK-NOT: attn.tile_key_range
// CHECK: return
func.func @exact(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>, %len: memref<?xi32>) {
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %n = memref.load %len[%b] : memref<?xi32>
      %ni = arith.index_cast %n : i32 to index
      %causal = arith.cmpi sle, %j, %i : index
      %inLen = arith.cmpi slt, %j, %ni : index
      %both = arith.andi %causal, %inLen : i1
      attn.yield %both : i1
    }
  return
}

// CHECK-LABEL: func.func @no_params
// CHECK-NOT: attn.tile_key_range
// CHECK: return
func.func @no_params(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>) {
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c2 = arith.constant 2 : index
      %r = arith.remui %j, %c2 : index
      %c0 = arith.constant 0 : index
      %even = arith.cmpi eq, %r, %c0 : index
      attn.yield %even : i1
    }
  return
}

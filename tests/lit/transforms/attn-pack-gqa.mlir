// RUN: attnc-opt %s --split-input-file --attn-tile="block-q=16 block-k=16" --attn-online-softmax --attn-pack-gqa --canonicalize --cse | FileCheck %s

// GQA with 4 query heads per kv head: the head loop counts kv heads, the query-tile loop runs
// over q_len x 4 packed rows, and the tile ops take the group's first head hk * 4 with pack = 4.
// CHECK-LABEL: func.func @gqa
// CHECK: %[[H:.*]] = memref.dim %{{.*}}, %c1 : memref<?x?x?x64xf32>
// CHECK: %[[HK:.*]] = arith.divui %[[H]], %c4 : index
// CHECK: scf.for %[[KVH:.*]] = %c0 to %[[HK]] step %c1 {
// CHECK: %[[FIRST:.*]] = arith.muli %[[KVH]], %c4 : index
// CHECK: %[[I:.*]] = memref.dim %{{.*}}, %c2 : memref<?x?x?x64xf32>
// CHECK: %[[ROWS:.*]] = arith.muli %[[I]], %c4 : index
// CHECK: scf.for %[[P0:.*]] = %c0 to %[[ROWS]] step %c16 {
// CHECK: attn.tile_scores %{{.*}}, %{{.*}}[%{{.*}}, %[[FIRST]], %[[KVH]], %[[P0]], %{{.*}}] -> %{{.*}} {fill = {{.*}}, pack = 4 : i64}
// CHECK: attn.tile_matmul_acc %{{.*}}, %{{.*}}[%{{.*}}, %[[KVH]], %{{.*}}]
// CHECK: attn.tile_store {{.*}}[%{{.*}}, %[[FIRST]], %[[P0]]]{{.*}}pack = 4 : i64
func.func @gqa(%q: memref<?x?x?x64xf32>, %k: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>) {
  attn.attention %q, %k, %k -> %o, %lse {group = 4 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

// Multi-head attention (group 1) has nothing to pack.
// CHECK-LABEL: func.func @mha
// CHECK-NOT: pack =
func.func @mha(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>) {
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

// A per-step decay (a forget gate) keeps one head per tile: its cumulative log decays are per
// head, so the tiles stay unpacked.
// CHECK-LABEL: func.func @gqa_forget_gate
// CHECK: attn.tile_scores
// CHECK-NOT: pack =
// CHECK: attn.tile_store
func.func @gqa_forget_gate(%q: memref<?x?x?x64xf32>, %k: memref<?x?x?x64xf32>, %lf: memref<?x?x?xf32>,
                           %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>) {
  attn.attention %q, %k, %k -> %o, %lse {group = 4 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
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

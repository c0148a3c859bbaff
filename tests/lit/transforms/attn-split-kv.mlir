// RUN: attnc-opt %s --split-input-file --attn-tile="block-q=16 block-k=32" --attn-online-softmax --attn-split-kv --canonicalize --cse | FileCheck %s

// The query tile moves into a loop over the splits S = dim(part_out, 0); split s visits key tiles
// [s n, (s + 1) n) with n = ceil(ceil(kv / 32) / S) tiles; the store writes the partial results;
// attn.combine merges them at the end.
// CHECK-LABEL: func.func @split
// CHECK-SAME: %[[O:[a-z0-9]+]]: memref<?x?x?x64xf32>, %[[LSE:[a-z0-9]+]]: memref<?x?x?xf32>, %[[PO:[a-z0-9]+]]: memref<?x?x?x?x?xf32, strided<[?, ?, ?, ?, ?], offset: ?>>, %[[PL:[a-z0-9]+]]: memref<?x?x?x?xf32, strided<[?, ?, ?, ?], offset: ?>>)
// CHECK: %[[S:.*]] = memref.dim %[[PO]], %c0
// CHECK: scf.for %[[SPLIT:.*]] = %c0 to %[[S]] step %c1 {
// CHECK: attn.tile_fill
// CHECK: %[[TILES:.*]] = arith.ceildivui %{{.*}}, %c32
// CHECK: %[[PER:.*]] = arith.ceildivui %[[TILES]], %[[S]]
// CHECK: %[[KEYS:.*]] = arith.muli %[[PER]], %c32
// CHECK: %[[FROM:.*]] = arith.muli %[[SPLIT]], %[[KEYS]]
// CHECK: %[[TO:.*]] = arith.addi %[[FROM]], %[[KEYS]]
// CHECK: %[[LB:.*]] = arith.maxsi %[[FROM]], %{{.*}}
// CHECK: %[[UB:.*]] = arith.minsi %{{.*}}, %[[TO]]
// CHECK: scf.for %{{.*}} = %[[LB]] to %[[UB]] step %c32 {
// CHECK: attn.tile_store {{.*}} -> %[[O]][{{.*}}], %[[LSE]] split %[[SPLIT]] into %[[PO]], %[[PL]]
// CHECK: } {attn.split_kv}
// CHECK: attn.combine %[[PO]], %[[PL]] -> %[[O]], %[[LSE]]
// CHECK-NEXT: return
func.func @split(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>) {
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

// Elementwise norms have no log-sum-exp to merge with: left alone.
// CHECK-LABEL: func.func @sigmoid
// CHECK-NOT: attn.split_kv
// CHECK-NOT: attn.combine
func.func @sigmoid(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<sigmoid>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

// An output expression (an rmsnorm, then a gate) applies to the merged row: the store applies
// it when there is one split (it writes the output itself), and attn.combine, which carries
// the store's rms_eps and a copy of its output region, applies it to the rows it merges.
// CHECK-LABEL: func.func @gated
// CHECK-SAME: %[[G:[a-z0-9]+]]: memref<?x?x?x64xf32>, %[[PO:[a-z0-9]+]]: memref<?x?x?x?x?xf32, {{.*}}>, %[[PL:[a-z0-9]+]]: memref<?x?x?x?xf32, {{.*}}>)
// CHECK: scf.for
// CHECK: attn.tile_store {{.*}} split %{{.*}} into %[[PO]], %[[PL]]
// CHECK-SAME: rms_eps = 9.99999997E-7 : f32
// CHECK-SAME: output {
// CHECK: memref.load %[[G]]
// CHECK: attn.split_kv
// CHECK: attn.combine %[[PO]], %[[PL]] -> %{{.*}}, %{{.*}} {rms_eps = 9.99999997E-7 : f32}
// CHECK-SAME: output {
// CHECK-NEXT: ^bb0(%[[B:.*]]: index, %[[H:.*]]: index, %[[I:.*]]: index, %[[E:.*]]: index, %[[Y:.*]]: f32):
// CHECK-NEXT: %[[X:.*]] = memref.load %[[G]][%[[B]], %[[H]], %[[I]], %[[E]]]
// CHECK-NEXT: %[[R:.*]] = arith.mulf %[[Y]], %[[X]]
// CHECK-NEXT: attn.yield %[[R]]
func.func @gated(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>,
                 %g: memref<?x?x?x64xf32>) {
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>, rms_eps = 1.0e-6 : f32}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } output {
    ^bb0(%b: index, %h: index, %i: index, %e: index, %y: f32):
      %x = memref.load %g[%b, %h, %i, %e] : memref<?x?x?x64xf32>
      %r = arith.mulf %y, %x : f32
      attn.yield %r : f32
    }
  return
}

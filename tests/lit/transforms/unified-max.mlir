// RUN: attnc-opt %s --attn-tile --attn-online-softmax | FileCheck %s

// A unified max (FlashDecoding++) on attn.attention reaches the fused update.
// CHECK-LABEL: func.func @unified_max
// CHECK: attn.tile_online_update {{.*}} {unified_max = 6.000000e+00 : f32}
func.func @unified_max(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>) {
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>, unified_max = 6.0 : f32}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// RUN: attnc-opt %s | attnc-opt | FileCheck %s
// RUN: attnc-opt %s --mlir-print-op-generic | attnc-opt | FileCheck %s

// CHECK-LABEL: func.func @variant_level
// CHECK: attn.attention %{{.*}}, %{{.*}}, %{{.*}} -> %{{.*}}, %{{.*}} {group = 2 : i64, norm = #attn.norm<softmax>}
// CHECK-SAME: memref<?x8x?x64xbf16>, memref<?x4x?x64xbf16>, memref<?x4x?x32xbf16> -> memref<?x8x?x32xbf16>, memref<?x8x?xf32>
// CHECK: score {
// CHECK: ^bb0(%[[B:.*]]: index, %[[H:.*]]: index, %[[I:.*]]: index, %[[J:.*]]: index, %[[DOT:.*]]: f32):
// CHECK: attn.yield %{{.*}} : f32
// CHECK: } mask {
// CHECK: arith.cmpi ule
// CHECK: attn.yield %{{.*}} : i1
func.func @variant_level(%q: memref<?x8x?x64xbf16>, %k: memref<?x4x?x64xbf16>,
                         %v: memref<?x4x?x32xbf16>, %o: memref<?x8x?x32xbf16>,
                         %lse: memref<?x8x?xf32>, %slope: memref<8xf32>) {
  attn.attention %q, %k, %v -> %o, %lse {group = 2 : i64, norm = #attn.norm<softmax>}
      : memref<?x8x?x64xbf16>, memref<?x4x?x64xbf16>, memref<?x4x?x32xbf16>
     -> memref<?x8x?x32xbf16>, memref<?x8x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      %m = memref.load %slope[%h] : memref<8xf32>
      %s = arith.mulf %dot, %m : f32
      attn.yield %s : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c = arith.cmpi ule, %j, %i : index
      attn.yield %c : i1
    }
  return
}

// CHECK-LABEL: func.func @no_mask_sigmoid
// CHECK: attn.attention {{.*}} {group = 1 : i64, norm = #attn.norm<sigmoid>}
// CHECK-NOT: mask
func.func @no_mask_sigmoid(%q: memref<?x?x?x?xf32>, %o: memref<?x?x?x?xf32>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<sigmoid>}
      : memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32> -> memref<?x?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// CHECK-LABEL: func.func @tiled_level
// CHECK: attn.tile_fill %{{.*}}, 0xFF800000 : memref<16xf32>
// CHECK: attn.tile_scores %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] -> %{{.*}} {fill = 0xFF800000 : f32}
// CHECK: attn.tile_row_max
// CHECK: attn.tile_exp_sum
// CHECK: attn.tile_online_update
// CHECK: attn.tile_matmul_acc
// CHECK: attn.tile_store %{{.*}}, %{{.*}}, %{{.*}} -> %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}], %{{.*}} {norm = #attn.norm<softmax>}
// CHECK: attn.tile_store %{{.*}} -> %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] {norm = #attn.norm<relu2>}
func.func @tiled_level(%q: memref<?x?x?x64xf16>, %o: memref<?x?x?x64xf16>,
                       %lse: memref<?x?x?xf32>, %x: index) {
  %s = memref.alloca() : memref<16x32xf32>
  %m = memref.alloca() : memref<16xf32>
  %l = memref.alloca() : memref<16xf32>
  %acc = memref.alloca() : memref<16x64xf32>
  attn.tile_fill %m, 0xFF800000 : memref<16xf32>
  attn.tile_scores %q, %q[%x, %x, %x, %x, %x] -> %s {fill = 0xFF800000 : f32}
      : memref<?x?x?x64xf16>, memref<?x?x?x64xf16> -> memref<16x32xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  attn.tile_row_max %s -> %m : memref<16x32xf32> -> memref<16xf32>
  attn.tile_exp_sum %s, %m -> %l : memref<16x32xf32>, memref<16xf32> -> memref<16xf32>
  attn.tile_online_update %s, %m, %l, %acc
      : memref<16x32xf32>, memref<16xf32>, memref<16xf32>, memref<16x64xf32>
  attn.tile_matmul_acc %s, %q[%x, %x, %x] -> %acc
      : memref<16x32xf32>, memref<?x?x?x64xf16> -> memref<16x64xf32>
  attn.tile_store %acc, %l, %m -> %o[%x, %x, %x], %lse {norm = #attn.norm<softmax>}
      : memref<16x64xf32>, memref<16xf32>, memref<16xf32> -> memref<?x?x?x64xf16>, memref<?x?x?xf32>
  attn.tile_store %acc -> %o[%x, %x, %x] {norm = #attn.norm<relu2>}
      : memref<16x64xf32> -> memref<?x?x?x64xf16>
  return
}

// A dynamic value dim gives an accumulator with dynamic columns; its rows stay static.
// CHECK-LABEL: func.func @dynamic_value_channels
// CHECK: attn.tile_online_update {{.*}} : memref<16x32xf32>, memref<16xf32>, memref<16xf32>, memref<16x?xf32>
// CHECK: attn.tile_store {{.*}} : memref<16x?xf32>, memref<16xf32>, memref<16xf32> -> memref<?x?x?x?xf32>
func.func @dynamic_value_channels(%o: memref<?x?x?x?xf32>, %x: index) {
  %s = memref.alloca() : memref<16x32xf32>
  %m = memref.alloca() : memref<16xf32>
  %l = memref.alloca() : memref<16xf32>
  %acc = memref.alloca(%x) : memref<16x?xf32>
  attn.tile_online_update %s, %m, %l, %acc
      : memref<16x32xf32>, memref<16xf32>, memref<16xf32>, memref<16x?xf32>
  attn.tile_store %acc, %l, %m -> %o[%x, %x, %x] {norm = #attn.norm<softmax>}
      : memref<16x?xf32>, memref<16xf32>, memref<16xf32> -> memref<?x?x?x?xf32>
  return
}

// -----

// CHECK-LABEL: func.func @split_store_and_combine
// CHECK: attn.tile_store %{{.*}}, %{{.*}}, %{{.*}} -> %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}], %{{.*}} split %{{.*}} into %{{.*}}, %{{.*}} {norm = #attn.norm<softmax>, pack = 4 : i64}
// CHECK: attn.combine %{{.*}}, %{{.*}} -> %{{.*}}, %{{.*}} : memref<?x?x?x?x64xf32>, memref<?x?x?x?xf32> -> memref<?x?x?x64xbf16>, memref<?x?x?xf32>
func.func @split_store_and_combine(%acc: memref<16x64xf32>, %l: memref<16xf32>, %m: memref<16xf32>,
    %o: memref<?x?x?x64xbf16>, %lse: memref<?x?x?xf32>, %po: memref<?x?x?x?x64xf32>,
    %pl: memref<?x?x?x?xf32>, %b: index, %h: index, %i0: index, %s: index) {
  attn.tile_store %acc, %l, %m -> %o[%b, %h, %i0], %lse split %s into %po, %pl
      {norm = #attn.norm<softmax>, pack = 4 : i64}
      : memref<16x64xf32>, memref<16xf32>, memref<16xf32> -> memref<?x?x?x64xbf16>, memref<?x?x?xf32>, memref<?x?x?x?x64xf32>, memref<?x?x?x?xf32>
  attn.combine %po, %pl -> %o, %lse : memref<?x?x?x?x64xf32>, memref<?x?x?x?xf32> -> memref<?x?x?x64xbf16>, memref<?x?x?xf32>
  return
}

// Paged, quantised KV: page pools of 16 tokens, i8 keys with per-token scales, e4m3 values with
// per-head scales.
// CHECK-LABEL: func.func @paged_quantised
// CHECK: attn.attention %{{.*}}, %{{.*}}, %{{.*}} pages %{{.*}} kscale %{{.*}} vscale %{{.*}} -> %{{.*}}, %{{.*}} {group = 4 : i64, k_scale_axes = array<i64: 0, 2, 1>, norm = #attn.norm<softmax>, page_size = 16 : i64, v_scale_axes = array<i64: 1>}
func.func @paged_quantised(%q: memref<?x?x?x128xbf16>, %k: memref<?x?x16x128xi8>,
    %v: memref<?x?x16x128xf8E4M3FN>, %table: memref<?x?xi32>, %ks: memref<?x?x?xf32>,
    %vs: memref<?xf32>, %o: memref<?x?x?x128xbf16>, %lse: memref<?x?x?xf32>) {
  attn.attention %q, %k, %v pages %table kscale %ks vscale %vs -> %o, %lse
      {group = 4 : i64, norm = #attn.norm<softmax>, page_size = 16 : i64,
       k_scale_axes = array<i64: 0, 2, 1>, v_scale_axes = array<i64: 1>}
      : memref<?x?x?x128xbf16>, memref<?x?x16x128xi8>, memref<?x?x16x128xf8E4M3FN>
        pages memref<?x?xi32> kscale memref<?x?x?xf32> vscale memref<?xf32>
      -> memref<?x?x?x128xbf16>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// Packed int4 KV: 64 bytes of vector<2xi4> hold the 128 channels of a key; group scales.
// CHECK-LABEL: func.func @packed_int4
// CHECK: attn.attention %{{.*}}, %{{.*}}, %{{.*}} kscale %{{.*}} vscale %{{.*}} -> %{{.*}}, %{{.*}} {{.*}}k_scale_group = 32 : i64{{.*}} : memref<?x?x?x128xbf16>, memref<?x?x?x64xvector<2xi4>>, memref<?x?x?x64xvector<2xi4>>
func.func @packed_int4(%q: memref<?x?x?x128xbf16>, %k: memref<?x?x?x64xvector<2xi4>>,
    %v: memref<?x?x?x64xvector<2xi4>>, %ks: memref<?x?x?x?xf16>, %vs: memref<?x?x?x?xf16>,
    %o: memref<?x?x?x128xbf16>, %lse: memref<?x?x?xf32>) {
  attn.attention %q, %k, %v kscale %ks vscale %vs -> %o, %lse
      {group = 4 : i64, norm = #attn.norm<softmax>,
       k_scale_axes = array<i64: 0, 1, 2, 3>, k_scale_group = 32 : i64,
       v_scale_axes = array<i64: 0, 1, 2, 3>, v_scale_group = 32 : i64}
      : memref<?x?x?x128xbf16>, memref<?x?x?x64xvector<2xi4>>, memref<?x?x?x64xvector<2xi4>>
        kscale memref<?x?x?x?xf16> vscale memref<?x?x?x?xf16>
      -> memref<?x?x?x128xbf16>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// Linear attention's feature maps: elementwise on q's and k's elements before the dot.
// CHECK-LABEL: func.func @feature_maps
// CHECK: score {
// CHECK: } feature_q {
// CHECK-NEXT: ^bb0(%{{.*}}: f32):
// CHECK: math.exp
// CHECK: } feature_k {
// CHECK: arith.maximumf
func.func @feature_maps(%q: memref<?x?x?x64xbf16>, %o: memref<?x?x?x64xbf16>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xbf16>, memref<?x?x?x64xbf16>, memref<?x?x?x64xbf16> -> memref<?x?x?x64xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } feature_q {
    ^bb0(%x: f32):
      %e = math.exp %x : f32
      attn.yield %e : f32
    } feature_k {
    ^bb0(%x: f32):
      %c0 = arith.constant 0.0 : f32
      %r = arith.maximumf %x, %c0 : f32
      attn.yield %r : f32
    }
  return
}

// A recurrence: a per-step decay on attn.attention, and the chunked form's attn.chunk_step.
// CHECK-LABEL: func.func @recurrence
// CHECK: } decay {
// CHECK-NEXT: ^bb0(%{{.*}}: index, %{{.*}}: index, %{{.*}}: index):
// CHECK: attn.chunk_step %{{.*}}, %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] state %{{.*}} -> %{{.*}} {chunk = 64 : i64} : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<64x64xf32> -> memref<?x?x?x64xf32> score {
// CHECK: } decay {
func.func @recurrence(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %s: memref<64x64xf32>, %n: index) {
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
      %c = arith.constant 0.9 : f32
      attn.yield %c : f32
    }
  attn.chunk_step %q, %q, %q[%n, %n, %n, %n] state %s -> %o {chunk = 64 : i64}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<64x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } decay {
    ^bb0(%b: index, %h: index, %i: index):
      %c = arith.constant 0.9 : f32
      attn.yield %c : f32
    }
  return
}

// The backward: recomputed P, score_grad with a param gradient.
// CHECK-LABEL: func.func @attention_grad
// CHECK: attn.attention_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} lse %{{.*}} -> %{{.*}}, %{{.*}}, %{{.*}} {group = 2 : i64, norm = #attn.norm<softmax>}
// CHECK: score {
// CHECK: } mask {
// CHECK: } score_grad {
// CHECK: attn.accumulate %{{.*}} -> %{{.*}}[%{{.*}}] : memref<?xf32>
// CHECK: attn.yield
func.func @attention_grad(%q: memref<?x8x?x64xbf16>, %k: memref<?x4x?x64xbf16>,
                          %v: memref<?x4x?x64xbf16>, %o: memref<?x8x?x64xbf16>,
                          %lse: memref<?x8x?xf32>, %do: memref<?x8x?x64xbf16>,
                          %dq: memref<?x8x?x64xbf16>, %dk: memref<?x4x?x64xbf16>,
                          %dv: memref<?x4x?x64xbf16>, %slope: memref<?xf32>, %dslope: memref<?xf32>) {
  attn.attention_grad %q, %k, %v, %o, %do lse %lse -> %dq, %dk, %dv {group = 2 : i64, norm = #attn.norm<softmax>} : memref<?x8x?x64xbf16>, memref<?x4x?x64xbf16>, memref<?x4x?x64xbf16>, memref<?x8x?x64xbf16>, memref<?x8x?x64xbf16> lse memref<?x8x?xf32> -> memref<?x8x?x64xbf16>, memref<?x4x?x64xbf16>, memref<?x4x?x64xbf16> score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    %m = memref.load %slope[%h] : memref<?xf32>
    %s = arith.mulf %dot, %m : f32
    attn.yield %s : f32
  } mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c = arith.cmpi ule, %j, %i : index
    attn.yield %c : i1
  } score_grad {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %g: f32):
    %m = memref.load %slope[%h] : memref<?xf32>
    %gm = arith.mulf %g, %dot : f32
    attn.accumulate %gm -> %dslope[%h] : memref<?xf32>
    %d = arith.mulf %g, %m : f32
    attn.yield %d : f32
  }
  return
}

// Several scores: the second score's q and k, its lse, the mix of the rows and the score
// regions of the others; at the tiled level the store's extra accumulators and statistics.
// CHECK-LABEL: func.func @several_scores
// CHECK: attn.attention %{{.*}}, %{{.*}}, %{{.*}} scores %{{.*}} by %{{.*}} -> %{{.*}}, %{{.*}} lses %{{.*}} {group = 1 : i64, norm = #attn.norm<softmax>}
// CHECK: mix {
// CHECK: ^bb0(%{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: f32, %{{.*}}: f32):
// CHECK: } more_scores {
// CHECK: attn.tile_store %{{.*}}, %{{.*}}, %{{.*}} scores(%{{.*}}) (%{{.*}}) (%{{.*}}) -> %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}], %{{.*}} lses %{{.*}} {norm = #attn.norm<softmax>}
// CHECK: mix {
func.func @several_scores(%q: memref<?x?x?x64xbf16>, %q2: memref<?x?x?x64xbf16>,
                          %o: memref<?x?x?x64xbf16>, %lse: memref<?x?x?xf32>,
                          %lse2: memref<?x?x?xf32>, %acc: memref<16x64xf32>, %acc2: memref<16x64xf32>,
                          %l: memref<16xf32>, %m: memref<16xf32>, %l2: memref<16xf32>,
                          %m2: memref<16xf32>, %x: index) {
  attn.attention %q, %q, %q scores %q2 by %q2 -> %o, %lse lses %lse2 {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xbf16>, memref<?x?x?x64xbf16>, memref<?x?x?x64xbf16> scores memref<?x?x?x64xbf16> by memref<?x?x?x64xbf16>
     -> memref<?x?x?x64xbf16>, memref<?x?x?xf32> lses memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mix {
    ^bb0(%b: index, %h: index, %i: index, %e: index, %y1: f32, %y2: f32):
      %r = arith.subf %y1, %y2 : f32
      attn.yield %r : f32
    } more_scores {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  attn.tile_store %acc, %l, %m scores(%acc2) (%l2) (%m2) -> %o[%x, %x, %x], %lse lses %lse2 {norm = #attn.norm<softmax>}
      : memref<16x64xf32>, memref<16xf32>, memref<16xf32> scores(memref<16x64xf32>) (memref<16xf32>) (memref<16xf32>)
     -> memref<?x?x?x64xbf16>, memref<?x?x?xf32> lses memref<?x?x?xf32> mix {
    ^bb0(%b: index, %h: index, %i: index, %e: index, %y1: f32, %y2: f32):
      %r = arith.subf %y1, %y2 : f32
      attn.yield %r : f32
    }
  return
}

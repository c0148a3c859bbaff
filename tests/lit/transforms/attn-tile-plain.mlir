// attn-tile's plain-tile (the CUDA pipeline's sm_90a default, 128): plain softmax attention --
// one score, the dot or dot * C (constant expressions folded: 1 / sqrt(128)), no mask or the
// causal one,
// head and value dims of 96-128 -- takes plain-tile rows and keys per tile (128 x 128, which
// attn-gpu-warp-specialize gives two consumer warpgroups); a soft-capped score, a window mask,
// a head dim of 64 or a single query keep block-q x block-k.
// RUN: attnc-opt %s --split-input-file --attn-tile="block-q=64 block-k=64 plain-tile=128" | FileCheck %s
// RUN: attnc-opt %s --split-input-file --attn-tile="block-q=64 block-k=64" | FileCheck %s --check-prefix=OFF

// CHECK-LABEL: func.func @causal_scaled
// CHECK: memref.alloca() : memref<128x128xf32>
// OFF-LABEL: func.func @causal_scaled
// OFF: memref.alloca() : memref<64x64xf32>
func.func @causal_scaled(%q: memref<?x?x?x128xbf16>, %o: memref<?x?x?x128xbf16>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x128xbf16>, memref<?x?x?x128xbf16>, memref<?x?x?x128xbf16> -> memref<?x?x?x128xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      %c128 = arith.constant 128 : index
      %n = arith.index_cast %c128 : index to i64
      %f = arith.sitofp %n : i64 to f32
      %s = math.rsqrt %f : f32
      %r = arith.mulf %dot, %s : f32
      attn.yield %r : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c = arith.cmpi sle, %j, %i : index
      attn.yield %c : i1
    }
  return
}

// -----

// CHECK-LABEL: func.func @raw_dot
// CHECK: memref.alloca() : memref<128x128xf32>
func.func @raw_dot(%q: memref<?x?x?x96xbf16>, %o: memref<?x?x?x96xbf16>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x96xbf16>, memref<?x?x?x96xbf16>, memref<?x?x?x96xbf16> -> memref<?x?x?x96xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

// CHECK-LABEL: func.func @softcap
// CHECK: memref.alloca() : memref<64x64xf32>
func.func @softcap(%q: memref<?x?x?x128xbf16>, %o: memref<?x?x?x128xbf16>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x128xbf16>, memref<?x?x?x128xbf16>, memref<?x?x?x128xbf16> -> memref<?x?x?x128xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      %t = math.tanh %dot : f32
      attn.yield %t : f32
    }
  return
}

// -----

// CHECK-LABEL: func.func @window
// CHECK: memref.alloca() : memref<64x64xf32>
func.func @window(%q: memref<?x?x?x128xbf16>, %o: memref<?x?x?x128xbf16>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x128xbf16>, memref<?x?x?x128xbf16>, memref<?x?x?x128xbf16> -> memref<?x?x?x128xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c256 = arith.constant 256 : index
      %lo = arith.subi %i, %c256 : index
      %c = arith.cmpi sge, %j, %lo : index
      attn.yield %c : i1
    }
  return
}

// -----

// CHECK-LABEL: func.func @d64
// CHECK: memref.alloca() : memref<64x64xf32>
func.func @d64(%q: memref<?x?x?x64xbf16>, %o: memref<?x?x?x64xbf16>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xbf16>, memref<?x?x?x64xbf16>, memref<?x?x?x64xbf16> -> memref<?x?x?x64xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

// CHECK-LABEL: func.func @one_query
// CHECK: memref.alloca() : memref<64x64xf32>
func.func @one_query(%q: memref<?x?x1x128xbf16>, %k: memref<?x?x?x128xbf16>, %o: memref<?x?x1x128xbf16>) {
  attn.attention %q, %k, %k -> %o {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x1x128xbf16>, memref<?x?x?x128xbf16>, memref<?x?x?x128xbf16> -> memref<?x?x1x128xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

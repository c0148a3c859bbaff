// attn-tile's narrow-block-k: a variant whose head and value dims are static multiples of 16
// of at least 64 (what wgmma reads from the 128-byte swizzle: 96, 128, ...) keeps block-k keys
// per tile; one with another head or value dim (40 here, or a dynamic one) takes narrow-block-k
// (sm_90a runs it on mma.sync, where 32 keys spill less than 64). Without the option every
// variant takes block-k.
// RUN: attnc-opt %s --split-input-file --attn-tile="block-q=64 block-k=64 narrow-block-k=32" | FileCheck %s
// RUN: attnc-opt %s --split-input-file --attn-tile="block-q=64 block-k=64" | FileCheck %s --check-prefix=WIDE

// CHECK-LABEL: func.func @d128
// CHECK: memref.alloca() : memref<64x64xf32>
// WIDE-LABEL: func.func @d128
// WIDE: memref.alloca() : memref<64x64xf32>
func.func @d128(%q: memref<?x?x?x128xbf16>, %o: memref<?x?x?x128xbf16>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x128xbf16>, memref<?x?x?x128xbf16>, memref<?x?x?x128xbf16> -> memref<?x?x?x128xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

// CHECK-LABEL: func.func @d96wide
// CHECK: memref.alloca() : memref<64x64xf32>
// WIDE-LABEL: func.func @d96wide
// WIDE: memref.alloca() : memref<64x64xf32>
func.func @d96wide(%q: memref<?x?x?x96xbf16>, %o: memref<?x?x?x96xbf16>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x96xbf16>, memref<?x?x?x96xbf16>, memref<?x?x?x96xbf16> -> memref<?x?x?x96xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

// CHECK-LABEL: func.func @d40
// CHECK: memref.alloca() : memref<64x32xf32>
// WIDE-LABEL: func.func @d40
// WIDE: memref.alloca() : memref<64x64xf32>
func.func @d40(%q: memref<?x?x?x40xbf16>, %o: memref<?x?x?x40xbf16>) {
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x40xbf16>, memref<?x?x?x40xbf16>, memref<?x?x?x40xbf16> -> memref<?x?x?x40xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

// A wide head with a value dim of 40: narrow too (V is wgmma's other swizzled tile).
// CHECK-LABEL: func.func @dv40
// CHECK: memref.alloca() : memref<64x32xf32>
func.func @dv40(%q: memref<?x?x?x128xbf16>, %v: memref<?x?x?x40xbf16>, %o: memref<?x?x?x40xbf16>) {
  attn.attention %q, %q, %v -> %o {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x128xbf16>, memref<?x?x?x128xbf16>, memref<?x?x?x40xbf16> -> memref<?x?x?x40xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

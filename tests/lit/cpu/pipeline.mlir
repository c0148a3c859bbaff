// The whole host pipeline: nothing of attn, scf or memref survives, and the C interface is there.
// RUN: attnc-opt %s --pass-pipeline='builtin.module(attn-to-tiled{block-q=8 block-k=8},attn-cpu-to-llvm)' \
// RUN:   | FileCheck %s --implicit-check-not=attn. --implicit-check-not=scf. --implicit-check-not=memref.
// RUN: attnc-opt %s --pass-pipeline='builtin.module(attn-to-tiled{online-softmax=false})' | FileCheck %s --check-prefix=TWOPASS

// CHECK: llvm.func @softcap
// CHECK: llvm.intr.tanh
// CHECK: llvm.func @_mlir_ciface_softcap
// TWOPASS: attn.tile_row_max
// TWOPASS: attn.tile_exp_sum
func.func @softcap(%q: memref<?x?x?x32xbf16>, %o: memref<?x?x?x32xbf16>, %lse: memref<?x?x?xf32>)
    attributes {llvm.emit_c_interface} {
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x32xbf16>, memref<?x?x?x32xbf16>, memref<?x?x?x32xbf16> -> memref<?x?x?x32xbf16>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      %c = arith.constant 30.0 : f32
      %x = arith.divf %dot, %c : f32
      %t = math.tanh %x : f32
      %s = arith.mulf %t, %c : f32
      attn.yield %s : f32
    }
  return
}

// attn-cpu-lower-tiles of attn.tile_key_range: the interval evaluation of the mask where it
// stands. The query side (i in [i0, min(i0 + 31, q_len - 1)]) once: doc_q's min and max over
// the rows; then one loop over the keys with doc_k[j] exact, folding (first, end, full first,
// full end, full count); then the results: first rounded down to a key tile of 16, the full
// range only if its count fills it.
// RUN: attnc-opt %s --split-input-file --attn-cpu-lower-tiles | FileCheck %s --implicit-check-not=attn.

// CHECK-LABEL: func.func @document_range
// CHECK: %[[ILO:.*]] = arith.divui %[[I0:.*]], %c1
// CHECK: %[[IHI:.*]] = arith.minui
// CHECK: %[[Q:.*]]:2 = scf.for %[[R:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[MN:.*]] = %{{.*}}, %[[MX:.*]] = %{{.*}}) -> (i64, i64) {
// CHECK:   %[[V:.*]] = memref.load %arg0[%{{.*}}, %[[R]]] : memref<?x?xi32>
// CHECK:   %[[V64:.*]] = arith.extsi %[[V]] : i32 to i64
// CHECK:   arith.minsi %[[MN]], %[[V64]]
// CHECK:   arith.maxsi %[[MX]], %[[V64]]
// CHECK: %[[K:.*]]:5 = scf.for %[[J:.*]] = %c0{{.*}} to %[[KV:.*]] step %c1{{.*}} iter_args({{.*}}) -> (index, index, index, index, index) {
// CHECK:   memref.load %arg1[%{{.*}}, %{{.*}}] : memref<?x?xi32>
// doc_q[i] == doc_k[j] may hold when the key's id lies in [min, max] ...
// CHECK:   arith.cmpi sle, %{{.*}}, %[[Q]]#1 : i64
// CHECK:   arith.cmpi sle, %[[Q]]#0, %{{.*}} : i64
// CHECK:   scf.yield
// CHECK: arith.divui %[[K]]#0, %c16
// CHECK: arith.subi %[[K]]#3, %[[K]]#2
// CHECK: arith.cmpi eq, %{{.*}}, %[[K]]#4
// CHECK: return
func.func @document_range(%doc_q: memref<?x?xi32>, %doc_k: memref<?x?xi32>, %b: index, %h: index,
                          %i0: index, %q_len: index, %kv_len: index) -> (index, index, index, index) {
  %lo, %hi, %flo, %fhi = attn.tile_key_range [%b, %h, %i0] queries %q_len keys %kv_len {block_k = 16 : i64, rows = 32 : i64} mask {
  ^bb0(%bb: index, %hh: index, %i: index, %j: index):
    %dq = memref.load %doc_q[%bb, %i] : memref<?x?xi32>
    %dk = memref.load %doc_k[%bb, %j] : memref<?x?xi32>
    %same = arith.cmpi eq, %dq, %dk : i32
    %causal = arith.cmpi sle, %j, %i : index
    %both = arith.andi %same, %causal : i1
    attn.yield %both : i1
  }
  return %lo, %hi, %flo, %fhi : index, index, index, index
}

// -----

// A mask the intervals cannot bound (a float param): every key may be allowed, none must.
// CHECK-LABEL: func.func @opaque
// CHECK: scf.for
// CHECK-NOT: memref.load
// CHECK: return
func.func @opaque(%w: memref<?xf32>, %b: index, %i0: index, %n: index) -> (index, index) {
  %lo, %hi, %flo, %fhi = attn.tile_key_range [%b, %b, %i0] queries %n keys %n {block_k = 16 : i64, rows = 32 : i64} mask {
  ^bb0(%bb: index, %hh: index, %i: index, %j: index):
    %x = memref.load %w[%j] : memref<?xf32>
    %z = arith.constant 0.0 : f32
    %pos = arith.cmpf ogt, %x, %z : f32
    attn.yield %pos : i1
  }
  return %lo, %hi : index, index
}

// -----

// A block layout read at computed indices (specs/block_sparse.attn): i / 128 and j / 128 by
// the division's corners (a positive divisor), clamped by the layout's extents (memref.dim of
// the param), and the load exact where both indices are one in-range value at run time (a
// query tile inside one block row), else unknown: read at 0 and widened to the i32 range.
// CHECK-LABEL: func.func @block_layout
// CHECK: %[[ILO:.*]] = arith.divui %{{.*}}, %c1
// CHECK: %[[POS:.*]] = arith.cmpi sgt, %{{.*}}, %c0_i64
// CHECK: arith.divsi
// CHECK: memref.dim %arg0, %c2
// CHECK: %[[K:.*]]:5 = scf.for
// CHECK:   memref.dim %arg0, %c3
// CHECK:   %[[ONE:.*]] = arith.cmpi eq
// CHECK:   %[[V:.*]] = memref.load %arg0[
// CHECK:   arith.select %{{.*}}, %{{.*}}, %c-2147483648_i64 : i64
// CHECK:   scf.yield
// CHECK: return
func.func @block_layout(%layout: memref<?x?x?x?xi32>, %b: index, %h: index, %i0: index,
                        %q_len: index, %kv_len: index) -> (index, index, index, index) {
  %lo, %hi, %flo, %fhi = attn.tile_key_range [%b, %h, %i0] queries %q_len keys %kv_len {block_k = 16 : i64, rows = 32 : i64} mask {
  ^bb0(%bb: index, %hh: index, %i: index, %j: index):
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c3 = arith.constant 3 : index
    %c128 = arith.constant 128 : index
    %qb = arith.divsi %i, %c128 : index
    %kb = arith.divsi %j, %c128 : index
    %nq = memref.dim %layout, %c2 : memref<?x?x?x?xi32>
    %nk = memref.dim %layout, %c3 : memref<?x?x?x?xi32>
    %lq = arith.subi %nq, %c1 : index
    %lk = arith.subi %nk, %c1 : index
    %q0 = arith.maxsi %qb, %c0 : index
    %q1 = arith.minsi %q0, %lq : index
    %k0 = arith.maxsi %kb, %c0 : index
    %k1 = arith.minsi %k0, %lk : index
    %x = memref.load %layout[%bb, %hh, %q1, %k1] : memref<?x?x?x?xi32>
    %z = arith.constant 0 : i32
    %on = arith.cmpi ne, %x, %z : i32
    attn.yield %on : i1
  }
  return %lo, %hi, %flo, %fhi : index, index, index, index
}

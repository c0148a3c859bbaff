// CombineToNVVM.cpp: attn.combine in a kernel merges split-KV partials, one block per row
// (b, h, i) = (block z, y, x): with more than one split, lse = log(sum_s exp(lse_s)) (base 2,
// max first) written by thread 0, and each value channel (threads strided) the weighted sum.
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn.

// CHECK-LABEL: gpu.func @v_combine
// CHECK: %[[S:.*]] = memref.dim %arg0, %c0
// CHECK: %[[MANY:.*]] = arith.cmpi ugt, %[[S]], %c1
// CHECK: scf.if %[[MANY]] {
// CHECK-DAG: gpu.block_id  x
// CHECK-DAG: gpu.block_id  z
// CHECK: scf.for {{.*}} iter_args
// CHECK: arith.maximumf
// CHECK: nvvm.inline_ptx "ex2.approx.ftz.f32 $0, $1;"
// CHECK: nvvm.inline_ptx "lg2.approx.f32 $0, $1;"
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: gpu.return
gpu.module @m {
  gpu.func @v_combine(%p: memref<?x?x?x?x?xf32>, %l: memref<?x?x?x?xf32>,
                      %o: memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>,
                      %lse: memref<?x?x?xf32>) kernel attributes {known_block_size = array<i32: 128, 1, 1>} {
    attn.combine %p, %l -> %o, %lse : memref<?x?x?x?x?xf32>, memref<?x?x?x?xf32> -> memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>, memref<?x?x?xf32>
    gpu.return
  }
}

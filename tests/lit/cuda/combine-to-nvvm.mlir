// CombineToNVVM.cpp: attn.combine in a kernel merges split-KV (or ring) partials; blocks over
// (b, h) = (block z, y) and 16 rows i (block x), one warp per row at a time: with more than one
// split, lse = log(sum_s exp(lse_s)) (base 2, max first) written by lane 0, and each value
// channel (lanes strided by 32) the weighted sum.
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn.

// CHECK-LABEL: gpu.func @v_combine
// CHECK: %[[S:.*]] = memref.dim %arg0, %c0
// CHECK: %[[MANY:.*]] = arith.cmpi ugt, %[[S]], %c1
// CHECK: scf.if %[[MANY]] {
// CHECK-DAG: gpu.block_id  z
// CHECK-DAG: %[[WARP:.*]] = arith.divui %{{.*}}, %c32
// CHECK-DAG: %[[LANE:.*]] = arith.remui %{{.*}}, %c32
// CHECK-DAG: gpu.block_id  x
// CHECK: scf.for %{{.*}} = %[[WARP]] to %c16 step
// CHECK: arith.cmpi ult
// CHECK: scf.for {{.*}} iter_args
// CHECK: arith.maximumf
// CHECK: nvvm.inline_ptx "ex2.approx.ftz.f32 $0, $1;"
// CHECK: nvvm.inline_ptx "lg2.approx.f32 $0, $1;"
// CHECK: arith.cmpi eq, %[[LANE]], %c0
// CHECK: scf.for %{{.*}} = %[[LANE]] to %{{.*}} step %c32
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

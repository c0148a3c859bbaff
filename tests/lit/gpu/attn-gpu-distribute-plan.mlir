// attn-gpu-distribute of a flash function whose key loop attn-block-plan narrowed (document
// masking): attn.tile_key_range becomes its own kernel, <name>_plan, one block of 256 threads
// per (query tile, batch) (its mask does not read the head: one plan row for all heads), that
// opens its entry, scans the keys by thread, reduces by warp and folds each value in with an
// atomic; the attention kernel takes the plan as its last argument, reads its query tile's
// entry for the key loop's bounds and gives attn_gpu.score the full range's verdict.
// RUN: attnc %specs/document.attn --set d=128 --emit=tiled -o %t.mlir
// RUN: attnc-opt %t.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --implicit-check-not=attn.tile_

// CHECK-LABEL: gpu.func @document_plan(
// CHECK-SAME: %[[PLAN:arg[0-9]+]]: memref<?x?x?x5xi32>) kernel
// CHECK-SAME: grid = [<arg 0 dim 2 * 1 ceil_div 64>, <arg -1 dim 0 * 1 ceil_div 1>, <arg 0 dim 0 * 1 ceil_div 1>]
// CHECK-SAME: known_block_size = array<i32: 256, 1, 1>
// CHECK: %[[B:.*]] = gpu.block_id  z
// CHECK: %[[QT:.*]] = gpu.block_id  x
// CHECK: scf.if
// CHECK: memref.store %c2147483647_i32, %[[PLAN]][%[[B]], %c0, %[[QT]], %{{.*}}]
// CHECK: gpu.barrier
// The query side before the key loop: doc_q's min and max over the tile's rows.
// CHECK: scf.for {{.*}} -> (i64, i64)
// CHECK: memref.load %arg3
// CHECK: arith.minsi
// CHECK: arith.maxsi
// The keys, strided over the threads: (first, end, full first, full end, full count).
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c256 iter_args({{.*}}) -> (index, index, index, index, index)
// CHECK: memref.load %arg4
// CHECK: gpu.shuffle  xor
// CHECK: memref.atomic_rmw mins {{.*}} %[[PLAN]]
// CHECK: memref.atomic_rmw maxs {{.*}} %[[PLAN]]
// CHECK: memref.atomic_rmw mins {{.*}} %[[PLAN]]
// CHECK: memref.atomic_rmw maxs {{.*}} %[[PLAN]]
// CHECK: memref.atomic_rmw addi {{.*}} %[[PLAN]]
// CHECK: gpu.return

// CHECK-LABEL: gpu.func @document(
// CHECK-SAME: %[[APLAN:arg[0-9]+]]: memref<?x?x?x5xi32>) kernel
// CHECK: memref.load %[[APLAN]]
// CHECK: memref.load %[[APLAN]]
// CHECK: attn_gpu.score {{.*}} full %{{.*}} {fill
// CHECK: gpu.return

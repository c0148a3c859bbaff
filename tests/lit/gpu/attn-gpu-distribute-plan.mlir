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

// The backward (attn-grad's document_grad): a plan kernel over the dQ kernel's query tiles,
// launched first; every kernel takes D then the plan. The dQ kernel narrows its key loop by its
// entry; the dK/dV kernel's lanes scan the entries for the query tiles whose key range meets
// its key tile (a shuffle reduction per warp), then read each query tile's full range.
// RUN: attnc %specs/document.attn --set d=128 --backward --emit=tiled -o %tgrad.mlir
// RUN: attnc-opt %tgrad.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --check-prefix=GRAD
// RUN: attnc-opt %tgrad.mlir --attn-gpu-select-strategy --attn-gpu-distribute=block-plan=0 | FileCheck %s --check-prefix=NOPLAN
// GRAD-LABEL: gpu.func @document_grad_plan(
// GRAD-SAME: memref<?x?x?xf32>, %{{.*}}: memref<?x?x?x5xi32>) kernel
// GRAD: memref.atomic_rmw addi
// GRAD-LABEL: gpu.func @document_grad(
// GRAD-SAME: memref<?x?x?xf32>, %[[P:.*]]: memref<?x?x?x5xi32>) kernel
// GRAD: memref.load %[[P]]
// GRAD: attn_gpu.score {{.*}} full
// GRAD-LABEL: gpu.func @document_grad_dkdv(
// GRAD-SAME: memref<?x?x?xf32>, %[[Q:.*]]: memref<?x?x?x5xi32>) kernel
// GRAD: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c32{{.*}} iter_args({{.*}}) -> (index, index)
// GRAD: memref.load %[[Q]]
// GRAD: gpu.shuffle  xor
// GRAD: attn_gpu.score {{.*}} full
// NOPLAN-NOT: document_grad_plan
// NOPLAN-LABEL: gpu.func @document_grad(
// NOPLAN-SAME: %{{.*}}: memref<?x?x?xf32>) kernel

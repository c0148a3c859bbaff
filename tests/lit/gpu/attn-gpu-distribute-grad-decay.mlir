// attn-gpu-distribute, backward strategy of a forget gate (specs/forgetting_transformer.attn:
// the score of (i, j) gains cum(i) - cum(j), cum(p) the sum of log f up to p). The dQ kernel
// recomputes P with the cumulative log decays of its tiles (attn_gpu.log_decay_prefix: the
// query tile's once, the key tiles' continuing a running sum that starts at the loop's first
// position) and writes its query tile's into the forget gate's workspace [b, 3 h, i] (slot
// 2), from which the dK/dV kernel copies its key and query tiles' (key-major scores with
// `decay`). dS is summed over each row's keys (dQ kernel, slot 0) and each key's queries
// (dK/dV kernel, slot 1); a third kernel, one warp per (head, batch), scans the sums into the
// log decays' gradients (attn_gpu.decay_grad, the region attn-grad derived).
// RUN: attnc %specs/forgetting_transformer.attn --backward --emit=tiled -o %t.mlir
// RUN: attnc-opt %t.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --implicit-check-not=attn.attention_grad
// RUN: not attnc-opt %t.mlir --attn-gpu-select-strategy --attn-gpu-distribute=dq-atomic=true 2>&1 | FileCheck %s --check-prefix=ATOMIC

// The dQ kernel: the query tile's decays, the running sum before the first key tile, then per
// key tile its decays and the scores with both; each row's dS summed, stored after the loop.
// CHECK-LABEL: gpu.func @forgetting_transformer_grad(
// CHECK-SAME: %[[SUMS:arg12]]: memref<?x?x?xf32>)
// CHECK: %[[CK:.*]] = attn_gpu.alloc_shared : memref<32xf32, #gpu.address_space<workgroup>>
// CHECK-NEXT: %[[BASE:.*]] = attn_gpu.alloc_shared : memref<1xf32, #gpu.address_space<workgroup>>
// CHECK-NEXT: attn_gpu.log_decay_prefix %[[CQ:.*]][%{{.*}}, %{{.*}}, %[[I0:.*]]] below %{{.*}} : memref<64xf32
// CHECK: %[[HS:.*]] = memref.dim %arg0, %c1
// CHECK: %[[TWO:.*]] = arith.muli %[[HS]], %c2
// CHECK: %[[SLOT2:.*]] = arith.addi %{{.*}}, %[[TWO]]
// CHECK: %[[CUMS:.*]] = attn_gpu.load_rows %[[CQ]]
// CHECK: attn_gpu.store_rows %[[CUMS]] -> %[[SUMS]][%{{.*}}, %[[SLOT2]], %[[I0]]]
// CHECK: attn_gpu.log_decay_prefix %[[BASE]][{{.*}}] below %{{.*}} carry %[[BASE]] {total_only}
// CHECK: scf.for %[[J0:.*]] = %{{.*}} to %{{.*}} step %c32 iter_args(%{{.*}} = %{{.*}}, %[[ROWS:.*]] = %{{.*}}) -> (tensor<64x128xf32, #attn_gpu.frag<acc>>, tensor<64xf32, #attn_gpu.frag<rows>>)
// CHECK: attn_gpu.log_decay_prefix %[[CK]][%{{.*}}, %{{.*}}, %[[J0]]] below %{{.*}} carry %[[BASE]] :
// CHECK: attn_gpu.score %{{.*}} decay %[[CQ]], %[[CK]] {fill = 0xFF800000 : f32, log_decay}
// CHECK: %[[RS:.*]] = attn_gpu.row_reduce <sum> %[[DS:.*]] : tensor<64x32xf32, #attn_gpu.frag<acc>>
// CHECK: arith.addf %[[ROWS]], %[[RS]]
// CHECK: %[[RQ:.*]] = attn_gpu.quad_reduce <sum>
// CHECK: attn_gpu.store_rows %[[RQ]] -> %[[SUMS]][%{{.*}}, %{{.*}}, %[[I0]]]
// CHECK: gpu.return

// The dK/dV kernel: per query head of the group, the key tile's decays copied from slot 2,
// each query tile's beside its lse and D (one barrier); key-major scores; each key's dS summed
// over the queries and stored in slot 1, below both lengths. No scan.
// CHECK-LABEL: gpu.func @forgetting_transformer_grad_dkdv(
// CHECK-NOT: log_decay_prefix
// CHECK: scf.for %[[H:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// CHECK: attn_gpu.copy_rows %arg12[%{{.*}}, %{{.*}}, %[[J:.*]]] below %{{.*}} -> %[[CK2:.*]] {fill = 0.000000e+00 : f32}
// CHECK: scf.for %[[Q0:.*]] = %{{.*}} iter_args(%{{.*}}, %{{.*}}, %[[COLS:.*]] = %{{.*}}) -> ({{.*}}, tensor<64xf32, #attn_gpu.frag<rows>>)
// CHECK: attn_gpu.copy_rows %arg5[%{{.*}}, %[[H]], %[[Q0]]]
// CHECK: attn_gpu.copy_rows %arg11[%{{.*}}, %[[H]], %[[Q0]]]
// CHECK: attn_gpu.copy_rows %arg12[%{{.*}}, %{{.*}}, %[[Q0]]] below %{{.*}} -> %[[CQ2:.*]] {fill = 0.000000e+00 : f32}
// CHECK-NEXT: gpu.barrier
// CHECK: attn_gpu.score %{{.*}}[%{{.*}}, %[[H]], %[[Q0]], %[[J]]] below %{{.*}}, %{{.*}} decay %[[CQ2]], %[[CK2]] {fill = 0xFF800000 : f32, log_decay, transposed}
// CHECK: %[[CS:.*]] = attn_gpu.row_reduce <sum>
// CHECK: arith.addf %[[COLS]], %[[CS]]
// CHECK: %[[END:.*]] = arith.minui
// CHECK: %[[HEADS:.*]] = memref.dim %arg0, %c1
// CHECK: %[[AT:.*]] = arith.addi %[[H]], %[[HEADS]]
// CHECK: %[[CQR:.*]] = attn_gpu.quad_reduce <sum>
// CHECK: attn_gpu.store_rows %[[CQR]] -> %arg12[%{{.*}}, %[[AT]], %[[J]]] below %[[END]]
// CHECK: gpu.return

// The last kernel: grid (heads, batch, 1), one warp.
// CHECK-LABEL: gpu.func @forgetting_transformer_grad_decay(
// CHECK-SAME: attn_gpu.launch = #attn_gpu.launch<threads = 32, grid = [<arg 0 dim 1 * 1 ceil_div 1>, <arg 0 dim 0 * 1 ceil_div 1>, <arg -1 dim 0 * 1 ceil_div 1>]
// CHECK: %[[NH:.*]] = memref.dim %arg0, %c1
// CHECK: attn_gpu.decay_grad %arg12[%block_id_y, %block_id_x] of %[[NH]] below %{{.*}}, %{{.*}} : memref<?x?x?xf32> {
// CHECK-NEXT: ^bb0(%[[B:.*]]: index, %[[HH:.*]]: index, %[[T:.*]]: index, %[[G:.*]]: f32):
// CHECK-NEXT: attn_gpu.accumulate %[[G]] -> %arg10[%[[B]], %[[HH]], %[[T]]]

// ATOMIC: error: the CUDA backward of a forget gate takes one score with norm softmax and dQ in its own kernel: compile without --dq-atomic

// attn-gpu-distribute, backward strategy of several scores (tests/python/specs/
// several_scores_shared.attn: sa = (q, ka), sb = (q2, ka), sc = (q, kc), their rows mixed by
// y_a sigmoid(4 y_c) - w y_b). The first kernel recomputes the three rows in one key loop (each
// distinct K copied once with V), mixes them (attn_gpu.map_elements of the mix region),
// differentiates the mix by all three rows (attn_gpu.score_grad ... more, dw accumulated) and
// writes each dy_n and D_n into its slot of the workspaces [b, 3 h, i(, dv)] (slot n at head
// n h + head); then one dQ loop over the keys for all scores, each with its dy_n, sa's and sc's
// contributions summed into dq, sb's into dq2. The dK/dV kernel walks the scores per K buffer -- sa and sb
// into dka, then kc's tile replaces ka's for sc -- with dV carried across all three, each
// score reading its q, lse and the slots of D and dy.
// Arguments: q %arg0, ka %arg1, v %arg2, lse %arg5, q2 %arg6, kc %arg7, lse_sb %arg8, lse_sc
// %arg9, do %arg10, dq %arg11, dka %arg12, dv %arg13, dq2 %arg14, dkc %arg15, dw %arg16, then the
// workspaces D %arg17 and dy %arg18.
// RUN: attnc %S/../../python/specs/several_scores_shared.attn --backward --emit=tiled -o %t.mlir
// RUN: attnc-opt %t.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --implicit-check-not=attn.attention_grad
// RUN: not attnc-opt %t.mlir --attn-gpu-select-strategy --attn-gpu-distribute=dq-atomic=true 2>&1 | FileCheck %s --check-prefix=ATOMIC

// CHECK-LABEL: gpu.func @shared_inputs_grad(
// CHECK-SAME: %arg17: memref<?x?x?xf32>, %arg18: memref<?x?x?x32xbf16>) kernel
// CHECK-SAME: dy_width = 32
// CHECK-SAME: scores = 3
// CHECK: attn_gpu.copy_query_tile %arg0
// CHECK-NEXT: attn_gpu.copy_query_tile %arg6
// CHECK-NEXT: attn_gpu.copy_query_tile %arg10
// CHECK-NEXT: attn_gpu.copy_rows %arg5
// CHECK-NEXT: attn_gpu.copy_rows %arg8
// CHECK-NEXT: attn_gpu.copy_rows %arg9
// The rows y_a, y_b, y_c in one key loop: ka, kc and v copied once per key tile.
// CHECK: %[[Y:.*]]:3 = scf.for
// CHECK-NEXT: attn_gpu.copy_key_tile %arg1
// CHECK-NEXT: attn_gpu.copy_key_tile %arg7
// CHECK-NEXT: attn_gpu.copy_key_tile %arg2
// CHECK-NOT: attn_gpu.copy_key_tile
// CHECK: scf.yield
// CHECK: %[[M:.*]] = attn_gpu.map_elements %[[Y]]#0 and %[[Y]]#1, %[[Y]]#2
// CHECK: math.exp
// CHECK: %[[G:.*]] = attn_gpu.load_acc
// CHECK: %[[DYS:.*]]:3 = attn_gpu.score_grad %[[Y]]#0, %[[G]] more %[[Y]]#1, %[[Y]]#2
// CHECK: attn_gpu.accumulate %{{.*}} -> %arg16
// CHECK: attn_gpu.store_rows %{{.*}} -> %arg17[%{{.*}}, %block_id_y, %{{.*}}]
// CHECK: attn_gpu.store_tile %[[DYS]]#0 -> %arg18[%{{.*}}, %block_id_y, %{{.*}}]
// CHECK: %[[H1:.*]] = arith.addi %block_id_y,
// CHECK: attn_gpu.store_rows %{{.*}} -> %arg17[%{{.*}}, %[[H1]], %{{.*}}]
// CHECK: attn_gpu.store_tile %[[DYS]]#1 -> %arg18[%{{.*}}, %[[H1]], %{{.*}}]
// CHECK: %[[H2:.*]] = arith.addi %block_id_y,
// CHECK: attn_gpu.store_tile %[[DYS]]#2 -> %arg18[%{{.*}}, %[[H2]], %{{.*}}]
// Each dy_n from its slot into a shared tile of its own, then one dQ loop for all scores: ka,
// kc and v copied once per key tile; sa's and sc's dS K summed into dq's accumulator, sb's into
// dq2's.
// CHECK: gpu.barrier
// CHECK-NEXT: attn_gpu.copy_query_tile %arg18[%{{.*}}, %block_id_y, %{{.*}}]
// CHECK: attn_gpu.copy_query_tile %arg18[%{{.*}}, %[[S1:[0-9]+]], %{{.*}}]
// CHECK: attn_gpu.copy_query_tile %arg18[%{{.*}}, %[[S2:[0-9]+]], %{{.*}}]
// CHECK: %[[DQS:.*]]:2 = scf.for
// CHECK-NEXT: attn_gpu.copy_key_tile %arg1
// CHECK-NEXT: attn_gpu.copy_key_tile %arg7
// CHECK-NEXT: attn_gpu.copy_key_tile %arg2
// CHECK-NOT: attn_gpu.copy_key_tile
// CHECK: %[[A:.*]] = attn_gpu.mma %{{.*}}, %{{.*}}, %[[DQACC:arg[0-9]+]] :
// CHECK: %[[B:.*]] = attn_gpu.mma %{{.*}}, %{{.*}}, %[[DQ2ACC:arg[0-9]+]] :
// CHECK: %[[C:.*]] = attn_gpu.mma %{{.*}}, %{{.*}}, %[[A]] :
// CHECK: scf.yield %[[C]], %[[B]]
// CHECK: attn_gpu.store_tile %[[DQS]]#0 -> %arg11
// CHECK-NEXT: attn_gpu.store_tile %[[DQS]]#1 -> %arg14
// CHECK: gpu.return

// CHECK-LABEL: gpu.func @shared_inputs_grad_dkdv(
// CHECK-SAME: %arg17: memref<?x?x?xf32>, %arg18: memref<?x?x?x32xbf16>) kernel
// CHECK: attn_gpu.copy_key_tile %arg1{{.*}} -> %[[KT:[0-9]+]]
// CHECK-NEXT: attn_gpu.copy_key_tile %arg2
// sa: q, lse and slot 0 of dy and D.
// CHECK: %[[SA:.*]]:2 = scf.for %[[HA:.*]] = {{.*}} iter_args
// CHECK: attn_gpu.copy_query_tile %arg0[%{{.*}}, %[[HA]],
// CHECK-NEXT: attn_gpu.copy_query_tile %arg18[%{{.*}}, %[[HA]],
// CHECK: attn_gpu.copy_rows %arg5
// CHECK-NEXT: attn_gpu.copy_rows %arg17[%{{.*}}, %[[HA]],
// sb: q2, lse_sb and slot 1, into the same dK (ka).
// CHECK: %[[SB:.*]]:2 = scf.for %[[HB:[^ ]*]] = {{.*}} iter_args(%{{.*}} = %[[SA]]#0, %{{.*}} = %[[SA]]#1)
// CHECK: %[[SLOTB:.*]] = arith.addi %[[HB]],
// CHECK: attn_gpu.copy_query_tile %arg6[%{{.*}}, %[[HB]],
// CHECK-NEXT: attn_gpu.copy_query_tile %arg18[%{{.*}}, %[[SLOTB]],
// CHECK: attn_gpu.copy_rows %arg8
// CHECK-NEXT: attn_gpu.copy_rows %arg17[%{{.*}}, %[[SLOTB]],
// CHECK: attn_gpu.store_tile %[[SB]]#0 -> %arg12
// sc: kc's tile in ka's place, a fresh dK, dV carried.
// CHECK-NEXT: attn_gpu.copy_key_tile %arg7{{.*}} -> %[[KT]]
// CHECK: %[[SC:.*]]:2 = scf.for %{{.*}} iter_args(%{{.*}} = %cst{{.*}}, %{{.*}} = %[[SB]]#1)
// CHECK: attn_gpu.copy_rows %arg9
// CHECK: attn_gpu.store_tile %[[SC]]#0 -> %arg15
// CHECK-NEXT: attn_gpu.store_tile %[[SC]]#1 -> %arg13

// ATOMIC: error: the CUDA backward of several scores computes dQ in its own kernel: compile without --dq-atomic

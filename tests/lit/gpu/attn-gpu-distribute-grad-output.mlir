// attn-gpu-distribute, backward strategy through an output expression: gated attention's
// attn.attention_grad (output_grad: g sigmoid(gate), the gate's gradient accumulated). The
// dQ kernel takes the workspace dy [b, h, i, dv] after D; it walks its key tiles twice: first
// y = sum_j P v_j (P = exp(S - lse), no dP), then dy = output_grad(y, dout) (attn_gpu.score_grad
// over the value columns, below dv), D = rowsum(dy y) and dy into the workspace; then the
// usual dQ loop with dy, in registers, in dout's place (D reads dy rounded to bf16, as dP does). The dK/dV kernel reads dy from the
// workspace instead of dout; with dQ by atomics every kernel takes D, dQacc, then dy.
// RUN: attnc %specs/gated_attention.attn --backward --emit=tiled -o %t.mlir
// RUN: attnc-opt %t.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --implicit-check-not=attn.attention_grad
// RUN: attnc-opt %t.mlir --attn-gpu-select-strategy --attn-gpu-distribute=dq-atomic=true | FileCheck %s --check-prefix=ATOMIC

// CHECK: gpu.func @gated_attention_grad({{.*}}, %[[G:[a-z0-9]+]]: memref<?x?x?x128xf32, {{.*}}>, %[[D:.*]]: memref<?x?x?xf32>, %[[DY:.*]]: memref<?x?x?x128xbf16>) kernel
// CHECK-SAME: dy_width = 128
// CHECK: attn_gpu.copy_query_tile
// CHECK: attn_gpu.copy_query_tile %{{.*}} -> %[[DOUT:[0-9]+]]
// CHECK-NOT: attn_gpu.copy_query_tile
// CHECK: attn_gpu.copy_rows
// CHECK: %[[Y:.*]] = scf.for
// CHECK-COUNT-2: attn_gpu.copy_key_tile
// CHECK: attn_gpu.mma %{{.*}} {transpose_b}
// CHECK: attn_gpu.score
// CHECK: math.exp2
// CHECK-NOT: transpose_b
// CHECK: %[[P:.*]] = attn_gpu.to_operand
// CHECK: attn_gpu.mma %[[P]]
// CHECK: %[[GD:.*]] = attn_gpu.load_acc %[[DOUT]]
// CHECK: %[[DYV:.*]] = attn_gpu.score_grad %[[Y]], %[[GD]][{{.*}}] below %{{.*}}, %c128
// CHECK: math.exp
// CHECK: attn_gpu.accumulate %{{.*}} -> %[[G]]
// CHECK: %[[DYB:.*]] = arith.truncf %[[DYV]] : tensor<64x128xf32, #attn_gpu.frag<acc>> to tensor<64x128xbf16, #attn_gpu.frag<acc>>
// CHECK: %[[DYR:.*]] = arith.extf %[[DYB]]
// CHECK: %[[YY:.*]] = arith.mulf %[[DYR]], %[[Y]]
// CHECK: attn_gpu.row_reduce <sum> %[[YY]]
// CHECK: attn_gpu.store_rows %{{.*}} -> %[[D]]
// CHECK: attn_gpu.store_tile %[[DYV]] -> %[[DY]]
// CHECK: %[[DYOP:.*]] = attn_gpu.to_operand %[[DYV]]
// CHECK: scf.for
// CHECK: attn_gpu.mma %[[DYOP]], %{{.*}} {transpose_b}
// CHECK: attn_gpu.score_grad
// CHECK: gpu.func @gated_attention_grad_dkdv({{.*}}, %{{.*}}: memref<?x?x?xf32>, %[[DY2:.*]]: memref<?x?x?x128xbf16>) kernel
// CHECK: attn_gpu.copy_query_tile %[[DY2]]

// ATOMIC: gpu.func @gated_attention_grad({{.*}}, %{{.*}}: memref<?x?x?xf32>, %{{.*}}: memref<?x?x?x?xf32>, %[[DY:.*]]: memref<?x?x?x128xbf16>) kernel
// ATOMIC: scf.for
// ATOMIC: attn_gpu.score_grad
// ATOMIC: attn_gpu.store_tile %{{.*}} -> %[[DY]]
// ATOMIC: gpu.func @gated_attention_grad_dkdv({{.*}}, %{{.*}}: memref<?x?x?x?xf32>, %[[DY2:.*]]: memref<?x?x?x128xbf16>) kernel
// ATOMIC: attn_gpu.copy_query_tile %[[DY2]]
// ATOMIC: attn_gpu.atomic_add_product
// ATOMIC: gpu.func @gated_attention_grad_dq(

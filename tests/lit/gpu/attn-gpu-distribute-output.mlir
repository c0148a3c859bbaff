// attn-gpu-distribute of a flash kernel with an output map (specs/gated_attention.attn: an
// elementwise sigmoid gate): after the normalisation (acc * 1 / l), attn_gpu.map_elements applies
// the tile_store's output region to the finished rows, with the GQA packing of the store, and
// the store writes its result. attn-split-kv left the kernel whole: no splits, no combine kernel.
// RUN: attnc %specs/gated_attention.attn --emit=tiled -o %t.mlir
// RUN: attnc-opt %t.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --implicit-check-not=attn.tile_
// RUN: attnc %specs/gated_attention.attn --emit=tiled --no-pack-gqa -o %tunpacked.mlir
// RUN: attnc-opt %tunpacked.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --check-prefix=UNPACKED
// The backward through the gate: attn-gpu-distribute-grad-output.mlir.

// CHECK: gpu.func @gated_attention(
// CHECK-SAME: %[[G:arg3]]: memref<?x?x?x128xbf16
// CHECK-SAME: splits = false
// CHECK: %[[INV:.*]] = arith.divf
// CHECK: %[[O:.*]] = arith.mulf %{{.*}}, %{{.*}} : tensor<64x128xf32, #attn_gpu.frag<acc>>
// CHECK: %[[Y:.*]] = attn_gpu.map_elements %[[O]][%block_id_z, %{{.*}}, %{{.*}}, %c0{{.*}}] below %{{.*}} {pack = 4 : i64}
// CHECK-NEXT: ^bb0(%[[B:.*]]: index, %[[H:.*]]: index, %[[I:.*]]: index, %[[E:.*]]: index, %[[X:.*]]: f32):
// CHECK-NEXT: memref.load %[[G]][%[[B]], %[[I]], %[[H]], %[[E]]]
// CHECK: math.exp
// CHECK: arith.mulf %[[X]]
// CHECK: attn_gpu.yield
// CHECK: attn_gpu.store_tile %[[Y]] -> %arg4[{{.*}}] below %{{.*}} {pack = 4 : i64}
// CHECK-NOT: gpu.func @gated_attention_combine

// UNPACKED: attn_gpu.map_elements %{{.*}} below %{{[a-z0-9_]+}} : tensor<64x128xf32
// UNPACKED: attn_gpu.store_tile %{{.*}} below %{{[a-z0-9_]+}} : tensor<64x128xf32

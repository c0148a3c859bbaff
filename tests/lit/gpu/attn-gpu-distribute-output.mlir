// attn-gpu-distribute of a flash kernel with an output map (specs/gated_attention.attn: an
// elementwise sigmoid gate): after the normalisation (acc * 1 / l), attn_gpu.map_elements applies
// the tile_store's output region to the finished rows, with the GQA packing of the store. Split
// over the keys (attn-split-kv), the map applies only where a lone split writes the output
// itself; with several, the partial results are the plain rows, and the combine kernel, which
// takes all of the kernel's arguments (schedule all_arguments: the gate is a param), maps the
// merged rows (attn.combine's output region).
// RUN: attnc %specs/gated_attention.attn --emit=tiled -o %t.mlir
// RUN: attnc-opt %t.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --implicit-check-not=attn.tile_
// RUN: attnc %specs/gated_attention.attn --emit=tiled --no-pack-gqa -o %tunpacked.mlir
// RUN: attnc-opt %tunpacked.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --check-prefix=UNPACKED
// The backward through the gate: attn-gpu-distribute-grad-output.mlir.

// CHECK: gpu.func @gated_attention(
// CHECK-SAME: %[[G:arg3]]: memref<?x?x?x128xbf16
// CHECK-SAME: %[[PO:arg6]]: memref<?x?x?x?x?xf32
// CHECK-SAME: splits = true
// CHECK: %[[INV:.*]] = arith.divf
// CHECK: %[[O:.*]] = arith.mulf %{{.*}}, %{{.*}} : tensor<64x128xf32, #attn_gpu.frag<acc>>
// CHECK: scf.if
// CHECK-NEXT: attn_gpu.store_tile %[[O]] -> %[[PO]]
// CHECK: } else {
// CHECK: %[[Y:.*]] = attn_gpu.map_elements %[[O]][%block_id_z, %{{.*}}, %{{.*}}, %c0{{.*}}] below %{{.*}} {pack = 4 : i64}
// CHECK-NEXT: ^bb0(%[[B:.*]]: index, %[[H:.*]]: index, %[[I:.*]]: index, %[[E:.*]]: index, %[[X:.*]]: f32):
// CHECK-NEXT: memref.load %[[G]][%[[B]], %[[I]], %[[H]], %[[E]]]
// CHECK: math.exp
// CHECK: arith.mulf %[[X]]
// CHECK: attn_gpu.yield
// CHECK: attn_gpu.store_tile %[[Y]] -> %arg4[{{.*}}] below %{{.*}} {pack = 4 : i64}
// CHECK: gpu.func @gated_attention_combine(%{{.*}}, %{{.*}}, %{{.*}}, %[[CG:arg3]]: memref<?x?x?x128xbf16, {{.*}}>, %[[CO:arg4]]: {{.*}}, %[[CL:arg5]]: {{.*}}, %[[CPO:arg6]]: {{.*}}, %[[CPL:arg7]]: {{.*}})
// CHECK-SAME: grid = [<arg 6 dim 3 * 1 ceil_div 16>, <arg 6 dim 2 * 1 ceil_div 1>, <arg 6 dim 1 * 1 ceil_div 1>]
// CHECK-SAME: schedule = {all_arguments = 1 : i64}
// CHECK: attn.combine %[[CPO]], %[[CPL]] -> %[[CO]], %[[CL]]
// CHECK-SAME: output {
// CHECK-NEXT: ^bb0(%[[CB:.*]]: index, %[[CH:.*]]: index, %[[CI:.*]]: index, %[[CE:.*]]: index, %{{.*}}: f32):
// CHECK-NEXT: memref.load %[[CG]][%[[CB]], %[[CI]], %[[CH]], %[[CE]]]

// UNPACKED: attn_gpu.map_elements %{{.*}} below %{{[a-z0-9_]+}} : tensor<64x128xf32
// UNPACKED: attn_gpu.store_tile %{{.*}} below %{{[a-z0-9_]+}} : tensor<64x128xf32

// attn-gpu-distribute of a flash kernel with several scores (specs/diff_attention.attn:
// differential attention, GQA 4): each score's Q tile is loaded once, each iteration copies
// both K tiles in one stage, computes each score's S = Q K^T and online softmax with its own
// (m, l, acc) carried by the key loop, then both P V products on the one V tile. The epilogue
// normalises each accumulator, mixes the rows element by element (attn_gpu.map_elements of
// both, the store's mix region: y1 - lambda[h] y2), applies the rmsnorm and the output map,
// and stores each score's lse. attn-gpu-pipeline then streams both K tiles as one group.
// RUN: attnc %specs/diff_attention.attn --emit=tiled -o %t.mlir
// RUN: attnc-opt %t.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --implicit-check-not=attn.tile_
// RUN: attnc-opt %t.mlir --attn-gpu-select-strategy --attn-gpu-distribute --attn-gpu-pipeline | FileCheck %s --check-prefix=PIPE

// CHECK: gpu.func @diff_attention(%[[Q1:arg0]]: memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]{{.*}}>>, %[[K1:arg1]]: {{.*}}, %[[V:arg2]]: {{.*}}, %[[LAMBDA:arg3]]: {{.*}}, %{{.*}}: {{.*}}, %[[O:arg5]]: {{.*}}, %[[LSE1:arg6]]: {{.*}}, %[[Q2:arg7]]: memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]{{.*}}>>, %[[K2:arg8]]: memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]{{.*}}>>, %[[LSE2:arg9]]: {{.*}})
// CHECK-SAME: schedule = {block_k = 32 : i64, block_q = 64 : i64, warps = 4 : i64}
// CHECK: attn_gpu.copy_query_tile %[[Q1]]{{.*}} -> %[[QT1:[0-9]+]]
// CHECK: attn_gpu.copy_query_tile %[[Q2]]{{.*}} -> %[[QT2:[0-9]+]]
// CHECK: %[[QA1:.*]] = attn_gpu.load_operand %[[QT1]]
// CHECK: %[[QA2:.*]] = attn_gpu.load_operand %[[QT2]]
// CHECK: scf.for {{.*}} -> (tensor<64xf32, #attn_gpu.frag<rows>>, tensor<64xf32, #attn_gpu.frag<rows>>, tensor<64x128xf32, #attn_gpu.frag<acc>>, tensor<64xf32, #attn_gpu.frag<rows>>, tensor<64xf32, #attn_gpu.frag<rows>>, tensor<64x128xf32, #attn_gpu.frag<acc>>)
// CHECK: attn_gpu.copy_key_tile %[[K1]]{{.*}} -> %[[KT1:[0-9]+]]
// CHECK-NEXT: attn_gpu.copy_key_tile %[[K2]]{{.*}} -> %[[KT2:[0-9]+]]
// CHECK: attn_gpu.mma %[[QA1]], %[[KT1]], %{{.*}} {transpose_b}
// CHECK: %[[P1:.*]] = attn_gpu.to_operand
// CHECK: attn_gpu.mma %[[QA2]], %[[KT2]], %{{.*}} {transpose_b}
// CHECK: %[[P2:.*]] = attn_gpu.to_operand
// CHECK: attn_gpu.copy_key_tile %[[V]]{{.*}} -> %[[VT:[0-9]+]]
// CHECK: %[[ACC1:.*]] = attn_gpu.mma %[[P1]], %[[VT]], %{{.*}} :
// CHECK-NEXT: %[[ACC2:.*]] = attn_gpu.mma %[[P2]], %[[VT]], %{{.*}} :
// CHECK: scf.yield %{{.*}}, %{{.*}}, %[[ACC1]], %{{.*}}, %{{.*}}, %[[ACC2]]
// CHECK: %[[Y:.*]] = attn_gpu.map_elements %{{.*}} and %{{.*}}[%block_id_z, %{{.*}}, %{{.*}}, %c0{{.*}}] below %{{.*}} {pack = 4 : i64} : tensor<64x128xf32, #attn_gpu.frag<acc>> and tensor<64x128xf32, #attn_gpu.frag<acc>>
// CHECK-NEXT: ^bb0(%{{.*}}: index, %[[H:.*]]: index, %{{.*}}: index, %{{.*}}: index, %[[Y1:.*]]: f32, %[[Y2:.*]]: f32):
// CHECK-NEXT: %[[L:.*]] = memref.load %[[LAMBDA]][%[[H]]]
// CHECK-NEXT: %[[T:.*]] = arith.mulf %[[L]], %[[Y2]]
// CHECK-NEXT: arith.subf %[[Y1]], %[[T]]
// CHECK: attn_gpu.map_elements
// CHECK: attn_gpu.store_tile %{{.*}} -> %[[O]]
// CHECK-NEXT: attn_gpu.store_rows %{{.*}} -> %[[LSE1]]
// CHECK-NEXT: attn_gpu.store_rows %{{.*}} -> %[[LSE2]]

// PIPE: scf.for
// PIPE: attn_gpu.copy_key_tile %arg2{{.*}}
// PIPE-NEXT: nvgpu.device_async_create_group
// PIPE-NEXT: nvgpu.device_async_wait %{{.*}} {numGroups = 1 : i32}
// PIPE: attn_gpu.mma
// PIPE: gpu.barrier
// PIPE-NEXT: arith.addi %arg{{[0-9]+}}, %c32
// PIPE-NEXT: attn_gpu.copy_key_tile %arg1{{.*}}
// PIPE-NEXT: attn_gpu.copy_key_tile %arg8{{.*}}
// PIPE-NEXT: nvgpu.device_async_create_group
// PIPE-NEXT: nvgpu.device_async_wait %{{.*}} {numGroups = 1 : i32}

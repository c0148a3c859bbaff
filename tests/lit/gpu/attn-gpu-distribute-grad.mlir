// attn-gpu-distribute, backward strategy: ALiBi's attn.attention_grad (attn-grad's alibi_grad)
// -> two kernels in one module, each taking the workspace D [b, h, i] after the arguments.
// alibi_grad (grid: query tiles, heads, batch): Q, dO and O tiles, lse by query; D =
// rowsum(dO * O) written to the workspace; per key tile S = Q K^T, the score, dP = dO V^T,
// dS = P (dP - D), the score's derivative accumulating the slope gradient, dQ += dDot K.
// alibi_grad_dkdv (grid: key tiles, kv heads, batch): K and V once; for each head of the group
// and query tile, key-major: S^T = K Q^T under the transposed score, P^T from lse by column,
// dV += P^T dO, dP^T = V dO^T, dS^T with D by column, dK += dDot^T Q; no accumulation (each
// (i, j) adds to the slope once, in the dQ kernel).
// RUN: attnc %specs/alibi.attn --backward --emit=tiled -o %t.mlir
// RUN: attnc-opt %t.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --implicit-check-not=attn.attention_grad

// CHECK: gpu.module @alibi_grad_kernels
// CHECK: gpu.func @alibi_grad({{.*}}, %[[D:.*]]: memref<?x?x?xf32>) kernel attributes {attn_gpu.launch = #attn_gpu.launch<threads = 128, grid = [<arg 0 dim 2 * 1 ceil_div 64>, <arg 0 dim 1 * 1 ceil_div 1>, <arg 0 dim 0 * 1 ceil_div 1>]
// CHECK-COUNT-3: attn_gpu.copy_query_tile
// CHECK: attn_gpu.copy_rows %{{.*}} below %{{.*}} -> %[[LSE:.*]] {fill = 0x7F800000 : f32}
// CHECK: %[[DO:.*]] = attn_gpu.load_acc
// CHECK: %[[O:.*]] = attn_gpu.load_acc
// CHECK: arith.mulf %[[DO]], %[[O]]
// CHECK: attn_gpu.store_rows %{{.*}} -> %[[D]]
// CHECK: attn_gpu.load_rows %[[LSE]]
// CHECK: scf.for
// CHECK-COUNT-2: attn_gpu.copy_key_tile
// CHECK: %[[DOT:.*]] = attn_gpu.mma %{{.*}} {transpose_b}
// CHECK: %[[S:.*]] = attn_gpu.score %[[DOT]]
// CHECK: %[[DP:.*]] = attn_gpu.mma %{{.*}} {transpose_b}
// CHECK: math.exp2
// CHECK: arith.subf %[[DP]]
// CHECK: attn_gpu.score_grad %[[DOT]], %{{.*}}[%{{.*}}] below
// CHECK: attn_gpu.accumulate %{{.*}} -> %{{.*}}[%{{.*}}] : memref<?xf32, strided<[?], offset: ?>>
// CHECK: attn_gpu.to_operand
// CHECK: attn_gpu.mma %{{.*}}, %{{.*}}, %{{.*}} : tensor<64x32xbf16, #attn_gpu.frag<operand_a>>
// CHECK: attn_gpu.store_tile
// CHECK: gpu.func @alibi_grad_dkdv({{.*}}, %[[D2:.*]]: memref<?x?x?xf32>) kernel attributes {attn_gpu.launch = #attn_gpu.launch<threads = 128, grid = [<arg 1 dim 2 * 1 ceil_div 64>, <arg 1 dim 1 * 1 ceil_div 1>, <arg 1 dim 0 * 1 ceil_div 1>]
// CHECK-COUNT-2: attn_gpu.copy_key_tile
// CHECK: scf.for
// CHECK: scf.for
// CHECK-COUNT-2: attn_gpu.copy_query_tile
// CHECK: attn_gpu.copy_rows
// CHECK: attn_gpu.copy_rows %[[D2]]
// CHECK-COUNT-2: attn_gpu.load_columns
// CHECK: attn_gpu.score %{{.*}} {fill = 0xFF800000 : f32, transposed}
// CHECK: attn_gpu.score_grad %{{.*}} {transposed}
// CHECK-NOT: attn_gpu.accumulate
// CHECK: attn_gpu.store_tile
// CHECK: attn_gpu.store_tile

// dq-atomic=true: three kernels, each taking D and the f32 accumulator dQacc [b, h, i, d] after
// the arguments. alibi_grad computes D and writes zeros into its rows of dQacc; alibi_grad_dkdv
// keeps the slope's accumulation (it visits each (i, j) once), shares dS^T (16 bits) and adds
// dS^T K into the query tile's rows of dQacc by atomics, between barriers; alibi_grad_dq converts
// dQacc to dq.
// RUN: attnc-opt %t.mlir --attn-gpu-select-strategy --attn-gpu-distribute=dq-atomic=true | FileCheck %s --check-prefix=ATOMIC
// RUN: attnc %specs/cosine_attention.attn --backward --emit=tiled -o %t.cos.mlir
// RUN: attnc-opt %t.cos.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --check-prefix=NORMS
// ATOMIC: gpu.func @alibi_grad({{.*}}, %[[D:.*]]: memref<?x?x?xf32>, %[[ACC:.*]]: memref<?x?x?x?xf32>) kernel
// ATOMIC-COUNT-2: attn_gpu.copy_query_tile
// ATOMIC: attn_gpu.store_rows %{{.*}} -> %[[D]]
// ATOMIC-NOT: scf.for
// ATOMIC: attn_gpu.store_tile %{{.*}} -> %[[ACC]]
// ATOMIC: gpu.func @alibi_grad_dkdv({{.*}}, %[[ACC2:.*]]: memref<?x?x?x?xf32>) kernel
// ATOMIC: %[[K:.*]] = attn_gpu.alloc_shared : memref<64x136xbf16
// ATOMIC: %[[DS:.*]] = attn_gpu.alloc_shared : memref<64x40xbf16
// ATOMIC: attn_gpu.score_grad %{{.*}} {transposed}
// ATOMIC: attn_gpu.accumulate
// ATOMIC: attn_gpu.share_tile %{{.*}} -> %[[DS]]
// ATOMIC: attn_gpu.mma
// ATOMIC-NEXT: gpu.barrier
// ATOMIC-NEXT: attn_gpu.atomic_add_product %[[DS]], %[[K]] -> %[[ACC2]]
// ATOMIC-NEXT: gpu.barrier
// ATOMIC: gpu.func @alibi_grad_dq({{.*}}, %[[ACC3:.*]]: memref<?x?x?x?xf32>) kernel attributes {attn_gpu.launch = #attn_gpu.launch<threads = 128, grid = [<arg 0 dim 2 * 1 ceil_div 64>, <arg 0 dim 1 * 1 ceil_div 1>, <arg 0 dim 0 * 1 ceil_div 1>], {{.*}}dq_accum_width = 128
// ATOMIC: %[[T:.*]] = attn_gpu.load_tile %[[ACC3]]
// ATOMIC: attn_gpu.store_tile %[[T]]

// Row norms (cosine attention: dot(q, q) and dot(k, k) in the score). The dQ kernel squares
// the Q tile's rows once and each K tile's rows, scores with `norms`, takes the three adjoints
// from score_grad (dot, nq, nk), carries each row's sum of d(q.q) over the keys and adds
// 2 (sum) q at the end.
// NORMS-LABEL: gpu.func @cosine_attention_grad(
// NORMS: attn_gpu.row_squares %[[Q:.*]] -> %[[QN:.*]] : memref<64x136xbf16
// NORMS: %[[DQ:.*]]:2 = scf.for {{.*}} -> (tensor<64x128xf32, #attn_gpu.frag<acc>>, tensor<64xf32, #attn_gpu.frag<rows>>)
// NORMS: attn_gpu.row_squares %{{.*}} -> %[[KN:.*]] : memref<32x136xbf16
// NORMS-NEXT: gpu.barrier
// NORMS: attn_gpu.score %{{.*}} norms %[[QN]], %[[KN]]
// NORMS: %[[G:.*]]:3 = attn_gpu.score_grad %{{.*}} norms %[[QN]], %[[KN]] :
// NORMS: attn_gpu.row_reduce <sum> %[[G]]#1
// NORMS: %[[SUM:.*]] = attn_gpu.quad_reduce <sum> %[[DQ]]#1
// NORMS-NEXT: %[[TWICE:.*]] = arith.mulf %[[SUM]], %{{.*}}
// NORMS-NEXT: %[[QACC:.*]] = attn_gpu.load_acc %[[Q]] : memref<64x136xbf16, #gpu.address_space<workgroup>> -> tensor<64x128xf32, #attn_gpu.frag<acc>>
// NORMS-NEXT: %[[B:.*]] = attn_gpu.broadcast_rows %[[TWICE]]
// NORMS-NEXT: %[[T:.*]] = arith.mulf %[[B]], %[[QACC]]
// NORMS-NEXT: %[[OUT:.*]] = arith.addf %[[DQ]]#0, %[[T]]
// NORMS-NEXT: attn_gpu.store_tile %[[OUT]]
// The dK/dV kernel (key-major): the K tile's rows once, each query tile's, the transposed
// score and score_grad with norms, each key's sum of d(k.k) over the group's queries, and
// 2 (sum) k added to dK.
// NORMS-LABEL: gpu.func @cosine_attention_grad_dkdv(
// NORMS: attn_gpu.row_squares %[[K:.*]] -> %[[KN2:.*]] : memref<64x136xbf16
// NORMS: %[[HEADS:.*]]:3 = scf.for
// NORMS: attn_gpu.row_squares %{{.*}} -> %[[QN2:.*]] : memref<32x136xbf16
// NORMS: attn_gpu.score %{{.*}} norms %[[QN2]], %[[KN2]] {fill = 0xFF800000 : f32, transposed}
// NORMS: %[[G2:.*]]:3 = attn_gpu.score_grad %{{.*}} norms %[[QN2]], %[[KN2]] {transposed}
// NORMS: attn_gpu.row_reduce <sum> %[[G2]]#2
// NORMS: %[[SUM2:.*]] = attn_gpu.quad_reduce <sum> %[[HEADS]]#2
// NORMS: attn_gpu.load_acc %[[K]]
// NORMS: %[[DK:.*]] = arith.addf %[[HEADS]]#0
// NORMS-NEXT: attn_gpu.store_tile %[[DK]]
// NORMS-NEXT: attn_gpu.store_tile %[[HEADS]]#1

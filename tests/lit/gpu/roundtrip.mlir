// The attn_gpu ops print and parse back to the same IR.
// RUN: attnc-opt %s | attnc-opt | FileCheck %s

#acc = #attn_gpu.frag<acc>
#opa = #attn_gpu.frag<operand_a>
#rows = #attn_gpu.frag<rows>
!smem = memref<64x136xbf16, #gpu.address_space<workgroup>>
!ktile = memref<32x136xbf16, #gpu.address_space<workgroup>>
!q = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>

// CHECK-LABEL: gpu.func @tile_ops
// CHECK: attn_gpu.launch = #attn_gpu.launch<threads = 128, grid = [<arg 0 dim 2 * 1 ceil_div 64>, <arg 0 dim 1 * 1 ceil_div 1>, <arg 0 dim 0 * 1 ceil_div 1>], shared_memory = 0, splits = false>
// CHECK: %[[QT:.*]] = attn_gpu.alloc_shared {offset = 0 : i64} : memref<64x136xbf16, #gpu.address_space<workgroup>>
// CHECK: attn_gpu.copy_query_tile %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] -> %[[QT]] {pack = 4 : i64}
// CHECK: attn_gpu.copy_key_tile %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] below %{{.*}} pages %{{.*}} -> %{{.*}} {page_size = 64 : i64}
// CHECK: %[[QA:.*]] = attn_gpu.load_operand %[[QT]] : {{.*}} -> tensor<64x128xbf16, #attn_gpu.frag<operand_a>>
// CHECK: %[[S:.*]] = attn_gpu.mma %[[QA]], %{{.*}}, %{{.*}} {kind = #attn_gpu.mma<mma_sync_m16n8k16>, transpose_b}
// CHECK: attn_gpu.score %[[S]][%{{.*}}] below %{{.*}}, %{{.*}} {fill = 0xFF800000 : f32}
// CHECK: attn_gpu.yield
// CHECK: mask
// CHECK: %[[MX:.*]] = attn_gpu.row_reduce <max> %{{.*}} : tensor<64x32xf32, #attn_gpu.frag<acc>> -> tensor<64xf32, #attn_gpu.frag<rows>>
// CHECK: attn_gpu.quad_reduce <max> %[[MX]] : tensor<64xf32, #attn_gpu.frag<rows>>
// CHECK: attn_gpu.broadcast_rows %{{.*}} : tensor<64xf32, #attn_gpu.frag<rows>> -> tensor<64x32xf32, #attn_gpu.frag<acc>>
// CHECK: attn_gpu.to_operand %{{.*}} : tensor<64x32xf32, #attn_gpu.frag<acc>> -> tensor<64x32xbf16, #attn_gpu.frag<operand_a>>
// CHECK: attn_gpu.vote_all %{{.*}} : tensor<64xi1, #attn_gpu.frag<rows>>
// CHECK: attn_gpu.store_tile %{{.*}} -> %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] split %{{.*}} below %{{.*}}
// CHECK: attn_gpu.store_rows %{{.*}} -> %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] below %{{.*}}
gpu.module @m {
  gpu.func @tile_ops(%q: !q, %k: !q, %table: memref<?x?xi32>, %out: !q,
                     %part: memref<?x?x?x?x?xf32>, %lse: memref<?x?x?xf32>,
                     %b: index, %h: index, %i0: index, %j0: index, %n: index) kernel
      attributes {attn_gpu.launch = #attn_gpu.launch<threads = 128, grid = [<arg 0 dim 2 * 1 ceil_div 64>, <arg 0 dim 1 * 1 ceil_div 1>, <arg 0 dim 0 * 1 ceil_div 1>], shared_memory = 0, splits = false>} {
    %qt = attn_gpu.alloc_shared {offset = 0 : i64} : !smem
    %kt = attn_gpu.alloc_shared : !ktile
    attn_gpu.copy_query_tile %q[%b, %h, %i0] -> %qt {pack = 4 : i64} : !q -> !smem
    attn_gpu.copy_key_tile %k[%b, %h, %j0] below %n pages %table -> %kt {page_size = 64 : i64} : !q pages memref<?x?xi32> -> !ktile
    %qa = attn_gpu.load_operand %qt : !smem -> tensor<64x128xbf16, #opa>
    %zero = arith.constant dense<0.0> : tensor<64x32xf32, #acc>
    %s = attn_gpu.mma %qa, %kt, %zero {kind = #attn_gpu.mma<mma_sync_m16n8k16>, transpose_b} : tensor<64x128xbf16, #opa>, !ktile, tensor<64x32xf32, #acc> -> tensor<64x32xf32, #acc>
    %sc = attn_gpu.score %s[%b, %h, %i0, %j0] below %n, %n {fill = 0xFF800000 : f32} : tensor<64x32xf32, #acc> -> tensor<64x32xf32, #acc> score {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index, %dot: f32):
      attn_gpu.yield %dot : f32
    } mask {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index):
      %le = arith.cmpi ule, %j, %i : index
      attn_gpu.yield %le : i1
    }
    %mx = attn_gpu.row_reduce <max> %sc : tensor<64x32xf32, #acc> -> tensor<64xf32, #rows>
    %m = attn_gpu.quad_reduce <max> %mx : tensor<64xf32, #rows>
    %bm = attn_gpu.broadcast_rows %m : tensor<64xf32, #rows> -> tensor<64x32xf32, #acc>
    %p = arith.subf %sc, %bm : tensor<64x32xf32, #acc>
    %pa = attn_gpu.to_operand %p : tensor<64x32xf32, #acc> -> tensor<64x32xbf16, #opa>
    %ok = arith.cmpf olt, %m, %mx : tensor<64xf32, #rows>
    %all = attn_gpu.vote_all %ok : tensor<64xi1, #rows>
    %o = arith.constant dense<0.0> : tensor<64x128xf32, #acc>
    attn_gpu.store_tile %o -> %part[%b, %h, %i0] split %n below %n : tensor<64x128xf32, #acc> -> memref<?x?x?x?x?xf32>
    attn_gpu.store_rows %m -> %lse[%b, %h, %i0] below %n : tensor<64xf32, #rows> -> memref<?x?x?xf32>
    gpu.return
  }
}

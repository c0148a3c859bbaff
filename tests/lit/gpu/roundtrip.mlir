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

// The recurrence (chunk strategy) ops: the state in warp blocks, its 16-bit shared copy and
// update, gates, key factors, element maps and the Performer projection.
!kt = memref<64x136xbf16, #gpu.address_space<workgroup>>
!vt = memref<64x40xbf16, #gpu.address_space<workgroup>>
!st = memref<128x40xbf16, #gpu.address_space<workgroup>>
!cum = memref<64xf32, #gpu.address_space<workgroup>>
!g = memref<64x128xf32, #gpu.address_space<workgroup>>
!wt = memref<128x136xbf16, #gpu.address_space<workgroup>>
!ft = memref<64x136xbf16, #gpu.address_space<workgroup>>
#wacc = #attn_gpu.frag<warp_acc>

// CHECK-LABEL: gpu.func @recurrence_ops
// CHECK: %[[S0:.*]] = attn_gpu.load_state %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] {rows = 128 : i64} : memref<?x?x128x32xf32> -> tensor<32x32xf32, #attn_gpu.frag<warp_acc>>
// CHECK: attn_gpu.share_state %[[S0]] -> %{{.*}} : tensor<32x32xf32, #attn_gpu.frag<warp_acc>> -> memref<128x40xbf16, #gpu.address_space<workgroup>>
// CHECK: attn_gpu.log_decay_prefix %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] below %{{.*}} {relative}
// CHECK: attn_gpu.log_gate_prefix %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] below %{{.*}} : memref<64x128xf32, #gpu.address_space<workgroup>>
// CHECK: attn_gpu.gate_keys %{{.*}}, %{{.*}} : memref<64x136xbf16, #gpu.address_space<workgroup>>, memref<64x128xf32, #gpu.address_space<workgroup>>
// CHECK: attn_gpu.key_factors %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] below %{{.*}} : memref<64xf32, #gpu.address_space<workgroup>>
// CHECK: %[[QG:.*]] = attn_gpu.gate_operand %{{.*}}, %{{.*}} : tensor<64x128xbf16, #attn_gpu.frag<operand_a>>, memref<64x128xf32, #gpu.address_space<workgroup>> -> tensor<64x128xbf16, #attn_gpu.frag<operand_a>>
// CHECK: attn_gpu.mma %[[QG]], %{{.*}}, %{{.*}} gate %{{.*}} {gate_blocks, transpose_b}
// CHECK: attn_gpu.score %{{.*}}[%{{.*}}] below %{{.*}}, %{{.*}} decay %{{.*}}, %{{.*}} key_scale %{{.*}} {fill = 0.000000e+00 : f32}
// CHECK: attn_gpu.mma %[[QG]], %{{.*}}, %{{.*}} gate %{{.*}} :
// CHECK: attn_gpu.map_elements %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] below %{{.*}} : tensor<64x32xf32, #attn_gpu.frag<acc>> -> tensor<64x32xf32, #attn_gpu.frag<acc>>
// CHECK: attn_gpu.load_rows %{{.*}} : memref<64xf32, #gpu.address_space<workgroup>> -> tensor<64xf32, #attn_gpu.frag<rows>>
// CHECK: attn_gpu.load_acc %{{.*}} : memref<64x40xbf16, #gpu.address_space<workgroup>> -> tensor<64x32xf32, #attn_gpu.frag<acc>>
// CHECK: attn_gpu.columns %{{.*}}[8] : tensor<64x32xf32, #attn_gpu.frag<acc>> -> tensor<64x16xf32, #attn_gpu.frag<acc>>
// CHECK: %[[S1:.*]] = attn_gpu.state_update %[[S0]], %{{.*}}, %{{.*}}[%{{.*}}] last %{{.*}} below %{{.*}} decay %{{.*}} key_scale %{{.*}} gate %{{.*}} :
// CHECK: attn_gpu.state_update %{{.*}}, %{{.*}}, %{{.*}}[%{{.*}}] last %{{.*}} below %{{.*}} {normalize} : tensor<32x40xf32, #attn_gpu.frag<warp_acc>>
// CHECK: attn_gpu.store_state %[[S1]] -> %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] {rows = 128 : i64}
// CHECK: attn_gpu.copy_matrix %{{.*}} -> %{{.*}} : memref<128x128xf32> -> memref<128x136xbf16, #gpu.address_space<workgroup>>
// CHECK: attn_gpu.project_tile %{{.*}}, %{{.*}} -> %{{.*}} : memref<64x136xbf16, #gpu.address_space<workgroup>>, memref<128x136xbf16, #gpu.address_space<workgroup>> -> memref<64x136xbf16, #gpu.address_space<workgroup>>
gpu.module @r {
  gpu.func @recurrence_ops(%state: memref<?x?x128x32xf32>, %w: memref<128x128xf32>,
                           %b: index, %h: index, %n0: index, %c0: index, %n: index,
                           %last: index, %snorm: tensor<32x40xf32, #wacc>) kernel {
    %k = attn_gpu.alloc_shared : !kt
    %v = attn_gpu.alloc_shared : !vt
    %s16 = attn_gpu.alloc_shared : !st
    %cum = attn_gpu.alloc_shared : !cum
    %f = attn_gpu.alloc_shared : !cum
    %gate = attn_gpu.alloc_shared : !g
    %s0 = attn_gpu.load_state %state[%b, %h, %c0] {rows = 128 : i64} : memref<?x?x128x32xf32> -> tensor<32x32xf32, #wacc>
    attn_gpu.share_state %s0 -> %s16 : tensor<32x32xf32, #wacc> -> !st
    attn_gpu.log_decay_prefix %cum[%b, %h, %n0] below %n {relative} : !cum {
    ^bb0(%bb: index, %hh: index, %p: index):
      %half = arith.constant 0.5 : f32
      attn_gpu.yield %half : f32
    }
    attn_gpu.log_gate_prefix %gate[%b, %h, %n0] below %n : !g {
    ^bb0(%bb: index, %hh: index, %p: index, %e: index):
      %x = arith.constant -0.1 : f32
      attn_gpu.yield %x : f32
    }
    attn_gpu.gate_keys %k, %gate : !kt, !g
    attn_gpu.key_factors %f[%b, %h, %n0] below %n : !cum {
    ^bb0(%bb: index, %hh: index, %p: index):
      %two = arith.constant 2.0 : f32
      attn_gpu.yield %two : f32
    }
    %qa = attn_gpu.load_operand %k : !kt -> tensor<64x128xbf16, #opa>
    %qg = attn_gpu.gate_operand %qa, %gate : tensor<64x128xbf16, #opa>, !g -> tensor<64x128xbf16, #opa>
    %z64 = arith.constant dense<0.0> : tensor<64x64xf32, #acc>
    %p = attn_gpu.mma %qg, %k, %z64 gate %gate {gate_blocks, transpose_b} : tensor<64x128xbf16, #opa>, !kt, tensor<64x64xf32, #acc> gate !g -> tensor<64x64xf32, #acc>
    %ps = attn_gpu.score %p[%b, %h, %n0, %n0] below %n, %n decay %cum, %cum key_scale %f {fill = 0.0 : f32} : tensor<64x64xf32, #acc>, !cum, !cum key_scale !cum -> tensor<64x64xf32, #acc> score {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index, %dot: f32):
      attn_gpu.yield %dot : f32
    } mask {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index):
      %le = arith.cmpi ule, %j, %i : index
      attn_gpu.yield %le : i1
    }
    %z32 = arith.constant dense<0.0> : tensor<64x32xf32, #acc>
    %o = attn_gpu.mma %qg, %s16, %z32 gate %gate : tensor<64x128xbf16, #opa>, !st, tensor<64x32xf32, #acc> gate !g -> tensor<64x32xf32, #acc>
    %of = attn_gpu.map_elements %o[%b, %h, %n0, %c0] below %n : tensor<64x32xf32, #acc> -> tensor<64x32xf32, #acc> {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index, %x: f32):
      attn_gpu.yield %x : f32
    }
    %r = attn_gpu.load_rows %cum : !cum -> tensor<64xf32, #rows>
    %va = attn_gpu.load_acc %v : !vt -> tensor<64x32xf32, #acc>
    %mid = attn_gpu.columns %va[8] : tensor<64x32xf32, #acc> -> tensor<64x16xf32, #acc>
    %s1 = attn_gpu.state_update %s0, %k, %v[%n0] last %last below %n decay %cum key_scale %f gate %gate : tensor<32x32xf32, #wacc>, !kt, !vt decay !cum key_scale !cum gate !g -> tensor<32x32xf32, #wacc>
    %s2 = attn_gpu.state_update %snorm, %k, %v[%n0] last %last below %n {normalize} : tensor<32x40xf32, #wacc>, !kt, !vt -> tensor<32x40xf32, #wacc>
    attn_gpu.store_state %s1 -> %state[%b, %h, %c0] {rows = 128 : i64} : tensor<32x32xf32, #wacc> -> memref<?x?x128x32xf32>
    %wt = attn_gpu.alloc_shared : !wt
    %ft = attn_gpu.alloc_shared : !ft
    attn_gpu.copy_matrix %w -> %wt : memref<128x128xf32> -> !wt
    attn_gpu.project_tile %k, %wt -> %ft : !kt, !wt -> !ft {
    ^bb0(%xw: f32, %xx: f32):
      %e = math.exp %xw : f32
      attn_gpu.yield %e : f32
    }
    gpu.return
  }
}

// The backward's ops: key-major scores, the score's derivative with an accumulation into a
// param gradient, one f32 value per query into shared memory, and those values by column.
// CHECK-LABEL: gpu.func @backward_ops
// CHECK: attn_gpu.copy_rows %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] below %{{.*}} -> %{{.*}} {fill = 0x7F800000 : f32}
// CHECK: attn_gpu.load_columns %{{.*}} : memref<32xf32, #gpu.address_space<workgroup>> -> tensor<64x32xf32, #attn_gpu.frag<acc>>
// CHECK: attn_gpu.score %{{.*}} {fill = 0xFF800000 : f32, transposed}
// CHECK: attn_gpu.score_grad %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] below %{{.*}}, %{{.*}} {transposed}
// CHECK: attn_gpu.score_grad %{{.*}}, %{{.*}}[%{{.*}}] below %{{.*}}, %{{.*}} :
// CHECK: attn_gpu.accumulate %{{.*}} -> %{{.*}}[%{{.*}}] : memref<?xf32>
// A function of several tiles (the mix of several scores' rows): one gradient per tile.
// CHECK: attn_gpu.score_grad %{{.*}}, %{{.*}} more %{{.*}}, %{{.*}}[%{{.*}}] below %{{.*}}, %{{.*}} : tensor<64x32xf32, #attn_gpu.frag<acc>> more tensor<64x32xf32, #attn_gpu.frag<acc>>, tensor<64x32xf32, #attn_gpu.frag<acc>> -> tensor<64x32xf32, #attn_gpu.frag<acc>>, tensor<64x32xf32, #attn_gpu.frag<acc>>, tensor<64x32xf32, #attn_gpu.frag<acc>>
// A forget gate: key-major scores with the cumulative log decays, and the log decays'
// gradients from dS's row and column sums.
// CHECK: attn_gpu.score %{{.*}} decay %{{.*}}, %{{.*}} {fill = 0xFF800000 : f32, log_decay, transposed}
// CHECK: attn_gpu.decay_grad %{{.*}}[%{{.*}}, %{{.*}}] of %{{.*}} below %{{.*}}, %{{.*}} : memref<?x?x?xf32> {
// CHECK: attn_gpu.accumulate %{{.*}} -> %{{.*}}[%{{.*}}] : memref<?xf32>
gpu.module @bw {
  gpu.func @backward_ops(%lse: memref<?x?x?xf32>, %grad: memref<?xf32>, %b: index, %h: index,
                         %i0: index, %j0: index, %n: index) kernel {
    %vec = attn_gpu.alloc_shared : memref<32xf32, #gpu.address_space<workgroup>>
    attn_gpu.copy_rows %lse[%b, %h, %i0] below %n -> %vec {fill = 0x7F800000 : f32} : memref<?x?x?xf32> -> memref<32xf32, #gpu.address_space<workgroup>>
    %cols = attn_gpu.load_columns %vec : memref<32xf32, #gpu.address_space<workgroup>> -> tensor<64x32xf32, #acc>
    %st = attn_gpu.score %cols[%b, %h, %i0, %j0] below %n, %n {fill = 0xFF800000 : f32, transposed} : tensor<64x32xf32, #acc> -> tensor<64x32xf32, #acc> score {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index, %dot: f32):
      attn_gpu.yield %dot : f32
    }
    %gt = attn_gpu.score_grad %cols, %st[%b, %h, %i0, %j0] below %n, %n {transposed} : tensor<64x32xf32, #acc> -> tensor<64x32xf32, #acc> {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index, %dot: f32, %g: f32):
      attn_gpu.yield %g : f32
    }
    %g2 = attn_gpu.score_grad %cols, %gt[%b, %h, %i0, %j0] below %n, %n : tensor<64x32xf32, #acc> -> tensor<64x32xf32, #acc> {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index, %dot: f32, %g: f32):
      %x = arith.mulf %g, %dot : f32
      attn_gpu.accumulate %x -> %grad[%hh] : memref<?xf32>
      attn_gpu.yield %g : f32
    }
    %m:3 = attn_gpu.score_grad %cols, %g2 more %st, %gt[%b, %h, %i0, %j0] below %n, %n : tensor<64x32xf32, #acc> more tensor<64x32xf32, #acc>, tensor<64x32xf32, #acc> -> tensor<64x32xf32, #acc>, tensor<64x32xf32, #acc>, tensor<64x32xf32, #acc> {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index, %y0: f32, %y1: f32, %y2: f32, %g: f32):
      %ng = arith.negf %g : f32
      attn_gpu.yield %g, %ng, %g : f32, f32, f32
    }
    %cumk = attn_gpu.alloc_shared : memref<64xf32, #gpu.address_space<workgroup>>
    %sd = attn_gpu.score %cols[%b, %h, %i0, %j0] below %n, %n decay %vec, %cumk {fill = 0xFF800000 : f32, log_decay, transposed} : tensor<64x32xf32, #acc>, memref<32xf32, #gpu.address_space<workgroup>>, memref<64xf32, #gpu.address_space<workgroup>> -> tensor<64x32xf32, #acc> score {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index, %dot: f32):
      attn_gpu.yield %dot : f32
    }
    attn_gpu.decay_grad %lse[%b, %h] of %n below %n, %n : memref<?x?x?xf32> {
    ^bb0(%bb: index, %hh: index, %t: index, %g: f32):
      attn_gpu.accumulate %g -> %grad[%t] : memref<?xf32>
      attn_gpu.yield
    }
    gpu.return
  }
}

// A strict-causal recurrence chunk's own ops (RWKV): query row r reads the state before its
// step. log_decay_prefix `exclusive` also stores each position's prefix without its own log
// (the scan's sum before the lane's element); gate_operand `strict` scales q by the gates of
// row r - 1 (row 0: none; the load clamps to row 0 and a select takes 0); row_dot sums
// A[r, e] B[r, e] weight(e) over every fourth channel from the lane's quad position, then over
// the quad (xor shuffles 1 and 2), for the thread's rows g and g + 8.
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

!cum = memref<32xf32, #gpu.address_space<workgroup>>
!t = memref<32x72xbf16, #gpu.address_space<workgroup>>
!g = memref<32x64xf32, #gpu.address_space<workgroup>>
#opa = #attn_gpu.frag<operand_a>
#rows = #attn_gpu.frag<rows>
#acc = #attn_gpu.frag<acc>

// CHECK-LABEL: gpu.func @exclusive
// CHECK: gpu.barrier
// CHECK: gpu.shuffle  up %{{.*}}, %c1_i32
// CHECK: gpu.shuffle  up %{{.*}}, %c16_i32
// The inclusive prefix, then the exclusive one (the lanes before this one alone).
// CHECK: %[[BEFORE:.*]] = arith.subf
// CHECK: scf.if
// CHECK: %[[INCL:.*]] = arith.addf %[[BEFORE]], %{{.*}} : f32
// CHECK: memref.store %[[INCL]], %arg4[%{{.*}}] : memref<32xf32, #gpu.address_space<workgroup>>
// CHECK: memref.store %[[BEFORE]], %arg5[%{{.*}}] : memref<32xf32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// CHECK: gpu.return

// CHECK-LABEL: gpu.func @strict_gate
// CHECK: nvgpu.ldmatrix
// Row r - 1 (clamped at 0), loaded, 0 for row 0, less the warp's first row, exponentiated.
// CHECK: %[[FIRST:.*]] = arith.cmpi eq, %[[ROW:.*]], %c0 : index
// CHECK: %[[PREV:.*]] = arith.addi %[[ROW]], %c-1 : index
// CHECK: %[[AT:.*]] = arith.select %[[FIRST]], %c0, %[[PREV]] : index
// CHECK: %[[G:.*]] = vector.load %{{.*}}[%[[AT]], %{{.*}}] : memref<32x64xf32, #gpu.address_space<workgroup>>, vector<2xf32>
// CHECK: arith.select %[[FIRST]], %cst{{.*}}, %[[G]] : vector<2xf32>
// CHECK: arith.subf %{{.*}}, %{{.*}} : vector<2xf32>
// CHECK: llvm.inline_asm asm_dialect = att "ex2.approx.ftz.f32 $0, $1;"
// CHECK: gpu.return

// CHECK-LABEL: gpu.func @row_dot
// CHECK: %[[C:.*]] = arith.remui %{{.*}}, %c4 : index
// CHECK: %[[D0:.*]] = scf.for %[[E:.*]] = %[[C]] to %c64 step %c4 iter_args(%[[A0:.*]] = %cst) -> (f32) {
// CHECK-DAG: memref.load %arg0[%{{.*}}, %[[E]]] : memref<32x72xbf16, #gpu.address_space<workgroup>>
// CHECK-DAG: memref.load %arg1[%{{.*}}, %[[E]]] : memref<32x72xbf16, #gpu.address_space<workgroup>>
// CHECK-DAG: memref.load %arg2[%arg4, %[[E]]] : memref<?x64xf32>
// CHECK: scf.yield
// CHECK: gpu.shuffle  xor %[[D0]], %c1_i32
// CHECK: gpu.shuffle  xor %{{.*}}, %c2_i32
// CHECK: scf.for
// CHECK: gpu.shuffle  xor %{{.*}}, %c1_i32
// CHECK: gpu.shuffle  xor %{{.*}}, %c2_i32
// CHECK: gpu.return
gpu.module @m {
  gpu.func @exclusive(%dk: memref<?x?x?xf32>, %b: index, %h: index, %n0: index,
                      %cum: !cum, %excl: !cum, %n: index) kernel
      attributes {known_block_size = array<i32: 64, 1, 1>} {
    attn_gpu.log_decay_prefix %cum[%b, %h, %n0] below %n exclusive %excl {relative} : !cum exclusive !cum {
    ^bb0(%bb: index, %hh: index, %p: index):
      %x = memref.load %dk[%bb, %hh, %p] : memref<?x?x?xf32>
      attn_gpu.yield %x : f32
    }
    gpu.return
  }

  gpu.func @strict_gate(%k: !t, %gate: !g, %out: memref<?xi1>) kernel
      attributes {known_block_size = array<i32: 64, 1, 1>} {
    %qa = attn_gpu.load_operand %k : !t -> tensor<32x64xbf16, #opa>
    %qg = attn_gpu.gate_operand %qa, %gate {strict} : tensor<32x64xbf16, #opa>, !g -> tensor<32x64xbf16, #opa>
    %z = arith.constant dense<0.0> : tensor<32x32xf32, #acc>
    %p = attn_gpu.mma %qg, %k, %z {kind = #attn_gpu.mma<mma_sync_m16n8k16>, transpose_b} : tensor<32x64xbf16, #opa>, !t, tensor<32x32xf32, #acc> -> tensor<32x32xf32, #acc>
    %sum = attn_gpu.row_reduce <sum> %p : tensor<32x32xf32, #acc> -> tensor<32xf32, #rows>
    %ok = arith.cmpf ogt, %sum, %sum : tensor<32xf32, #rows>
    %all = attn_gpu.vote_all %ok : tensor<32xi1, #rows>
    %c0 = arith.constant 0 : index
    memref.store %all, %out[%c0] : memref<?xi1>
    gpu.return
  }

  gpu.func @row_dot(%q: !t, %k: !t, %u: memref<?x64xf32>, %b: index, %h: index, %n0: index,
                    %n: index, %out: memref<?xi1>) kernel
      attributes {known_block_size = array<i32: 64, 1, 1>} {
    %d = attn_gpu.row_dot %q, %k[%b, %h, %n0] below %n {columns = 64 : i64} : !t, !t -> tensor<32xf32, #rows> {
    ^bb0(%bb: index, %hh: index, %p: index, %e: index):
      %x = memref.load %u[%hh, %e] : memref<?x64xf32>
      attn_gpu.yield %x : f32
    }
    %ok = arith.cmpf ogt, %d, %d : tensor<32xf32, #rows>
    %all = attn_gpu.vote_all %ok : tensor<32xi1, #rows>
    %c0 = arith.constant 0 : index
    memref.store %all, %out[%c0] : memref<?xi1>
    gpu.return
  }
}

// GateToNVVM.cpp and attn_gpu.mma's gates: GLA's per-channel decay in a chunk.
// log_gate_prefix: one thread per channel walks the chunk's rows, summing log gate (lg2) into
// G, between barriers. gate_keys: K~ = K exp(G[c0] - G[c]) in place, 8 channels per vector
// (two 8-wide loads of G, 8 exponentials), then a barrier. gate_operand: q's A fragments times
// exp(G[r] - G[r0]) from pairs of G. The mma's gate: each B fragment of key block c0 is scaled
// by exp(G[r0] - G[c0]) (gate_blocks), or the state's rows by exp(G[r0]) for q S.
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

// CHECK-LABEL: gpu.func @gates
// CHECK: gpu.barrier
// CHECK: scf.for %{{.*}} = %c0 to %c32 step %c1
// CHECK: memref.load %arg0[%arg1, %{{.*}}, %arg2, %thread_id_x] : memref<?x?x?x64xf32>
// CHECK: llvm.inline_asm asm_dialect = att "lg2.approx.f32 $0, $1;"
// CHECK: memref.store %{{.*}}, %{{.*}}[%{{.*}}, %thread_id_x] : memref<32x64xf32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// gate_keys
// CHECK: vector.load %{{.*}} : memref<32x72xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// CHECK: vector.load %{{.*}} : memref<32x64xf32, #gpu.address_space<workgroup>>, vector<8xf32>
// CHECK: vector.load %{{.*}} : memref<32x64xf32, #gpu.address_space<workgroup>>, vector<8xf32>
// CHECK-COUNT-8: llvm.inline_asm asm_dialect = att "ex2.approx.ftz.f32 $0, $1;"
// CHECK: vector.store %{{.*}} : memref<32x72xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// CHECK: gpu.barrier
// gate_operand: q's fragments, then G pairs of row r and of the warp's first row.
// CHECK: nvgpu.ldmatrix %{{.*}} {numTiles = 4 : i32, transpose = false} : memref<32x72xbf16
// CHECK: vector.load %{{.*}} : memref<32x64xf32, #gpu.address_space<workgroup>>, vector<2xf32>
// CHECK: vector.load %{{.*}} : memref<32x64xf32, #gpu.address_space<workgroup>>, vector<2xf32>
// CHECK: llvm.inline_asm asm_dialect = att "ex2.approx.ftz.f32 $0, $1;"
// The gated QK^T: 4 key tiles x 4 channel steps per warp ...
// CHECK-COUNT-16: nvvm.mma.sync
// ... and q S: the state's rows scaled from G, 2 column tiles x 4 channel steps.
// CHECK: vector.load %{{.*}} : memref<32x64xf32, #gpu.address_space<workgroup>>, vector<2xf32>
// CHECK: llvm.inline_asm asm_dialect = att "ex2.approx.ftz.f32 $0, $1;"
// CHECK: nvgpu.ldmatrix %{{.*}} {numTiles = 4 : i32, transpose = true} : memref<64x24xbf16
// CHECK-COUNT-8: nvvm.mma.sync
// CHECK-NOT: nvvm.mma.sync
// CHECK: gpu.return
!kt = memref<32x72xbf16, #gpu.address_space<workgroup>>
!st = memref<64x24xbf16, #gpu.address_space<workgroup>>
!g = memref<32x64xf32, #gpu.address_space<workgroup>>
#opa = #attn_gpu.frag<operand_a>
#acc = #attn_gpu.frag<acc>
gpu.module @m {
  gpu.func @gates(%gk: memref<?x?x?x64xf32>, %b: index, %h: index, %n0: index, %n: index) kernel
      attributes {known_block_size = array<i32: 64, 1, 1>} {
    %k = attn_gpu.alloc_shared {offset = 0 : i64} : !kt
    %s16 = attn_gpu.alloc_shared {offset = 4608 : i64} : !st
    %gate = attn_gpu.alloc_shared {offset = 7680 : i64} : !g
    attn_gpu.log_gate_prefix %gate[%b, %h, %n0] below %n : !g {
    ^bb0(%bb: index, %hh: index, %p: index, %e: index):
      %x = memref.load %gk[%bb, %p, %hh, %e] : memref<?x?x?x64xf32>
      attn_gpu.yield %x : f32
    }
    attn_gpu.gate_keys %k, %gate : !kt, !g
    %qa = attn_gpu.load_operand %k : !kt -> tensor<32x64xbf16, #opa>
    %qg = attn_gpu.gate_operand %qa, %gate : tensor<32x64xbf16, #opa>, !g -> tensor<32x64xbf16, #opa>
    %z = arith.constant dense<0.0> : tensor<32x32xf32, #acc>
    %p = attn_gpu.mma %qg, %k, %z gate %gate {gate_blocks, kind = #attn_gpu.mma<mma_sync_m16n8k16>, transpose_b} : tensor<32x64xbf16, #opa>, !kt, tensor<32x32xf32, #acc> gate !g -> tensor<32x32xf32, #acc>
    %z16 = arith.constant dense<0.0> : tensor<32x16xf32, #acc>
    %o = attn_gpu.mma %qg, %s16, %z16 gate %gate {kind = #attn_gpu.mma<mma_sync_m16n8k16>} : tensor<32x64xbf16, #opa>, !st, tensor<32x16xf32, #acc> gate !g -> tensor<32x16xf32, #acc>
    gpu.return
  }
}

// MmaToNVVM.cpp: attn_gpu.load_operand -> ldmatrix.x4 per 16-column step; attn_gpu.mma ->
// per k16 step and pair of n8 blocks one ldmatrix.x4 of B (not transposed for B stored [N, K],
// transposed for [K, N]) and two mma.sync m16n8k16. P (attn_gpu.to_operand) feeds the second.
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

#acc = #attn_gpu.frag<acc>
#opa = #attn_gpu.frag<operand_a>
!q = memref<16x72xbf16, #gpu.address_space<workgroup>>
!k = memref<32x72xbf16, #gpu.address_space<workgroup>>
!v = memref<32x40xbf16, #gpu.address_space<workgroup>>

// S [16 x 32] = Q [16 x 64] K^T: 4 A fragments (ldmatrix x4, 4 steps); per step 2 B loads and 4
// mma. Then O [16 x 32] += P V: 2 k steps, 2 transposed B loads and 4 mma each.
// CHECK-LABEL: gpu.func @qk_then_pv
// CHECK: gpu.dynamic_shared_memory
// CHECK-COUNT-4: nvgpu.ldmatrix %{{.*}} {numTiles = 4 : i32, transpose = false}
// CHECK-COUNT-2: nvgpu.ldmatrix %{{.*}} {numTiles = 4 : i32, transpose = false}
// CHECK-COUNT-4: nvvm.mma.sync {{.*}}shape = #nvvm.shape<m = 16, n = 8, k = 16>
// CHECK: arith.truncf %{{.*}} : vector<2xf32> to vector<2xbf16>
// CHECK: nvgpu.ldmatrix %{{.*}} {numTiles = 4 : i32, transpose = true}
// CHECK: nvvm.mma.sync
// CHECK: gpu.return
gpu.module @m {
  gpu.func @qk_then_pv(%lse: memref<?x?x?xf32>) kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
    %qt = attn_gpu.alloc_shared {offset = 0 : i64} : !q
    %kt = attn_gpu.alloc_shared {offset = 2304 : i64} : !k
    %vt = attn_gpu.alloc_shared {offset = 6912 : i64} : !v
    %qa = attn_gpu.load_operand %qt : !q -> tensor<16x64xbf16, #opa>
    %z = arith.constant dense<0.0> : tensor<16x32xf32, #acc>
    %s = attn_gpu.mma %qa, %kt, %z {kind = #attn_gpu.mma<mma_sync_m16n8k16>, transpose_b} : tensor<16x64xbf16, #opa>, !k, tensor<16x32xf32, #acc> -> tensor<16x32xf32, #acc>
    %p = attn_gpu.to_operand %s : tensor<16x32xf32, #acc> -> tensor<16x32xbf16, #opa>
    %o = attn_gpu.mma %p, %vt, %z {kind = #attn_gpu.mma<mma_sync_m16n8k16>} : tensor<16x32xbf16, #opa>, !v, tensor<16x32xf32, #acc> -> tensor<16x32xf32, #acc>
    %r = attn_gpu.row_reduce <sum> %o : tensor<16x32xf32, #acc> -> tensor<16xf32, #attn_gpu.frag<rows>>
    %c0 = arith.constant 0 : index
    %n = arith.constant 16 : index
    attn_gpu.store_rows %r -> %lse[%c0, %c0, %c0] below %n : tensor<16xf32, #attn_gpu.frag<rows>> -> memref<?x?x?xf32>
    gpu.return
  }
}

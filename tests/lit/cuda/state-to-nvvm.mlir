// StateToNVVM.cpp: a recurrence state in registers. One warp owns the whole 128 x 16 slice of
// this kernel (64 f32 per thread: 8 row tiles x 2 column tiles x 4), read from and written to
// global memory element by element, and rounded in pairs to the bf16 tile the next chunk's
// q S reads. state_update decays the state by exp(cum[last]), weighs each key by
// exp(cum[last] - cum[c]) f[c] (zero past the keys that count), and adds K^T V on tensor cores:
// K^T as the A operand and V as the B operand both come from ldmatrix.trans.
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

!kt = memref<16x136xbf16, #gpu.address_space<workgroup>>
!vt = memref<16x24xbf16, #gpu.address_space<workgroup>>
!st = memref<128x24xbf16, #gpu.address_space<workgroup>>
!cum = memref<16xf32, #gpu.address_space<workgroup>>
#wacc = #attn_gpu.frag<warp_acc>

// CHECK-LABEL: gpu.func @state
// load_state: 64 elements per thread.
// CHECK-COUNT-64: memref.load %arg0[%arg1, %arg2, %{{.*}}, %{{.*}}] : memref<?x?x128x64xf32>
// CHECK-NOT: memref.load %arg0
// share_state: 32 bf16 pairs.
// CHECK-COUNT-32: vector.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}] : memref<128x24xbf16, #gpu.address_space<workgroup>>, vector<2xbf16>
// state_update: the state's decay exp(cum[last]) ...
// CHECK: memref.load %{{.*}}[%arg5] : memref<16xf32, #gpu.address_space<workgroup>>
// CHECK: llvm.inline_asm asm_dialect = att "ex2.approx.ftz.f32 $0, $1;"
// ... each key's weight from its decay and key factor ...
// CHECK: llvm.inline_asm asm_dialect = att "ex2.approx.ftz.f32 $0, $1;"
// CHECK: memref.load %{{.*}} : memref<16xf32, #gpu.address_space<workgroup>>
// ... V and K^T by ldmatrix.trans, K's values weighed (zero past the end) ...
// CHECK: nvgpu.ldmatrix %{{.*}} {numTiles = 4 : i32, transpose = true} : memref<16x24xbf16, #gpu.address_space<workgroup>>
// CHECK: nvgpu.ldmatrix %{{.*}} {numTiles = 4 : i32, transpose = true} : memref<16x136xbf16, #gpu.address_space<workgroup>>
// CHECK: arith.mulf
// CHECK: arith.select %{{.*}}, %{{.*}}, %cst{{.*}} : f32
// ... into 8 x 2 mma tiles.
// CHECK-COUNT-16: nvvm.mma.sync
// CHECK-NOT: nvvm.mma.sync
// store_state: 64 elements per thread.
// CHECK-COUNT-64: memref.store %{{.*}}, %arg0[%arg1, %arg2, %{{.*}}, %{{.*}}] : memref<?x?x128x64xf32>
// CHECK: gpu.return
gpu.module @m {
  gpu.func @state(%state: memref<?x?x128x64xf32>, %b: index, %h: index, %c0: index,
                  %n0: index, %last: index, %n: index) kernel
      attributes {known_block_size = array<i32: 32, 1, 1>} {
    %k = attn_gpu.alloc_shared {offset = 0 : i64} : !kt
    %v = attn_gpu.alloc_shared {offset = 4352 : i64} : !vt
    %s16 = attn_gpu.alloc_shared {offset = 5120 : i64} : !st
    %cum = attn_gpu.alloc_shared {offset = 11264 : i64} : !cum
    %f = attn_gpu.alloc_shared {offset = 11328 : i64} : !cum
    %s0 = attn_gpu.load_state %state[%b, %h, %c0] {rows = 128 : i64} : memref<?x?x128x64xf32> -> tensor<128x16xf32, #wacc>
    attn_gpu.share_state %s0 -> %s16 : tensor<128x16xf32, #wacc> -> !st
    %s1 = attn_gpu.state_update %s0, %k, %v[%n0] last %last below %n decay %cum key_scale %f : tensor<128x16xf32, #wacc>, !kt, !vt decay !cum key_scale !cum -> tensor<128x16xf32, #wacc>
    attn_gpu.store_state %s1 -> %state[%b, %h, %c0] {rows = 128 : i64} : tensor<128x16xf32, #wacc> -> memref<?x?x128x64xf32>
    gpu.return
  }
}

// attn-gpu-select-mma: every attn_gpu.mma gets the instruction of its module's chip, and with
// it the layout of the tiles the instruction reads; a chip without tensor-core MMA of this
// kind is an error.
// RUN: attnc-opt %s --split-input-file --verify-diagnostics --attn-gpu-select-mma | FileCheck %s
// RUN: attnc %specs/alibi.attn --emit=tiled -o %t.mlir
// RUN: attnc-opt %t.mlir --attn-gpu-select-strategy --attn-gpu-distribute=chip=sm_90a --attn-gpu-pipeline --attn-gpu-select-mma | FileCheck %s --check-prefix=FLASH
// RUN: attnc-opt %t.mlir --attn-gpu-select-strategy --attn-gpu-distribute --attn-gpu-pipeline --attn-gpu-select-mma | FileCheck %s --check-prefix=SM80
// RUN: attnc %specs/mha.attn --emit=tiled --backward -o %tg.mlir
// RUN: attnc-opt %tg.mlir --attn-gpu-select-strategy --attn-gpu-distribute=chip=sm_90a --attn-gpu-pipeline --attn-gpu-select-mma | FileCheck %s --check-prefix=GRAD
// RUN: attnc %S/../../../bench/specs/causal_d96.attn --emit=tiled --chip=sm_90a --backward -o %t96.mlir
// RUN: attnc-opt %t96.mlir --attn-gpu-select-strategy --attn-gpu-distribute=chip=sm_90a --attn-gpu-pipeline --attn-gpu-select-mma | FileCheck %s --check-prefix=D96
// RUN: attnc %specs/int8_kv_decode.attn --emit=tiled -o %t8.mlir
// RUN: attnc-opt %t8.mlir --attn-gpu-select-strategy --attn-gpu-distribute=chip=sm_90a --attn-gpu-pipeline --attn-gpu-select-mma | FileCheck %s --check-prefix=QUANT

// On sm_90a the flash kernel's two matmuls are wgmma: the Q, K and V tiles take the 128-byte
// swizzle (no padding), Q's fragments are gone (the tensor cores read Q from its tile), P
// stays in registers (computed beside its mma), and each wait that lands copies is followed
// by a proxy fence, before the barrier, so the tensor cores (async proxy) see them.
// FLASH: %[[Q:.*]] = attn_gpu.alloc_shared : memref<64x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
// FLASH: %[[K:.*]] = attn_gpu.alloc_shared : memref<32x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
// FLASH: %[[V:.*]] = attn_gpu.alloc_shared : memref<32x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
// FLASH-NOT: attn_gpu.load_operand
// FLASH: nvgpu.device_async_wait
// FLASH-NEXT: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// FLASH-NEXT: gpu.barrier
// FLASH: attn_gpu.mma %[[Q]], %[[K]], %{{.*}} {kind = #attn_gpu.mma<wgmma_m64nNk16>, transpose_b}
// FLASH: %[[P:.*]] = attn_gpu.to_operand
// FLASH: attn_gpu.mma %[[P]], %[[V]], %{{.*}} {kind = #attn_gpu.mma<wgmma_m64nNk16>}
// sm_80 keeps mma.sync, ldmatrix'd Q fragments and padded tiles.
// SM80: attn_gpu.alloc_shared : memref<64x136xbf16, #gpu.address_space<workgroup>>
// SM80: attn_gpu.load_operand
// SM80-NOT: nvvm.fence.proxy
// SM80: attn_gpu.mma {{.*}} {kind = #attn_gpu.mma<mma_sync_m16n8k16>, transpose_b}
// SM80: attn_gpu.mma {{.*}} {kind = #attn_gpu.mma<mma_sync_m16n8k16>}

// Head dim 96: the tiles take the swizzle with a partly used second column block (wgmma reads
// 6 k16 steps), in the forward (plain causal attention: 128 x 128 tiles on sm_90a) and in the
// backward's kernels (verified on the GPU for both, 2026-12-06).
// D96-LABEL: gpu.func @causal_d96(
// D96: attn_gpu.alloc_shared : memref<128x96xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
// D96: attn_gpu.alloc_shared : memref<128x96xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
// D96: attn_gpu.mma {{.*}} {kind = #attn_gpu.mma<wgmma_m64nNk16>, transpose_b}
// D96-LABEL: gpu.func @causal_d96_grad(
// D96: attn_gpu.alloc_shared : memref<64x96xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
// D96: attn_gpu.alloc_shared : memref<32x96xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
// D96: attn_gpu.mma {{.*}} {kind = #attn_gpu.mma<wgmma_m64nNk16>, transpose_b}
// D96-LABEL: gpu.func @causal_d96_grad_dkdv(
// D96-NOT: mma_sync
// D96-COUNT-4: attn_gpu.mma {{.*}} {kind = #attn_gpu.mma<wgmma_m64nNk16>
// D96-NOT: mma_sync
// D96: gpu.return

// The backward's dK/dV kernel: the Q and dO tiles are double-buffered (attn-gpu-pipeline's
// selects between two buffers): both buffers and the selects take the swizzle; K and V are
// read in place as A; dS and P (computed beside their mmas) stay in registers.
// GRAD-LABEL: gpu.func @mha_grad_dkdv
// GRAD: %[[K:.*]] = attn_gpu.alloc_shared : memref<64x64xbf16, #attn_gpu.swizzle<128>
// GRAD: %[[V:.*]] = attn_gpu.alloc_shared : memref<64x64xbf16, #attn_gpu.swizzle<128>
// GRAD: %[[Q0:.*]] = attn_gpu.alloc_shared : memref<64x64xbf16, #attn_gpu.swizzle<128>
// GRAD: %[[Q1:.*]] = attn_gpu.alloc_shared : memref<64x64xbf16, #attn_gpu.swizzle<128>
// GRAD-NOT: attn_gpu.load_operand
// GRAD: %[[QB:.*]] = arith.select %{{.*}}, %[[Q1]], %[[Q0]] : memref<64x64xbf16, #attn_gpu.swizzle<128>
// GRAD: attn_gpu.mma %[[K]], %[[QB]], %{{.*}} {kind = #attn_gpu.mma<wgmma_m64nNk16>, transpose_b}
// GRAD: attn_gpu.mma %{{.*}}, %[[QB]], %{{.*}} {kind = #attn_gpu.mma<wgmma_m64nNk16>} : tensor<64x64xbf16, #attn_gpu.frag<operand_a>>

// Quantised K/V: the dequantisation writes the swizzle too, and its stores (generic proxy) are
// fenced before the barrier like the copies.
// QUANT: attn_gpu.dequantize {{.*}} -> memref<32x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
// QUANT-NEXT: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// QUANT-NEXT: gpu.barrier
// QUANT: attn_gpu.mma {{.*}} {kind = #attn_gpu.mma<wgmma_m64nNk16>, transpose_b}

#acc = #attn_gpu.frag<acc>
#opa = #attn_gpu.frag<operand_a>
!k = memref<32x72xbf16, #gpu.address_space<workgroup>>

// 16 rows are a quarter of a warpgroup: mma.sync even on sm_90a.
// CHECK-LABEL: gpu.func @qk
// CHECK: attn_gpu.mma {{.*}} {kind = #attn_gpu.mma<mma_sync_m16n8k16>, transpose_b}
gpu.module @m [#nvvm.target<chip = "sm_90a">] {
  gpu.func @qk(%qa: tensor<16x64xbf16, #opa>, %kt: !k) kernel {
    %z = arith.constant dense<0.0> : tensor<16x32xf32, #acc>
    %s = attn_gpu.mma %qa, %kt, %z {transpose_b} : tensor<16x64xbf16, #opa>, !k, tensor<16x32xf32, #acc> -> tensor<16x32xf32, #acc>
    gpu.return
  }
}

// -----

#acc = #attn_gpu.frag<acc>
#opa = #attn_gpu.frag<operand_a>
!q = memref<64x72xbf16, #gpu.address_space<workgroup>>
!k = memref<64x72xbf16, #gpu.address_space<workgroup>>

// A K tile that is also read by ldmatrix keeps its padded layout: its mma stays mma.sync.
// CHECK-LABEL: gpu.func @shared_b
// CHECK: attn_gpu.alloc_shared : memref<64x72xbf16, #gpu.address_space<workgroup>>
// CHECK: attn_gpu.mma {{.*}} {kind = #attn_gpu.mma<mma_sync_m16n8k16>, transpose_b}
gpu.module @m [#nvvm.target<chip = "sm_90a">] {
  gpu.func @shared_b(%qa: tensor<64x64xbf16, #opa>) kernel {
    %kt = attn_gpu.alloc_shared : !k
    %also = attn_gpu.load_operand %kt : !k -> tensor<64x64xbf16, #opa>
    %z = arith.constant dense<0.0> : tensor<64x64xf32, #acc>
    %s = attn_gpu.mma %qa, %kt, %z {transpose_b} : tensor<64x64xbf16, #opa>, !k, tensor<64x64xf32, #acc> -> tensor<64x64xf32, #acc>
    gpu.return
  }
}

// -----

#acc = #attn_gpu.frag<acc>
#opa = #attn_gpu.frag<operand_a>
!k = memref<64x72xbf16, #gpu.address_space<workgroup>>

// An A fragment that lives in registers across a loop (not loaded from a tile it could be
// read from, not computed beside the mma) keeps the mma on mma.sync.
// CHECK-LABEL: gpu.func @loop_invariant_a
// CHECK: attn_gpu.alloc_shared : memref<64x72xbf16, #gpu.address_space<workgroup>>
// CHECK: attn_gpu.mma {{.*}} {kind = #attn_gpu.mma<mma_sync_m16n8k16>, transpose_b}
gpu.module @m [#nvvm.target<chip = "sm_90a">] {
  gpu.func @loop_invariant_a(%qa: tensor<64x64xbf16, #opa>, %n: index) kernel {
    %kt = attn_gpu.alloc_shared : !k
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %z = arith.constant dense<0.0> : tensor<64x64xf32, #acc>
    %r = scf.for %i = %c0 to %n step %c1 iter_args(%acc = %z) -> (tensor<64x64xf32, #acc>) {
      %s = attn_gpu.mma %qa, %kt, %acc {transpose_b} : tensor<64x64xbf16, #opa>, !k, tensor<64x64xf32, #acc> -> tensor<64x64xf32, #acc>
      scf.yield %s : tensor<64x64xf32, #acc>
    }
    gpu.return
  }
}

// -----

// expected-error @+1 {{attnc's tensor-core kernels need sm_80 or newer, got 'sm_75'}}
gpu.module @old [#nvvm.target<chip = "sm_75">] {
  gpu.func @k() kernel {
    gpu.return
  }
}

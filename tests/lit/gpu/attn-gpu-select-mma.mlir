// attn-gpu-select-mma: every attn_gpu.mma gets the instruction of its module's chip; a chip
// without tensor-core MMA of this kind is an error.
// RUN: attnc-opt %s --split-input-file --verify-diagnostics --attn-gpu-select-mma | FileCheck %s

#acc = #attn_gpu.frag<acc>
#opa = #attn_gpu.frag<operand_a>
!k = memref<32x72xbf16, #gpu.address_space<workgroup>>

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

// expected-error @+1 {{attnc's tensor-core kernels need sm_80 or newer, got 'sm_75'}}
gpu.module @old [#nvvm.target<chip = "sm_75">] {
  gpu.func @k() kernel {
    gpu.return
  }
}

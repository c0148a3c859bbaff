// attn-gpu-to-nvvm under its ConversionTarget: attn and attn_gpu are illegal, so an op whose
// scheduling choice was not made, or that has no lowering, is an error (never left behind).
// RUN: attnc-opt %s --split-input-file --verify-diagnostics --attn-gpu-to-nvvm

#acc = #attn_gpu.frag<acc>
#opa = #attn_gpu.frag<operand_a>
!k = memref<32x72xbf16, #gpu.address_space<workgroup>>
gpu.module @m {
  gpu.func @no_kind(%qa: tensor<16x64xbf16, #opa>) kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
    %kt = attn_gpu.alloc_shared {offset = 0 : i64} : !k
    %z = arith.constant dense<0.0> : tensor<16x32xf32, #acc>
    // expected-error @+2 {{needs its instruction chosen (run attn-gpu-select-mma)}}
    // expected-error @+1 {{failed to legalize operation 'attn_gpu.mma'}}
    %s = attn_gpu.mma %qa, %kt, %z {transpose_b} : tensor<16x64xbf16, #opa>, !k, tensor<16x32xf32, #acc> -> tensor<16x32xf32, #acc>
    gpu.return
  }
}

// -----

gpu.module @m {
  gpu.func @no_offset() kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
    // expected-error @+2 {{has no offset yet (run attn-gpu-allocate-shared)}}
    // expected-error @+1 {{failed to legalize operation 'attn_gpu.alloc_shared'}}
    %kt = attn_gpu.alloc_shared : memref<32x72xbf16, #gpu.address_space<workgroup>>
    gpu.return
  }
}

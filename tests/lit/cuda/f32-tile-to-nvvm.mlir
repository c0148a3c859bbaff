// An f32 shared tile (the backward's f32 dout, docs/backward.md): attn_gpu.copy_query_tile moves
// it in 16-byte copies of 4 elements (64 x 64 by 128 threads: 8 each), and attn_gpu.load_acc
// reads its elements into the accumulator layout without a conversion.
// RUN: attnc-opt %s --attn-gpu-allocate-shared --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

// CHECK-LABEL: gpu.func @f32_dout
// CHECK-COUNT-8: nvgpu.device_async_copy %{{.*}}, 4, %{{.*}} {bypassL1} : memref<?x?x?x64xf32> to memref<64x64xf32, #gpu.address_space<workgroup>>
// CHECK-NOT: nvgpu.device_async_copy
// CHECK-NOT: arith.extf
// CHECK: memref.load %{{.*}} : memref<64x64xf32, #gpu.address_space<workgroup>>
// CHECK-NOT: arith.extf
// CHECK: gpu.return
#acc = #attn_gpu.frag<acc>
gpu.module @f32 {
  gpu.func @f32_dout(%g: memref<?x?x?x64xf32>, %out: memref<?x?x?x64xf32>, %n: index) kernel
      attributes {known_block_size = array<i32: 128, 1, 1>} {
    %t = attn_gpu.alloc_shared : memref<64x64xf32, #gpu.address_space<workgroup>>
    attn_gpu.copy_query_tile %g[%n, %n, %n] -> %t : memref<?x?x?x64xf32> -> memref<64x64xf32, #gpu.address_space<workgroup>>
    %a = attn_gpu.load_acc %t : memref<64x64xf32, #gpu.address_space<workgroup>> -> tensor<64x64xf32, #acc>
    attn_gpu.store_tile %a -> %out[%n, %n, %n] below %n : tensor<64x64xf32, #acc> -> memref<?x?x?x64xf32>
    gpu.return
  }
}

// attn-gpu-allocate-shared: offsets in program order, each tile 16-byte aligned, and the total
// written into the kernel's launch ABI (which the manifest reads).
// RUN: attnc-opt %s --attn-gpu-allocate-shared | FileCheck %s

// CHECK-LABEL: gpu.func @tiles
// 64 x 136 bf16 = 17408 bytes, 32 x 136 bf16 = 8704, 32 x 64 i8 = 2048, 3 f32 = 12 (then 4
// bytes of alignment), 32 x 120 bf16 = 7680: 35856 in all.
// CHECK-SAME: shared_memory = 35856
// CHECK: attn_gpu.alloc_shared {offset = 0 : i64} : memref<64x136xbf16
// CHECK: attn_gpu.alloc_shared {offset = 17408 : i64} : memref<32x136xbf16
// CHECK: attn_gpu.alloc_shared {offset = 26112 : i64} : memref<32x64xi8
// CHECK: attn_gpu.alloc_shared {offset = 28160 : i64} : memref<3xf32
// The 12-byte array ends at 28172: the next tile starts at 28176.
// CHECK: attn_gpu.alloc_shared {offset = 28176 : i64} : memref<32x120xbf16
gpu.module @m {
  gpu.func @tiles() kernel attributes {attn_gpu.launch = #attn_gpu.launch<threads = 128, grid = [<arg 0 dim 2 * 1 ceil_div 64>], shared_memory = 0, splits = false>} {
    %q = attn_gpu.alloc_shared : memref<64x136xbf16, #gpu.address_space<workgroup>>
    %k = attn_gpu.alloc_shared : memref<32x136xbf16, #gpu.address_space<workgroup>>
    %s = attn_gpu.alloc_shared : memref<32x64xi8, #gpu.address_space<workgroup>>
    %c = attn_gpu.alloc_shared : memref<3xf32, #gpu.address_space<workgroup>>
    %v = attn_gpu.alloc_shared : memref<32x120xbf16, #gpu.address_space<workgroup>>
    gpu.return
  }
}

// A swizzled tile starts on a 1024-byte boundary (its 8-row atoms are aligned: the swizzle
// XORs address bits 4-6 with bits 7-9): 64 x 72 bf16 = 9216 bytes, then 12 bytes of f32 end
// at 9228, so the 32 x 64 swizzled tile starts at 10240 and ends at 14336.
// CHECK-LABEL: gpu.func @swizzled
// CHECK-SAME: shared_memory = 14336
// CHECK: attn_gpu.alloc_shared {offset = 0 : i64} : memref<64x72xbf16
// CHECK: attn_gpu.alloc_shared {offset = 9216 : i64} : memref<3xf32
// CHECK: attn_gpu.alloc_shared {offset = 10240 : i64} : memref<32x64xbf16, #attn_gpu.swizzle<128>
gpu.module @m2 {
  gpu.func @swizzled() kernel attributes {attn_gpu.launch = #attn_gpu.launch<threads = 128, grid = [<arg 0 dim 2 * 1 ceil_div 64>], shared_memory = 0, splits = false>} {
    %q = attn_gpu.alloc_shared : memref<64x72xbf16, #gpu.address_space<workgroup>>
    %c = attn_gpu.alloc_shared : memref<3xf32, #gpu.address_space<workgroup>>
    %k = attn_gpu.alloc_shared : memref<32x64xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
    gpu.return
  }
}

// A request for 3 blocks per SM (schedule min_blocks, sm_90a softmax kernels) becomes
// nvvm.minctasm when 3 blocks' shared memory fits the SM (3 x (48 KB + 1 KB) <= 228 KB) ...
// CHECK-LABEL: gpu.func @three_fit
// CHECK-SAME: schedule = {min_blocks = 3 : i64}
// CHECK-SAME: nvvm.minctasm = 3 : i32
gpu.module @m3 {
  gpu.func @three_fit() kernel attributes {attn_gpu.launch = #attn_gpu.launch<threads = 128, grid = [<arg 0 dim 2 * 1 ceil_div 64>], shared_memory = 0, splits = false, schedule = {min_blocks = 3 : i64}>} {
    %q = attn_gpu.alloc_shared : memref<64x128xbf16, #gpu.address_space<workgroup>>
    %k = attn_gpu.alloc_shared : memref<64x128xbf16, #gpu.address_space<workgroup>>
    %v = attn_gpu.alloc_shared : memref<64x128xbf16, #gpu.address_space<workgroup>>
    gpu.return
  }
}

// ... and is dropped when it does not (3 x (96 KB + 1 KB) > 228 KB: d = 256).
// CHECK-LABEL: gpu.func @three_do_not_fit
// CHECK-SAME: schedule = {}
// CHECK-NOT: nvvm.minctasm
// CHECK: gpu.return
gpu.module @m4 {
  gpu.func @three_do_not_fit() kernel attributes {attn_gpu.launch = #attn_gpu.launch<threads = 128, grid = [<arg 0 dim 2 * 1 ceil_div 64>], shared_memory = 0, splits = false, schedule = {min_blocks = 3 : i64}>} {
    %q = attn_gpu.alloc_shared : memref<64x256xbf16, #gpu.address_space<workgroup>>
    %k = attn_gpu.alloc_shared : memref<64x256xbf16, #gpu.address_space<workgroup>>
    %v = attn_gpu.alloc_shared : memref<64x256xbf16, #gpu.address_space<workgroup>>
    gpu.return
  }
}

// MmaToNVVM.cpp / CopyToNVVM.cpp, sm_90a: swizzled tiles and wgmma. A copy into a swizzled
// tile places 16-byte chunk c of row r at chunk c ^ (r % 8) of its 128-byte row, in column
// block col / 64. An mma of kind wgmma_m64nNk16 is one asm block: a fence, one
// wgmma.mma_async per k16 step (A from a descriptor of its swizzled tile: the ss form; or from
// registers: the rs form; B from a descriptor, transposed when stored [K, N]), commit, wait 0.
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

#acc = #attn_gpu.frag<acc>
!q = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
!qt = memref<64x64xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
!kt = memref<32x64xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>

// CHECK-LABEL: gpu.func @swizzled_flash
// The descriptors' constant fields (checked below): hoisted to the top.
// CHECK-DAG: arith.constant 4611686293305360384 : i64
// CHECK-DAG: arith.constant 4611686293322072064 : i64
// The tiles are flat views of the dynamic shared memory.
// CHECK: memref.view %{{.*}}[%{{.*}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<4096xbf16, #gpu.address_space<workgroup>>
// The query copy: chunk (id % 8) XOR row (id / 8) % 8, into row r's 64 elements.
// CHECK: arith.xori
// CHECK: nvgpu.device_async_copy {{.*}} : memref<?x?x?x64xbf16, {{.*}}> to memref<4096xbf16, #gpu.address_space<workgroup>>
// S = Q K^T, ss form: both descriptors K-major (leading byte offset field 1, stride 1024 bytes:
// 1 << 16 | 64 << 32 | 1 << 62), 4 k steps 32 bytes apart, 32 accumulators per thread.
// CHECK: llvm.inline_asm has_side_effects {{.*}}wgmma.fence.sync.aligned;{{.*}}wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {{.*}}, p, 1, 1, 0, 0;{{.*}}wgmma.mma_async{{.*}}wgmma.mma_async{{.*}}wgmma.mma_async{{.*}}wgmma.commit_group.sync.aligned;\0Awgmma.wait_group.sync.aligned 0;
// O += P V, rs form: P's registers as A, V N-major (transposed: leading byte offset = its 32
// rows x 128 bytes = 4096: 256 << 16 | 64 << 32 | 1 << 62), 2 k steps 2048 bytes apart.
// CHECK: llvm.inline_asm has_side_effects {{.*}}wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {{.*}}, p, 1, 1, 1;{{.*}}wgmma.mma_async{{.*}}, p, 1, 1, 1;\0Awgmma.commit_group
// CHECK-SAME: "=f,{{.*}},r,r,r,r,r,r,r,r,l,l,r,0,1,2,
// CHECK: gpu.return
gpu.module @m [#nvvm.target<chip = "sm_90a">] {
  gpu.func @swizzled_flash(%q: !q, %b: index, %h: index, %i0: index) kernel attributes {known_block_size = array<i32: 128, 1, 1>} {
    %qt = attn_gpu.alloc_shared {offset = 0 : i64} : !qt
    %kt = attn_gpu.alloc_shared {offset = 8192 : i64} : !kt
    %vt = attn_gpu.alloc_shared {offset = 12288 : i64} : !kt
    attn_gpu.copy_query_tile %q[%b, %h, %i0] -> %qt : !q -> !qt
    %z = arith.constant dense<0.0> : tensor<64x32xf32, #acc>
    %s = attn_gpu.mma %qt, %kt, %z {kind = #attn_gpu.mma<wgmma_m64nNk16>, transpose_b} : !qt, !kt, tensor<64x32xf32, #acc> -> tensor<64x32xf32, #acc>
    %p = attn_gpu.to_operand %s : tensor<64x32xf32, #acc> -> tensor<64x32xbf16, #attn_gpu.frag<operand_a>>
    %o0 = arith.constant dense<0.0> : tensor<64x64xf32, #acc>
    %o = attn_gpu.mma %p, %vt, %o0 {kind = #attn_gpu.mma<wgmma_m64nNk16>} : tensor<64x32xbf16, #attn_gpu.frag<operand_a>>, !kt, tensor<64x64xf32, #acc> -> tensor<64x64xf32, #acc>
    gpu.return
  }
}

// A select between double buffers of a swizzled tile selects their flat views.
// CHECK-LABEL: gpu.func @double_buffer
// CHECK: %[[A:.*]] = memref.view {{.*}} to memref<2048xbf16, #gpu.address_space<workgroup>>
// CHECK: %[[B:.*]] = memref.view {{.*}} to memref<2048xbf16, #gpu.address_space<workgroup>>
// CHECK: arith.select %{{.*}}, %[[A]], %[[B]] : memref<2048xbf16, #gpu.address_space<workgroup>>
gpu.module @m2 [#nvvm.target<chip = "sm_90a">] {
  gpu.func @double_buffer(%odd: i1, %q: !q, %b: index, %h: index, %i0: index) kernel attributes {known_block_size = array<i32: 128, 1, 1>} {
    %t0 = attn_gpu.alloc_shared {offset = 0 : i64} : !kt
    %t1 = attn_gpu.alloc_shared {offset = 4096 : i64} : !kt
    %t = arith.select %odd, %t0, %t1 : !kt
    attn_gpu.copy_key_tile %q[%b, %h, %i0] below %i0 -> %t : !q -> !kt
    gpu.return
  }
}

// Asynchronous wgmma (attn-gpu-distribute overlap=true): an `async` mma's asm block ends at its
// commit, without a wait; attn_gpu.mma_wait is one wgmma.wait_group over every register of the
// accumulators it waits for, each tied in and out (16 of S, 32 of O per thread: "=f" x 48,
// then 0 .. 47).
// CHECK-LABEL: gpu.func @async_flash
// CHECK: llvm.inline_asm has_side_effects {{.*}}wgmma.mma_async.sync.aligned.m64n32k16{{.*}}wgmma.commit_group.sync.aligned;\0A}"
// CHECK: llvm.inline_asm has_side_effects {{.*}}wgmma.mma_async.sync.aligned.m64n64k16{{.*}}wgmma.commit_group.sync.aligned;\0A}"
// CHECK: llvm.inline_asm has_side_effects asm_dialect = att "wgmma.wait_group.sync.aligned 1;", "=f,{{(=f,)+}}=f,0,1,{{.*}},46,47"
// CHECK-NOT: wgmma.wait_group
// CHECK: gpu.return
gpu.module @m3 [#nvvm.target<chip = "sm_90a">] {
  gpu.func @async_flash(%q: !q, %b: index, %h: index, %i0: index) kernel attributes {known_block_size = array<i32: 128, 1, 1>} {
    %qt = attn_gpu.alloc_shared {offset = 0 : i64} : !qt
    %kt = attn_gpu.alloc_shared {offset = 8192 : i64} : !kt
    %vt = attn_gpu.alloc_shared {offset = 12288 : i64} : !kt
    %z = arith.constant dense<0.0> : tensor<64x32xf32, #acc>
    %p0 = attn_gpu.to_operand %z : tensor<64x32xf32, #acc> -> tensor<64x32xbf16, #attn_gpu.frag<operand_a>>
    %o0 = arith.constant dense<0.0> : tensor<64x64xf32, #acc>
    %s = attn_gpu.mma %qt, %kt, %z {kind = #attn_gpu.mma<wgmma_m64nNk16>, transpose_b, async} : !qt, !kt, tensor<64x32xf32, #acc> -> tensor<64x32xf32, #acc>
    %o = attn_gpu.mma %p0, %vt, %o0 {kind = #attn_gpu.mma<wgmma_m64nNk16>, async} : tensor<64x32xbf16, #attn_gpu.frag<operand_a>>, !kt, tensor<64x64xf32, #acc> -> tensor<64x64xf32, #acc>
    %done:2 = attn_gpu.mma_wait %s, %o {pending = 1} : tensor<64x32xf32, #acc>, tensor<64x64xf32, #acc> -> tensor<64x32xf32, #acc>, tensor<64x64xf32, #acc>
    gpu.return
  }
}

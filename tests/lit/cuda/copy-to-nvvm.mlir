// CopyToNVVM.cpp: shared tiles are views of the dynamic shared memory at their offsets; tile
// copies are cp.async (16 bytes = 8 bf16 a copy, zero-filled past the end: src elements 0);
// GQA-packed query rows (head h + p % 4, query p / 4); a paged key tile reads the block table
// once when the page size is a multiple of its rows (clamped into table and pool); dequantise
// 8 values a step; a feature map applies its region to 8 elements a step.
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

!q = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
!k8 = memref<?x?x?x64xi8, strided<[?, ?, ?, 1], offset: ?>>
!qt = memref<16x72xbf16, #gpu.address_space<workgroup>>
!st = memref<16x64xi8, #gpu.address_space<workgroup>>

// CHECK-LABEL: gpu.func @copies
// CHECK: gpu.dynamic_shared_memory
// CHECK: memref.view %{{.*}}[%c0][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<16x72xbf16
// CHECK: memref.view %{{.*}}[%c2304][] : {{.*}} to memref<16x64xi8
// Query rows of a GQA pack of 4: head + p % 4, query p / 4, in range below q_len.
// CHECK: arith.remui %{{.*}}, %c4
// CHECK: arith.divui %{{.*}}, %c4
// CHECK: nvgpu.device_async_copy {{.*}}, 8, %{{.*}} {bypassL1}
// The page of the tile: table[b, j0 / 64], clamped into the table and the pool.
// CHECK: arith.divui %{{.*}}, %c64
// CHECK: memref.load %{{.*}}[%{{.*}}, %{{.*}}] : memref<?x?xi32>
// CHECK: arith.maxsi
// CHECK: arith.minui
// Bytes of a quantised tile: 16 a copy.
// CHECK: nvgpu.device_async_copy {{.*}}, 16, %{{.*}} {bypassL1}
// Dequantise: 8 stored bytes, the scale of (b, hk), rounded to bf16.
// CHECK: vector.load %{{.*}} : memref<16x64xi8, #gpu.address_space<workgroup>>, vector<8xi8>
// CHECK: memref.load %{{.*}} : memref<?x?xf32>
// CHECK: arith.truncf %{{.*}} : vector<8xf32> to vector<8xbf16>
// CHECK: vector.store
// The feature map (elu + 1) on 8 elements a step.
// CHECK: vector.load %{{.*}} : memref<16x72xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// CHECK: arith.cmpf ogt
// CHECK: vector.store
// CHECK: gpu.return
gpu.module @m {
  gpu.func @copies(%q: !q, %k: !k8, %table: memref<?x?xi32>, %scale: memref<?x?xf32>,
                   %b: index, %h: index, %i0: index, %j0: index, %n: index) kernel
      attributes {known_block_size = array<i32: 32, 1, 1>} {
    %qt = attn_gpu.alloc_shared {offset = 0 : i64} : !qt
    %st = attn_gpu.alloc_shared {offset = 2304 : i64} : !st
    %kt = attn_gpu.alloc_shared {offset = 3328 : i64} : !qt
    attn_gpu.copy_query_tile %q[%b, %h, %i0] -> %qt {pack = 4 : i64} : !q -> !qt
    attn_gpu.copy_key_tile %k[%b, %h, %j0] below %n pages %table -> %st {page_size = 64 : i64} : !k8 pages memref<?x?xi32> -> !st
    attn_gpu.dequantize %st -> %kt[%b, %h, %j0] below %n scale %scale {axes = array<i64: 0, 1>} : !st -> !qt, memref<?x?xf32>
    attn_gpu.map_tile %qt : !qt {
    ^bb0(%x: f32):
      %zero = arith.constant 0.0 : f32
      %one = arith.constant 1.0 : f32
      %pos = arith.cmpf ogt, %x, %zero : f32
      %e = math.exp %x : f32
      %y = arith.addf %x, %one : f32
      %r = arith.select %pos, %y, %e : f32
      attn_gpu.yield %r : f32
    }
    gpu.return
  }
}

// `interior` (softmax key tiles): a tile inside kv_len (j0 + 16 <= n) copies with no per-row
// check (every copy moves its 8 elements); the last tile takes the predicated copies. The
// kernels' float arithmetic may contract into fma (fastmath contract; products reassociate).
// CHECK-LABEL: gpu.func @interior
// CHECK: %[[END:.*]] = arith.addi %[[J0:.*]], %c16
// CHECK: %[[INSIDE:.*]] = arith.cmpi ule, %[[END]], %[[N:.*]] : index
// CHECK: scf.if %[[INSIDE]] {
// CHECK-NOT: arith.cmpi ult
// CHECK: nvgpu.device_async_copy {{.*}}, 8, %c8{{(_[0-9]+)?}} {bypassL1}
// CHECK: } else {
// CHECK: arith.cmpi ult
// CHECK: arith.select
// CHECK: nvgpu.device_async_copy
// CHECK: }
// CHECK: arith.mulf %{{.*}}, %{{.*}} fastmath<reassoc,contract> : f32
// CHECK: arith.addf %{{.*}}, %{{.*}} fastmath<contract> : f32
gpu.module @m_interior {
  gpu.func @interior(%k: !q, %b: index, %h: index, %j0: index, %n: index, %x: f32, %out: memref<?xf32>) kernel attributes {known_block_size = array<i32: 64, 1, 1>} {
    %kt = attn_gpu.alloc_shared {offset = 0 : i64} : !qt
    attn_gpu.copy_key_tile %k[%b, %h, %j0] below %n -> %kt {interior} : !q -> !qt
    %y = arith.mulf %x, %x : f32
    %z = arith.addf %y, %x : f32
    memref.store %z, %out[%b] : memref<?xf32>
    gpu.return
  }
}

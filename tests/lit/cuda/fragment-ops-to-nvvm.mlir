// FragmentOpsToNVVM.cpp: fragments become the scalars each thread holds (16x16 acc: 8; rows: 2),
// elementwise ops apply per scalar, loops carry the scalars, row reductions are in-thread then
// over the quad's four lanes (xor shuffles 1, 2), the warp vote is nvvm.vote.sync.
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

#acc = #attn_gpu.frag<acc>
#opa = #attn_gpu.frag<operand_a>
#rows = #attn_gpu.frag<rows>

// CHECK-LABEL: gpu.func @softmax_step
// CHECK: scf.for {{.*}} -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32) {
// Row 0 of the thread is elements 0, 1 of each 8-column block (4, 5 of the second): max in
// thread, then over the quad.
// CHECK: %[[A:.*]] = arith.maximumf %[[S0:arg[0-9]+]], %[[S1:arg[0-9]+]] : f32
// CHECK: gpu.shuffle  xor %{{.*}}, %c1_i32
// CHECK: gpu.shuffle  xor %{{.*}}, %c2_i32
// CHECK-COUNT-8: arith.subf
// CHECK-COUNT-8: llvm.inline_asm asm_dialect = att "ex2.approx.ftz.f32 $0, $1;"
// CHECK: scf.yield
// The row sum stays in the thread (a per-thread partial sum).
// CHECK-COUNT-8: arith.addf
// CHECK: arith.andi
// CHECK: nvvm.vote.sync  all
gpu.module @m {
  gpu.func @softmax_step(%lo: index, %hi: index, %step: index, %out: memref<?xi1>) kernel
      attributes {known_block_size = array<i32: 32, 1, 1>} {
    %m0 = arith.constant dense<0xFF800000> : tensor<16xf32, #rows>
    %s0 = arith.constant dense<1.0> : tensor<16x16xf32, #acc>
    %r:2 = scf.for %j = %lo to %hi step %step iter_args(%m = %m0, %s = %s0) -> (tensor<16xf32, #rows>, tensor<16x16xf32, #acc>) {
      %mx = attn_gpu.row_reduce <max> %s : tensor<16x16xf32, #acc> -> tensor<16xf32, #rows>
      %q = attn_gpu.quad_reduce <max> %mx : tensor<16xf32, #rows>
      %m1 = arith.maximumf %m, %q : tensor<16xf32, #rows>
      %b = attn_gpu.broadcast_rows %m1 : tensor<16xf32, #rows> -> tensor<16x16xf32, #acc>
      %d = arith.subf %s, %b : tensor<16x16xf32, #acc>
      %p = math.exp2 %d : tensor<16x16xf32, #acc>
      scf.yield %m1, %p : tensor<16xf32, #rows>, tensor<16x16xf32, #acc>
    }
    %sum = attn_gpu.row_reduce <sum> %r#1 : tensor<16x16xf32, #acc> -> tensor<16xf32, #rows>
    %ok = arith.cmpf ogt, %sum, %r#0 : tensor<16xf32, #rows>
    %all = attn_gpu.vote_all %ok : tensor<16xi1, #rows>
    %c0 = arith.constant 0 : index
    memref.store %all, %out[%c0] : memref<?xi1>
    gpu.return
  }
}

// load_acc of a 128-byte-swizzled tile (wgmma's K or Q tile in the backward): element (r, col)
// through the swizzle's flat view, the 16-byte chunk of column 8 n (chunk XOR r % 8), then
// the element 2 c + e % 2 inside it.
// CHECK-LABEL: gpu.func @load_acc_swizzled
// Column block 0 (chunk 0 XOR r % 8 = r % 8): no xor; then chunks 1.. of each row.
// CHECK-COUNT-4: memref.load %[[VIEW:view]][%{{.*}}] : memref<4096xbf16, #gpu.address_space<workgroup>>
// CHECK: arith.xori
// CHECK-COUNT-28: memref.load %[[VIEW]][%{{.*}}] : memref<4096xbf16, #gpu.address_space<workgroup>>
// CHECK-NOT: memref.load
// CHECK: gpu.return
gpu.module @sw {
  gpu.func @load_acc_swizzled(%out: memref<?xi1>) kernel
      attributes {known_block_size = array<i32: 128, 1, 1>} {
    %tile = attn_gpu.alloc_shared {offset = 0 : i64} : memref<64x64xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
    %x = attn_gpu.load_acc %tile : memref<64x64xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>> -> tensor<64x64xf32, #acc>
    %rows = attn_gpu.row_reduce <sum> %x : tensor<64x64xf32, #acc> -> tensor<64xf32, #rows>
    %zero = arith.constant dense<0.0> : tensor<64xf32, #rows>
    %ok = arith.cmpf ogt, %rows, %zero : tensor<64xf32, #rows>
    %v = attn_gpu.vote_all %ok : tensor<64xi1, #rows>
    %c0 = arith.constant 0 : index
    memref.store %v, %out[%c0] : memref<?xi1>
    gpu.return
  }
}

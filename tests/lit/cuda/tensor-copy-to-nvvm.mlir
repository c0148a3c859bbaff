// CopyToNVVM.cpp, TMA: thread 0 initialises each mbarrier for one arrival (fenced); a tile
// copied by a tensor map is thread 0's arrive.expect_tx of the tile's bytes (64 x 128 bf16 =
// 16384) and one box per 64-column block (the second 64 x 128 bytes = 8192 bytes further),
// at (column, key, kv head, batch) in i32; a wait is every thread's try_wait.parity on the
// phase's parity (phase & 1).
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

!g = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>
!t = memref<64x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
!bar = memref<1xi64, #gpu.address_space<workgroup>>

// CHECK-LABEL: gpu.func @tensor_copy
// CHECK: scf.if
// CHECK: nvvm.mbarrier.init %{{.*}}, %{{.*}} : !llvm.ptr<3>, i32
// CHECK-NEXT: nvvm.fence.mbarrier.init
// CHECK: gpu.barrier
// CHECK: scf.if
// CHECK: nvvm.mbarrier.arrive.expect_tx %{{.*}}, %c16384_i32 : !llvm.ptr<3>, i32 -> i64
// CHECK: llvm.addrspacecast %{{.*}} : !llvm.ptr<3> to !llvm.ptr<7>
// CHECK: nvvm.cp.async.bulk.tensor.shared.cluster.global %{{.*}}, %[[MAP:[^,]*]], %{{.*}}, box[%c0_i32, %{{.*}}, %{{.*}}, %{{.*}}] : !llvm.ptr<7>, !llvm.ptr
// CHECK: arith.addi %{{.*}}, %c8192_i64 : i64
// CHECK: nvvm.cp.async.bulk.tensor.shared.cluster.global %{{.*}}, %[[MAP]], %{{.*}}, box[%c64_i32,
// CHECK: %[[P:.*]] = arith.andi %{{.*}}, %c1
// CHECK: %[[P32:.*]] = arith.index_cast %[[P]] : index to i32
// CHECK: nvvm.mbarrier.try_wait.parity %{{.*}}, %[[P32]], %{{.*}} : !llvm.ptr<3>, i32, i32
// CHECK: gpu.return
gpu.module @m [#nvvm.target<chip = "sm_90a">] {
  gpu.func @tensor_copy(%k: !g, %b: index, %h: index, %j0: index, %phase: index,
                        %map: !llvm.ptr) kernel attributes {known_block_size = array<i32: 128, 1, 1>} {
    %c2 = arith.constant 2 : index
    %n = memref.dim %k, %c2 : !g
    %kt = attn_gpu.alloc_shared {offset = 0 : i64} : !t
    %bar = attn_gpu.alloc_shared {offset = 16384 : i64} : !bar
    attn_gpu.init_barrier %bar : !bar
    gpu.barrier
    attn_gpu.copy_key_tile %k[%b, %h, %j0] below %n -> %kt by %map signals %bar : !g -> !t by !llvm.ptr, !bar
    attn_gpu.wait_barrier %bar phase %phase : !bar
    gpu.return
  }
}

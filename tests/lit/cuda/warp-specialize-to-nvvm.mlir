// attn_gpu.warp_specialize lowered (AttnGPUToNVVM.cpp) once its regions' ops are: one if/else
// on the warpgroup (threads below 128 x consumers: the consumers), each branch re-balancing
// registers first (setmaxnreg: consumers up to 232, the producer down to 24); the producer's
// body on its first warp only (threads 128..159), whose first thread (128) leads its copies;
// the consumers' block barriers become named barrier 1 of 128 threads; arrive_barrier is every
// consumer thread's mbarrier.arrive; a free barrier counts 128 arrivals.
// Turns of two consumer warpgroups (w = tid / 128): start is warpgroup 1's bar.arrive on
// barrier 2 (warpgroup 0's); wait is bar.sync on 2 + w; pass is bar.arrive on 2 + (w + 1) % 2;
// each of 256 threads (two warpgroups).
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

!g = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>
!t = memref<64x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
!bar = memref<1xi64, #gpu.address_space<workgroup>>

// CHECK-LABEL: gpu.func @roles
// CHECK: nvvm.mbarrier.init %{{.*}}, %c1_i32
// CHECK: nvvm.mbarrier.init %{{.*}}, %c128_i32
// CHECK: gpu.barrier
// CHECK: %[[TID:.*]] = gpu.thread_id  x
// CHECK: %[[CONSUMER:.*]] = arith.cmpi ult, %[[TID]], %c128
// CHECK: scf.if %[[CONSUMER]] {
// CHECK-NEXT: nvvm.setmaxregister increase 232
// CHECK: nvvm.barrier id = %c1_i32 number_of_threads = %c128_i32
// CHECK: nvvm.mbarrier.try_wait.parity
// CHECK: nvvm.mbarrier.arrive %{{.*}} : !llvm.ptr<3>
// CHECK-NOT: gpu.barrier
// CHECK: } else {
// CHECK-NEXT: nvvm.setmaxregister decrease 24
// CHECK: %[[FIRST:.*]] = arith.cmpi ult, %[[TID]], %c160
// CHECK: scf.if %[[FIRST]] {
// CHECK: nvvm.mbarrier.try_wait.parity
// CHECK: %[[LEADER:.*]] = arith.cmpi eq, %{{.*}}, %c128
// CHECK-NEXT: scf.if %[[LEADER]] {
// CHECK: nvvm.mbarrier.arrive.expect_tx
// CHECK: nvvm.cp.async.bulk.tensor.shared.cluster.global
// CHECK: gpu.return
gpu.module @m [#nvvm.target<chip = "sm_90a">] {
  gpu.func @roles(%k: !g, %b: index, %j0: index, %phase: index, %map: !llvm.ptr) kernel
      attributes {known_block_size = array<i32: 256, 1, 1>} {
    %c2 = arith.constant 2 : index
    %n = memref.dim %k, %c2 : !g
    %kt = attn_gpu.alloc_shared {offset = 0 : i64} : !t
    %full = attn_gpu.alloc_shared {offset = 16384 : i64} : !bar
    attn_gpu.init_barrier %full : !bar
    %free = attn_gpu.alloc_shared {offset = 16392 : i64} : !bar
    attn_gpu.init_barrier %free arrivals 128 : !bar
    gpu.barrier
    attn_gpu.warp_specialize consumers(1) registers [232, 24] {
      gpu.barrier
      attn_gpu.wait_barrier %full phase %phase : !bar
      attn_gpu.arrive_barrier %free : !bar
    } producer {
      attn_gpu.wait_barrier %free phase %phase : !bar
      attn_gpu.copy_key_tile %k[%b, %b, %j0] below %n -> %kt by %map signals %full : !g -> !t by !llvm.ptr, !bar
    }
    gpu.return
  }
}

// CHECK-LABEL: gpu.func @turns
// CHECK: nvvm.setmaxregister increase 240
// CHECK: %[[W0:.*]] = arith.divui %{{.*}}, %c128
// CHECK: %[[LAST:.*]] = arith.cmpi eq, %[[W0]], %c1
// CHECK-NEXT: scf.if %[[LAST]] {
// CHECK: nvvm.barrier.arrive id = %{{.*}} number_of_threads = %c256_i32
// CHECK: %[[W1:.*]] = arith.divui %{{.*}}, %c128
// CHECK: %[[ID:.*]] = arith.index_cast %{{.*}} : index to i32
// CHECK-NEXT: nvvm.barrier id = %[[ID]] number_of_threads = %c256_i32
// CHECK: %[[W2:.*]] = arith.divui %{{.*}}, %c128
// CHECK: arith.remui %{{.*}}, %c2
// CHECK: nvvm.barrier.arrive id = %{{.*}} number_of_threads = %c256_i32
// CHECK: nvvm.setmaxregister decrease 24
gpu.module @m2 [#nvvm.target<chip = "sm_90a">] {
  gpu.func @turns() kernel attributes {known_block_size = array<i32: 384, 1, 1>} {
    attn_gpu.warp_specialize consumers(2) registers [240, 24] {
      attn_gpu.turn start
      attn_gpu.turn wait
      attn_gpu.turn pass
    } producer {
      %unused = arith.constant 0 : index
    }
    gpu.return
  }
}

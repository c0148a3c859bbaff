// attn-gpu-warp-specialize: a kernel whose key and value tiles arrive by TMA splits into the
// consumer warpgroups (the program after the barriers' initialisation, without its copies)
// and a producer (the copies in program order, copy n of a tile into buffer n % 2 once the
// consumers freed it). K: one copy before the loop (n = 0) and one per iteration
// (n = t + 1); V: one per iteration (n = t). Consumers: the wait for K's copy t (the latest
// before it) waits on buffer t % 2's full barrier at parity t / 2 and the mma reads buffer
// t % 2; where K's copy t + 1 was issued they free K's copy t; V's copy t frees V's copy t - 1
// from the second iteration on. The block barriers that guarded the refills go; the one
// after the Q copy's wait stays (a barrier of the consumers alone once lowered).
// RUN: attnc-opt %s --split-input-file --allow-unregistered-dialect --attn-gpu-warp-specialize | FileCheck %s

!g = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>
!t = memref<64x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
!bar = memref<1xi64, #gpu.address_space<workgroup>>

// CHECK-LABEL: gpu.func @key_loop
// CHECK-SAME: #attn_gpu.launch<threads = 256, {{.*}}schedule = {consumers = 1 : i64, min_blocks = 2 : i64, stages = 2 : i64}
// CHECK-SAME: known_block_size = array<i32: 256, 1, 1>
// CHECK: %[[Q:.*]] = attn_gpu.alloc_shared : memref<64x128xbf16
// CHECK: %[[K0:.*]] = attn_gpu.alloc_shared : memref<64x128xbf16
// CHECK: %[[V0:.*]] = attn_gpu.alloc_shared : memref<64x128xbf16
// CHECK: %[[KF0:.*]] = attn_gpu.alloc_shared : memref<1xi64
// CHECK: %[[VF0:.*]] = attn_gpu.alloc_shared : memref<1xi64
// CHECK: %[[K1:.*]] = attn_gpu.alloc_shared : memref<64x128xbf16
// CHECK: %[[KF1:.*]] = attn_gpu.alloc_shared : memref<1xi64
// CHECK-NEXT: attn_gpu.init_barrier %[[KF1]] : memref
// CHECK-NEXT: %[[KE0:.*]] = attn_gpu.alloc_shared : memref<1xi64
// CHECK-NEXT: attn_gpu.init_barrier %[[KE0]] arrivals 128
// CHECK-NEXT: %[[KE1:.*]] = attn_gpu.alloc_shared : memref<1xi64
// CHECK-NEXT: attn_gpu.init_barrier %[[KE1]] arrivals 128
// CHECK-NEXT: %[[V1:.*]] = attn_gpu.alloc_shared : memref<64x128xbf16
// CHECK-NEXT: %[[VF1:.*]] = attn_gpu.alloc_shared : memref<1xi64
// CHECK-NEXT: attn_gpu.init_barrier %[[VF1]]
// CHECK-NEXT: %[[VE0:.*]] = attn_gpu.alloc_shared : memref<1xi64
// CHECK-NEXT: attn_gpu.init_barrier %[[VE0]] arrivals 128
// CHECK-NEXT: %[[VE1:.*]] = attn_gpu.alloc_shared : memref<1xi64
// CHECK-NEXT: attn_gpu.init_barrier %[[VE1]] arrivals 128
// CHECK-NEXT: gpu.barrier
// CHECK-NEXT: attn_gpu.warp_specialize consumers(1) registers [232, 24] {
// CHECK-NEXT: attn_gpu.copy_query_tile
// CHECK-NOT: attn_gpu.copy_key_tile
// CHECK: nvgpu.device_async_wait
// CHECK-NEXT: nvvm.fence.proxy
// CHECK-NEXT: gpu.barrier
// CHECK-NEXT: scf.for %[[J:.*]] = %[[LB:[^ ]*]] to %{{.*}} step %[[STEP:[^ ]*]] {
// CHECK-NOT: gpu.barrier
// CHECK: %[[LATER:.*]] = arith.cmpi ugt, %[[J]], %[[LB]]
// CHECK-NEXT: scf.if %[[LATER]] {
// CHECK: %[[VFREE:.*]] = arith.select %{{.*}}, %[[VE1]], %[[VE0]]
// CHECK-NEXT: attn_gpu.arrive_barrier %[[VFREE]]
// CHECK: %[[KODD:.*]] = arith.cmpi eq
// CHECK: %[[KHALF:.*]] = arith.divui
// CHECK-NEXT: %[[KFULL:.*]] = arith.select %[[KODD]], %[[KF1]], %[[KF0]]
// CHECK-NEXT: attn_gpu.wait_barrier %[[KFULL]] phase %[[KHALF]]
// CHECK-NEXT: %[[KCUR:.*]] = arith.select %[[KODD]], %[[K1]], %[[K0]]
// CHECK-NEXT: arith.constant
// CHECK-NEXT: attn_gpu.mma %[[Q]], %[[KCUR]]
// CHECK-NOT: gpu.barrier
// CHECK: %[[KFREE:.*]] = arith.select %{{.*}}, %[[KE1]], %[[KE0]]
// CHECK-NEXT: attn_gpu.arrive_barrier %[[KFREE]]
// CHECK: attn_gpu.wait_barrier %{{.*}} phase
// CHECK-NEXT: %[[VCUR:.*]] = arith.select %{{.*}}, %[[V1]], %[[V0]]
// CHECK-NEXT: arith.constant
// CHECK-NEXT: attn_gpu.mma %{{.*}}, %[[VCUR]]
// CHECK: }
// After the loop: the last K prefetch (copy T), buffer T % 2.
// CHECK: arith.ceildivui
// CHECK: attn_gpu.wait_barrier %{{.*}} phase
// CHECK: } producer {
// K's copy 0 into buffer 0 (free barrier 0 at parity 1: a fresh barrier passes).
// CHECK: attn_gpu.wait_barrier %{{.*}} phase
// CHECK: attn_gpu.copy_key_tile %arg1[%{{.*}}, %{{.*}}, %[[LB]]] below %{{.*}} -> %{{.*}} by %arg6 signals
// CHECK: scf.for %[[PJ:.*]] = %[[LB]] to %{{.*}} step %[[STEP]] {
// CHECK: %[[PVODD:.*]] = arith.cmpi eq
// CHECK: %[[PVFREE:.*]] = arith.select %[[PVODD]], %[[VE1]], %[[VE0]]
// CHECK-NEXT: attn_gpu.wait_barrier %[[PVFREE]] phase
// CHECK-NEXT: %[[PV:.*]] = arith.select %[[PVODD]], %[[V1]], %[[V0]]
// CHECK-NEXT: %[[PVFULL:.*]] = arith.select %[[PVODD]], %[[VF1]], %[[VF0]]
// CHECK-NEXT: attn_gpu.copy_key_tile %arg2[%{{.*}}, %{{.*}}, %[[PJ]]] below %{{.*}} -> %[[PV]] by %arg7 signals %[[PVFULL]]
// CHECK: %[[NEXT:.*]] = arith.addi %[[PJ]], %[[STEP]]
// CHECK: attn_gpu.copy_key_tile %arg1[%{{.*}}, %{{.*}}, %[[NEXT]]] below %{{.*}} by %arg6 signals
// CHECK: }
// CHECK-NEXT: }
// CHECK-NEXT: gpu.return
gpu.module @m [#nvvm.target<chip = "sm_90a">] {
  gpu.func @key_loop(%q: !g, %k: !g, %v: !g, %b: index, %lb: index, %ub: index, %kmap: !llvm.ptr, %vmap: !llvm.ptr, %p: tensor<64x64xbf16, #attn_gpu.frag<operand_a>>) kernel
      attributes {attn_gpu.launch = #attn_gpu.launch<threads = 128, grid = [<arg 0 dim 2 * 1 ceil_div 64>], shared_memory = 0, splits = false, schedule = {}, tensor_maps = [<arg 1 box 64 x 64>, <arg 2 box 64 x 64>]>, known_block_size = array<i32: 128, 1, 1>} {
    %c2 = arith.constant 2 : index
    %n = memref.dim %k, %c2 : !g
    %step = arith.constant 64 : index
    %qt = attn_gpu.alloc_shared : !t
    %kt = attn_gpu.alloc_shared : !t
    %vt = attn_gpu.alloc_shared : !t
    %kbar = attn_gpu.alloc_shared : !bar
    attn_gpu.init_barrier %kbar : !bar
    %vbar = attn_gpu.alloc_shared : !bar
    attn_gpu.init_barrier %vbar : !bar
    gpu.barrier
    attn_gpu.copy_query_tile %q[%b, %b, %b] -> %qt : !g -> !t
    %g0 = nvgpu.device_async_create_group
    attn_gpu.copy_key_tile %k[%b, %b, %lb] below %n -> %kt by %kmap signals %kbar : !g -> !t by !llvm.ptr, !bar
    %g1 = nvgpu.device_async_create_group
    nvgpu.device_async_wait %g1 {numGroups = 1 : i32}
    nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
    gpu.barrier
    scf.for %j = %lb to %ub step %step {
      %t = arith.subi %j, %lb : index
      %it = arith.divui %t, %step : index
      gpu.barrier
      attn_gpu.copy_key_tile %v[%b, %b, %j] below %n -> %vt by %vmap signals %vbar : !g -> !t by !llvm.ptr, !bar
      %g2 = nvgpu.device_async_create_group
      attn_gpu.wait_barrier %kbar phase %it : !bar
      %zero = arith.constant dense<0.0> : tensor<64x64xf32, #attn_gpu.frag<acc>>
      %s = attn_gpu.mma %qt, %kt, %zero {kind = #attn_gpu.mma<wgmma_m64nNk16>, transpose_b} : !t, !t, tensor<64x64xf32, #attn_gpu.frag<acc>> -> tensor<64x64xf32, #attn_gpu.frag<acc>>
      gpu.barrier
      %next = arith.addi %j, %step : index
      attn_gpu.copy_key_tile %k[%b, %b, %next] below %n -> %kt by %kmap signals %kbar : !g -> !t by !llvm.ptr, !bar
      %g3 = nvgpu.device_async_create_group
      attn_gpu.wait_barrier %vbar phase %it : !bar
      %acc = arith.constant dense<0.0> : tensor<64x128xf32, #attn_gpu.frag<acc>>
      %o = attn_gpu.mma %p, %vt, %acc {kind = #attn_gpu.mma<wgmma_m64nNk16>} : tensor<64x64xbf16, #attn_gpu.frag<operand_a>>, !t, tensor<64x128xf32, #attn_gpu.frag<acc>> -> tensor<64x128xf32, #attn_gpu.frag<acc>>
    }
    %trips = arith.ceildivui %ub, %step : index
    %g4 = nvgpu.device_async_create_group
    attn_gpu.wait_barrier %kbar phase %trips : !bar
    gpu.return
  }
}

// -----

!g = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>
!t = memref<64x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
!bar = memref<1xi64, #gpu.address_space<workgroup>>

// Left alone: a tile read with no wait for it before the read.
// CHECK-LABEL: gpu.func @read_before_wait
// CHECK-NOT: warp_specialize
// CHECK: gpu.return
gpu.module @m2 [#nvvm.target<chip = "sm_90a">] {
  gpu.func @read_before_wait(%k: !g, %b: index, %kmap: !llvm.ptr) kernel
      attributes {attn_gpu.launch = #attn_gpu.launch<threads = 128, grid = [<arg 0 dim 2 * 1 ceil_div 64>], shared_memory = 0, splits = false, schedule = {}, tensor_maps = [<arg 0 box 64 x 64>]>} {
    %c2 = arith.constant 2 : index
    %c0 = arith.constant 0 : index
    %n = memref.dim %k, %c2 : !g
    %kt = attn_gpu.alloc_shared : !t
    %kbar = attn_gpu.alloc_shared : !bar
    attn_gpu.init_barrier %kbar : !bar
    gpu.barrier
    attn_gpu.copy_key_tile %k[%b, %b, %b] below %n -> %kt by %kmap signals %kbar : !g -> !t by !llvm.ptr, !bar
    "test.use_k"(%kt) : (!t) -> ()
    attn_gpu.wait_barrier %kbar phase %c0 : !bar
    gpu.return
  }
}

// -----

!g = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>
!t = memref<64x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
!q = memref<128x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
!bar = memref<1xi64, #gpu.address_space<workgroup>>

// Two consumer warpgroups (a 128-row tile): 384 threads, one block per SM, setmaxnreg 240/24;
// they take turns at the loop's matmul (ping-pong), the first holding the turn at the start.
// CHECK-LABEL: gpu.func @two_consumers
// CHECK-SAME: #attn_gpu.launch<threads = 384, {{.*}}schedule = {consumers = 2 : i64, min_blocks = 1 : i64, stages = 2 : i64}
// CHECK: attn_gpu.warp_specialize consumers(2) registers [240, 24] {
// CHECK: attn_gpu.turn start
// CHECK-NEXT: scf.for
// CHECK: attn_gpu.wait_barrier
// CHECK: attn_gpu.turn wait
// CHECK-NEXT: attn_gpu.mma
// CHECK-NEXT: attn_gpu.turn pass
// CHECK: } producer {
// CHECK-NOT: attn_gpu.turn
// CHECK: gpu.return
// A tile whose second buffer would not fit a block's shared memory (227 KB): left alone.
// CHECK-LABEL: gpu.func @too_big
// CHECK-NOT: warp_specialize
// CHECK: gpu.return
gpu.module @m3 [#nvvm.target<chip = "sm_90a">] {
  gpu.func @two_consumers(%k: !g, %b: index, %lb: index, %ub: index, %kmap: !llvm.ptr) kernel
      attributes {attn_gpu.launch = #attn_gpu.launch<threads = 256, grid = [<arg 0 dim 2 * 1 ceil_div 128>], shared_memory = 0, splits = false, schedule = {}, tensor_maps = [<arg 0 box 64 x 64>]>} {
    %c2 = arith.constant 2 : index
    %step = arith.constant 64 : index
    %n = memref.dim %k, %c2 : !g
    %qt = attn_gpu.alloc_shared : !q
    %kt = attn_gpu.alloc_shared : !t
    %kbar = attn_gpu.alloc_shared : !bar
    attn_gpu.init_barrier %kbar : !bar
    gpu.barrier
    scf.for %j = %lb to %ub step %step {
      %t = arith.subi %j, %lb : index
      %it = arith.divui %t, %step : index
      gpu.barrier
      attn_gpu.copy_key_tile %k[%b, %b, %j] below %n -> %kt by %kmap signals %kbar : !g -> !t by !llvm.ptr, !bar
      attn_gpu.wait_barrier %kbar phase %it : !bar
      %zero = arith.constant dense<0.0> : tensor<128x64xf32, #attn_gpu.frag<acc>>
      %s = attn_gpu.mma %qt, %kt, %zero {kind = #attn_gpu.mma<wgmma_m64nNk16>, transpose_b} : !q, !t, tensor<128x64xf32, #attn_gpu.frag<acc>> -> tensor<128x64xf32, #attn_gpu.frag<acc>>
    }
    gpu.return
  }
  gpu.func @too_big(%k: !g, %b: index, %kmap: !llvm.ptr) kernel
      attributes {attn_gpu.launch = #attn_gpu.launch<threads = 128, grid = [<arg 0 dim 2 * 1 ceil_div 64>], shared_memory = 0, splits = false, schedule = {}, tensor_maps = [<arg 0 box 64 x 64>]>} {
    %c2 = arith.constant 2 : index
    %c0 = arith.constant 0 : index
    %n = memref.dim %k, %c2 : !g
    %big = attn_gpu.alloc_shared : memref<64x1024xf32, #gpu.address_space<workgroup>>
    %kt = attn_gpu.alloc_shared : !t
    %kbar = attn_gpu.alloc_shared : !bar
    attn_gpu.init_barrier %kbar : !bar
    gpu.barrier
    attn_gpu.copy_key_tile %k[%b, %b, %b] below %n -> %kt by %kmap signals %kbar : !g -> !t by !llvm.ptr, !bar
    attn_gpu.wait_barrier %kbar phase %c0 : !bar
    %zero = arith.constant dense<0.0> : tensor<64x64xf32, #attn_gpu.frag<acc>>
    %s = attn_gpu.mma %kt, %kt, %zero {kind = #attn_gpu.mma<wgmma_m64nNk16>, transpose_b} : !t, !t, tensor<64x64xf32, #attn_gpu.frag<acc>> -> tensor<64x64xf32, #attn_gpu.frag<acc>>
    gpu.return
  }
}

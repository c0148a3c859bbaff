// attn-gpu-tensor-copies: in an sm_90a kernel, key and value copies into swizzled tiles of
// their own go by TMA (a descriptor parameter per tensor, an mbarrier per tile); each cp.async
// wait that completed one waits on that tile's barrier at the parity of its latest copy:
// K(lower bound) before the loop and one per iteration -> phase (j - lb) / step in the loop,
// the trip count after it; V one per iteration -> (j - lb) / step. The Q copy (cp.async) keeps
// its wait and proxy fence; waits that complete only TMA copies go, with their fences and,
// when only copies precede them since the last block barrier, the block barrier behind them.
// Kernels on sm_80 and copies into padded tiles are left alone.
// RUN: attnc-opt %s --split-input-file --allow-unregistered-dialect --attn-gpu-tensor-copies | FileCheck %s

!g = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>
!t = memref<64x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>

// CHECK-LABEL: gpu.func @key_loop
// CHECK-SAME: %[[KMAP:[^:]*]]: !llvm.ptr, %[[VMAP:[^:]*]]: !llvm.ptr) kernel
// CHECK-SAME: tensor_maps = [<arg 1 box 64 x 64>, <arg 2 box 64 x 64>]
// CHECK: %[[KBAR:.*]] = attn_gpu.alloc_shared : memref<1xi64, #gpu.address_space<workgroup>>
// CHECK-NEXT: attn_gpu.init_barrier %[[KBAR]]
// CHECK-NEXT: %[[VBAR:.*]] = attn_gpu.alloc_shared : memref<1xi64, #gpu.address_space<workgroup>>
// CHECK-NEXT: attn_gpu.init_barrier %[[VBAR]]
// CHECK-NEXT: gpu.barrier
// CHECK-NEXT: attn_gpu.copy_query_tile
// CHECK-NEXT: nvgpu.device_async_create_group
// CHECK-NEXT: attn_gpu.copy_key_tile %{{.*}}[%{{.*}}, %{{.*}}, %[[LB:[a-z0-9_]*]]] below %{{.*}} -> %{{.*}} by %[[KMAP]] signals %[[KBAR]] :
// CHECK-NEXT: nvgpu.device_async_create_group
// CHECK-NEXT: nvgpu.device_async_wait %{{.*}} {numGroups = 1 : i32}
// CHECK-NEXT: nvvm.fence.proxy
// CHECK-NEXT: gpu.barrier
// CHECK: scf.for %[[J:.*]] = %[[LB]] to %[[UB:.*]] step %[[STEP:[^ ]*]]
// CHECK: attn_gpu.copy_key_tile {{.*}} by %[[VMAP]] signals %[[VBAR]] :
// CHECK-NEXT: nvgpu.device_async_create_group
// CHECK-NEXT: %[[D:.*]] = arith.subi %[[J]], %[[LB]]
// CHECK-NEXT: %[[T:.*]] = arith.divui %[[D]], %[[STEP]]
// CHECK: %[[KC:.*]] = arith.muli %[[T]], %[[ONE:.*]] :
// CHECK: %[[KN:.*]] = arith.addi %[[KC]], %[[ONE2:.*]] :
// CHECK: %[[KP:.*]] = arith.subi %[[KN]], %{{.*}}
// CHECK-NEXT: attn_gpu.wait_barrier %[[KBAR]] phase %[[KP]]
// CHECK-NEXT: "test.use_k"
// CHECK: attn_gpu.copy_key_tile {{.*}} by %[[KMAP]] signals %[[KBAR]] :
// CHECK-NEXT: nvgpu.device_async_create_group
// CHECK: attn_gpu.wait_barrier %[[VBAR]] phase
// CHECK-NEXT: "test.use_v"
// After the loop: the last K prefetch, at the trip count's parity.
// CHECK: nvgpu.device_async_create_group
// CHECK-NEXT: arith.maxsi %[[UB]], %[[LB]]
// CHECK: arith.ceildivui
// CHECK: attn_gpu.wait_barrier %[[KBAR]] phase
// CHECK-NOT: nvgpu.device_async_wait
// CHECK: gpu.return
gpu.module @m [#nvvm.target<chip = "sm_90a">] {
  gpu.func @key_loop(%q: !g, %k: !g, %v: !g, %b: index, %lb: index, %ub: index) kernel
      attributes {attn_gpu.launch = #attn_gpu.launch<threads = 128, grid = [<arg 0 dim 2 * 1 ceil_div 64>], shared_memory = 0, splits = false>} {
    %c2 = arith.constant 2 : index
    %n = memref.dim %k, %c2 : !g
    %step = arith.constant 64 : index
    %qt = attn_gpu.alloc_shared : !t
    %kt = attn_gpu.alloc_shared : !t
    %vt = attn_gpu.alloc_shared : !t
    attn_gpu.copy_query_tile %q[%b, %b, %b] -> %qt : !g -> !t
    %g0 = nvgpu.device_async_create_group
    attn_gpu.copy_key_tile %k[%b, %b, %lb] below %n -> %kt {interior} : !g -> !t
    %g1 = nvgpu.device_async_create_group
    nvgpu.device_async_wait %g1 {numGroups = 1 : i32}
    nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
    gpu.barrier
    scf.for %j = %lb to %ub step %step {
      gpu.barrier
      attn_gpu.copy_key_tile %v[%b, %b, %j] below %n -> %vt {interior} : !g -> !t
      %g2 = nvgpu.device_async_create_group
      nvgpu.device_async_wait %g2 {numGroups = 1 : i32}
      nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
      gpu.barrier
      "test.use_k"(%kt) : (!t) -> ()
      gpu.barrier
      %next = arith.addi %j, %step : index
      attn_gpu.copy_key_tile %k[%b, %b, %next] below %n -> %kt {interior} : !g -> !t
      %g3 = nvgpu.device_async_create_group
      nvgpu.device_async_wait %g3 {numGroups = 1 : i32}
      nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
      gpu.barrier
      "test.use_v"(%vt) : (!t) -> ()
    }
    %g4 = nvgpu.device_async_create_group
    nvgpu.device_async_wait %g4 {numGroups = 0 : i32}
    gpu.return
  }
}

// -----

!g = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>
!t = memref<64x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>

// sm_80: cp.async stays.
// CHECK-LABEL: gpu.func @sm80
// CHECK-NOT: by
// CHECK: nvgpu.device_async_wait
gpu.module @m80 [#nvvm.target<chip = "sm_80">] {
  gpu.func @sm80(%k: !g, %b: index) kernel {
    %c2 = arith.constant 2 : index
    %n = memref.dim %k, %c2 : !g
    %kt = attn_gpu.alloc_shared : !t
    attn_gpu.copy_key_tile %k[%b, %b, %b] below %n -> %kt : !g -> !t
    %g = nvgpu.device_async_create_group
    nvgpu.device_async_wait %g {numGroups = 0 : i32}
    gpu.return
  }
}

// -----

!g = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>
!t = memref<64x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>

// A copy bounded by something other than a tensor's own key extent (TMA zero-fills past the
// tensor's extent only), and a copy in a branch: the kernel keeps cp.async.
// CHECK-LABEL: gpu.func @not_extent
// CHECK-NOT: by
// CHECK: gpu.return
// CHECK-LABEL: gpu.func @in_branch
// CHECK-NOT: by
// CHECK: gpu.return
gpu.module @m2 [#nvvm.target<chip = "sm_90a">] {
  gpu.func @not_extent(%k: !g, %b: index, %n: index) kernel {
    %kt = attn_gpu.alloc_shared : !t
    attn_gpu.copy_key_tile %k[%b, %b, %b] below %n -> %kt : !g -> !t
    %g = nvgpu.device_async_create_group
    nvgpu.device_async_wait %g {numGroups = 0 : i32}
    gpu.return
  }
  gpu.func @in_branch(%k: !g, %b: index, %c: i1) kernel {
    %c2 = arith.constant 2 : index
    %n = memref.dim %k, %c2 : !g
    %kt = attn_gpu.alloc_shared : !t
    scf.if %c {
      attn_gpu.copy_key_tile %k[%b, %b, %b] below %n -> %kt : !g -> !t
    }
    %g = nvgpu.device_async_create_group
    nvgpu.device_async_wait %g {numGroups = 0 : i32}
    gpu.return
  }
}

// attn-gpu-pipeline: a key loop with a synchronous K stage and V stage becomes FlashAttention-2's
// two-stage order; a loop that reads K after V's copy is left alone. A chunk loop (one copy
// stage of Q, K and V tiles) is double-buffered, unless it runs at most once; so is the
// overlapped flash loop (origins computed before its copies, K read before the loop).
// RUN: attnc-opt %s --split-input-file --allow-unregistered-dialect --attn-gpu-pipeline | FileCheck %s

!g = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
!t = memref<32x72xbf16, #gpu.address_space<workgroup>>

// CHECK-LABEL: gpu.func @key_loop
// The prologue: Q, then K(lower bound) behind it; the wait leaves K in flight.
// CHECK: attn_gpu.copy_query_tile
// CHECK-NEXT: nvgpu.device_async_create_group
// CHECK-NEXT: attn_gpu.copy_key_tile %[[K:.*]][%{{.*}}, %{{.*}}, %[[LB:.*]]] below {{.*}} -> %[[KT:.*]] :
// CHECK-NEXT: %[[G:.*]] = nvgpu.device_async_create_group
// CHECK-NEXT: nvgpu.device_async_wait %[[G]] {numGroups = 1 : i32}
// CHECK-NEXT: gpu.barrier
// CHECK: scf.for %[[J:.*]] = %[[LB]] to %{{.*}} step %[[STEP:[^ ]*]]
// V(j0) first, then wait for K(j0) only.
// CHECK-NEXT: gpu.barrier
// CHECK-NEXT: attn_gpu.copy_key_tile %[[V:.*]][%{{.*}}, %{{.*}}, %[[J]]] below {{.*}} -> %[[VT:.*]] :
// CHECK-NEXT: nvgpu.device_async_create_group
// CHECK-NEXT: nvgpu.device_async_wait %{{.*}} {numGroups = 1 : i32}
// CHECK-NEXT: gpu.barrier
// CHECK-NEXT: "test.use_k"
// K(j0 + step) next, then wait for V(j0) only.
// CHECK-NEXT: gpu.barrier
// CHECK-NEXT: %[[NEXT:.*]] = arith.addi %[[J]], %[[STEP]]
// CHECK-NEXT: attn_gpu.copy_key_tile %[[K]][%{{.*}}, %{{.*}}, %[[NEXT]]] below {{.*}} -> %[[KT]] :
// CHECK-NEXT: nvgpu.device_async_create_group
// CHECK-NEXT: nvgpu.device_async_wait %{{.*}} {numGroups = 1 : i32}
// CHECK-NEXT: gpu.barrier
// CHECK-NEXT: "test.use_v"
// CHECK-NEXT: }
// The last prefetch drains.
// CHECK: nvgpu.device_async_create_group
// CHECK-NEXT: nvgpu.device_async_wait %{{.*}} {numGroups = 0 : i32}
gpu.module @m {
  gpu.func @key_loop(%q: !g, %k: !g, %v: !g, %b: index, %lb: index, %ub: index, %n: index) kernel {
    %step = arith.constant 32 : index
    %qt = attn_gpu.alloc_shared : !t
    %kt = attn_gpu.alloc_shared : !t
    %vt = attn_gpu.alloc_shared : !t
    attn_gpu.copy_query_tile %q[%b, %b, %b] -> %qt : !g -> !t
    %g0 = nvgpu.device_async_create_group
    nvgpu.device_async_wait %g0 {numGroups = 0 : i32}
    gpu.barrier
    scf.for %j = %lb to %ub step %step {
      attn_gpu.copy_key_tile %k[%b, %b, %j] below %n -> %kt : !g -> !t
      %g1 = nvgpu.device_async_create_group
      nvgpu.device_async_wait %g1 {numGroups = 0 : i32}
      gpu.barrier
      "test.use_k"(%kt) : (!t) -> ()
      attn_gpu.copy_key_tile %v[%b, %b, %j] below %n -> %vt : !g -> !t
      %g2 = nvgpu.device_async_create_group
      nvgpu.device_async_wait %g2 {numGroups = 0 : i32}
      gpu.barrier
      "test.use_v"(%vt) : (!t) -> ()
      gpu.barrier
    }
    gpu.return
  }
}

// -----

!g = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
!t = memref<32x72xbf16, #gpu.address_space<workgroup>>

// K is read after V's copy: prefetching K there would overwrite it; the loop stays as it is.
// CHECK-LABEL: gpu.func @k_read_late
// CHECK: scf.for
// CHECK-NEXT: attn_gpu.copy_key_tile
// CHECK: nvgpu.device_async_wait %{{.*}} {numGroups = 0 : i32}
gpu.module @m2 {
  gpu.func @k_read_late(%k: !g, %v: !g, %b: index, %lb: index, %ub: index, %n: index) kernel {
    %step = arith.constant 32 : index
    %kt = attn_gpu.alloc_shared : !t
    %vt = attn_gpu.alloc_shared : !t
    %g0 = nvgpu.device_async_create_group
    nvgpu.device_async_wait %g0 {numGroups = 0 : i32}
    scf.for %j = %lb to %ub step %step {
      attn_gpu.copy_key_tile %k[%b, %b, %j] below %n -> %kt : !g -> !t
      %g1 = nvgpu.device_async_create_group
      nvgpu.device_async_wait %g1 {numGroups = 0 : i32}
      gpu.barrier
      attn_gpu.copy_key_tile %v[%b, %b, %j] below %n -> %vt : !g -> !t
      %g2 = nvgpu.device_async_create_group
      nvgpu.device_async_wait %g2 {numGroups = 0 : i32}
      gpu.barrier
      "test.use_both"(%kt, %vt) : (!t, !t) -> ()
      gpu.barrier
    }
    gpu.return
  }
}

// -----

!g = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
!t = memref<64x72xbf16, #gpu.address_space<workgroup>>

// CHECK-LABEL: gpu.func @chunk_loop
// A second buffer per tile, the first chunk's copies in the prologue.
// CHECK: %[[Q0:.*]] = attn_gpu.alloc_shared
// CHECK-NEXT: %[[Q1:.*]] = attn_gpu.alloc_shared
// CHECK-NEXT: %[[K0:.*]] = attn_gpu.alloc_shared
// CHECK-NEXT: %[[K1:.*]] = attn_gpu.alloc_shared
// CHECK: attn_gpu.copy_query_tile %{{.*}}[%{{.*}}, %{{.*}}, %[[LB:[a-z0-9_]+]]] -> %[[Q0]]
// CHECK-NEXT: attn_gpu.copy_key_tile %{{.*}}[%{{.*}}, %{{.*}}, %[[LB]]] below %{{.*}} -> %[[K0]]
// CHECK-NEXT: nvgpu.device_async_create_group
// CHECK: scf.for %[[N:.*]] = %[[LB]] to %{{.*}} step %[[STEP:[^ ]*]]
// The iteration's parity picks the buffers; the next chunk streams into the other ones ...
// CHECK: %[[ODD:.*]] = arith.cmpi ne
// CHECK: %[[NEXT:.*]] = arith.addi %[[N]], %[[STEP]]
// CHECK-DAG: %[[QNEXT:.*]] = arith.select %[[ODD]], %[[Q0]], %[[Q1]]
// CHECK-DAG: %[[QCUR:.*]] = arith.select %[[ODD]], %[[Q1]], %[[Q0]]
// CHECK-DAG: %[[KNEXT:.*]] = arith.select %[[ODD]], %[[K0]], %[[K1]]
// CHECK-DAG: %[[KCUR:.*]] = arith.select %[[ODD]], %[[K1]], %[[K0]]
// CHECK: attn_gpu.copy_query_tile %{{.*}}[%{{.*}}, %{{.*}}, %[[NEXT]]] -> %[[QNEXT]]
// CHECK-NEXT: attn_gpu.copy_key_tile %{{.*}}[%{{.*}}, %{{.*}}, %[[NEXT]]] below %{{.*}} -> %[[KNEXT]]
// CHECK-NEXT: %[[G:.*]] = nvgpu.device_async_create_group
// ... and the wait leaves that group in flight while this chunk computes on the current ones.
// CHECK-NEXT: nvgpu.device_async_wait %[[G]] {numGroups = 1 : i32}
// CHECK-NEXT: gpu.barrier
// CHECK-NEXT: "test.use"(%[[QCUR]], %[[KCUR]])
// CHECK-NEXT: gpu.barrier
// CHECK-NEXT: }
// CHECK: nvgpu.device_async_create_group
// CHECK-NEXT: nvgpu.device_async_wait %{{.*}} {numGroups = 0 : i32}
gpu.module @m3 {
  gpu.func @chunk_loop(%q: !g, %k: !g, %b: index, %lb: index, %ub: index, %n: index) kernel {
    %step = arith.constant 64 : index
    %qt = attn_gpu.alloc_shared : !t
    %kt = attn_gpu.alloc_shared : !t
    scf.for %i = %lb to %ub step %step {
      attn_gpu.copy_query_tile %q[%b, %b, %i] -> %qt : !g -> !t
      attn_gpu.copy_key_tile %k[%b, %b, %i] below %n -> %kt : !g -> !t
      %g = nvgpu.device_async_create_group
      nvgpu.device_async_wait %g {numGroups = 0 : i32}
      gpu.barrier
      "test.use"(%qt, %kt) : (!t, !t) -> ()
      gpu.barrier
    }
    gpu.return
  }
}

// -----

!g = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
!t = memref<16x72xbf16, #gpu.address_space<workgroup>>

// A decoding step: the loop runs once, so a second set of buffers would only cost shared
// memory (and occupancy). It stays as it is.
// CHECK-LABEL: gpu.func @one_step
// CHECK-COUNT-2: attn_gpu.alloc_shared
// CHECK-NOT: attn_gpu.alloc_shared
// CHECK: scf.for
// CHECK-NEXT: attn_gpu.copy_query_tile
// CHECK-NEXT: attn_gpu.copy_key_tile
// CHECK-NEXT: nvgpu.device_async_create_group
// CHECK-NEXT: nvgpu.device_async_wait %{{.*}} {numGroups = 0 : i32}
// CHECK-NOT: arith.select
gpu.module @m4 {
  gpu.func @one_step(%q: !g, %k: !g, %b: index, %n: index) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %step = arith.constant 16 : index
    %qt = attn_gpu.alloc_shared : !t
    %kt = attn_gpu.alloc_shared : !t
    scf.for %i = %c0 to %c1 step %step {
      attn_gpu.copy_query_tile %q[%b, %b, %i] -> %qt : !g -> !t
      attn_gpu.copy_key_tile %k[%b, %b, %i] below %n -> %kt : !g -> !t
      %g = nvgpu.device_async_create_group
      nvgpu.device_async_wait %g {numGroups = 0 : i32}
      gpu.barrier
      "test.use"(%qt, %kt) : (!t, !t) -> ()
      gpu.barrier
    }
    gpu.return
  }
}

// -----

!g = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
!t = memref<32x72xbf16, #gpu.address_space<workgroup>>

// The overlapped flash loop (attn-gpu-distribute overlap=true): one stage copies K of the next
// key tile (origin j + 32, computed before the copies) and V of this one; K's tile is also read
// before the loop (the first tile's S), then a barrier. Both tiles are double-buffered: the
// prologue copies the first iteration's tiles (its origins recomputed from the lower bound),
// each iteration the next one's (origins from j + step).
// CHECK-LABEL: gpu.func @overlapped
// CHECK: %[[KA:.*]] = attn_gpu.alloc_shared
// CHECK-NEXT: %[[KB:.*]] = attn_gpu.alloc_shared
// CHECK-NEXT: %[[VA:.*]] = attn_gpu.alloc_shared
// CHECK-NEXT: %[[VB:.*]] = attn_gpu.alloc_shared
// CHECK: "test.first_s"(%[[KA]])
// CHECK-NEXT: gpu.barrier
// CHECK-NEXT: %[[C:.*]] = arith.constant 32 : index
// CHECK-NEXT: %[[N0:.*]] = arith.addi %[[LB:.*]], %[[C]]
// CHECK-NEXT: attn_gpu.copy_key_tile %{{.*}}[%{{.*}}, %{{.*}}, %[[N0]]] below {{.*}} -> %[[KA]]
// CHECK-NEXT: attn_gpu.copy_key_tile %{{.*}}[%{{.*}}, %{{.*}}, %[[LB]]] below {{.*}} -> %[[VA]]
// CHECK-NEXT: nvgpu.device_async_create_group
// CHECK-NEXT: scf.for %[[J:.*]] = %[[LB]] to
// CHECK: arith.cmpi ne
// CHECK-NEXT: %[[NEXT:.*]] = arith.addi %[[J]], %{{.*}}
// CHECK-NEXT: %[[KNEXT:.*]] = arith.select %{{.*}}, %[[KA]], %[[KB]]
// CHECK-NEXT: %[[KCUR:.*]] = arith.select %{{.*}}, %[[KB]], %[[KA]]
// CHECK-NEXT: %[[VNEXT:.*]] = arith.select %{{.*}}, %[[VA]], %[[VB]]
// CHECK-NEXT: %[[VCUR:.*]] = arith.select %{{.*}}, %[[VB]], %[[VA]]
// CHECK-NEXT: arith.constant 32 : index
// CHECK-NEXT: %[[N1:.*]] = arith.addi %[[NEXT]], %{{.*}}
// CHECK-NEXT: attn_gpu.copy_key_tile %{{.*}}[%{{.*}}, %{{.*}}, %[[N1]]] below {{.*}} -> %[[KNEXT]]
// CHECK-NEXT: attn_gpu.copy_key_tile %{{.*}}[%{{.*}}, %{{.*}}, %[[NEXT]]] below {{.*}} -> %[[VNEXT]]
// CHECK-NEXT: nvgpu.device_async_create_group
// CHECK-NEXT: nvgpu.device_async_wait %{{.*}} {numGroups = 1 : i32}
// CHECK-NEXT: gpu.barrier
// CHECK-NEXT: "test.use"(%[[KCUR]], %[[VCUR]])
gpu.module @m5 {
  gpu.func @overlapped(%k: !g, %v: !g, %b: index, %lb: index, %ub: index, %n: index) kernel {
    %step = arith.constant 32 : index
    %kt = attn_gpu.alloc_shared : !t
    %vt = attn_gpu.alloc_shared : !t
    attn_gpu.copy_key_tile %k[%b, %b, %lb] below %n -> %kt : !g -> !t
    %g0 = nvgpu.device_async_create_group
    nvgpu.device_async_wait %g0 {numGroups = 0 : i32}
    gpu.barrier
    "test.first_s"(%kt) : (!t) -> ()
    gpu.barrier
    scf.for %j = %lb to %ub step %step {
      %c = arith.constant 32 : index
      %next = arith.addi %j, %c : index
      attn_gpu.copy_key_tile %k[%b, %b, %next] below %n -> %kt : !g -> !t
      attn_gpu.copy_key_tile %v[%b, %b, %j] below %n -> %vt : !g -> !t
      %g = nvgpu.device_async_create_group
      nvgpu.device_async_wait %g {numGroups = 0 : i32}
      gpu.barrier
      "test.use"(%kt, %vt) : (!t, !t) -> ()
      gpu.barrier
    }
    gpu.return
  }
}

// -----

!g = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
!t = memref<32x72xbf16, #gpu.address_space<workgroup>>

// A tile read before the loop with no barrier between that read and the loop: the loop's first
// copies could overwrite it under a warp still reading. Nothing is double-buffered.
// CHECK-LABEL: gpu.func @read_before_unsynced
// CHECK-COUNT-1: attn_gpu.alloc_shared
// CHECK-NOT: attn_gpu.alloc_shared
// CHECK-NOT: arith.select
gpu.module @m6 {
  gpu.func @read_before_unsynced(%k: !g, %b: index, %lb: index, %ub: index, %n: index) kernel {
    %step = arith.constant 32 : index
    %kt = attn_gpu.alloc_shared : !t
    "test.first_s"(%kt) : (!t) -> ()
    scf.for %j = %lb to %ub step %step {
      attn_gpu.copy_key_tile %k[%b, %b, %j] below %n -> %kt : !g -> !t
      %g = nvgpu.device_async_create_group
      nvgpu.device_async_wait %g {numGroups = 0 : i32}
      gpu.barrier
      "test.use"(%kt) : (!t) -> ()
      gpu.barrier
    }
    gpu.return
  }
}

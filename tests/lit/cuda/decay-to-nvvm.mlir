// DecayToNVVM.cpp: cumulative log decays of a tile in shared memory. The sum before the tile is
// warp 0's (strided lanes, then xor shuffles 16 .. 1); the tile's own logs are an inclusive scan
// across warp 0's lanes (shuffle up 1 .. 16), each lane below the tile's size writing its prefix.
// With a carry the scan starts from carry[0] and the last lane writes the new carry; `total_only`
// writes carry[0] = the sum before p0; `relative` scans the tile alone (no sum before it).
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

!cum = memref<16xf32, #gpu.address_space<workgroup>>
!one = memref<1xf32, #gpu.address_space<workgroup>>

// CHECK-LABEL: gpu.func @decays
// The rows' prefix: warp 0 sums the logs before i0 (strided loop, four positions 32 apart
// per lane and step, the last three dropped past the end; xor shuffles) ...
// CHECK: scf.if %{{.*}} -> (f32) {
// CHECK: scf.for %{{.*}} step %c128
// CHECK-COUNT-4: llvm.inline_asm asm_dialect = att "lg2.approx.f32 $0, $1;"
// CHECK: gpu.shuffle  xor %{{.*}}, %c16_i32
// CHECK: gpu.shuffle  xor %{{.*}}, %c1_i32
// CHECK: gpu.barrier
// ... then scans the tile's logs across lanes.
// CHECK: scf.if
// CHECK: gpu.shuffle  up %{{.*}}, %c1_i32
// CHECK: gpu.shuffle  up %{{.*}}, %c16_i32
// CHECK: memref.store %{{.*}}, %{{.*}}[%{{.*}}] : memref<16xf32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// The keys' base: the total only, stored by thread 0.
// CHECK: scf.if %{{.*}} -> (f32) {
// CHECK: gpu.shuffle  xor
// CHECK: memref.store %{{.*}}, %{{.*}}[%c0] : memref<1xf32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// A key tile continuing from the carry, the last lane writing the new carry.
// CHECK: memref.load %{{.*}}[%c0] : memref<1xf32, #gpu.address_space<workgroup>>
// CHECK: nvvm.bar.warp.sync
// CHECK: gpu.shuffle  up
// CHECK: memref.store %{{.*}} : memref<16xf32, #gpu.address_space<workgroup>>
// CHECK: memref.store %{{.*}}[%c0] : memref<1xf32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// CHECK: gpu.return

// CHECK-LABEL: gpu.func @relative
// No sum before the tile: no strided loop, no xor shuffle, the scan alone. The scan's opening
// barrier follows the tile level's (after the wait) with nothing but index math between them:
// one barrier is left.
// CHECK: nvgpu.device_async_wait
// CHECK-NEXT: gpu.barrier
// CHECK-NOT: gpu.barrier
// CHECK-NOT: scf.for
// CHECK-NOT: gpu.shuffle  xor
// CHECK: gpu.shuffle  up %{{.*}}, %c1_i32
// CHECK: memref.store %{{.*}} : memref<16xf32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// CHECK: gpu.return
gpu.module @m {
  gpu.func @decays(%dt: memref<?x?x?xf32>, %b: index, %h: index, %i0: index, %j0: index,
                   %n: index) kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
    %cq = attn_gpu.alloc_shared {offset = 0 : i64} : !cum
    %ck = attn_gpu.alloc_shared {offset = 64 : i64} : !cum
    %base = attn_gpu.alloc_shared {offset = 128 : i64} : !one
    attn_gpu.log_decay_prefix %cq[%b, %h, %i0] below %n : !cum {
    ^bb0(%bb: index, %hh: index, %i: index):
      %g = memref.load %dt[%bb, %i, %hh] : memref<?x?x?xf32>
      attn_gpu.yield %g : f32
    }
    attn_gpu.log_decay_prefix %base[%b, %h, %j0] below %n carry %base {total_only} : !one, !one {
    ^bb0(%bb: index, %hh: index, %i: index):
      %g = memref.load %dt[%bb, %i, %hh] : memref<?x?x?xf32>
      attn_gpu.yield %g : f32
    }
    attn_gpu.log_decay_prefix %ck[%b, %h, %j0] below %n carry %base : !cum, !one {
    ^bb0(%bb: index, %hh: index, %i: index):
      %g = memref.load %dt[%bb, %i, %hh] : memref<?x?x?xf32>
      attn_gpu.yield %g : f32
    }
    gpu.return
  }
  gpu.func @relative(%dt: memref<?x?x?xf32>, %b: index, %h: index, %i0: index,
                     %n: index) kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
    %cq = attn_gpu.alloc_shared {offset = 0 : i64} : !cum
    %t = nvgpu.device_async_create_group
    nvgpu.device_async_wait %t {numGroups = 0 : i32}
    gpu.barrier
    attn_gpu.log_decay_prefix %cq[%b, %h, %i0] below %n {relative} : !cum {
    ^bb0(%bb: index, %hh: index, %i: index):
      %g = memref.load %dt[%bb, %i, %hh] : memref<?x?x?xf32>
      attn_gpu.yield %g : f32
    }
    gpu.return
  }
}

// attn_gpu.decay_grad: warp 0 steps over the positions 128 at a time, four consecutive ones
// per lane; each position's row sum (at h, below q_len) and column sum (at heads + h, below
// both lengths) read by an unconditional load (the position clamped below q_len) and a select,
// the lane's differences summed in turn, an inclusive scan of the lanes' totals (shuffle up
// 1 .. 16) and one more shuffle up give the sums before each lane; the region runs at each
// position (its accumulation an atomic add, below q_len) with the sums before it; lane 31's
// total carries on.
// CHECK-LABEL: gpu.func @decay_grad
// CHECK: %[[COLS:.*]] = arith.addi %arg5, %arg4 : index
// CHECK: %[[KEYS:.*]] = arith.minui %arg7, %arg6 : index
// CHECK: scf.for %{{.*}} = %c0 to %arg6 step %c128 iter_args(%[[CARRY:.*]] = %cst) -> (f32)
// CHECK: %[[P0:.*]] = arith.addi %{{.*}}, %{{.*}} : index
// CHECK: %[[R0:.*]] = memref.load %arg0[%arg3, %arg4, %{{.*}}] : memref<?x?x?xf32>
// CHECK: %[[ROW:.*]] = arith.select %{{.*}}, %[[R0]], %cst
// CHECK: %[[C0:.*]] = memref.load %arg0[%arg3, %[[COLS]], %{{.*}}] : memref<?x?x?xf32>
// CHECK: arith.cmpi ult, %[[P0]], %[[KEYS]] : index
// CHECK: %[[COL:.*]] = arith.select %{{.*}}, %[[C0]], %cst
// CHECK: %[[X0:.*]] = arith.subf %[[COL]], %[[ROW]]
// CHECK-COUNT-3: arith.subf
// CHECK: %[[LANE:.*]] = arith.addf %{{.*}}, %{{.*}} fastmath<contract> : f32
// CHECK-NEXT: gpu.shuffle  up %[[LANE]], %c1_i32, %c32_i32
// CHECK: gpu.shuffle  up %{{.*}}, %c16_i32, %c32_i32
// CHECK: %[[INC:.*]] = arith.addf %{{.*}}, %{{.*}} fastmath<contract> : f32
// CHECK-NEXT: gpu.shuffle  up %[[INC]], %c1_i32, %c32_i32
// CHECK: %[[BEFORE:.*]] = arith.addf %[[CARRY]], %{{.*}}
// CHECK: scf.if
// CHECK: %[[G:.*]] = arith.mulf %[[BEFORE]], %{{.*}}
// CHECK: memref.atomic_rmw addf %[[G]], %arg2
// CHECK: %[[B1:.*]] = arith.addf %[[BEFORE]], %[[X0]]
// CHECK: scf.if
// CHECK: arith.mulf %[[B1]], %{{.*}}
// CHECK-COUNT-3: memref.atomic_rmw addf
// CHECK: gpu.shuffle  idx %[[INC]], %c31_i32, %c32_i32
gpu.module @m_grad {
  gpu.func @decay_grad(%sums: memref<?x?x?xf32>, %f: memref<?x?x?xf32>, %df: memref<?x?x?xf32>,
                       %b: index, %h: index, %hs: index, %n: index, %m: index) kernel
      attributes {known_block_size = array<i32: 32, 1, 1>} {
    attn_gpu.decay_grad %sums[%b, %h] of %hs below %n, %m : memref<?x?x?xf32> {
    ^bb0(%bb: index, %hh: index, %t: index, %g: f32):
      %x = memref.load %f[%bb, %hh, %t] : memref<?x?x?xf32>
      %y = arith.mulf %g, %x : f32
      attn_gpu.accumulate %y -> %df[%bb, %hh, %t] : memref<?x?x?xf32>
      attn_gpu.yield
    }
    gpu.return
  }
}

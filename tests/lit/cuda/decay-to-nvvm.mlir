// DecayToNVVM.cpp: cumulative log decays of a tile in shared memory. The sum before the tile is
// warp 0's (strided lanes, then xor shuffles 16 .. 1); each thread below the tile's size writes
// one log; thread 0 sums them in order. With a carry the sum starts from carry[0] and ends there;
// `total_only` writes carry[0] = the sum before p0.
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

!cum = memref<16xf32, #gpu.address_space<workgroup>>
!one = memref<1xf32, #gpu.address_space<workgroup>>

// CHECK-LABEL: gpu.func @decays
// The rows' prefix: warp 0 sums the logs before i0, then a cumulative sum by thread 0.
// CHECK: scf.if %{{.*}} -> (f32) {
// CHECK: scf.for
// CHECK: nvvm.inline_ptx "lg2.approx.f32 $0, $1;"
// CHECK: gpu.shuffle  xor %{{.*}}, %c16_i32
// CHECK: gpu.barrier
// CHECK: memref.store %{{.*}}, %{{.*}}[%{{.*}}] : memref<16xf32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// CHECK: scf.for {{.*}} iter_args
// CHECK: gpu.barrier
// The keys' base: the total only, by thread 0.
// CHECK: scf.if %{{.*}} -> (f32) {
// CHECK: memref.store %{{.*}}, %{{.*}}[%c0] : memref<1xf32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// A key tile continuing from the carry.
// CHECK: memref.load %{{.*}}[%c0] : memref<1xf32, #gpu.address_space<workgroup>>
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
}

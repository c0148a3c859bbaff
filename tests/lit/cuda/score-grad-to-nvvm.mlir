// ScoreToNVVM.cpp, the backward's ops: attn_gpu.score_grad runs its region on each of the
// thread's 8 elements of a 16 x 16 tile, 0 where ds is 0. An accumulation whose indices read
// only b and h (a per-head slope) is summed over the thread's elements and the warp (five
// xor shuffles) and added once by lane 0; one whose indices read i - j (a bias table) adds
// each element under its own ds != 0. A key-major (`transposed`) score masks queries past
// q_len as well as keys past kv_len. copy_rows and load_columns read f32 values by query.
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

#acc = #attn_gpu.frag<acc>

// CHECK-LABEL: gpu.func @slope_and_table
// CHECK-NOT: gpu.shuffle
// CHECK-COUNT-8: memref.atomic_rmw addf %{{.*}}, %{{.*}}[%{{.*}}] : (f32, memref<?xf32>) -> f32
// CHECK: arith.cmpi eq
// CHECK-COUNT-5: gpu.shuffle xor
// CHECK: scf.if
// CHECK-NEXT: memref.atomic_rmw addf %{{.*}}, %{{.*}}[%{{.*}}] : (f32, memref<?xf32>) -> f32
// CHECK-NOT: memref.atomic_rmw
// CHECK: gpu.return
gpu.module @m {
  gpu.func @slope_and_table(%slope: memref<?xf32>, %table: memref<?xf32>, %n: index) kernel
      attributes {known_block_size = array<i32: 32, 1, 1>} {
    %s = arith.constant dense<0.5> : tensor<16x16xf32, #acc>
    %r = attn_gpu.score_grad %s, %s[%n, %n, %n, %n] below %n, %n : tensor<16x16xf32, #acc> -> tensor<16x16xf32, #acc> {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %ds: f32):
      %d = arith.subi %i, %j : index
      %di = arith.index_cast %d : index to i64
      %df = arith.sitofp %di : i64 to f32
      %x = arith.mulf %ds, %df : f32
      attn_gpu.accumulate %x -> %slope[%h] : memref<?xf32>
      attn_gpu.accumulate %ds -> %table[%d] : memref<?xf32>
      attn_gpu.yield %ds : f32
    }
    gpu.return
  }
}

// A rank-0 gradient (a scalar temperature or an output map's scalar): its accumulation has no
// indices, and is still summed over the warp and added once by lane 0.
// CHECK-LABEL: gpu.func @scalar
// CHECK-COUNT-5: gpu.shuffle xor
// CHECK: scf.if
// CHECK-NEXT: memref.atomic_rmw addf %{{.*}}, %{{.*}}[] : (f32, memref<f32>) -> f32
// CHECK: gpu.return
gpu.module @t {
  gpu.func @scalar(%t: memref<f32>, %n: index) kernel
      attributes {known_block_size = array<i32: 32, 1, 1>} {
    %s = arith.constant dense<0.5> : tensor<16x16xf32, #acc>
    %r = attn_gpu.score_grad %s, %s[%n, %n, %n, %n] below %n, %n : tensor<16x16xf32, #acc> -> tensor<16x16xf32, #acc> {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %ds: f32):
      %x = arith.mulf %ds, %dot : f32
      attn_gpu.accumulate %x -> %t[] : memref<f32>
      attn_gpu.yield %ds : f32
    }
    gpu.return
  }
}

// CHECK-LABEL: gpu.func @key_major
// CHECK: scf.if
// CHECK: arith.cmpi ult, %{{.*}}, %[[QLEN:.*]] : index
// CHECK: arith.andi
// CHECK: gpu.return
gpu.module @k {
  gpu.func @key_major(%out: memref<?x?x?x?xf32>, %n: index, %q: index) kernel
      attributes {known_block_size = array<i32: 32, 1, 1>} {
    %s = arith.constant dense<0.5> : tensor<16x16xf32, #acc>
    %r = attn_gpu.score %s[%n, %n, %n, %n] below %q, %n {fill = 0xFF800000 : f32, transposed} : tensor<16x16xf32, #acc> -> tensor<16x16xf32, #acc> score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn_gpu.yield %dot : f32
    }
    attn_gpu.store_tile %r -> %out[%n, %n, %n] below %n : tensor<16x16xf32, #acc> -> memref<?x?x?x?xf32>
    gpu.return
  }
}

// CHECK-LABEL: gpu.func @rows_by_query
// CHECK: memref.load %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] : memref<?x?x?xf32>
// CHECK: memref.store %{{.*}}, %{{.*}}[%{{.*}}] : memref<16xf32, #gpu.address_space<workgroup>>
// CHECK-COUNT-8: memref.load %{{.*}}[%{{.*}}] : memref<16xf32, #gpu.address_space<workgroup>>
gpu.module @r {
  gpu.func @rows_by_query(%lse: memref<?x?x?xf32>, %out: memref<?x?x?x?xf32>, %n: index) kernel
      attributes {known_block_size = array<i32: 32, 1, 1>} {
    %vec = attn_gpu.alloc_shared {offset = 0 : i64} : memref<16xf32, #gpu.address_space<workgroup>>
    attn_gpu.copy_rows %lse[%n, %n, %n] below %n -> %vec {fill = 0x7F800000 : f32} : memref<?x?x?xf32> -> memref<16xf32, #gpu.address_space<workgroup>>
    gpu.barrier
    %c = attn_gpu.load_columns %vec : memref<16xf32, #gpu.address_space<workgroup>> -> tensor<16x16xf32, #acc>
    attn_gpu.store_tile %c -> %out[%n, %n, %n] below %n : tensor<16x16xf32, #acc> -> memref<?x?x?x?xf32>
    gpu.return
  }
}

// Row norms (cosine attention's backward), key-major: the region takes (b, h, i, j, dot, nq,
// nk, ds) with nq read at the element's query (its column) and nk at its key (its row), and
// yields three adjoints, each a result (0 where ds is 0).
// CHECK-LABEL: gpu.func @norms_key_major
// CHECK-DAG: %[[LANE:.*]] = arith.remui %thread_id_x, %c32
// CHECK-DAG: %[[G:.*]] = arith.divui %[[LANE]], %c4
// CHECK-DAG: %[[C:.*]] = arith.remui %[[LANE]], %c4
// CHECK-DAG: %[[C2:.*]] = arith.muli %[[C]], %c2
// CHECK-DAG: %[[ROW:.*]] = arith.addi %{{.*}}, %[[G]] : index
// CHECK: memref.load %[[QN:arg[0-9]+]][%[[C2]]] : memref<16xf32, #gpu.address_space<workgroup>>
// CHECK-NEXT: memref.load %[[KN:arg[0-9]+]][%[[ROW]]] : memref<16xf32, #gpu.address_space<workgroup>>
// CHECK-COUNT-7: memref.load %[[QN]]
// CHECK-NOT: memref.load %[[QN]]
// CHECK: gpu.return
gpu.module @n {
  gpu.func @norms_key_major(%qn: memref<16xf32, #gpu.address_space<workgroup>>,
                            %kn: memref<16xf32, #gpu.address_space<workgroup>>,
                            %out: memref<?xi1>, %n: index) kernel
      attributes {known_block_size = array<i32: 32, 1, 1>} {
    %s = arith.constant dense<0.5> : tensor<16x16xf32, #acc>
    %r:3 = attn_gpu.score_grad %s, %s[%n, %n, %n, %n] below %n, %n norms %qn, %kn {transposed}
        : tensor<16x16xf32, #acc> norms memref<16xf32, #gpu.address_space<workgroup>>,
          memref<16xf32, #gpu.address_space<workgroup>>
        -> tensor<16x16xf32, #acc>, tensor<16x16xf32, #acc>, tensor<16x16xf32, #acc> {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %nq: f32, %nk: f32, %ds: f32):
      %a = arith.mulf %ds, %nq : f32
      %c = arith.mulf %ds, %nk : f32
      attn_gpu.yield %ds, %a, %c : f32, f32, f32
    }
    %sum = arith.addf %r#1, %r#2 : tensor<16x16xf32, #acc>
    %all3 = arith.addf %sum, %r#0 : tensor<16x16xf32, #acc>
    %rows = attn_gpu.row_reduce <sum> %all3 : tensor<16x16xf32, #acc> -> tensor<16xf32, #attn_gpu.frag<rows>>
    %zero = arith.constant dense<0.0> : tensor<16xf32, #attn_gpu.frag<rows>>
    %ok = arith.cmpf ogt, %rows, %zero : tensor<16xf32, #attn_gpu.frag<rows>>
    %v = attn_gpu.vote_all %ok : tensor<16xi1, #attn_gpu.frag<rows>>
    %c0 = arith.constant 0 : index
    memref.store %v, %out[%c0] : memref<?xi1>
    gpu.return
  }
}

// With `more` (the mix of several scores' rows, d(y0 - lambda[h] y1)): the region reads each
// element of every tile; the per-head accumulation of -g y1 is the thread's 8 elements
// (8 x -2 x 0.25 = -4, folded) summed over the warp, and y1's gradient is -g lambda[h].
// CHECK-LABEL: gpu.func @mix_grad
// CHECK-DAG: %[[PARTIAL:.*]] = arith.constant -4.000000e+00 : f32
// CHECK-DAG: %[[NG:.*]] = arith.constant -2.000000e+00 : f32
// CHECK-COUNT-8: arith.mulf %{{.*}}, %[[NG]]
// CHECK: gpu.shuffle xor %[[PARTIAL]]
// CHECK: memref.atomic_rmw addf
// CHECK: gpu.return
gpu.module @mix {
  gpu.func @mix_grad(%lambda: memref<?xf32>, %out: memref<?x?x?x?xf32>, %n: index) kernel
      attributes {known_block_size = array<i32: 32, 1, 1>} {
    %y0 = arith.constant dense<0.5> : tensor<16x16xf32, #acc>
    %y1 = arith.constant dense<0.25> : tensor<16x16xf32, #acc>
    %g = arith.constant dense<2.0> : tensor<16x16xf32, #acc>
    %r:2 = attn_gpu.score_grad %y0, %g more %y1[%n, %n, %n, %n] below %n, %n : tensor<16x16xf32, #acc> more tensor<16x16xf32, #acc> -> tensor<16x16xf32, #acc>, tensor<16x16xf32, #acc> {
    ^bb0(%b: index, %h: index, %i: index, %e: index, %a: f32, %c: f32, %dm: f32):
      %l = memref.load %lambda[%h] : memref<?xf32>
      %ng = arith.negf %dm : f32
      %tol = arith.mulf %ng, %c : f32
      %toc = arith.mulf %ng, %l : f32
      attn_gpu.accumulate %tol -> %lambda[%h] : memref<?xf32>
      attn_gpu.yield %dm, %toc : f32, f32
    }
    attn_gpu.store_tile %r#1 -> %out[%n, %n, %n] below %n : tensor<16x16xf32, #acc> -> memref<?x?x?x?xf32>
    gpu.return
  }
}

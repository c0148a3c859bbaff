// ScoreToNVVM.cpp: the score and mask regions inlined for each of the thread's accumulator
// elements (16 x 16: 8), in two branches: a key tile inside kv_len that the (exact, affine)
// causal mask fully allows takes neither range checks nor the mask; the other branch clamps the
// key, masks keys past kv_len and applies the mask, with the fill value where it fails.
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.

#acc = #attn_gpu.frag<acc>

// CHECK-LABEL: gpu.func @causal_scores
// Interior and fully allowed: j0 + 16 <= kv_len and j0 + 15 <= the first row i0 (j <= i).
// CHECK: %[[IN:.*]] = arith.cmpi ule, %{{.*}}, %{{.*}} : index
// CHECK: %[[ALL:.*]] = arith.cmpi sle
// CHECK: %[[FAST:.*]] = arith.andi %[[IN]], %[[ALL]] : i1
// CHECK: scf.if %[[FAST]] -> (f32, f32, f32, f32, f32, f32, f32, f32) {
// The dots are 1.0 here, so each score is the param read (the product folds away).
// CHECK-NOT: arith.cmpi
// CHECK-COUNT-8: memref.load %arg0[%arg2] : memref<?xf32>
// CHECK: } else {
// CHECK: arith.cmpi ult
// CHECK: arith.cmpi ule
// CHECK: arith.andi
// CHECK: memref.load %arg0[%arg2]
// CHECK: arith.select %{{.*}}, %{{.*}}, %cst{{.*}} : f32
// CHECK: gpu.return
gpu.module @m {
  gpu.func @causal_scores(%scale: memref<?xf32>, %b: index, %h: index, %i0: index, %j0: index, %n: index,
                          %lse: memref<?x?x?xf32>) kernel
      attributes {known_block_size = array<i32: 32, 1, 1>} {
    %s = arith.constant dense<1.0> : tensor<16x16xf32, #acc>
    %sc = attn_gpu.score %s[%b, %h, %i0, %j0] below %n, %n {fill = 0xFF800000 : f32} : tensor<16x16xf32, #acc> -> tensor<16x16xf32, #acc> score {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index, %dot: f32):
      %c = memref.load %scale[%hh] : memref<?xf32>
      %r = arith.mulf %dot, %c : f32
      attn_gpu.yield %r : f32
    } mask {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index):
      %le = arith.cmpi ule, %j, %i : index
      attn_gpu.yield %le : i1
    }
    %m = attn_gpu.row_reduce <max> %sc : tensor<16x16xf32, #acc> -> tensor<16xf32, #attn_gpu.frag<rows>>
    attn_gpu.store_rows %m -> %lse[%b, %h, %i0] below %n : tensor<16xf32, #attn_gpu.frag<rows>> -> memref<?x?x?xf32>
    gpu.return
  }
}

// A mask that reads params (document ids) proves nothing by itself; a block plan's `full`
// verdict makes the tile take the fast branch: no range checks, no mask, no id reads.
// CHECK-LABEL: gpu.func @planned_scores
// CHECK: %[[IN:.*]] = arith.cmpi ule, %{{.*}}, %{{.*}} : index
// CHECK: %[[FAST:.*]] = arith.andi %[[IN]], %arg7 : i1
// CHECK: scf.if %[[FAST]] -> (f32, f32, f32, f32, f32, f32, f32, f32) {
// CHECK-NOT: memref.load
// CHECK: } else {
// CHECK: memref.load %arg0
// CHECK: memref.load %arg0
// CHECK: arith.select
// CHECK: gpu.return
gpu.module @m2 {
  gpu.func @planned_scores(%doc: memref<?x?xi32>, %b: index, %h: index, %i0: index, %j0: index, %n: index,
                           %lse: memref<?x?x?xf32>, %full: i1) kernel
      attributes {known_block_size = array<i32: 32, 1, 1>} {
    %s = arith.constant dense<1.0> : tensor<16x16xf32, #acc>
    %sc = attn_gpu.score %s[%b, %h, %i0, %j0] below %n, %n full %full {fill = 0xFF800000 : f32} : tensor<16x16xf32, #acc> -> tensor<16x16xf32, #acc> score {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index, %dot: f32):
      attn_gpu.yield %dot : f32
    } mask {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index):
      %dq = memref.load %doc[%bb, %i] : memref<?x?xi32>
      %dk = memref.load %doc[%bb, %j] : memref<?x?xi32>
      %same = arith.cmpi eq, %dq, %dk : i32
      attn_gpu.yield %same : i1
    }
    %m = attn_gpu.row_reduce <max> %sc : tensor<16x16xf32, #acc> -> tensor<16xf32, #attn_gpu.frag<rows>>
    attn_gpu.store_rows %m -> %lse[%b, %h, %i0] below %n : tensor<16xf32, #attn_gpu.frag<rows>> -> memref<?x?x?xf32>
    gpu.return
  }
}

// A per-step decay: each score gains (forget-gate softmax, log_decay) or is multiplied by the
// exp of (recurrence) cum_q[row] - cum_k[col], the cumulative log decays in shared memory.
// CHECK-LABEL: gpu.func @forget_gate_scores
// CHECK: %[[GI:.*]] = memref.load %arg1[%{{.*}}] : memref<16xf32, 3>
// CHECK: %[[GJ:.*]] = memref.load %arg2[%{{.*}}] : memref<16xf32, 3>
// CHECK: %[[D:.*]] = arith.subf %[[GI]], %[[GJ]] {{.*}}: f32
// CHECK-NEXT: arith.addf %{{.*}}, %[[D]] {{.*}}: f32
// CHECK-NOT: ex2.approx
// CHECK-LABEL: gpu.func @recurrence_decay_scores
// CHECK: %[[D2:.*]] = arith.subf
// CHECK-NEXT: %[[L2:.*]] = arith.mulf %[[D2]], %cst
// CHECK-NEXT: %[[W:.*]] = llvm.inline_asm asm_dialect = att "ex2.approx.ftz.f32 $0, $1;", "=f,f" %[[L2]] : (f32) -> f32
// CHECK-NEXT: arith.mulf %{{.*}}, %[[W]] {{.*}}: f32
gpu.module @m_decay {
  gpu.func @forget_gate_scores(%dot: memref<?xf32>, %cq: memref<16xf32, 3>, %ck: memref<16xf32, 3>,
                               %b: index, %n: index, %lse: memref<?x?x?xf32>) kernel
      attributes {known_block_size = array<i32: 32, 1, 1>} {
    %s = arith.constant dense<1.0> : tensor<16x16xf32, #acc>
    %sc = attn_gpu.score %s[%b, %b, %b, %b] below %n, %n decay %cq, %ck {fill = 0xFF800000 : f32, log_decay} : tensor<16x16xf32, #acc>, memref<16xf32, 3>, memref<16xf32, 3> -> tensor<16x16xf32, #acc> score {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index, %d: f32):
      %c = memref.load %dot[%hh] : memref<?xf32>
      %r = arith.mulf %d, %c : f32
      attn_gpu.yield %r : f32
    } mask {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index):
      %le = arith.cmpi ule, %j, %i : index
      attn_gpu.yield %le : i1
    }
    %m = attn_gpu.row_reduce <max> %sc : tensor<16x16xf32, #acc> -> tensor<16xf32, #attn_gpu.frag<rows>>
    attn_gpu.store_rows %m -> %lse[%b, %b, %b] below %n : tensor<16xf32, #attn_gpu.frag<rows>> -> memref<?x?x?xf32>
    gpu.return
  }
  gpu.func @recurrence_decay_scores(%dot: memref<?xf32>, %cq: memref<16xf32, 3>, %ck: memref<16xf32, 3>,
                                    %b: index, %n: index, %lse: memref<?x?x?xf32>) kernel
      attributes {known_block_size = array<i32: 32, 1, 1>} {
    %s = arith.constant dense<1.0> : tensor<16x16xf32, #acc>
    %sc = attn_gpu.score %s[%b, %b, %b, %b] below %n, %n decay %cq, %ck {fill = 0.0 : f32} : tensor<16x16xf32, #acc>, memref<16xf32, 3>, memref<16xf32, 3> -> tensor<16x16xf32, #acc> score {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index, %d: f32):
      %c = memref.load %dot[%hh] : memref<?xf32>
      %r = arith.mulf %d, %c : f32
      attn_gpu.yield %r : f32
    } mask {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index):
      %le = arith.cmpi ule, %j, %i : index
      attn_gpu.yield %le : i1
    }
    %m = attn_gpu.row_reduce <max> %sc : tensor<16x16xf32, #acc> -> tensor<16xf32, #attn_gpu.frag<rows>>
    attn_gpu.store_rows %m -> %lse[%b, %b, %b] below %n : tensor<16xf32, #attn_gpu.frag<rows>> -> memref<?x?x?xf32>
    gpu.return
  }
}

// Key-major (the backward's dK/dV tiles: rows are keys, columns queries): cum_q is read at the
// thread's column (2 c + e % 2 in its n-block, i - i0) and cum_k at its row (16 w + g + 8 r).
// CHECK-LABEL: gpu.func @forget_gate_key_major
// CHECK: %[[C:.*]] = arith.muli %{{.*}}, %c2 : index
// CHECK: %[[W:.*]] = arith.muli %{{.*}}, %c16 : index
// CHECK: %[[R:.*]] = arith.addi %[[W]], %{{.*}} : index
// CHECK: %[[GQ:.*]] = memref.load %arg0[%[[C]]] : memref<16xf32, 3>
// CHECK: %[[GK:.*]] = memref.load %arg1[%[[R]]] : memref<16xf32, 3>
// CHECK: arith.subf %[[GQ]], %[[GK]]
// CHECK: %[[Q1:.*]] = arith.subi %{{.*}}, %arg2 : index
// CHECK: memref.load %arg0[%[[Q1]]] : memref<16xf32, 3>
gpu.module @m_kmajor {
  gpu.func @forget_gate_key_major(%cq: memref<16xf32, 3>, %ck: memref<16xf32, 3>,
                                  %i0: index, %j0: index, %n: index, %lse: memref<?x?x?xf32>) kernel
      attributes {known_block_size = array<i32: 32, 1, 1>} {
    %s = arith.constant dense<1.0> : tensor<16x16xf32, #acc>
    %sc = attn_gpu.score %s[%n, %n, %i0, %j0] below %n, %n decay %cq, %ck {fill = 0xFF800000 : f32, log_decay, transposed} : tensor<16x16xf32, #acc>, memref<16xf32, 3>, memref<16xf32, 3> -> tensor<16x16xf32, #acc> score {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index, %d: f32):
      attn_gpu.yield %d : f32
    }
    %m = attn_gpu.row_reduce <max> %sc : tensor<16x16xf32, #acc> -> tensor<16xf32, #attn_gpu.frag<rows>>
    attn_gpu.store_rows %m -> %lse[%n, %n, %n] below %n : tensor<16xf32, #attn_gpu.frag<rows>> -> memref<?x?x?xf32>
    gpu.return
  }
}

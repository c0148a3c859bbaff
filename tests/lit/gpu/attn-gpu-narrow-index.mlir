// attn-gpu-narrow-index: the per-element regions' integer math in i32 where the interval
// analysis proves it fits (positions in [0, 2^31 - 2], i32 params, constants, a float clamped
// before fptosi); values that may leave i32 stay index; an exactly affine mask keeps its form
// (the NVVM lowering reads its key bounds); memory indices stay index (sign-extended).
// RUN: attnc-opt %s --attn-gpu-narrow-index | FileCheck %s

#acc = #attn_gpu.frag<acc>

// ALiBi's (j - i) * slope: the difference and its conversion in 32 bits.
// CHECK-LABEL: gpu.func @alibi
// CHECK: score {
// CHECK: ^bb0(%{{.*}}: index, %[[H:.*]]: index, %[[I:.*]]: index, %[[J:.*]]: index, %[[DOT:.*]]: f32):
// CHECK-DAG: %[[J32:.*]] = arith.index_cast %[[J]] : index to i32
// CHECK-DAG: %[[I32:.*]] = arith.index_cast %[[I]] : index to i32
// CHECK: %[[D:.*]] = arith.subi %[[J32]], %[[I32]] : i32
// CHECK: arith.sitofp %[[D]] : i32 to f32
// CHECK-NOT: : i64
// The exact causal mask is left as it is.
// CHECK: mask {
// CHECK: arith.cmpi ule, %{{.*}}, %{{.*}} : index
gpu.module @m {
  gpu.func @alibi(%slope: memref<?xf32>, %b: index, %h: index, %i0: index, %j0: index, %n: index) kernel {
    %s = arith.constant dense<1.0> : tensor<16x16xf32, #acc>
    %sc = attn_gpu.score %s[%b, %h, %i0, %j0] below %n, %n {fill = 0xFF800000 : f32} : tensor<16x16xf32, #acc> -> tensor<16x16xf32, #acc> score {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index, %dot: f32):
      %c = memref.load %slope[%hh] : memref<?xf32>
      %d = arith.subi %j, %i : index
      %w = arith.index_cast %d : index to i64
      %f = arith.sitofp %w : i64 to f32
      %m = arith.mulf %f, %c : f32
      %r = arith.addf %dot, %m : f32
      attn_gpu.yield %r : f32
    } mask {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index):
      %le = arith.cmpi ule, %j, %i : index
      attn_gpu.yield %le : i1
    }
    gpu.return
  }

// A T5 bucket: floor of a float clamped to +-2^30 (NaN -> 0) converts in 32 bits, the bucket
// math stays in i32 and the table index is sign-extended back to index for the load. A product
// of two positions may leave i32 and stays index.
// CHECK-LABEL: gpu.func @bucket
// CHECK: %[[F:.*]] = arith.fptosi %{{.*}} : f32 to i32
// CHECK: %[[S:.*]] = arith.addi %{{.*}}, %[[F]] : i32
// CHECK: %[[M:.*]] = arith.minsi %[[S]], %{{.*}} : i32
// CHECK: %[[X:.*]] = arith.maxsi %[[M]], %{{.*}} : i32
// CHECK: %[[IDX:.*]] = arith.index_cast %[[X]] : i32 to index
// CHECK: memref.load %{{.*}}[%{{.*}}, %[[IDX]]] : memref<?x32xf32>
// CHECK: arith.muli %{{.*}}, %{{.*}} : index
// Document ids: an i32 equality and a causal bound in a mask that is not exactly affine.
// CHECK: mask {
// CHECK: arith.cmpi eq, %{{.*}}, %{{.*}} : i32
// CHECK: arith.cmpi sle, %{{.*}}, %{{.*}} : i32
  gpu.func @bucket(%table: memref<?x32xf32>, %doc: memref<?x?xi32>, %b: index, %h: index, %i0: index, %j0: index, %n: index) kernel {
    %s = arith.constant dense<1.0> : tensor<16x16xf32, #acc>
    %sc = attn_gpu.score %s[%b, %h, %i0, %j0] below %n, %n {fill = 0xFF800000 : f32} : tensor<16x16xf32, #acc> -> tensor<16x16xf32, #acc> score {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index, %dot: f32):
      %lim = arith.constant 1.07374182E+9 : f32
      %nlim = arith.constant -1.07374182E+9 : f32
      %zero = arith.constant 0.000000e+00 : f32
      %c16 = arith.constant 16 : index
      %c31 = arith.constant 31 : index
      %c0 = arith.constant 0 : index
      %fl = math.floor %dot : f32
      %nan = arith.cmpf uno, %fl, %fl : f32
      %lo = arith.maxnumf %fl, %nlim : f32
      %hi = arith.minnumf %lo, %lim : f32
      %clamped = arith.select %nan, %zero, %hi : f32
      %int = arith.fptosi %clamped : f32 to i64
      %x = arith.index_cast %int : i64 to index
      %sum = arith.addi %c16, %x : index
      %top = arith.minsi %sum, %c31 : index
      %bucket = arith.maxsi %top, %c0 : index
      %t = memref.load %table[%hh, %bucket] : memref<?x32xf32>
      %big = arith.muli %i, %j : index
      %bf = arith.index_cast %big : index to i64
      %bff = arith.sitofp %bf : i64 to f32
      %r0 = arith.addf %dot, %t : f32
      %r = arith.addf %r0, %bff : f32
      attn_gpu.yield %r : f32
    } mask {
    ^bb0(%bb: index, %hh: index, %i: index, %j: index):
      %dq = memref.load %doc[%bb, %i] : memref<?x?xi32>
      %dk = memref.load %doc[%bb, %j] : memref<?x?xi32>
      %q = arith.index_cast %dq : i32 to index
      %k = arith.index_cast %dk : i32 to index
      %same = arith.cmpi eq, %q, %k : index
      %le = arith.cmpi sle, %j, %i : index
      %both = arith.andi %same, %le : i1
      attn_gpu.yield %both : i1
    }
    gpu.return
  }
}

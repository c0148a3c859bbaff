// RUN: attnc-opt %s --split-input-file --attn-cpu-lower-tiles --verify-diagnostics | FileCheck %s

// CHECK-LABEL: func.func @row_max
// CHECK: scf.for %[[R:.*]] = %{{.*}} to %{{.*}} step
// CHECK: %[[M0:.*]] = memref.load %[[M:.*]][%[[R]]] : memref<4xf32>
// CHECK: %[[MX:.*]] = scf.for %[[C:.*]] = {{.*}} iter_args(%[[ACC:.*]] = %[[M0]]) -> (f32) {
// CHECK: %[[X:.*]] = memref.load %{{.*}}[%[[R]], %[[C]]] : memref<4x8xf32>
// CHECK: %[[NEW:.*]] = arith.maximumf %[[ACC]], %[[X]] : f32
// CHECK: scf.yield %[[NEW]]
// CHECK: memref.store %[[MX]], %[[M]][%[[R]]]
// CHECK-NOT: attn.
func.func @row_max(%s: memref<4x8xf32>, %m: memref<4xf32>) {
  attn.tile_row_max %s -> %m : memref<4x8xf32> -> memref<4xf32>
  return
}

// -----

// Scores: in-range check first, then the mask (param loads only in range), then the dot product
// on extended bf16 inputs and the inlined score region; masked entries get the fill value.
// CHECK-LABEL: func.func @scores
// CHECK-DAG: %[[FILL:.*]] = arith.constant 0xFF800000 : f32
// CHECK: %[[I:.*]] = arith.addi
// CHECK: %[[ROWIN:.*]] = arith.cmpi ult, %[[I]],
// CHECK: %[[J:.*]] = arith.addi
// CHECK: %[[COLIN:.*]] = arith.cmpi ult, %[[J]],
// CHECK: %[[IN:.*]] = arith.andi %[[ROWIN]], %[[COLIN]] : i1
// CHECK: scf.if %[[IN]] -> (f32) {
// CHECK: memref.load %{{.*}}[%[[J]]] : memref<?xi32>
// CHECK: %[[ALLOWED:.*]] = arith.cmpi slt, %[[I]],
// CHECK: scf.if %[[ALLOWED]] -> (f32) {
// CHECK: scf.for {{.*}} iter_args
// CHECK-DAG: arith.extf %{{.*}} : bf16 to f32
// CHECK-DAG: arith.extf %{{.*}} : bf16 to f32
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: } else {
// CHECK-NEXT: scf.yield %[[FILL]] : f32
// CHECK: } else {
// CHECK-NEXT: scf.yield %[[FILL]] : f32
// CHECK-NOT: attn.
func.func @scores(%q: memref<?x?x?x16xbf16>, %p: memref<?xi32>, %s: memref<4x8xf32>, %x: index) {
  attn.tile_scores %q, %q[%x, %x, %x, %x, %x] -> %s {fill = 0xFF800000 : f32}
      : memref<?x?x?x16xbf16>, memref<?x?x?x16xbf16> -> memref<4x8xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %v = memref.load %p[%j] : memref<?xi32>
      %vi = arith.index_cast %v : i32 to index
      %c = arith.cmpi slt, %i, %vi : index
      attn.yield %c : i1
    }
  return
}

// -----

// Online update: new max, a safe base for all-masked rows, alpha = exp(m_old - base).
// CHECK-LABEL: func.func @online_update
// CHECK: %[[MOLD:.*]] = memref.load
// CHECK: %[[MNEW:.*]] = scf.for {{.*}} iter_args(%{{.*}} = %[[MOLD]]) -> (f32)
// CHECK: %[[NINF:.*]] = arith.constant 0xFF800000 : f32
// CHECK: %[[ISINF:.*]] = arith.cmpf oeq, %[[MNEW]], %[[NINF]] : f32
// CHECK: %[[BASE:.*]] = arith.select %[[ISINF]], %{{.*}}, %[[MNEW]] : f32
// CHECK: %[[D:.*]] = arith.subf %[[MOLD]], %[[BASE]] : f32
// CHECK: %[[ALPHA:.*]] = math.exp %[[D]] : f32
// CHECK: math.exp
// CHECK: arith.mulf %{{.*}}, %[[ALPHA]] : f32
// CHECK: memref.store %[[MNEW]]
func.func @online_update(%s: memref<4x8xf32>, %m: memref<4xf32>, %l: memref<4xf32>, %acc: memref<4x?xf32>) {
  attn.tile_online_update %s, %m, %l, %acc : memref<4x8xf32>, memref<4xf32>, memref<4xf32>, memref<4x?xf32>
  return
}

// -----

// The output is rounded to its element type; lse is -inf for rows without an allowed key.
// CHECK-LABEL: func.func @store
// CHECK: %[[L:.*]] = memref.load
// CHECK: %[[ANY:.*]] = arith.cmpf ogt, %[[L]], %{{.*}} : f32
// CHECK: %[[LOG:.*]] = math.log %[[L]] : f32
// CHECK: arith.select %[[ANY]]
// CHECK: arith.truncf %{{.*}} : f32 to f16
func.func @store(%acc: memref<4x16xf32>, %l: memref<4xf32>, %m: memref<4xf32>, %o: memref<?x?x?x16xf16>, %lse: memref<?x?x?xf32>, %x: index) {
  attn.tile_store %acc, %l, %m -> %o[%x, %x, %x], %lse {norm = #attn.norm<softmax>}
      : memref<4x16xf32>, memref<4xf32>, memref<4xf32> -> memref<?x?x?x16xf16>, memref<?x?x?xf32>
  return
}

// -----

// An output map: each normalised element y = acc * (1 / l) goes through the output region
// (here y * g[b, h, i, e]) before it is rounded and stored.
// CHECK-LABEL: func.func @store_output_map
// CHECK-SAME: %[[G:[a-z0-9]+]]: memref<?x?x?x16xf32>
// CHECK: scf.for %[[C:.*]] = %{{.*}} to %c16 step
// CHECK: %[[Y:.*]] = arith.mulf %{{.*}}, %{{.*}} : f32
// CHECK: %[[GATE:.*]] = memref.load %[[G]][%{{.*}}, %{{.*}}, %{{.*}}, %[[C]]]
// CHECK: %[[MAPPED:.*]] = arith.mulf %[[Y]], %[[GATE]] : f32
// CHECK: %[[R:.*]] = arith.truncf %[[MAPPED]] : f32 to f16
// CHECK: memref.store %[[R]]
func.func @store_output_map(%acc: memref<4x16xf32>, %l: memref<4xf32>, %m: memref<4xf32>,
                            %o: memref<?x?x?x16xf16>, %lse: memref<?x?x?xf32>, %x: index,
                            %g: memref<?x?x?x16xf32>) {
  attn.tile_store %acc, %l, %m -> %o[%x, %x, %x], %lse {norm = #attn.norm<softmax>}
      : memref<4x16xf32>, memref<4xf32>, memref<4xf32> -> memref<?x?x?x16xf16>, memref<?x?x?xf32>
      output {
    ^bb0(%b: index, %h: index, %i: index, %e: index, %y: f32):
      %gate = memref.load %g[%b, %h, %i, %e] : memref<?x?x?x16xf32>
      %r = arith.mulf %y, %gate : f32
      attn.yield %r : f32
    }
  return
}

// -----

func.func @untiled(%q: memref<?x?x?x?xf32>, %o: memref<?x?x?x?xf32>) {
  // expected-error @+1 {{attn.attention must be tiled (attn-tile) before attn-cpu-lower-tiles}}
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32> -> memref<?x?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

// Several scores: each accumulator is normalised by its own l, the rows meet in the inlined
// mix, and each score's lse goes to its own buffer.
// CHECK-LABEL: func.func @store_several_scores
// CHECK: %[[L1:.*]] = memref.load %arg2[%[[R:.*]]] : memref<4xf32>
// CHECK: arith.divf %{{.*}}, %[[L1]]
// CHECK: %[[L2:.*]] = memref.load %arg4[%[[R]]] : memref<4xf32>
// CHECK: arith.divf %{{.*}}, %[[L2]]
// CHECK: memref.store %{{.*}}, %arg7[
// CHECK: memref.store %{{.*}}, %arg8[
// CHECK: scf.for %[[C:.*]] =
// CHECK: %[[A1:.*]] = memref.load %arg0[%[[R]], %[[C]]]
// CHECK: %[[Y1:.*]] = arith.mulf %[[A1]],
// CHECK: %[[A2:.*]] = memref.load %arg1[%[[R]], %[[C]]]
// CHECK: %[[Y2:.*]] = arith.mulf %[[A2]],
// CHECK: %[[HALF:.*]] = arith.mulf %[[Y2]], %{{.*}} : f32
// CHECK: %[[MIX:.*]] = arith.subf %[[Y1]], %[[HALF]] : f32
// CHECK: arith.mulf %[[MIX]], %{{.*}} : f32
// CHECK: memref.store %{{.*}}, %arg6[
func.func @store_several_scores(%acc: memref<4x8xf32>, %acc2: memref<4x8xf32>, %l: memref<4xf32>,
                                %m: memref<4xf32>, %l2: memref<4xf32>, %m2: memref<4xf32>,
                                %o: memref<?x?x?x8xf32>, %lse: memref<?x?x?xf32>,
                                %lse2: memref<?x?x?xf32>, %x: index) {
  attn.tile_store %acc, %l, %m scores(%acc2) (%l2) (%m2) -> %o[%x, %x, %x], %lse lses %lse2 {norm = #attn.norm<softmax>}
      : memref<4x8xf32>, memref<4xf32>, memref<4xf32> scores(memref<4x8xf32>) (memref<4xf32>) (memref<4xf32>)
     -> memref<?x?x?x8xf32>, memref<?x?x?xf32> lses memref<?x?x?xf32> mix {
    ^bb0(%b: index, %h: index, %i: index, %e: index, %y1: f32, %y2: f32):
      %c = arith.constant 0.5 : f32
      %t = arith.mulf %y2, %c : f32
      %r = arith.subf %y1, %t : f32
      attn.yield %r : f32
    }
  return
}

// attn-cpu-heap-buffers: scratch buffers over 64 KiB or of dynamic size move to the heap, freed
// at the end of their block; small static ones stay on the stack; a buffer that leaves its
// block through the terminator is left alone.
// RUN: attnc-opt %s --attn-cpu-heap-buffers | FileCheck %s

// CHECK-LABEL: func.func @buffers
func.func @buffers(%n: index, %d: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  // CHECK: memref.alloca() : memref<64x64xf32>
  %small = memref.alloca() : memref<64x64xf32>
  // CHECK: %[[BIG:.*]] = memref.alloc() : memref<64x32768xf32>
  %big = memref.alloca() : memref<64x32768xf32>
  // CHECK: scf.for
  scf.for %i = %c0 to %n step %c1 {
    // CHECK: %[[ROW:.*]] = memref.alloc(%{{.*}}) : memref<?xf32>
    %row = memref.alloca(%d) : memref<?xf32>
    memref.store %f, %row[%c0] : memref<?xf32>
    // CHECK: memref.dealloc %[[ROW]]
    // CHECK-NEXT: }
  }
  memref.store %f, %small[%c0, %c0] : memref<64x64xf32>
  memref.store %f, %big[%c0, %c0] : memref<64x32768xf32>
  // CHECK: memref.dealloc %[[BIG]]
  // CHECK-NEXT: return
  return
}

// CHECK-LABEL: func.func @escapes
func.func @escapes(%d: index) -> memref<?xf32> {
  // CHECK: memref.alloca
  // CHECK-NOT: memref.dealloc
  %row = memref.alloca(%d) : memref<?xf32>
  return %row : memref<?xf32>
}

// RUN: attnc-opt %s --split-input-file --verify-diagnostics --attn-position-offsets > /dev/null


// expected-error @+1 {{argument 1 marked attn.position_offset = "q" must be a rank-0 i32 memref}}
func.func @wrong_type(%q: memref<?x?x?x64xf32>, %qo: memref<?xi32> {attn.position_offset = "q"},
                      %o: memref<?x?x?x64xf32>) {
  return
}

// -----

// expected-error @+1 {{argument 2 marked attn.position_offset = "x" must be a rank-0 i32 memref marked "q" or "k"}}
func.func @wrong_side(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %x: memref<i32> {attn.position_offset = "x"}) {
  return
}

// -----

func.func @recurrence(%q: memref<?x?x?x64xf32>, %qo: memref<i32> {attn.position_offset = "q"},
                      %o: memref<?x?x?x64xf32>) {
  // expected-error @+1 {{a recurrence (decay, gate, skip or state) has no block form to offset}}
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c = arith.cmpi ule, %j, %i : index
      attn.yield %c : i1
    } decay {
    ^bb0(%b: index, %h: index, %i: index):
      %g = arith.constant 0.9 : f32
      attn.yield %g : f32
    }
  return
}

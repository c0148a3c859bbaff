// attn-grad says why a variant has no backward, at the attention op or at the op it cannot
// differentiate.
// RUN: attnc-opt %s --split-input-file --attn-grad --verify-diagnostics

!t = memref<?x?x?x64xf32>
func.func @paged(%q: !t, %k: !t, %v: !t, %table: memref<?x?xi32>, %o: !t, %lse: memref<?x?x?xf32>) {
  // expected-error @+1 {{attn-grad: no backward for 'paged': paged or quantised K/V is for decoding, which needs no backward}}
  attn.attention %q, %k, %v pages %table -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>, page_size = 16 : i64} : !t, !t, !t pages memref<?x?xi32> -> !t, memref<?x?x?xf32> score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn.yield %dot : f32
  }
  return
}

// -----

!t = memref<?x?x?x64xf32>
func.func @retnet(%q: !t, %k: !t, %v: !t, %o: !t) {
  // expected-error @+1 {{attn-grad: no backward for 'retnet': the backward of a recurrence}}
  attn.attention %q, %k, %v -> %o {group = 1 : i64, norm = #attn.norm<none>} : !t, !t, !t -> !t score {
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

// -----

!t = memref<?x?x?x64xf32>
func.func @erf(%q: !t, %k: !t, %v: !t, %o: !t, %lse: memref<?x?x?xf32>) {
  attn.attention %q, %k, %v -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>} : !t, !t, !t -> !t, memref<?x?x?xf32> score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    // expected-error @+1 {{attn-grad: cannot differentiate 'math.erf' on the score's path from dot or a float param}}
    %e = math.erf %dot : f32
    attn.yield %e : f32
  }
  return
}

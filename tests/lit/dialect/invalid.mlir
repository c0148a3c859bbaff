// RUN: attnc-opt %s --split-input-file --verify-diagnostics

func.func @head_dim_mismatch(%q: memref<?x?x?x64xf32>, %k: memref<?x?x?x32xf32>, %o: memref<?x?x?x64xf32>) {
  // expected-error @+1 {{'attn.attention' op head dim differs between q (64) and k (32)}}
  attn.attention %q, %k, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xf32>, memref<?x?x?x32xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @group_does_not_divide(%q: memref<1x8x4x16xf32>, %k: memref<1x3x4x16xf32>, %o: memref<1x8x4x16xf32>) {
  // expected-error @+1 {{query heads (8) must be kv heads (3) times the group (2)}}
  attn.attention %q, %k, %k -> %o {group = 2 : i64, norm = #attn.norm<none>}
      : memref<1x8x4x16xf32>, memref<1x3x4x16xf32>, memref<1x3x4x16xf32> -> memref<1x8x4x16xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @group_zero(%q: memref<?x?x?x?xf32>, %o: memref<?x?x?x?xf32>) {
  // expected-error @+1 {{attribute 'group' failed to satisfy constraint: 64-bit signless integer attribute whose minimum value is 1}}
  attn.attention %q, %q, %q -> %o {group = 0 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32> -> memref<?x?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @mixed_element_types(%q: memref<?x?x?x?xf16>, %k: memref<?x?x?x?xbf16>, %o: memref<?x?x?x?xf32>) {
  // expected-error @+1 {{q and k must share one element type, got 'f16' and 'bf16'}}
  attn.attention %q, %k, %k -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x?xf16>, memref<?x?x?x?xbf16>, memref<?x?x?x?xbf16> -> memref<?x?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @lse_without_softmax(%q: memref<?x?x?x?xf32>, %o: memref<?x?x?x?xf32>, %lse: memref<?x?x?xf32>) {
  // expected-error @+1 {{'lse' is only defined for softmax normalisation}}
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<sigmoid>}
      : memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32> -> memref<?x?x?x?xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @score_region_signature(%q: memref<?x?x?x?xf32>, %o: memref<?x?x?x?xf32>) {
  // expected-error @+1 {{'score' region must take (b, h, i, j : index, dot : f32)}}
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32> -> memref<?x?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @score_yields_bool(%q: memref<?x?x?x?xf32>, %o: memref<?x?x?x?xf32>) {
  // expected-error @+1 {{'score' region must yield exactly one 'f32'}}
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32> -> memref<?x?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      %c = arith.cmpi ule, %j, %i : index
      attn.yield %c : i1
    }
  return
}

// -----

func.func @mask_yields_float(%q: memref<?x?x?x?xf32>, %o: memref<?x?x?x?xf32>) {
  // expected-error @+1 {{'mask' region must yield exactly one 'i1'}}
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32> -> memref<?x?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %z = arith.constant 0.0 : f32
      attn.yield %z : f32
    }
  return
}

// -----

func.func @rank3_query(%q: memref<?x?x?xf32>, %k: memref<?x?x?x?xf32>) {
  // expected-error @+1 {{operand #0 must be 4D memref of 32-bit float or 16-bit float or bfloat16 type values}}
  attn.attention %q, %k, %k -> %k {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32> -> memref<?x?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @row_stats_mismatch(%s: memref<16x32xf32>, %m: memref<8xf32>) {
  // expected-error @+1 {{row statistics hold 8 rows but the tile has 16}}
  attn.tile_row_max %s -> %m : memref<16x32xf32> -> memref<8xf32>
  return
}

// -----

func.func @dynamic_tile(%s: memref<?x32xf32>, %m: memref<16xf32>, %l: memref<16xf32>) {
  // expected-error @+1 {{tile 's' must have a static shape, got 'memref<?x32xf32>'}}
  attn.tile_exp_sum %s, %m -> %l : memref<?x32xf32>, memref<16xf32> -> memref<16xf32>
  return
}

// -----

func.func @acc_channels(%p: memref<16x32xf32>, %v: memref<?x?x?x64xf32>, %acc: memref<16x32xf32>, %x: index) {
  // expected-error @+1 {{accumulator holds 32 value channels but v has 64}}
  attn.tile_matmul_acc %p, %v[%x, %x, %x] -> %acc : memref<16x32xf32>, memref<?x?x?x64xf32> -> memref<16x32xf32>
  return
}

// -----

func.func @store_softmax_without_stats(%acc: memref<16x64xf32>, %o: memref<?x?x?x64xf32>, %x: index) {
  // expected-error @+1 {{softmax needs the row statistics l and m; other norms take none}}
  attn.tile_store %acc -> %o[%x, %x, %x] {norm = #attn.norm<softmax>} : memref<16x64xf32> -> memref<?x?x?x64xf32>
  return
}

// -----

func.func @yield_outside(%x: f32) {
  // expected-error @+1 {{'attn.yield' op expects parent op to be one of 'attn.attention, attn.attention_grad, attn.tile_scores, attn.chunk_step, attn.tile_key_range, attn.tile_store, attn.combine'}}
  attn.yield %x : f32
}

// -----

func.func @combine_mismatch(%po: memref<?x?x?x?x32xf32>, %pl: memref<?x?x?x?xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>) {
  // expected-error @+1 {{part_out dim 4 (32) does not match out dim 3 (64)}}
  attn.combine %po, %pl -> %o, %lse : memref<?x?x?x?x32xf32>, memref<?x?x?x?xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
  return
}

// -----

func.func @combine_split_counts(%po: memref<4x?x?x?x64xf32>, %pl: memref<2x?x?x?xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>) {
  // expected-error @+1 {{part_out and part_lse must hold the same number of splits}}
  attn.combine %po, %pl -> %o, %lse : memref<4x?x?x?x64xf32>, memref<2x?x?x?xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
  return
}


// -----

func.func @quantised_without_scale(%q: memref<?x?x?x64xbf16>, %k: memref<?x?x?x64xi8>, %o: memref<?x?x?x64xbf16>) {
  // expected-error @+1 {{k is quantised ('i8') but has no scale}}
  attn.attention %q, %k, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xbf16>, memref<?x?x?x64xi8>, memref<?x?x?x64xbf16> -> memref<?x?x?x64xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @table_without_page_size(%q: memref<?x?x?x64xbf16>, %t: memref<?x?xi32>, %o: memref<?x?x?x64xbf16>) {
  // expected-error @+1 {{a block table needs a page size > 0 and the reverse, got a table and page_size 0}}
  attn.attention %q, %q, %q pages %t -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xbf16>, memref<?x?x?x64xbf16>, memref<?x?x?x64xbf16> pages memref<?x?xi32> -> memref<?x?x?x64xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

// Packed i4 holds two values per element: 32 bytes are 64 channels, not the 128 of q.
func.func @packed_int4_head_dim(%q: memref<?x?x?x128xbf16>, %k: memref<?x?x?x32xvector<2xi4>>,
    %ks: memref<?xf32>, %o: memref<?x?x?x128xbf16>) {
  // expected-error @+1 {{head dim differs between q (128) and k (64)}}
  attn.attention %q, %k, %q kscale %ks -> %o {group = 1 : i64, norm = #attn.norm<none>,
      k_scale_axes = array<i64: 1>}
      : memref<?x?x?x128xbf16>, memref<?x?x?x32xvector<2xi4>>, memref<?x?x?x128xbf16>
        kscale memref<?xf32> -> memref<?x?x?x128xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

// Packed i4 needs a dequantisation scale like any quantised storage.
func.func @packed_int4_without_scale(%q: memref<?x?x?x64xbf16>, %k: memref<?x?x?x32xvector<2xi4>>, %o: memref<?x?x?x64xbf16>) {
  // expected-error @+1 {{k is quantised ('vector<2xi4>') but has no scale}}
  attn.attention %q, %k, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xbf16>, memref<?x?x?x32xvector<2xi4>>, memref<?x?x?x64xbf16> -> memref<?x?x?x64xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @feature_takes_index(%q: memref<?x?x?x64xbf16>, %o: memref<?x?x?x64xbf16>) {
  // expected-error @+1 {{'feature_q' region must have one block taking (x : f32)}}
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xbf16>, memref<?x?x?x64xbf16>, memref<?x?x?x64xbf16> -> memref<?x?x?x64xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } feature_q {
    ^bb0(%x: index):
      %c = arith.constant 1.0 : f32
      attn.yield %c : f32
    }
  return
}

// -----

func.func @decay_with_sigmoid(%q: memref<?x?x?x64xbf16>, %o: memref<?x?x?x64xbf16>) {
  // expected-error @+1 {{a decay needs norm none, sum (a recurrence) or softmax (a forget gate), got sigmoid}}
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<sigmoid>}
      : memref<?x?x?x64xbf16>, memref<?x?x?x64xbf16>, memref<?x?x?x64xbf16> -> memref<?x?x?x64xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } decay {
    ^bb0(%b: index, %h: index, %i: index):
      %c = arith.constant 0.5 : f32
      attn.yield %c : f32
    }
  return
}

// -----

func.func @decay_takes_j(%q: memref<?x?x?x64xbf16>, %o: memref<?x?x?x64xbf16>) {
  // expected-error @+1 {{'decay' region must have one block taking (b, h, i : index)}}
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xbf16>, memref<?x?x?x64xbf16>, memref<?x?x?x64xbf16> -> memref<?x?x?x64xbf16>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } decay {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c = arith.constant 0.5 : f32
      attn.yield %c : f32
    }
  return
}

// -----

func.func @chunk_state_shape(%q: memref<?x?x?x64xf32>, %s: memref<32x64xf32>, %o: memref<?x?x?x64xf32>, %n: index) {
  // expected-error @+1 {{head dim differs between q (64) and state (32)}}
  attn.chunk_step %q, %q, %q[%n, %n, %n, %n] state %s -> %o {chunk = 16 : i64}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<32x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @chunk_key_scale_args(%q: memref<?x?x?x64xf32>, %s: memref<64x64xf32>, %o: memref<?x?x?x64xf32>, %n: index) {
  // expected-error @+1 {{'key_scale' region must have one block taking (b, h, j : index)}}
  attn.chunk_step %q, %q, %q[%n, %n, %n, %n] state %s -> %o {chunk = 16 : i64}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<64x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } key_scale {
    ^bb0(%b: index, %j: index):
      %one = arith.constant 1.0 : f32
      attn.yield %one : f32
    }
  return
}

// -----

func.func @skip_args(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>) {
  // expected-error @+1 {{'skip' region must have one block taking (b, h, i, e : index, x : f32)}}
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } skip {
    ^bb0(%b: index, %h: index, %i: index, %e: index):
      %one = arith.constant 1.0 : f32
      attn.yield %one : f32
    }
  return
}

// -----

func.func @skip_with_softmax(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>,
                             %lse: memref<?x?x?xf32>) {
  // expected-error @+1 {{a skip term needs norm none or sum (a recurrence), got softmax}}
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>,
        memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } skip {
    ^bb0(%b: index, %h: index, %i: index, %e: index, %x: f32):
      attn.yield %x : f32
    }
  return
}

// -----

func.func @qk_group_heads(%q: memref<?x2x?x64xf32>, %v: memref<?x6x?x64xf32>, %o: memref<?x6x?x64xf32>) {
  // expected-error @+1 {{heads (6) must be q/k head groups (2) times qk_group (4)}}
  attn.attention %q, %q, %v -> %o {group = 1 : i64, norm = #attn.norm<none>, qk_group = 4 : i64}
      : memref<?x2x?x64xf32>, memref<?x2x?x64xf32>, memref<?x6x?x64xf32> -> memref<?x6x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @qk_group_with_gqa(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>) {
  // expected-error @+1 {{q/k head groups (qk_group 2) need group 1 and unpaged, unquantised k and v}}
  attn.attention %q, %q, %q -> %o {group = 2 : i64, norm = #attn.norm<none>, qk_group = 2 : i64}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @state_with_softmax(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>,
                              %lse: memref<?x?x?xf32>, %st: memref<?x?x64x64xf32>) {
  // expected-error @+1 {{a state needs norm none (a recurrence), got softmax}}
  attn.attention %q, %q, %q -> %o, %lse state %st {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>,
        memref<?x?x?xf32> state memref<?x?x64x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @state_shape(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>,
                       %st: memref<?x?x32x64xf32>) {
  // expected-error @+1 {{head dim}}
  attn.attention %q, %q, %q -> %o state %st {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
        state memref<?x?x32x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @chunk_normalize_columns(%q: memref<?x?x?x64xf32>, %s: memref<64x64xf32>, %o: memref<?x?x?x64xf32>, %n: index) {
  // expected-error @+1 {{the state needs 65 columns (the value dim + 1: normalize), got 64}}
  attn.chunk_step %q, %q, %q[%n, %n, %n, %n] state %s -> %o {chunk = 16 : i64, normalize}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<64x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @chunk_rms_eps(%q: memref<?x?x?x64xf32>, %s: memref<64x64xf32>, %o: memref<?x?x?x64xf32>, %n: index) {
  // expected-error @+1 {{rms_eps must be positive, got 0}}
  attn.chunk_step %q, %q, %q[%n, %n, %n, %n] state %s -> %o {chunk = 16 : i64, rms_eps = 0.0 : f32}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<64x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}


// -----

func.func @chunk_bonus_needs_strict(%q: memref<?x?x?x64xf32>, %s: memref<64x64xf32>, %o: memref<?x?x?x64xf32>, %n: index) {
  // expected-error @+1 {{a bonus (the current token's term) needs 'strict'}}
  attn.chunk_step %q, %q, %q[%n, %n, %n, %n] state %s -> %o {chunk = 16 : i64}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<64x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } bonus {
    ^bb0(%b: index, %h: index, %i: index, %c: index):
      %u = arith.constant 0.5 : f32
      attn.yield %u : f32
    }
  return
}

// -----

func.func @bonus_needs_strict_mask(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>) {
  // expected-error @+1 {{a bonus (the current token's term) needs norm none, the mask exactly j < i}}
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ule, %j, %i : index
      attn.yield %m : i1
    } bonus {
    ^bb0(%b: index, %h: index, %i: index, %c: index):
      %u = arith.constant 0.5 : f32
      attn.yield %u : f32
    }
  return
}

// -----

func.func @bonus_region_arguments(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>) {
  // expected-error @+1 {{'bonus' region must have one block taking (b, h, i, c : index)}}
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %m = arith.cmpi ult, %j, %i : index
      attn.yield %m : i1
    } bonus {
    ^bb0(%b: index, %h: index, %i: index):
      %u = arith.constant 0.5 : f32
      attn.yield %u : f32
    }
  return
}

// -----

func.func @projection_head_dim(%q: memref<?x?x?x64xf32>, %w: memref<128x32xf32>, %o: memref<?x?x?x64xf32>) {
  // expected-error @+1 {{head dim differs between q (64) and projection (32)}}
  attn.attention %q, %q, %q -> %o proj %w {group = 1 : i64, norm = #attn.norm<sum>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32> proj memref<128x32xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } feature_q {
    ^bb0(%p: f32, %sq: f32):
      attn.yield %p : f32
    } feature_k {
    ^bb0(%p: f32, %sq: f32):
      attn.yield %p : f32
    }
  return
}

// -----

func.func @projection_feature_args(%q: memref<?x?x?x64xf32>, %w: memref<128x64xf32>, %o: memref<?x?x?x64xf32>) {
  // expected-error @+1 {{'feature_q' region must have one block taking (p, sq : f32) with a projection}}
  attn.attention %q, %q, %q -> %o proj %w {group = 1 : i64, norm = #attn.norm<sum>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32> proj memref<128x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } feature_q {
    ^bb0(%x: f32):
      attn.yield %x : f32
    } feature_k {
    ^bb0(%p: f32, %sq: f32):
      attn.yield %p : f32
    }
  return
}

// -----

func.func @chunk_projection_rows(%q: memref<?x?x?x64xf32>, %w: memref<128x64xf32>, %s: memref<64x64xf32>, %o: memref<?x?x?x64xf32>, %n: index) {
  // expected-error @+1 {{feature dim differs between projection (128) and state (64)}}
  attn.chunk_step %q, %q, %q[%n, %n, %n, %n] state %s -> %o proj %w {chunk = 16 : i64}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<64x64xf32> -> memref<?x?x?x64xf32> proj memref<128x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } feature_q {
    ^bb0(%p: f32, %sq: f32):
      attn.yield %p : f32
    } feature_k {
    ^bb0(%p: f32, %sq: f32):
      attn.yield %p : f32
    }
  return
}

// -----

func.func @projection_dynamic_features(%q: memref<?x?x?x64xf32>, %w: memref<?x64xf32>, %o: memref<?x?x?x64xf32>) {
  // expected-error @+1 {{the projection needs a static feature dim, got 'memref<?x64xf32>'}}
  attn.attention %q, %q, %q -> %o proj %w {group = 1 : i64, norm = #attn.norm<sum>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32> proj memref<?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } feature_q {
    ^bb0(%p: f32, %sq: f32):
      attn.yield %p : f32
    } feature_k {
    ^bb0(%p: f32, %sq: f32):
      attn.yield %p : f32
    }
  return
}

// -----

!t = memref<?x?x?x64xf32>
func.func @grad_needs_lse(%q: !t, %k: !t, %v: !t, %o: !t, %do: !t, %dq: !t, %dk: !t, %dv: !t) {
  // expected-error @+1 {{takes the forward's lse exactly when the norm is softmax}}
  attn.attention_grad %q, %k, %v, %o, %do -> %dq, %dk, %dv {group = 1 : i64, norm = #attn.norm<softmax>} : !t, !t, !t, !t, !t -> !t, !t, !t score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn.yield %dot : f32
  } score_grad {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %g: f32):
    attn.yield %g : f32
  }
  return
}

// -----

func.func @grad_shape(%q: memref<?x?x?x64xf32>, %k: memref<?x?x?x64xf32>, %v: memref<?x?x?x64xf32>,
                      %o: memref<?x?x?x64xf32>, %do: memref<?x?x?x64xf32>, %dq: memref<?x?x?x32xf32>,
                      %dk: memref<?x?x?x64xf32>, %dv: memref<?x?x?x64xf32>) {
  // expected-error @+1 {{shape differs between dq (32) and what it differentiates (64)}}
  attn.attention_grad %q, %k, %v, %o, %do -> %dq, %dk, %dv {group = 1 : i64, norm = #attn.norm<none>} : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x32xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn.yield %dot : f32
  } score_grad {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %g: f32):
    attn.yield %g : f32
  }
  return
}

// -----

!t = memref<?x?x?x64xf32>
func.func @grad_region(%q: !t, %k: !t, %v: !t, %o: !t, %do: !t, %dq: !t, %dk: !t, %dv: !t) {
  // expected-error @+1 {{'score_grad' region must take (b, h, i, j : index, dot : f32, g : f32)}}
  attn.attention_grad %q, %k, %v, %o, %do -> %dq, %dk, %dv {group = 1 : i64, norm = #attn.norm<none>} : !t, !t, !t, !t, !t -> !t, !t, !t score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn.yield %dot : f32
  } score_grad {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn.yield %dot : f32
  }
  return
}

// -----

!t = memref<?x?x?x64xf32>
func.func @accumulate_rank(%q: !t, %k: !t, %v: !t, %o: !t, %do: !t, %dq: !t, %dk: !t, %dv: !t,
                           %dp: memref<?x?xf32>) {
  attn.attention_grad %q, %k, %v, %o, %do -> %dq, %dk, %dv {group = 1 : i64, norm = #attn.norm<none>} : !t, !t, !t, !t, !t -> !t, !t, !t score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn.yield %dot : f32
  } score_grad {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %g: f32):
    // expected-error @+1 {{needs one index per axis of the gradient (rank 2), got 1}}
    attn.accumulate %g -> %dp[%h] : memref<?x?xf32>
    attn.yield %g : f32
  }
  return
}

// -----

!t = memref<?x?x?x16xf32>
!l = memref<?x?x?xf32>
func.func @grad_shared_tensor_two_buffers(%q: !t, %k: !t, %v: !t, %k2: !t, %o: !t, %do: !t, %l1: !l, %l2: !l, %dq: !t,
                  %dk: !t, %dv: !t, %dq2: !t, %dk2: !t) {
  // expected-error @+1 {{a tensor read by several scores has one gradient buffer: 'q' is read again by score 1 with another gradient}}
  attn.attention_grad %q, %k, %v, %o, %do lse %l1 scores %q by %k2 lses %l2 -> %dq, %dk, %dv more %dq2 by %dk2 {group = 1 : i64, norm = #attn.norm<softmax>} : !t, !t, !t, !t, !t lse !l scores !t by !t lses !l -> !t, !t, !t more !t by !t score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn.yield %dot : f32
  } score_grad {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %g: f32):
    attn.yield %g : f32
  } mix {
  ^bb0(%b: index, %h: index, %i: index, %e: index, %y0: f32, %y1: f32):
    %m = arith.subf %y0, %y1 : f32
    attn.yield %m : f32
  } mix_grad {
  ^bb0(%b: index, %h: index, %i: index, %e: index, %y0: f32, %y1: f32, %g: f32):
    %n = arith.negf %g : f32
    attn.yield %g, %n : f32, f32
  } more_scores {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn.yield %dot : f32
  }, {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %g: f32):
    attn.yield %g : f32
  }
  return
}

// -----

!t = memref<?x?x?x16xf32>
!l = memref<?x?x?xf32>
func.func @grad_mix_grad_yields(%q: !t, %k: !t, %v: !t, %k2: !t, %o: !t, %do: !t, %l1: !l, %l2: !l, %dq: !t,
                  %dk: !t, %dv: !t, %dq2: !t, %dk2: !t) {
  // expected-error @+1 {{'mix_grad' region must take (b, h, i, e : index, y_0 ... y_1, g : f32) and yield 2 f32}}
  attn.attention_grad %q, %k, %v, %o, %do lse %l1 scores %q by %k2 lses %l2 -> %dq, %dk, %dv more %dq by %dk2 {group = 1 : i64, norm = #attn.norm<softmax>} : !t, !t, !t, !t, !t lse !l scores !t by !t lses !l -> !t, !t, !t more !t by !t score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn.yield %dot : f32
  } score_grad {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %g: f32):
    attn.yield %g : f32
  } mix {
  ^bb0(%b: index, %h: index, %i: index, %e: index, %y0: f32, %y1: f32):
    %m = arith.subf %y0, %y1 : f32
    attn.yield %m : f32
  } mix_grad {
  ^bb0(%b: index, %h: index, %i: index, %e: index, %y0: f32, %y1: f32, %g: f32):
    attn.yield %g : f32
  } more_scores {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn.yield %dot : f32
  }, {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %g: f32):
    attn.yield %g : f32
  }
  return
}

// -----

!t = memref<?x?x?x16xf32>
!l = memref<?x?x?xf32>
func.func @grad_buffer_is_input(%q: !t, %k: !t, %v: !t, %k2: !t, %o: !t, %do: !t, %l1: !l, %l2: !l, %dq: !t,
                  %dk: !t, %dv: !t, %dq2: !t, %dk2: !t) {
  // expected-error @+1 {{'dk1' is also 'k'}}
  attn.attention_grad %q, %k, %v, %o, %do lse %l1 scores %q by %k2 lses %l2 -> %dq, %dk, %dv more %dq by %k {group = 1 : i64, norm = #attn.norm<softmax>} : !t, !t, !t, !t, !t lse !l scores !t by !t lses !l -> !t, !t, !t more !t by !t score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn.yield %dot : f32
  } score_grad {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %g: f32):
    attn.yield %g : f32
  } mix {
  ^bb0(%b: index, %h: index, %i: index, %e: index, %y0: f32, %y1: f32):
    %m = arith.subf %y0, %y1 : f32
    attn.yield %m : f32
  } mix_grad {
  ^bb0(%b: index, %h: index, %i: index, %e: index, %y0: f32, %y1: f32, %g: f32):
    %n = arith.negf %g : f32
    attn.yield %g, %n : f32, f32
  } more_scores {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn.yield %dot : f32
  }, {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %g: f32):
    attn.yield %g : f32
  }
  return
}

// -----

!t = memref<?x?x?x16xf32>
!l = memref<?x?x?xf32>
func.func @grad_no_mix(%q: !t, %k: !t, %v: !t, %k2: !t, %o: !t, %do: !t, %l1: !l, %l2: !l, %dq: !t,
                  %dk: !t, %dv: !t, %dq2: !t, %dk2: !t) {
  // expected-error @+1 {{takes 'mix' and 'mix_grad' regions exactly with several scores}}
  attn.attention_grad %q, %k, %v, %o, %do lse %l1 scores %q by %k2 lses %l2 -> %dq, %dk, %dv more %dq by %dk2 {group = 1 : i64, norm = #attn.norm<softmax>} : !t, !t, !t, !t, !t lse !l scores !t by !t lses !l -> !t, !t, !t more !t by !t score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn.yield %dot : f32
  } score_grad {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %g: f32):
    attn.yield %g : f32
  } more_scores {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn.yield %dot : f32
  }, {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %g: f32):
    attn.yield %g : f32
  }
  return
}

// -----

func.func @out_aliases_q(%q: memref<?x?x?x?xf32>) {
  // expected-error @+1 {{'out' is also 'q': the op writes it while it reads or writes the other}}
  attn.attention %q, %q, %q -> %q {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x?xf32>, memref<?x?x?x?xf32>, memref<?x?x?x?xf32> -> memref<?x?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

!t = memref<?x?x?x64xf32>
func.func @grad_dk_aliases_dv(%q: !t, %k: !t, %v: !t, %o: !t, %do: !t, %dq: !t, %dk: !t) {
  // expected-error @+1 {{'dk' is also 'dv': the op writes it while it reads or writes the other}}
  attn.attention_grad %q, %k, %v, %o, %do -> %dq, %dk, %dk {group = 1 : i64, norm = #attn.norm<none>} : !t, !t, !t, !t, !t -> !t, !t, !t score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn.yield %dot : f32
  } score_grad {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %g: f32):
    attn.yield %g : f32
  }
  return
}

// -----

func.func @empty_tile(%s: memref<0x32xf32>, %m: memref<0xf32>, %l: memref<0xf32>) {
  // expected-error @+1 {{tile 's' must have 1 to 16777216 elements, got 'memref<0x32xf32>'}}
  attn.tile_exp_sum %s, %m -> %l : memref<0x32xf32>, memref<0xf32> -> memref<0xf32>
  return
}

// -----

func.func @huge_tile(%s: memref<65536x65536xf32>, %m: memref<65536xf32>, %l: memref<65536xf32>) {
  // expected-error @+1 {{tile 's' must have 1 to 16777216 elements, got 'memref<65536x65536xf32>'}}
  attn.tile_exp_sum %s, %m -> %l : memref<65536x65536xf32>, memref<65536xf32> -> memref<65536xf32>
  return
}

// -----

func.func @key_range_region(%b: index, %n: index) {
  // expected-error @+1 {{'mask' region must take (b, h, i, j : index)}}
  %lo:4 = attn.tile_key_range [%b, %b, %b] queries %n keys %n {block_k = 16 : i64, rows = 32 : i64} mask {
  ^bb0(%x: index, %y: index, %i: index):
    %t = arith.constant true
    attn.yield %t : i1
  }
  return
}

// -----

func.func @key_range_yield(%b: index, %n: index) {
  // expected-error @+1 {{'mask' region must yield exactly one 'i1'}}
  %lo:4 = attn.tile_key_range [%b, %b, %b] queries %n keys %n {block_k = 16 : i64, rows = 32 : i64} mask {
  ^bb0(%x: index, %y: index, %i: index, %j: index):
    %f = arith.constant 1.0 : f32
    attn.yield %f : f32
  }
  return
}

// -----

func.func @key_range_rows(%b: index, %n: index) {
  // expected-error @+1 {{attribute 'rows' failed to satisfy constraint}}
  %lo:4 = attn.tile_key_range [%b, %b, %b] queries %n keys %n {block_k = 16 : i64, rows = 0 : i64} mask {
  ^bb0(%x: index, %y: index, %i: index, %j: index):
    %t = arith.constant true
    attn.yield %t : i1
  }
  return
}

// -----

func.func @output_args(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>) {
  // expected-error @+1 {{'output' region must have one block taking (b, h, i, e : index, y : f32)}}
  attn.attention %q, %q, %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>,
        memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } output {
    ^bb0(%b: index, %h: index, %i: index, %y: f32):
      attn.yield %y : f32
    }
  return
}

// -----

func.func @output_with_skip(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>) {
  // expected-error @+1 {{an output map does not combine with a skip term}}
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<none>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } skip {
    ^bb0(%b: index, %h: index, %i: index, %e: index, %x: f32):
      attn.yield %x : f32
    } output {
    ^bb0(%b: index, %h: index, %i: index, %e: index, %y: f32):
      attn.yield %y : f32
    }
  return
}

// -----

func.func @tile_store_output_yield(%acc: memref<16x64xf32>, %o: memref<?x?x?x64xf32>, %b: index) {
  // expected-error @+1 {{'output' region must yield exactly one 'f32'}}
  attn.tile_store %acc -> %o[%b, %b, %b] {norm = #attn.norm<none>}
      : memref<16x64xf32> -> memref<?x?x?x64xf32> output {
    ^bb0(%bb: index, %h: index, %i: index, %e: index, %y: f32):
      attn.yield %i : index
    }
  return
}

// -----

func.func @scores_without_mix(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>) {
  // expected-error @+1 {{several scores (2) need a 'mix' region to combine their rows}}
  attn.attention %q, %q, %q scores %q by %q -> %o {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> scores memref<?x?x?x64xf32> by memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } more_scores {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @mix_of_one_score(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>) {
  // expected-error @+1 {{a 'mix' region combines the rows of several scores; this op has one}}
  attn.attention %q, %q, %q -> %o {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mix {
    ^bb0(%b: index, %h: index, %i: index, %e: index, %y1: f32):
      attn.yield %y1 : f32
    }
  return
}

// -----

func.func @scores_without_region(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>) {
  // expected-error @+1 {{several scores need a key and a score region per extra query: got 1 queries, 1 keys and 0 regions}}
  attn.attention %q, %q, %q scores %q by %q -> %o {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> scores memref<?x?x?x64xf32> by memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @scores_lse_count(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>, %lse: memref<?x?x?xf32>) {
  // expected-error @+1 {{'lses' holds the lse of each extra score when 'lse' is given: 1 expected, got 0}}
  attn.attention %q, %q, %q scores %q by %q -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> scores memref<?x?x?x64xf32> by memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mix {
    ^bb0(%b: index, %h: index, %i: index, %e: index, %y1: f32, %y2: f32):
      attn.yield %y1 : f32
    } more_scores {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @scores_with_sigmoid(%q: memref<?x?x?x64xf32>, %o: memref<?x?x?x64xf32>) {
  // expected-error @+1 {{several scores need norm softmax over plain q, k and v}}
  attn.attention %q, %q, %q scores %q by %q -> %o {group = 1 : i64, norm = #attn.norm<sigmoid>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> scores memref<?x?x?x64xf32> by memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mix {
    ^bb0(%b: index, %h: index, %i: index, %e: index, %y1: f32, %y2: f32):
      attn.yield %y1 : f32
    } more_scores {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @scores_mix_args(%q: memref<?x?x?x64xf32>, %q3: memref<?x?x?x32xf32>, %o: memref<?x?x?x64xf32>) {
  // expected-error @+1 {{'mix' region must have one block taking (b, h, i, e : index, then one f32 per score: 2)}}
  attn.attention %q, %q, %q scores %q by %q -> %o {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> scores memref<?x?x?x64xf32> by memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mix {
    ^bb0(%b: index, %h: index, %i: index, %e: index, %y1: f32):
      attn.yield %y1 : f32
    } more_scores {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @scores_q_shape(%q: memref<?x?x?x64xf32>, %q3: memref<?x?x?x32xf32>, %o: memref<?x?x?x64xf32>) {
  // expected-error @+1 {{a dim differs between q (64) and a score's q (32)}}
  attn.attention %q, %q, %q scores %q3 by %q -> %o {group = 1 : i64, norm = #attn.norm<softmax>}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32> scores memref<?x?x?x32xf32> by memref<?x?x?x64xf32> -> memref<?x?x?x64xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    } mix {
    ^bb0(%b: index, %h: index, %i: index, %e: index, %y1: f32, %y2: f32):
      attn.yield %y1 : f32
    } more_scores {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

func.func @tile_store_scores_stats(%acc: memref<16x64xf32>, %l: memref<16xf32>, %l8: memref<8xf32>,
                                   %o: memref<?x?x?x64xf32>, %b: index) {
  // expected-error @+1 {{every buffer of a query tile needs 16 static rows, got 'memref<8xf32>'}}
  attn.tile_store %acc, %l, %l scores(%acc) (%l8) (%l) -> %o[%b, %b, %b] {norm = #attn.norm<softmax>}
      : memref<16x64xf32>, memref<16xf32>, memref<16xf32> scores(memref<16x64xf32>) (memref<8xf32>) (memref<16xf32>)
     -> memref<?x?x?x64xf32> mix {
    ^bb0(%bb: index, %h: index, %i: index, %e: index, %y1: f32, %y2: f32):
      attn.yield %y1 : f32
    }
  return
}

// -----

func.func @log_decay_without_decay(%q: memref<?x?x?x64xf32>, %s: memref<16x16xf32>, %x: index) {
  // expected-error @+1 {{log_decay adds the log decays to the score: it needs a 'decay' region}}
  attn.tile_scores %q, %q[%x, %x, %x, %x, %x] -> %s {fill = 0xFF800000 : f32, log_decay}
      : memref<?x?x?x64xf32>, memref<?x?x?x64xf32> -> memref<16x16xf32> score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
}

// -----

!t = memref<?x?x?x64xf32>
!lse = memref<?x?x?xf32>
func.func @grad_decay_without_decay_grad(%q: !t, %k: !t, %v: !t, %o: !t, %do: !t, %l: !lse, %dq: !t, %dk: !t, %dv: !t) {
  // expected-error @+1 {{takes a 'decay' region exactly with its 'decay_grad'}}
  attn.attention_grad %q, %k, %v, %o, %do lse %l -> %dq, %dk, %dv {group = 1 : i64, norm = #attn.norm<softmax>} : !t, !t, !t, !t, !t lse !lse -> !t, !t, !t score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn.yield %dot : f32
  } score_grad {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %g: f32):
    attn.yield %g : f32
  } decay {
  ^bb0(%b: index, %h: index, %i: index):
    %c = arith.constant 0.9 : f32
    attn.yield %c : f32
  }
  return
}

// -----

!t = memref<?x?x?x64xf32>
!lse = memref<?x?x?xf32>
func.func @grad_decay_grad_args(%q: !t, %k: !t, %v: !t, %o: !t, %do: !t, %l: !lse, %dq: !t, %dk: !t, %dv: !t) {
  // expected-error @+1 {{'decay_grad' region must take (b, h, t : index, g : f32) and yield nothing}}
  attn.attention_grad %q, %k, %v, %o, %do lse %l -> %dq, %dk, %dv {group = 1 : i64, norm = #attn.norm<softmax>} : !t, !t, !t, !t, !t lse !lse -> !t, !t, !t score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn.yield %dot : f32
  } score_grad {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %g: f32):
    attn.yield %g : f32
  } decay {
  ^bb0(%b: index, %h: index, %i: index):
    %c = arith.constant 0.9 : f32
    attn.yield %c : f32
  } decay_grad {
  ^bb0(%b: index, %h: index, %t: index, %g: f32):
    attn.yield %g : f32
  }
  return
}

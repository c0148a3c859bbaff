// Transforms of the `attn` dialect. Each pass has one source file named after it and one lit test.
#ifndef ATTN_PASSES_TD
#define ATTN_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnTile : Pass<"attn-tile", "::mlir::func::FuncOp"> {
  let summary = "Tile attn.attention into query tiles x key tiles (two-pass softmax)";
  let description = [{
    Replaces each `attn.attention` by loops over batch, query heads and query tiles of
    `block-q` rows. Each query tile owns small f32 buffers (scores, row max m, row sum l,
    accumulator) and visits the keys in tiles of `block-k` columns with the `attn.tile_*` ops.
    Softmax is computed exactly in two passes over the key tiles (the first finds the row max,
    the second exponentiates, sums and accumulates P.V); `attn-online-softmax` fuses them.
    Elementwise norms (sigmoid, relu2, none) are folded into the score region and need one pass.

    Before:
    ```mlir
    attn.attention %q, %k, %v -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>} ...
    ```
    After (softmax):
    ```mlir
    scf.for %b ... scf.for %h ... scf.for %i0 = %c0 to %len step %c64 {
      attn.tile_fill %m, -inf ; attn.tile_fill %l, 0 ; attn.tile_fill %acc, 0
      scf.for %j0 ... { attn.tile_scores ... -> %s ; attn.tile_row_max %s -> %m }
      scf.for %j0 ... { attn.tile_scores ... -> %s ; attn.tile_exp_sum %s, %m -> %l
                        attn.tile_matmul_acc %s, %v[...] -> %acc }
      attn.tile_store %acc, %l, %m -> %o[%b, %h, %i0], %lse
    }
    ```
  }];
  let options = [
    Option<"blockQ", "block-q", "int64_t", "64", "Rows (queries) per tile">,
    Option<"blockK", "block-k", "int64_t", "32", "Columns (keys) per tile">,
    Option<"narrowBlockK", "narrow-block-k", "int64_t", "0",
           "Keys per tile instead of block-k for variants whose head or value dim is not a "
           "static multiple of 64 (0: block-k). sm_90a: those run on mma.sync, not wgmma">,
    Option<"plainTile", "plain-tile", "int64_t", "0",
           "Rows and keys per tile instead of block-q x block-k for plain softmax attention "
           "(one score dot * C, no mask or the causal one, K/V neither paged nor quantised, "
           "no decay or feature map) at static head and value dims of 96-128 and a query "
           "length other than 1 (0: none). sm_90a: 128, warp-specialised with ping-pong">,
  ];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect", "::mlir::math::MathDialect"];
}

def AttnChunk : Pass<"attn-chunk", "::mlir::func::FuncOp"> {
  let summary = "Compute recurrences (linear attention, RetNet, per-step decays) in chunks";
  let description = [{
    Algorithm selection for the recurrence family. An `attn.attention` whose weights are a
    linear recurrence -- norm none, the causal mask `j <= i` (or `j < i`: the step's `strict`,
    with the op's `bonus` region), a score that is `dot` or `dot`
    times a factor that reads neither j nor dot, optional `feature_q`/`feature_k` maps and an
    optional per-step `decay` -- is replaced by loops over batch and heads that zero a [d, dv]
    f32 state and walk the positions in chunks of `chunk-size`, one `attn.chunk_step` per
    chunk: intra-chunk masked quadratic with decay, plus the carried state, then the state
    update. O(T C d + T d dv) instead of O(T^2 d). Other attention ops are left for attn-tile
    (the quadratic form, which stays available with this pass off).

    Before:
    ```mlir
    attn.attention %q, %k, %v -> %o {group = 1 : i64, norm = #attn.norm<none>} ...
      score { ... %s = arith.mulf %dot, %c ... } mask { ... arith.cmpi ule, %j, %i ... }
      decay { ^bb0(%b: index, %h: index, %i: index): ... }
    ```
    After:
    ```mlir
    %S = memref.alloca(...) : memref<?x?xf32>
    scf.for %b ... scf.for %h ... {
      attn.tile_fill %S, 0.0
      scf.for %n0 = %c0 to %len step %c64 {
        attn.chunk_step %q, %k, %v[%b, %h, %hk, %n0] state %S -> %o {chunk = 64 : i64} ...
      }
    }
    ```
  }];
  let options = [
    Option<"chunkSize", "chunk-size", "int64_t", "64", "Positions per chunk">,
  ];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect"];
}

def AttnGrad : Pass<"attn-grad", "::mlir::ModuleOp"> {
  let summary = "Derive the backward of each variant: its gradients by recomputation";
  let description = [{
    For each function holding one `attn.attention` (arguments q, k, v, params..., out[, lse]),
    adds `<name>_grad` with arguments q, k, v, params..., out[, lse], dout, dq, dk, dv and one
    f32 gradient per float param the score reads (in param order), holding an
    `attn.attention_grad`. Its `score_grad` region is the score differentiated symbolically
    (reverse mode over the region's ops: +, -, *, /, neg, exp, log, tanh, sqrt, rsqrt, abs,
    min/max, select, rem, casts): it returns g * dS/d(dot) and accumulates g * dS/dp into the
    gradient of each param element p the score loads. Masks are not differentiated.

    Variants without a backward get an error that says why: paged or quantised K/V (decoding
    only), and the recurrence forms (state, decay, gate, skip, projection, feature maps, norm
    sum, rmsnorm, q/k head groups), whose backward is not implemented yet.

    Example (softcap: s = 30 tanh(dot / 30)):
    ```mlir
    score_grad {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %g: f32):
      %x = arith.divf %dot, %c30 ; %t = math.tanh %x ; ...
      %t2 = arith.mulf %t, %t ; %d = arith.subf %one, %t2     // 1 - tanh^2
      ... attn.yield %ddot : f32
    }
    ```
  }];
  let options = [
    Option<"gradOnly", "grad-only", "bool", "false",
           "Keep only the backward functions (the forwards are erased once differentiated): a "
           "compile of the backward alone, beside a forward compiled elsewhere">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
                           "::mlir::memref::MemRefDialect", "::mlir::func::FuncDialect"];
}

def AttnOnlineSoftmax : Pass<"attn-online-softmax", "::mlir::func::FuncOp"> {
  let summary = "Fuse the two softmax passes into one with a running max and sum";
  let description = [{
    Finds the two key loops that `attn-tile` emits for a softmax query tile (row max, then
    exp/sum/accumulate over the same scores) and replaces them by a single loop whose
    `attn.tile_online_update` keeps a running max m and sum l and rescales the accumulator by
    exp(m_old - m_new) whenever the max grows (FlashAttention). Normalisation by l is deferred
    to `attn.tile_store`, which also writes the log-sum-exp m + log(l). Scores are then computed
    once instead of twice.

    Before: `scf.for { tile_scores; tile_row_max }  scf.for { tile_scores; tile_exp_sum; tile_matmul_acc }`
    After:  `scf.for { tile_scores; tile_online_update; tile_matmul_acc }`
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect"];
}

def AttnPositionOffsets : Pass<"attn-position-offsets", "::mlir::func::FuncOp"> {
  let summary = "Make the positions a score and a mask compare global: i + q_offset, j + k_offset";
  let description = [{
    For ring attention (context parallelism), where each launch sees one block of queries and
    one block of keys of a longer sequence. A function argument marked
    `attn.position_offset = "q"` (or `"k"`), a rank-0 i32 memref, holds the global position of
    the block's first query (key). In the score and mask regions of every `attn.attention` of
    the function, each use of the query index i (key index j) as a value -- arithmetic,
    comparisons, computed param indices -- becomes i + q_offset (j + k_offset); its uses as a
    plain index of a param (`doc_q[b, i]`, which holds the block's own rows) stay local. The
    marks are removed. Runs before attn-grad, so the backward sees the same positions.

    Before: `mask { ^bb0(%b, %h, %i, %j): %c = arith.cmpi ule, %j, %i }`
    After:  `mask { ^bb0(%b, %h, %i, %j): %qo = memref.load %q_offset[] ...
                    %c = arith.cmpi ule, (%j + %ko), (%i + %qo) }`
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::memref::MemRefDialect"];
}

def AttnMaskBounds : Pass<"attn-mask-bounds", "::mlir::func::FuncOp"> {
  let summary = "Skip the key tiles a query tile's mask cannot allow";
  let description = [{
    Reads the mask region of each `attn.tile_scores` as a conjunction of affine comparisons
    between the query index i and the key index j (`j <= i + c`, `i - j < w`, `j >= c`, ...;
    `&&` combines them, anything else allows every key) and narrows the enclosing key loop to
    the keys some row of the query tile may attend to: causal attention visits about half the
    key tiles, a sliding window only those of its window. The mask is still applied to every
    element, so the bounds only need to be safe, not tight.

    Before: `scf.for %j0 = %c0 to %kv_len step %c64 { attn.tile_scores ... mask { j <= i } }`
    After:  `scf.for %j0 = %c0 to min(%kv_len, %i0 + 64) step %c64 { ... }`
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::scf::SCFDialect"];
}

def AttnPackGQA : Pass<"attn-pack-gqa", "::mlir::func::FuncOp"> {
  let summary = "Put the query heads of a GQA group into one query tile";
  let description = [{
    For a tiled GQA variant (kv head = h / G, G > 1), turns the loop over query heads into a
    loop over kv heads and makes each query tile hold the G heads of a group, query-major: row
    r of the tile starting at packed row p0 is query (p0 + r) / G of head hk * G + (p0 + r) % G
    (`pack = G` on attn.tile_scores / attn.tile_store). Each K and V tile is then read once for
    the whole group: at decode (one query per head) a 16-row tile that held one useful row
    holds G.

    Before: `scf.for %h = 0 to H { scf.for %i0 = 0 to I step 64 { tile_scores [%b, %h, %h / 4, %i0 ...] } }`
    After:  `scf.for %hk = 0 to H / 4 { scf.for %p0 = 0 to I * 4 step 64 { tile_scores [%b, %hk * 4, %hk, %p0 ...] {pack = 4} } }`
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::scf::SCFDialect"];
}

def AttnBlockPlan : Pass<"attn-block-plan", "::mlir::func::FuncOp"> {
  let summary = "Narrow key loops of param-driven masks to the key tiles their queries may see";
  let description = [{
    Block sparsity for masks that attn-mask-bounds cannot read as affine bounds: a mask that
    reads params (document ids, prefix lengths, tree ancestry). Before each such key loop, an
    `attn.tile_key_range` classifies the key range from the mask itself (interval evaluation,
    see the op), and the loop runs over [max(lb, lower), min(ub, upper)): key tiles outside
    it are never visited. The CPU back end computes the range where it stands; the CUDA back
    end computes it for every query tile in a separate kernel, the block plan, and the
    attention kernel reads it.

    Before:
    ```mlir
    scf.for %j0 = %lb to %ub step %c64 {
      attn.tile_scores ... mask { ... memref.load %doc_q[%b, %i] ... memref.load %doc_k[%b, %j] ... }
    ```
    After:
    ```mlir
    %lower, %upper = attn.tile_key_range [%b, %h, %i0] queries %qlen keys %kvlen
        {block_k = 64, rows = 128} mask { ...the same mask... }
    %from = arith.maxsi %lb, %lower
    %to = arith.minsi %ub, %upper
    scf.for %j0 = %from to %to step %c64 { ... }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::memref::MemRefDialect"];
}

def AttnSplitKV : Pass<"attn-split-kv", "::mlir::func::FuncOp"> {
  let summary = "Split the key range of each query tile; merge the partial results";
  let description = [{
    For a function in online-softmax form (one query tile with an `lse` output), appends two
    f32 arguments, the partial outputs [S, b, h, i, dv] and their log-sum-exps [S, b, h, i],
    wraps the query tile in a loop over the S splits (marked `attn.split_kv`; a GPU runs the
    splits as blocks), restricts split s to the key tiles [s * n, (s + 1) * n) with
    n = ceil(ceil(kv_len / block_k) / S), makes attn.tile_store write the partial results, and
    ends the function with attn.combine. S is the first extent of the partial buffers, so the
    caller chooses it at launch (a heuristic over SM count, batch, heads and kv length in the
    runtime, or a forced count); with S = 1 the tile store writes the output directly and the
    combine does nothing. Functions in another form are left alone.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::scf::SCFDialect",
                           "::mlir::memref::MemRefDialect"];
}

#endif // ATTN_PASSES_TD

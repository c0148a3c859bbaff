// Ops of the `attn` dialect: the variant level (`attn.attention`) and the tiled level
// (`attn.tile_*`), which works on small f32 buffers and is shared by the CPU and CUDA back ends.
#ifndef ATTN_OPS_TD
#define ATTN_OPS_TD

include "dialect/AttnDialect.td"
include "mlir/IR/OpBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"

class Attn_Op<string mnemonic, list<Trait> traits = []> : Op<Attn_Dialect, mnemonic, traits>;

def Attn_Float : AnyTypeOf<[F32, F16, BF16]>;
def Attn_Seq4 : MemRefRankOf<[F32, F16, BF16], [4]>;
// k and v may also be stored quantised (i8, e4m3fn, or i4 packed two per byte along the last
// axis as vector<2xi4>) with a dequantisation scale.
def Attn_PackedI4 : VectorOfLengthAndType<[2], [I<4>]>;
def Attn_KV4 : MemRefRankOf<[F32, F16, BF16, I8, F8E4M3FN, Attn_PackedI4], [4]>;
def Attn_Scale : MemRefOf<[F32, F16, BF16]>;
def Attn_Lse : MemRefRankOf<[F32], [3]>;
def Attn_Tile2 : MemRefRankOf<[F32], [2]>;
def Attn_State : MemRefRankOf<[F32], [4]>;
def Attn_Projection : MemRefRankOf<[AnyFloat], [2]>;
def Attn_Tile1 : MemRefRankOf<[F32], [1]>;
def Attn_Partial : MemRefRankOf<[F32], [5]>;
def Attn_BlockTable : MemRefRankOf<[I32], [2]>;
def Attn_PartialLse : MemRefRankOf<[F32], [4]>;

def Attn_YieldOp : Attn_Op<"yield", [Pure, Terminator, ReturnLike,
    ParentOneOf<["AttentionOp", "AttentionGradOp", "TileScoresOp", "ChunkStepOp",
                "TileKeyRangeOp", "TileStoreOp", "CombineOp"]>]> {
  let summary = "Yields the value of a score or mask region";
  let arguments = (ins Variadic<AnyType>:$values);
  let assemblyFormat = "($values^ `:` type($values))? attr-dict";
}

//===----------------------------------------------------------------------===//
// Variant level
//===----------------------------------------------------------------------===//

// No declared memory effects: the op (and its regions, which may load params) is treated
// conservatively as reading and writing anything.
def Attn_AttentionOp : Attn_Op<"attention", [AttrSizedOperandSegments]> {
  let summary = "One attention variant over whole tensors";
  let description = [{
    Computes, for every batch b, query head h (kv head h / group), query i and value channel e:

      o[b,h,i,e] = sum_j N(S(b,h,i,j))_j * v[b,h/group,j,e]   over the keys j with M(b,h,i,j)

    where S is the `score` region, applied to the indices and to dot(q[b,h,i,:], k[b,h/group,j,:]),
    M the optional `mask` region and N the normalisation (`softmax` over j, or elementwise
    `sigmoid`, `relu2`, `none`). Tensors are in the canonical order q/o: [b, h, i, d],
    k/v: [b, hk, j, d]; their strides are free, so any storage layout is a view. With softmax,
    `lse` receives the log-sum-exp of each row (-inf for a row with no allowed key).

    Paged KV (`pages %table`, `page_size = P`): k and v are page pools [pages, hk, P, d] and the
    key j of batch b is row j % P of page table[b, j / P]; the key range is
    dim(table, 1) * P.

    Feature maps (`feature_q` / `feature_k`, ^bb0(%x: f32) -> f32, optional): applied to every
    element of q (k) before the dot product, as linear attention's phi (elu + 1, relu): the dot
    is then sum_d fq(q[b,h,i,d]) * fk(k[b,h/group,j,d]).

    Decay (`decay`, ^bb0(%b: index, %h: index, %i: index) -> f32, optional; norm none, sum or
    softmax, and a mask that allows no key past its query): the per-step factor gamma of a
    recurrence, or a forget gate. Key j's weight for query i is multiplied by
    gamma(b,h,j+1) * ... * gamma(b,h,i) (with softmax its unnormalised weight exp(s), so the
    score gains the log decays between key and query). attn-chunk computes the recurrences
    (and linear attention without a decay) in the chunked form; the tiled (quadratic) form
    folds a decay that does not depend on i into the score as gamma^(i - j) (softmax:
    + (i - j) log gamma).

    Gate (`gate`, ^bb0(%b: index, %h: index, %i: index, %c: index) -> f32, optional; a linear
    recurrence only): a per-step decay of each head channel c (GLA's forget gate). The dot of
    query i and key j becomes sum_c fq(q[i,c]) fk(k[j,c]) gate(b,h,j+1,c) ... gate(b,h,i,c).
    Only the chunked form (attn-chunk) computes it.

    Strict-causal recurrences (norm none and the mask exactly `j < i`, cmpi ult/slt): query i
    reads the state before its own step, so key j's decays and gates run over j + 1 .. i - 1
    (RWKV's convention). Bonus (`bonus`, ^bb0(%b: index, %h: index, %i: index, %c: index) ->
    f32, optional; a strict-causal recurrence whose key positions are its query positions):
    the current token's term, out[b,h,i,:] += score(b, h, i, i, sum_c fq(q[i,c]) fk(k[i,c])
    bonus(b,h,i,c)) * v[b,h/group,i,:] (RWKV's u). Only the chunked form computes either
    (a strict recurrence without decay, gate or bonus is also plain masked attention).

    Shared q/k head groups (`qk_group` G > 1, Mamba-2's B/C groups; with group 1 and only in a
    linear recurrence): q and k have out's heads / G heads, and head h reads q and k at h / G
    (v at h). Only the chunked form (attn-chunk) computes it.

    Skip (`skip`, ^bb0(%b: index, %h: index, %i: index, %e: index, %x: f32) -> f32, optional; a
    linear recurrence whose key positions are its query positions): a term added to every
    output element, out[b,h,i,e] += skip(b, h, i, e, v[b, h/group, i, e]) (Mamba's D x). Only
    the chunked form (attn-chunk) computes it.

    Projected feature maps (`proj %w`, [m, d] of any float type, optional; a linear recurrence
    without a gate or a state): Performer's random features. feature_q and feature_k then take
    (%p: f32, %sq: f32) -> f32 and map row x (over d) of q (k) to the row over m whose element m
    is f(x . w[m, :], x . x); the dot runs over m. Only the chunked form (attn-chunk) computes
    it.

    Norm `sum` (a linear recurrence only): the weights are the score's, and each output row is
    divided by their sum over the keys (0 where the sum is 0): normalised linear attention.
    Only the chunked form (attn-chunk) computes it.

    Output map (`output`, ^bb0(%b: index, %h: index, %i: index, %e: index, %y: f32) -> f32,
    optional; not with a skip term): every output element is output(b, h, i, e, y) of the
    normalised result y = o[b,h,i,e] above (after the rmsnorm, if any): an output gate
    y * sigmoid(g[b,h,i,e]), a scale, a bias. Only the quadratic (tiled) form computes it.

    Output rmsnorm (`rms_eps`, a positive f32, optional): each output row y over the value
    channels becomes y / sqrt(mean(y^2) + rms_eps) (TransNormer's NormAttention, a per-head
    RMSNorm), before the skip term or the output map. The chunked form of a recurrence and the
    quadratic form's attn.tile_store compute it.

    State (`state %s`, f32 [b, h, d, dv], optional; a linear recurrence only: norm none, the
    causal mask and a score linear in dot): S0 = s[b, h] is the recurrence's state before
    position 0, so row i also gets score(b,h,i,_,1) * gamma(b,h,0..i) * fq(q_i) S0; after the op
    s[b, h] holds the state after the last query position,
    gamma(0..T-1) S0 + sum_{j < min(T, kv_len)} gamma(j+1..T-1) fk(k_j) v_j^T (T = q_len). Only
    the chunked form (attn-chunk) computes it.

    Quantised KV (`kscale %s` / `vscale %s`): k (v) holds i8, e4m3fn or packed i4 values; the key used is
    k[b, hk, j, e] * s[x_0, ..., x_n], where scale axis a takes the coordinate
    (b, hk, j, e)[k_scale_axes[a]] (divided by k_scale_group for the channel axis 3): per-head,
    per-token and per-group scales alike.

    Several scores (`scores %q1, ... by %k1, ...`, `more_scores`, `mix`; norm softmax, plain
    q/k/v, no feature map, decay, gate, state, projection or skip): score n >= 1 is the n-th
    region of `more_scores` at dot(q_n[b,h,i,:], k_n[b,h/group,j,:]) (q_n, k_n the n-th of
    `scores` / `by`, shaped like q and k); every score has its own softmax over the same mask
    and values, giving rows y_0 (the `score` region's) ... y_N, and lse_n of score n >= 1
    goes to the n-th of `lses`. Each output element is then mix(b, h, i, e, y_0[e], ...,
    y_N[e]) (the `mix` region), before the rmsnorm and the output map: differential
    attention's y_0 - lambda y_1.

    Example:
    ```mlir
    attn.attention %q, %k, %v -> %o, %lse {group = 1 : i64, norm = #attn.norm<softmax>}
        : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32>
       -> memref<?x?x?x64xf32>, memref<?x?x?xf32>
      score {
      ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
        attn.yield %dot : f32
      } mask {
      ^bb0(%b: index, %h: index, %i: index, %j: index):
        %c = arith.cmpi ule, %j, %i : index
        attn.yield %c : i1
      }
    ```
  }];
  let arguments = (ins Attn_Seq4:$q, Attn_KV4:$k, Attn_KV4:$v,
                       Optional<Attn_BlockTable>:$block_table,
                       Optional<Attn_Scale>:$k_scale, Optional<Attn_Scale>:$v_scale,
                       Attn_Seq4:$out,
                       Optional<Attn_Lse>:$lse,
                       Optional<Attn_State>:$state,
                       Optional<Attn_Projection>:$projection,
                       Variadic<Attn_Seq4>:$more_q, Variadic<Attn_KV4>:$more_k,
                       Variadic<Attn_Lse>:$more_lse,
                       ConfinedAttr<I64Attr, [IntMinValue<1>]>:$group,
                       Attn_NormAttr:$norm,
                       DefaultValuedAttr<I64Attr, "0">:$page_size,
                       DefaultValuedAttr<DenseI64ArrayAttr, "{}">:$k_scale_axes,
                       DefaultValuedAttr<DenseI64ArrayAttr, "{}">:$v_scale_axes,
                       DefaultValuedAttr<I64Attr, "1">:$k_scale_group,
                       DefaultValuedAttr<I64Attr, "1">:$v_scale_group,
                       OptionalAttr<F32Attr>:$unified_max,
                       DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<1>]>, "1">:$qk_group,
                       OptionalAttr<F32Attr>:$rms_eps);
  let regions = (region SizedRegion<1>:$score, AnyRegion:$mask, AnyRegion:$feature_q,
                        AnyRegion:$feature_k, AnyRegion:$decay, AnyRegion:$gate,
                        AnyRegion:$bonus, AnyRegion:$skip, AnyRegion:$output, AnyRegion:$mix,
                        VariadicRegion<SizedRegion<1>>:$more_scores);
  let assemblyFormat = [{
    $q `,` $k `,` $v (`scores` $more_q^ `by` $more_k)? (`pages` $block_table^)?
    (`kscale` $k_scale^)? (`vscale` $v_scale^)? `->`
    $out (`,` $lse^)? (`lses` $more_lse^)? (`state` $state^)? (`proj` $projection^)? attr-dict
    `:` type($q) `,` type($k) `,` type($v) (`scores` type($more_q)^ `by` type($more_k))?
    (`pages` type($block_table)^)? (`kscale` type($k_scale)^)? (`vscale` type($v_scale)^)?
    `->` type($out) (`,` type($lse)^)? (`lses` type($more_lse)^)? (`state` type($state)^)?
    (`proj` type($projection)^)?
    `score` $score (`mask` $mask^)?
    (`feature_q` $feature_q^)? (`feature_k` $feature_k^)? (`decay` $decay^)? (`gate` $gate^)?
    (`bonus` $bonus^)? (`skip` $skip^)? (`output` $output^)? (`mix` $mix^)?
    (`more_scores` $more_scores^)?
  }];
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
  let extraClassDeclaration = [{
    ::mlir::LogicalResult verifyMoreScores();
  }];
}

def Attn_AttentionGradOp : Attn_Op<"attention_grad", [AttrSizedOperandSegments]> {
  let summary = "The gradients of one attention variant, recomputing P from q, k and lse";
  let description = [{
    The backward of attn.attention (made by attn-grad) for the same score, mask, norm and
    group. With S(i, j) the score region at dot(q_i, k_j), the mask M and, for softmax,
    P(i, j) = exp(S(i, j) - lse[i]) (sigmoid: sigmoid(S); relu2: relu(S)^2; none: S), zero
    where M fails or j >= kv_len, and dP(i, j) = dout_i . v_j:

      dS(i, j) = P (dP - D_i), D_i = dout_i . out_i      (softmax)
               = dP P (1 - P)                            (sigmoid)
               = dP 2 relu(S)                            (relu2)
               = dP                                      (none)

    and dS = 0 where P is masked. The `score_grad` region, ^bb0(b, h, i, j : index, dot : f32,
    g : f32), returns g times dS/d(dot) for g = dS(i, j) and adds g times dS/dp to the gradient
    of each float param p the score reads (attn.accumulate); then

      dq_i = sum_j dDot(i, j) k_j,  dk_j = sum_{i, heads of the group} dDot(i, j) q_i,
      dv_j = sum_{i, heads of the group} P(i, j) dout_i.

    dq, dk, dv and every buffer an attn.accumulate in `score_grad` names are outputs: the op
    overwrites them. Nothing of size q_len x kv_len is stored: P is recomputed from lse.

    Through an output expression (attn.attention's `output` map F and/or `rms_eps`): dout is
    the gradient of F's result. Each row y_i = sum_j P(i, j) v_j is recomputed (then
    z_i = rmsnorm(y_i) with rms_eps, else z_i = y_i); the `output_grad` region, ^bb0(b, h, i, e :
    index, z : f32, g : f32), returns g dF/dz for g = dout[b, h, i, e] and adds g dF/dp to the
    gradient of each float param p F reads (without the region dz = dout); through the rmsnorm
    dy = r (dz - z mean(dz z)), r = 1 / sqrt(mean(y^2) + rms_eps); then D_i = dy_i . y_i and
    dy takes dout's place above.

    A forget gate (softmax with a `decay` region, (b, h, i) -> gamma, as attn.attention's):
    P is recomputed from S(i, j) + cum(i) - cum(j), cum(t) = log gamma(b, h, 0) + ... +
    log gamma(b, h, t), and for each position t < q_len the `decay_grad` region, ^bb0(b, h,
    t : index, g : f32), adds g times d log gamma(b, h, t)/dp to the gradient of each float
    param p the decay reads, for g = sum over i >= t > j of dS(i, j) (the scores that gain
    log gamma(t)); it yields nothing.

    Several scores (attn.attention's `scores %q1, ... by %k1, ...`, `mix`; softmax only):
    score n >= 1 is the n-th region of `more_scores` at dot(more_q[n], more_k[n]) with its
    lse more_lse[n]; `more_scores` holds the N extra score regions, then their N score_grad
    regions (getMoreScore(n) / getMoreScoreGrad(n), n < N). Every row y_n = sum_j
    P_n(i, j) v_j is recomputed, mixed by the `mix` region (attn.attention's) into m, then
    normalised (rms_eps) and mapped (output_grad) as above, giving dm; the `mix_grad` region,
    ^bb0(b, h, i, e : index, y_0 ... y_N : f32, g : f32) -> N + 1 f32, returns g dmix/dy_n
    for g = dm[b, h, i, e] (adding g dmix/dp to the gradients of the params the mix reads).
    Then each score runs the single-score backward above with dy_n in dout's place and
    D_n = dy_n . y_n; dv sums P_n^T dy_n over the scores. more_dq[n] / more_dk[n] receive
    the gradients of more_q[n] / more_k[n]: a tensor read by several scores (or as q or k)
    has one gradient buffer, which sums every score's contribution.
  }];
  let arguments = (ins Arg<Attn_Seq4, "", [MemRead]>:$q, Arg<Attn_Seq4, "", [MemRead]>:$k,
                       Arg<Attn_Seq4, "", [MemRead]>:$v, Arg<Attn_Seq4, "", [MemRead]>:$out,
                       Arg<Optional<Attn_Lse>, "", [MemRead]>:$lse,
                       Arg<Attn_Seq4, "", [MemRead]>:$dout,
                       Arg<Attn_Seq4, "", [MemWrite]>:$dq, Arg<Attn_Seq4, "", [MemWrite]>:$dk,
                       Arg<Attn_Seq4, "", [MemWrite]>:$dv,
                       Arg<Variadic<Attn_Seq4>, "", [MemRead]>:$more_q,
                       Arg<Variadic<Attn_Seq4>, "", [MemRead]>:$more_k,
                       Arg<Variadic<Attn_Lse>, "", [MemRead]>:$more_lse,
                       Arg<Variadic<Attn_Seq4>, "", [MemWrite]>:$more_dq,
                       Arg<Variadic<Attn_Seq4>, "", [MemWrite]>:$more_dk,
                       ConfinedAttr<I64Attr, [IntMinValue<1>]>:$group,
                       Attn_NormAttr:$norm,
                       OptionalAttr<F32Attr>:$rms_eps);
  let regions = (region SizedRegion<1>:$score, AnyRegion:$mask, SizedRegion<1>:$score_grad,
                        AnyRegion:$output_grad, AnyRegion:$decay, AnyRegion:$decay_grad,
                        AnyRegion:$mix, AnyRegion:$mix_grad,
                        VariadicRegion<SizedRegion<1>>:$more_scores);
  let assemblyFormat = [{
    $q `,` $k `,` $v `,` $out `,` $dout (`lse` $lse^)? (`scores` $more_q^ `by` $more_k)?
    (`lses` $more_lse^)? `->` $dq `,` $dk `,` $dv (`more` $more_dq^ `by` $more_dk)? attr-dict `:`
    type($q) `,` type($k) `,` type($v) `,` type($out) `,` type($dout) (`lse` type($lse)^)?
    (`scores` type($more_q)^ `by` type($more_k))? (`lses` type($more_lse)^)? `->`
    type($dq) `,` type($dk) `,` type($dv) (`more` type($more_dq)^ `by` type($more_dk))?
    `score` $score (`mask` $mask^)? `score_grad` $score_grad
    (`output_grad` $output_grad^)? (`decay` $decay^)? (`decay_grad` $decay_grad^)?
    (`mix` $mix^)? (`mix_grad` $mix_grad^)? (`more_scores` $more_scores^)?
  }];
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
  let extraClassDeclaration = [{
    /// Several scores: how many extra scores, extra score n's region and its score_grad.
    unsigned getNumMoreScores() { return getMoreQ().size(); }
    ::mlir::Region &getMoreScore(unsigned n) { return getMoreScores()[n]; }
    ::mlir::Region &getMoreScoreGrad(unsigned n) {
      return getMoreScores()[getNumMoreScores() + n];
    }
  }];
}

def Attn_AccumulateOp : Attn_Op<"accumulate", [HasParent<"AttentionGradOp">]> {
  let summary = "Adds a value into an element of a parameter gradient";
  let description = [{
    grad[indices] += value, inside attn.attention_grad's `score_grad` region: the gradient of a
    float param the score reads, summed over every (b, h, i, j) that reads that element.
  }];
  let arguments = (ins F32:$value, Arg<MemRefOf<[F32]>, "", [MemRead, MemWrite]>:$grad,
                       Variadic<Index>:$indices);
  let assemblyFormat = "$value `->` $grad `[` $indices `]` attr-dict `:` type($grad)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Tiled level
//===----------------------------------------------------------------------===//

def Attn_TileFillOp : Attn_Op<"tile_fill"> {
  let summary = "Fills a tile buffer with a constant";
  let arguments = (ins Arg<AnyTypeOf<[Attn_Tile1, Attn_Tile2]>, "", [MemWrite]>:$tile,
                       F32Attr:$value);
  let assemblyFormat = "$tile `,` $value attr-dict `:` type($tile)";
}

def Attn_TileScoresOp : Attn_Op<"tile_scores", [AttrSizedOperandSegments]> {
  let summary = "Scores of one query tile against one key tile";
  let description = [{
    s[r, c] = score(b, h, i0 + r, j0 + c, dot(q[b, h, i0 + r, :], k[b, hk, j0 + c, :])) where the
    mask holds and both indices are in range; `fill` elsewhere. On a GPU the dot products are one
    tensor-core matmul and the score region is applied to its accumulators.

    With `pack = G > 1` (GQA packing, see attn-pack-gqa) the rows hold the G query heads that
    share kv head hk, query-major: row r is query i = (i0 + r) / G of head h + (i0 + r) % G, so
    one key tile serves every head of the group. `h` is then the group's first head.
    With `pages %table` k is a page pool, and with `kscale %s` it is quantised; `feature_q` and
    `feature_k` map q's and k's elements before the dot; all as in attn.attention. A `decay`
    region (a per-step decay that attn-tile could not fold) multiplies each score by
    gamma(b,h,j+1) * ... * gamma(b,h,i); with `log_decay` (a softmax: the weights exp(s) decay,
    a forget-gate softmax) the score instead gains log gamma(b,h,j+1) + ... + log gamma(b,h,i).
  }];
  let arguments = (ins Arg<Attn_Seq4, "", [MemRead]>:$q, Arg<Attn_KV4, "", [MemRead]>:$k,
                       Arg<Attn_Tile2, "", [MemWrite]>:$s,
                       Index:$b, Index:$h, Index:$hk, Index:$i0, Index:$j0,
                       Optional<Attn_BlockTable>:$block_table, Optional<Attn_Scale>:$k_scale,
                       F32Attr:$fill,
                       DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<1>]>, "1">:$pack,
                       DefaultValuedAttr<I64Attr, "0">:$page_size,
                       DefaultValuedAttr<DenseI64ArrayAttr, "{}">:$k_scale_axes,
                       DefaultValuedAttr<I64Attr, "1">:$k_scale_group,
                       UnitAttr:$log_decay);
  let regions = (region SizedRegion<1>:$score, AnyRegion:$mask, AnyRegion:$feature_q,
                        AnyRegion:$feature_k, AnyRegion:$decay);
  let assemblyFormat = [{
    $q `,` $k `[` $b `,` $h `,` $hk `,` $i0 `,` $j0 `]` (`pages` $block_table^)?
    (`kscale` $k_scale^)? `->` $s attr-dict `:` type($q) `,` type($k)
    (`pages` type($block_table)^)? (`kscale` type($k_scale)^)? `->` type($s)
    `score` $score (`mask` $mask^)? (`feature_q` $feature_q^)? (`feature_k` $feature_k^)? (`decay` $decay^)?
  }];
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
}

def Attn_TileKeyRangeOp : Attn_Op<"tile_key_range", [RecursiveMemoryEffects]> {
  let summary = "The keys a query tile's mask may allow: one entry of a block plan";
  let description = [{
    For the query tile of `rows` rows starting at row i0 of batch b and head h (with
    `pack = G > 1`, row r is query (i0 + r) / G of head h + (i0 + r) % G, as in
    attn.tile_scores), `lower` is the first key j < kv_len that the `mask` region may allow
    for some row of the tile in range (i < q_len), rounded down to a multiple of `block_k`,
    and `upper` is one past the last such key; both are 0 when the mask allows no key.
    [`full_lower`, `full_upper`) is a range of keys the mask allows for every row of the tile
    in range (empty, both 0, when there is none): key tiles inside it need no mask.

    "May allow" is decided by evaluating the mask over intervals (docs/block-sparsity.md):
    the key exact, the query (and, packed, the head) as the interval the tile spans, a param
    read at the query as the minimum and maximum it takes over the tile's rows. The range is
    therefore sound for any param values (every allowed pair of the tile lies inside it) and
    exact when the params are monotone in the query (sorted document ids, lengths); the full
    range holds only keys whose every evaluation must hold, and only when they are contiguous. A mask
    the evaluation cannot bound (float math, params read at both i and j) gives the whole key
    range. attn-block-plan narrows key loops with it; the CUDA back end computes it for every
    query tile in a separate kernel (the block plan) before the attention kernel.
  }];
  let arguments = (ins Index:$b, Index:$h, Index:$i0, Index:$q_len, Index:$kv_len,
                       ConfinedAttr<I64Attr, [IntMinValue<1>]>:$rows,
                       DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<1>]>, "1">:$pack,
                       ConfinedAttr<I64Attr, [IntMinValue<1>]>:$block_k);
  let results = (outs Index:$lower, Index:$upper, Index:$full_lower, Index:$full_upper);
  let regions = (region SizedRegion<1>:$mask);
  let assemblyFormat = [{
    `[` $b `,` $h `,` $i0 `]` `queries` $q_len `keys` $kv_len attr-dict `mask` $mask
  }];
  let hasRegionVerifier = 1;
}

def Attn_TileRowMaxOp : Attn_Op<"tile_row_max"> {
  let summary = "m[r] = max(m[r], max_c s[r, c])";
  let arguments = (ins Arg<Attn_Tile2, "", [MemRead]>:$s, Arg<Attn_Tile1, "", [MemRead, MemWrite]>:$m);
  let assemblyFormat = "$s `->` $m attr-dict `:` type($s) `->` type($m)";
  let hasVerifier = 1;
}

def Attn_TileExpSumOp : Attn_Op<"tile_exp_sum"> {
  let summary = "s = exp(s - m) in place and l += row sums, for a final row max m";
  let description = [{
    The second pass of a two-pass softmax: m already holds the row maxima over every key tile.
    A row whose max is -inf (no allowed key so far) uses 0 as its base, so its entries become 0.
    `unified_max` is only carried to attn.tile_online_update by attn-online-softmax.
  }];
  let arguments = (ins Arg<Attn_Tile2, "", [MemRead, MemWrite]>:$s,
                       Arg<Attn_Tile1, "", [MemRead]>:$m,
                       Arg<Attn_Tile1, "", [MemRead, MemWrite]>:$l,
                       OptionalAttr<F32Attr>:$unified_max);
  let assemblyFormat = "$s `,` $m `->` $l attr-dict `:` type($s) `,` type($m) `->` type($l)";
  let hasVerifier = 1;
}

def Attn_TileOnlineUpdateOp : Attn_Op<"tile_online_update"> {
  let summary = "Online-softmax step: new running max, rescale of l and acc, s = exp(s - m)";
  let description = [{
    Per row r: m' = max(m, max_c s); alpha = exp(m - m'); s = exp(s - m'); l = l * alpha + sum_c s;
    acc[r, :] *= alpha; m = m'. Rows with m' = -inf use 0 as their base, so they stay at 0.

    With `unified_max = M` (FlashDecoding++): a row with no mass yet (l = 0) starts from
    m = max(M, max_c s), or from max_c s when that is below M - 64 (so no exponential
    underflows), and keeps m while no score exceeds it: a GPU then skips the max reduction and
    the rescaling of acc for the whole tile (alpha = 1), and falls back to this update where a
    score exceeds m. The result is softmax's, for any M.
  }];
  let arguments = (ins Arg<Attn_Tile2, "", [MemRead, MemWrite]>:$s,
                       Arg<Attn_Tile1, "", [MemRead, MemWrite]>:$m,
                       Arg<Attn_Tile1, "", [MemRead, MemWrite]>:$l,
                       Arg<Attn_Tile2, "", [MemRead, MemWrite]>:$acc,
                       OptionalAttr<F32Attr>:$unified_max);
  let assemblyFormat = [{
    $s `,` $m `,` $l `,` $acc attr-dict `:` type($s) `,` type($m) `,` type($l) `,` type($acc)
  }];
  let hasVerifier = 1;
}

def Attn_TileMatmulAccOp : Attn_Op<"tile_matmul_acc", [AttrSizedOperandSegments]> {
  let summary = "acc[r, e] += sum_c p[r, c] * v[b, hk, j0 + c, e] over the keys in range";
  let description = [{
    With `pages %table` v is a page pool: key j is row j % P of page table[b, j / P]; with
    `vscale %s` it is quantised, as in attn.attention.
  }];
  let arguments = (ins Arg<Attn_Tile2, "", [MemRead]>:$p, Arg<Attn_KV4, "", [MemRead]>:$v,
                       Arg<Attn_Tile2, "", [MemRead, MemWrite]>:$acc,
                       Index:$b, Index:$hk, Index:$j0,
                       Optional<Attn_BlockTable>:$block_table, Optional<Attn_Scale>:$v_scale,
                       DefaultValuedAttr<I64Attr, "0">:$page_size,
                       DefaultValuedAttr<DenseI64ArrayAttr, "{}">:$v_scale_axes,
                       DefaultValuedAttr<I64Attr, "1">:$v_scale_group);
  let assemblyFormat = [{
    $p `,` $v `[` $b `,` $hk `,` $j0 `]` (`pages` $block_table^)? (`vscale` $v_scale^)? `->`
    $acc attr-dict `:` type($p) `,` type($v) (`pages` type($block_table)^)?
    (`vscale` type($v_scale)^)? `->` type($acc)
  }];
  let hasVerifier = 1;
}

def Attn_TileStoreOp : Attn_Op<"tile_store", [AttrSizedOperandSegments]> {
  let summary = "Writes a query tile of the output (and its log-sum-exp)";
  let description = [{
    For the rows r with i0 + r in range: softmax writes out = acc / l (0 when l = 0) and
    lse = m + log(l) (-inf when l = 0); other norms write out = acc. `pack` maps rows to
    (query, head) as in attn.tile_scores. With `rms_eps`, each row y of that value then
    becomes y / sqrt(mean(y^2) + rms_eps); with an `output` region (attn.attention's output
    map, ^bb0(b, h, i, e : index, y : f32) -> f32), out[b, h, i, e] = output(b, h, i, e, y) of
    that value y. A partial result (below) is never normalised nor mapped.

    Split-KV form (attn-split-kv): with `split` and the partial buffers `part_out`
    [S, b, h, i, dv] and `part_lse` [S, b, h, i] (f32), when S = dim(part_out, 0) > 1 the tile
    writes its normalised partial output and log-sum-exp to part_out[split, b, h, i, :] and
    part_lse[split, b, h, i] instead, for attn.combine to merge; with S = 1 it writes out and
    lse directly.

    Several scores (`scores (%acc_1, ...) (%l_1, ...) (%m_1, ...)`, softmax, no split-KV):
    accumulator n >= 1 with its statistics; each gives its row y_n = acc_n / l_n (0 when
    l_n = 0) and lse_n = m_n + log(l_n) into the n-th of `lses`; the value stored before the
    rmsnorm and the output map is then mix(b, h, i, e, y_0, ..., y_N) (the `mix` region,
    attn.attention's).
  }];
  let arguments = (ins Arg<Attn_Tile2, "", [MemRead]>:$acc,
                       Arg<Optional<Attn_Tile1>, "", [MemRead]>:$l,
                       Arg<Optional<Attn_Tile1>, "", [MemRead]>:$m,
                       Arg<Variadic<Attn_Tile2>, "", [MemRead]>:$more_acc,
                       Arg<Variadic<Attn_Tile1>, "", [MemRead]>:$more_l,
                       Arg<Variadic<Attn_Tile1>, "", [MemRead]>:$more_m,
                       Arg<Attn_Seq4, "", [MemWrite]>:$out,
                       Arg<Optional<Attn_Lse>, "", [MemWrite]>:$lse,
                       Arg<Variadic<Attn_Lse>, "", [MemWrite]>:$more_lse,
                       Index:$b, Index:$h, Index:$i0,
                       Optional<Index>:$split,
                       Arg<Optional<Attn_Partial>, "", [MemWrite]>:$part_out,
                       Arg<Optional<Attn_PartialLse>, "", [MemWrite]>:$part_lse,
                       Attn_NormAttr:$norm,
                       DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<1>]>, "1">:$pack,
                       OptionalAttr<F32Attr>:$rms_eps);
  let regions = (region AnyRegion:$output, AnyRegion:$mix);
  let assemblyFormat = [{
    $acc (`,` $l^ `,` $m)? (`scores` `(` $more_acc^ `)` `(` $more_l `)` `(` $more_m `)`)?
    `->` $out `[` $b `,` $h `,` $i0 `]` (`,` $lse^)? (`lses` $more_lse^)?
    (`split` $split^ `into` $part_out `,` $part_lse)? attr-dict `:`
    type($acc) (`,` type($l)^ `,` type($m))?
    (`scores` `(` type($more_acc)^ `)` `(` type($more_l) `)` `(` type($more_m) `)`)?
    `->` type($out) (`,` type($lse)^)? (`lses` type($more_lse)^)?
    (`,` type($part_out)^ `,` type($part_lse))? (`output` $output^)? (`mix` $mix^)?
  }];
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
}

def Attn_CombineOp : Attn_Op<"combine"> {
  let summary = "Merges split-KV partial results (o_s, lse_s) into out and lse";
  let description = [{
    For S = dim(part_out, 0) > 1 and every (b, h, i): lse = log(sum_s exp(lse_s)) and
    out = sum_s exp(lse_s - lse) * o_s, where o_s = part_out[s, b, h, i, :] and
    lse_s = part_lse[s, b, h, i] are the softmax attention of the same queries over disjoint key
    ranges (a split with no allowed key has lse_s = -inf and contributes nothing; with none at
    all, out = 0 and lse = -inf). Does nothing when S = 1 (the split kernel then wrote out and
    lse itself). The same merge joins the blocks of ring attention.

    A split attention with an output expression (attn-split-kv of an attn.tile_store with an
    `output` region and/or `rms_eps`): the partial results are the unmapped rows, and the merged
    row y is then normalised (y / sqrt(mean(y^2) + rms_eps)) and mapped element by element by
    the `output` region, ^bb0(b, h, i, e : index, x : f32), as the store does with one split.
  }];
  let arguments = (ins Arg<Attn_Partial, "", [MemRead]>:$part_out,
                       Arg<Attn_PartialLse, "", [MemRead]>:$part_lse,
                       Arg<Attn_Seq4, "", [MemWrite]>:$out,
                       Arg<Attn_Lse, "", [MemWrite]>:$lse,
                       OptionalAttr<F32Attr>:$rms_eps);
  let regions = (region AnyRegion:$output);
  let assemblyFormat = [{
    $part_out `,` $part_lse `->` $out `,` $lse attr-dict `:` type($part_out) `,` type($part_lse)
    `->` type($out) `,` type($lse) (`output` $output^)?
  }];
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Chunked level (recurrences)
//===----------------------------------------------------------------------===//

def Attn_ChunkStepOp : Attn_Op<"chunk_step"> {
  let summary = "One chunk of a linear recurrence: output rows and the state passed on";
  let description = [{
    The chunked form of a recurrence (attn-chunk): positions n0 .. n0 + R - 1 of sequence b,
    head h (kv head hk), with R = min(chunk, q_len - n0) and `state` [d, dv] holding
    S = sum over the keys j < n0 of gamma(j+1..n0-1) * fk(k_j) v_j^T. With the per-step log
    decays g[r] = log gamma(n0) + ... + log gamma(n0 + r) (0 without a `decay` region) and
    c_i = score(b, h, i, i, 1) (the score is linear in dot and does not depend on j), row
    i = n0 + r gets

      out[b,h,i,:] = exp(g[r]) * c_i * fq(q_i) S
                   + sum_{c <= r, j = n0 + c < kv_len} score(b,h,i,j, fq(q_i).fk(k_j))
                                                      * exp(g[r] - g[c]) * v_j

    and then S = exp(g[R-1]) * S + sum_{c < R, j < kv_len} exp(g[R-1] - g[c]) fk(k_j) v_j^T.
    The regions are attn.attention's: score, optional feature_q / feature_k, decay and gate. A
    gate adds per head channel e the log decays G[r, e] = log gate(n0, e) + ... +
    log gate(n0 + r, e): channel e of q_i is scaled by exp(G[r, e]) against S, the dot with k_j
    inside the chunk takes exp(G[r, e] - G[c, e]) per channel, and row e of S decays by
    exp(G[R-1, e]) while k_j's channel e enters it scaled by exp(G[R-1, e] - G[c, e]).
    With `strict` (a strict-causal recurrence, mask j < i) row i reads the state before its
    own step: its terms use g[r] - log gamma(n0 + r) instead of g[r] (and G[r, e] - log
    gate(n0 + r, e) instead of G[r, e]), the chunk's keys are c < r, and with a `bonus` region
    (b, h, i, e) key c = r enters as score(b, h, i, i, sum_e fq(q_i)[e] fk(k_i)[e]
    bonus(b, h, i, e)) * key_scale(i) (RWKV's current-token term). The state update is the
    same.
    A `key_scale` region (b, h, j) gives the score's factors that read the key position (the
    score region then holds the rest: score = key_scale(j) * score region); key j's terms,
    in the chunk and in the state, are scaled by it. A `skip` region (attn.attention's) adds
    skip(b, h, i, e, v[b, hk, i, e]) to each output element. With
    `qk_group` G, q and k are read at head h / G.

    With a projection w [m, d] (`proj`, Performer), feature_q and feature_k take (x . w[m, :],
    x . x) of q's (k's) row x and the state has m rows: fq(q_i) and fk(k_j) are rows over m.

    With `normalize` (norm sum), `state` has dv + 1 columns: column dv carries the running sum
    z of the keys' weights, updated as the other columns are with v_j = 1, and each output row
    is divided by its weight sum, exp(g[r]) c_i fq(q_i).z + sum_c P[r, c] (0 where it is 0).
    With `rms_eps`, each output row y then becomes y / sqrt(mean(y^2) + rms_eps); the skip
    term is added last.
  }];
  let arguments = (ins Arg<Attn_Seq4, "", [MemRead]>:$q, Arg<Attn_Seq4, "", [MemRead]>:$k,
                       Arg<Attn_Seq4, "", [MemRead]>:$v,
                       Arg<Attn_Tile2, "", [MemRead, MemWrite]>:$state,
                       Arg<Attn_Seq4, "", [MemWrite]>:$out,
                       Arg<Optional<Attn_Projection>, "", [MemRead]>:$projection,
                       Index:$b, Index:$h, Index:$hk, Index:$n0,
                       ConfinedAttr<I64Attr, [IntMinValue<1>]>:$chunk,
                       DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<1>]>, "1">:$qk_group,
                       UnitAttr:$normalize, OptionalAttr<F32Attr>:$rms_eps, UnitAttr:$strict);
  let regions = (region SizedRegion<1>:$score, AnyRegion:$feature_q, AnyRegion:$feature_k,
                        AnyRegion:$decay, AnyRegion:$gate, AnyRegion:$key_scale,
                        AnyRegion:$skip, AnyRegion:$bonus);
  let assemblyFormat = [{
    $q `,` $k `,` $v `[` $b `,` $h `,` $hk `,` $n0 `]` `state` $state `->` $out
    (`proj` $projection^)? attr-dict `:`
    type($q) `,` type($k) `,` type($v) `,` type($state) `->` type($out)
    (`proj` type($projection)^)?
    `score` $score (`feature_q` $feature_q^)? (`feature_k` $feature_k^)? (`decay` $decay^)?
    (`gate` $gate^)? (`key_scale` $key_scale^)? (`skip` $skip^)? (`bonus` $bonus^)?
  }];
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
}

#endif // ATTN_OPS_TD

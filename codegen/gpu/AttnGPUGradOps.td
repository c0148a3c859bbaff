// attn_gpu ops of the backward pass: the score's derivative, param gradient accumulation, and
// per-row values read into shared memory.
// Included by AttnGPUOps.td (the dialect, its attributes and types are there).

//===----------------------------------------------------------------------===//
// The backward pass
//===----------------------------------------------------------------------===//

def AttnGPU_ScoreGradOp : AttnGPU_Op<"score_grad",
    [AllTypesMatch<["dot", "ds"]>, AttrSizedOperandSegments]> {
  let summary = "The score's derivative on an accumulator tile, param gradients accumulated";
  let description = [{
    result[r, c] = score_grad(b, h, i, j, dot[r, c], ds[r, c]) with (i, j) = (i0 + r, j0 + c),
    or (i0 + c, j0 + r) when `transposed` (key-major tiles): dS turned into the gradient of
    the dot product. The region's attn_gpu.accumulate ops add into param gradients in global
    memory, for the elements whose ds is not 0 (masked, out-of-range and padded elements
    have ds = 0 and add nothing); an accumulation whose indices read neither i nor j is
    summed over the warp first, one atomic add per warp and tile. Positions past q_len and
    kv_len are clamped for the region's reads.

    With `norms %nq, %nk` (a score reading the row norms dot(q, q) and dot(k, k), as
    attn_gpu.score takes them) the region takes (b, h, i, j, dot, nq, nk, ds) and yields the
    gradients of the dot, of nq and of nk: three results, each 0 where ds is 0.

    With `more %y1, ...` (fragments of dot's type: a function of several tiles, the mix of
    several scores' rows y_0 = dot, y_1, ...) the region takes (b, h, i, j, dot, y1, ...,
    ds) and yields the gradient of each: 1 + N results.
  }];
  let arguments = (ins AttnGPU_Fragment:$dot, AttnGPU_Fragment:$ds,
                       Variadic<AttnGPU_Fragment>:$more,
                       Index:$b, Index:$h, Index:$i0, Index:$j0, Index:$q_len, Index:$kv_len,
                       Optional<MemRefRankOf<[F32], [1]>>:$q_norms,
                       Optional<MemRefRankOf<[F32], [1]>>:$k_norms,
                       UnitAttr:$transposed);
  let results = (outs Variadic<AttnGPU_Fragment>:$results);
  let regions = (region SizedRegion<1>:$score_grad);
  let assemblyFormat = [{
    $dot `,` $ds (`more` $more^)? `[` $b `,` $h `,` $i0 `,` $j0 `]` `below` $q_len `,` $kv_len
    (`norms` $q_norms^ `,` $k_norms)? attr-dict `:` type($dot) (`more` type($more)^)?
    (`norms` type($q_norms)^ `,` type($k_norms))? `->` type($results) $score_grad
  }];
  let hasVerifier = 1;
}

def AttnGPU_DecayGradOp : AttnGPU_Op<"decay_grad"> {
  let summary = "A forget gate's log-decay gradients from dS's row and column sums";
  let description = [{
    A forget gate adds cum(i) - cum(j) to the score of (i, j), cum(p) = sum over t <= p of
    log gamma(b, h, t); so log gamma(b, h, t) receives
      g(t) = sum over p < t of (colsum(p) - rowsum(p))
    (the causal mask keeps dS(i, j) = 0 for j > i), where rowsum(p) = sums[b, h, p] is the sum
    of dS over the keys of query p and colsum(p) = sums[b, heads + h, p] the sum of dS over
    the queries of key p (read below kv_len, 0 past it). The region
    (b, h, t, g) runs once for every t < q_len; its attn_gpu.accumulate ops add into the param
    gradients. The block's first warp walks the positions, 128 per step (four consecutive per
    lane), by a shuffle scan.
  }];
  let arguments = (ins Arg<MemRefRankOf<[F32], [3]>, "", [MemRead]>:$sums,
                       Index:$b, Index:$h, Index:$heads, Index:$q_len, Index:$kv_len);
  let regions = (region SizedRegion<1>:$decay_grad);
  let assemblyFormat = [{
    $sums `[` $b `,` $h `]` `of` $heads `below` $q_len `,` $kv_len attr-dict `:` type($sums)
    $decay_grad
  }];
  let hasVerifier = 1;
}

def AttnGPU_AccumulateOp : AttnGPU_Op<"accumulate",
    [ParentOneOf<["ScoreGradOp", "DecayGradOp"]>]> {
  let summary = "Adds a value into an element of a param gradient in global memory";
  let arguments = (ins F32:$value, Arg<MemRefOf<[F32]>, "", [MemRead, MemWrite]>:$grad,
                       Variadic<Index>:$indices);
  let assemblyFormat = "$value `->` $grad `[` $indices `]` attr-dict `:` type($grad)";
  let hasVerifier = 1;
}

def AttnGPU_CopyRowsOp : AttnGPU_Op<"copy_rows"> {
  let summary = "One f32 value per query of a tile, from global [b, h, i] into shared memory";
  let description = [{
    values[r] = src[b, h, i0 + r] for i0 + r < q_len, `fill` past it (lse and D of a query
    tile in the backward). Synchronous loads by the first threads; a barrier must follow.
  }];
  let arguments = (ins Arg<MemRefRankOf<[F32], [3]>, "", [MemRead]>:$src,
                       Arg<MemRefRankOf<[F32], [1]>, "", [MemWrite]>:$values,
                       Index:$b, Index:$h, Index:$i0, Index:$q_len, F32Attr:$fill);
  let assemblyFormat = [{
    $src `[` $b `,` $h `,` $i0 `]` `below` $q_len `->` $values attr-dict `:` type($src) `->`
    type($values)
  }];
}

def AttnGPU_LoadColumnsOp : AttnGPU_Op<"load_columns"> {
  let summary = "An accumulator tile whose element (r, c) is a shared f32 vector's value c";
  let arguments = (ins Arg<MemRefRankOf<[F32], [1]>, "", [MemRead]>:$values);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$values attr-dict `:` type($values) `->` type($result)";
  let hasVerifier = 1;
}

// attn_gpu ops of the chunk strategy (recurrences): the state, gates, key factors,
// projections, and the per-row helpers they share (map_elements, load_rows, load_acc,
// row_squares, row_dot).
// Included by AttnGPUOps.td (the dialect, its attributes and types are there).

//===----------------------------------------------------------------------===//
// Recurrences (the chunk strategy): the state, gates, key factors, projections
//===----------------------------------------------------------------------===//

def AttnGPU_LoadStateOp : AttnGPU_Op<"load_state"> {
  let summary = "Reads each warp's block of rows of a recurrence state from global memory";
  let description = [{
    The state of (b, h) is state[b, h, :, :] (f32, `rows` rows). Warp w owns the R rows
    from (w mod (rows / R)) * R of the [R, C] result (R = max(16, rows / warps), so warps share
    blocks when rows < 16 * warps) and reads their columns c0 .. c0 + C.
  }];
  let arguments = (ins Arg<MemRefRankOf<[F32], [4]>, "", [MemRead]>:$state, Index:$b, Index:$h,
                       Index:$col0, ConfinedAttr<I64Attr, [IntMinValue<16>]>:$rows);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = [{
    $state `[` $b `,` $h `,` $col0 `]` attr-dict `:` type($state) `->` type($result)
  }];
  let hasVerifier = 1;
}

def AttnGPU_StoreStateOp : AttnGPU_Op<"store_state"> {
  let summary = "Writes each warp's block of rows of a recurrence state to global memory";
  let description = [{ The inverse of attn_gpu.load_state (warps sharing a block write the
    same values). }];
  let arguments = (ins AttnGPU_Fragment:$x, Arg<MemRefRankOf<[F32], [4]>, "", [MemWrite]>:$state,
                       Index:$b, Index:$h, Index:$col0,
                       ConfinedAttr<I64Attr, [IntMinValue<16>]>:$rows);
  let assemblyFormat = [{
    $x `->` $state `[` $b `,` $h `,` $col0 `]` attr-dict `:` type($x) `->` type($state)
  }];
  let hasVerifier = 1;
}

def AttnGPU_ShareStateOp : AttnGPU_Op<"share_state"> {
  let summary = "Rounds each warp's block of the state to 16 bits into a shared tile";
  let description = [{
    Row d of the padded [rows, C + pad] tile receives the state's row d, so that the next
    chunk's q S reads it as an mma B operand. Readers of the tile's previous contents must be
    past a barrier; a barrier must follow before it is read.
  }];
  let arguments = (ins AttnGPU_Fragment:$x, Arg<AttnGPU_Shared, "", [MemWrite]>:$tile);
  let assemblyFormat = "$x `->` $tile attr-dict `:` type($x) `->` type($tile)";
  let hasVerifier = 1;
}

def AttnGPU_StateUpdateOp : AttnGPU_Op<"state_update", [AttrSizedOperandSegments]> {
  let summary = "Decays a recurrence state and adds a chunk's keys times values";
  let description = [{
    For the chunk of positions n0 + c (c < R, the K and V tiles' rows; `last` = the chunk's
    last row) and each warp's block of state rows d (attn_gpu.load_state's ownership):

      S'[d, e] = S[d, e] exp(cum[last]) exp(G[last, d])
               + sum_{c, n0 + c < keys_end} K[c, d] exp(cum[last] - cum[c]) f[c]
                                            exp(G[last, d] - G[16 floor(c / 16), d]) V[c, e]

    with `cum` (cumulative log decays), `key_scale %f` (key factors) and `gate %G` (cumulative
    log gates; the K tile then holds K~ of attn_gpu.gate_keys) each optional. With `normalize`
    the state has 8 more columns than V: column C - 8 is the running sum of the keys' weights
    (V's column of ones), the others stay 0. A key's weight is zeroed after all its factors, so
    the factors of clamped positions past the end cannot poison the state.
  }];
  let arguments = (ins AttnGPU_Fragment:$s, Arg<AttnGPU_Shared, "", [MemRead]>:$k,
                       Arg<AttnGPU_Shared, "", [MemRead]>:$v, Index:$n0, Index:$last,
                       Index:$keys_end,
                       Arg<Optional<MemRefRankOf<[F32], [1]>>, "", [MemRead]>:$cum,
                       Arg<Optional<MemRefRankOf<[F32], [1]>>, "", [MemRead]>:$key_scale,
                       Arg<Optional<MemRefRankOf<[F32], [2]>>, "", [MemRead]>:$gate,
                       UnitAttr:$normalize);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = [{
    $s `,` $k `,` $v `[` $n0 `]` `last` $last `below` $keys_end (`decay` $cum^)?
    (`key_scale` $key_scale^)? (`gate` $gate^)? attr-dict `:` type($s) `,` type($k) `,`
    type($v) (`decay` type($cum)^)? (`key_scale` type($key_scale)^)? (`gate` type($gate)^)?
    `->` type($result)
  }];
  let hasVerifier = 1;
}

def AttnGPU_MapElementsOp : AttnGPU_Op<"map_elements"> {
  let summary = "Applies a region of the positions and the value to every accumulator element";
  let description = [{
    result[r, c] = f(b, h, min(i0 + r, q_len - 1), j0 + c, x[r, c]): a score that is linear in
    its dot applied to q S, a skip term applied to V's values, or a flash kernel's output map
    applied to its finished rows. With `pack` G > 1 (GQA-packed rows) row p = i0 + r is query
    p / G of head h + p % G. With `and %y, ...` (fragments of x's type) the region also takes
    y[r, c], ... after x[r, c]: the mix of several scores' rows.
  }];
  let arguments = (ins AttnGPU_Fragment:$x, Variadic<AttnGPU_Fragment>:$more, Index:$b,
                       Index:$h, Index:$i0, Index:$j0, Index:$q_len,
                       DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<1>]>, "1">:$pack);
  let results = (outs AttnGPU_Fragment:$result);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $x (`and` $more^)? `[` $b `,` $h `,` $i0 `,` $j0 `]` `below` $q_len attr-dict `:` type($x)
    (`and` type($more)^)? `->` type($result) $body
  }];
  let hasVerifier = 1;
}

def AttnGPU_LoadRowsOp : AttnGPU_Op<"load_rows"> {
  let summary = "A rows fragment from a shared f32 vector (one value per tile row)";
  let arguments = (ins Arg<MemRefRankOf<[F32], [1]>, "", [MemRead]>:$values);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$values attr-dict `:` type($values) `->` type($result)";
  let hasVerifier = 1;
}

def AttnGPU_LoadAccOp : AttnGPU_Op<"load_acc"> {
  let summary = "Reads a shared 16-bit tile into the accumulator layout, widened to f32";
  let arguments = (ins Arg<AttnGPU_Shared, "", [MemRead]>:$tile);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$tile attr-dict `:` type($tile) `->` type($result)";
  let hasVerifier = 1;
}

def AttnGPU_GateOperandOp : AttnGPU_Op<"gate_operand", [Pure]> {
  let summary = "Scales q's A fragments by its gates relative to the warp's first row";
  let description = [{
    result[r, k] = a[r, k] exp(G[r, k] - G[16 w, k]) for warp w's rows: q~ of a gated chunk,
    finite while 16 steps of a channel's gates multiply to more than e^-88. With `strict` (a
    strict-causal recurrence: row r reads the state before its step) G[r - 1, k] replaces
    G[r, k] (0 for row 0).
  }];
  let arguments = (ins AttnGPU_Fragment:$a, Arg<MemRefRankOf<[F32], [2]>, "", [MemRead]>:$gate,
                       UnitAttr:$strict);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$a `,` $gate attr-dict `:` type($a) `,` type($gate) `->` type($result)";
  let hasVerifier = 1;
}

def AttnGPU_RowSquaresOp : AttnGPU_Op<"row_squares"> {
  let summary = "The sum of squares of each row of a shared 16-bit tile, into a shared vector";
  let description = [{
    norms[r] = sum_e tile[r, e]^2 (in f32) for every row r of `norms` (at most the tile's
    rows), the tile padded or swizzled: the row norms dot(q, q) of a Q tile or dot(k, k) of a
    K tile that a score reads. Lanes take 16-byte chunks of a row, a shuffle reduction sums
    them. Readers of the previous contents must be past a barrier; a barrier must follow
    before it is read.
  }];
  let arguments = (ins Arg<AttnGPU_Shared, "", [MemRead]>:$tile,
                       Arg<MemRefRankOf<[F32], [1]>, "", [MemWrite]>:$norms);
  let assemblyFormat = "$tile `->` $norms attr-dict `:` type($tile) `->` type($norms)";
  let hasVerifier = 1;
}

def AttnGPU_RowDotOp : AttnGPU_Op<"row_dot"> {
  let summary = "Weighted dot products of the matching rows of two shared tiles";
  let description = [{
    A rows fragment: for each row r the block's warps hold (attn_gpu.load_rows' rows),
    result[r] = sum_{e < columns} A[r, e] * B[r, e] * weight(b, h, min(p0 + r, q_len - 1), e):
    a strict-causal recurrence's bonus dot of query i and key i (A the chunk's Q tile, B its K
    tile, both after any feature map). The four lanes of a quad share a row: each takes every
    fourth channel, then a quad reduction.
  }];
  let arguments = (ins Arg<AttnGPU_Shared, "", [MemRead]>:$a, Arg<AttnGPU_Shared, "", [MemRead]>:$b,
                       Index:$batch, Index:$h, Index:$p0, Index:$q_len,
                       ConfinedAttr<I64Attr, [IntMinValue<1>]>:$columns);
  let results = (outs AttnGPU_Fragment:$result);
  let regions = (region SizedRegion<1>:$weight);
  let assemblyFormat = [{
    $a `,` $b `[` $batch `,` $h `,` $p0 `]` `below` $q_len attr-dict `:` type($a) `,` type($b)
    `->` type($result) $weight
  }];
  let hasVerifier = 1;
}

def AttnGPU_LogGatePrefixOp : AttnGPU_Op<"log_gate_prefix"> {
  let summary = "Cumulative log gates of a chunk per position and channel, into shared memory";
  let description = [{
    G[r, e] = log gate(b, h, p0, e) + ... + log gate(b, h, p0 + r, e) for every row r and
    channel e of G (positions past q_len clamped), one thread per channel walking the rows.
    Barriers before and after.
  }];
  let arguments = (ins Arg<MemRefRankOf<[F32], [2]>, "", [MemWrite]>:$cum,
                       Index:$b, Index:$h, Index:$p0, Index:$q_len);
  let regions = (region SizedRegion<1>:$gate);
  let assemblyFormat = [{
    $cum `[` $b `,` $h `,` $p0 `]` `below` $q_len attr-dict `:` type($cum) $gate
  }];
}

def AttnGPU_GateKeysOp : AttnGPU_Op<"gate_keys"> {
  let summary = "K~ = K exp(G[c0] - G[c]) in place, c0 the first row of c's 16-row block";
  let description = [{ Every thread takes part; a barrier follows. }];
  let arguments = (ins Arg<AttnGPU_Shared, "", [MemRead, MemWrite]>:$tile,
                       Arg<MemRefRankOf<[F32], [2]>, "", [MemRead]>:$gate);
  let assemblyFormat = "$tile `,` $gate attr-dict `:` type($tile) `,` type($gate)";
}

def AttnGPU_KeyFactorsOp : AttnGPU_Op<"key_factors"> {
  let summary = "A region of the key position for each row of a chunk, into shared memory";
  let description = [{
    f[r] = key_scale(b, h, p0 + r) for p0 + r < end, else 0; one thread per row. Readers of the
    previous contents must be past a barrier; a barrier must follow before it is read.
  }];
  let arguments = (ins Arg<MemRefRankOf<[F32], [1]>, "", [MemWrite]>:$factors,
                       Index:$b, Index:$h, Index:$p0, Index:$end);
  let regions = (region SizedRegion<1>:$key_scale);
  let assemblyFormat = [{
    $factors `[` $b `,` $h `,` $p0 `]` `below` $end attr-dict `:` type($factors) $key_scale
  }];
}

def AttnGPU_ProjectTileOp : AttnGPU_Op<"project_tile"> {
  let summary = "Random-feature projection of a tile's rows (Performer), on tensor cores";
  let description = [{
    feature[r, m] = f(raw[r, :] . w[m, :], raw[r, :] . raw[r, :]) for each warp's 16 rows, with
    w the shared [M, D] projection; a barrier must follow before the features are read.
  }];
  let arguments = (ins Arg<AttnGPU_Shared, "", [MemRead]>:$raw,
                       Arg<AttnGPU_Shared, "", [MemRead]>:$w,
                       Arg<AttnGPU_Shared, "", [MemWrite]>:$feature);
  let regions = (region SizedRegion<1>:$map);
  let assemblyFormat = [{
    $raw `,` $w `->` $feature attr-dict `:` type($raw) `,` type($w) `->` type($feature) $map
  }];
  let hasVerifier = 1;
}

def AttnGPU_CopyMatrixOp : AttnGPU_Op<"copy_matrix"> {
  let summary = "Copies a whole global matrix into a 16-bit shared tile, converting it";
  let description = [{ Synchronous loads and stores by every thread; a barrier must follow. }];
  let arguments = (ins Arg<MemRefRankOf<[F32, F16, BF16], [2]>, "", [MemRead]>:$source,
                       Arg<AttnGPU_Shared, "", [MemWrite]>:$tile);
  let assemblyFormat = "$source `->` $tile attr-dict `:` type($source) `->` type($tile)";
  let hasVerifier = 1;
}

// attn_gpu ops: register fragments (mma, scores, row reductions, the cluster sums) and
// the stores of finished tiles.
// Included by AttnGPUOps.td (the dialect, its attributes and types are there).

//===----------------------------------------------------------------------===//
// Register fragments
//===----------------------------------------------------------------------===//

def AttnGPU_LoadOperandOp : AttnGPU_Op<"load_operand"> {
  let summary = "Reads a shared 16-bit tile as the A operand fragments of the block's warps";
  let arguments = (ins Arg<AttnGPU_Shared, "", [MemRead]>:$tile);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$tile attr-dict `:` type($tile) `->` type($result)";
  let hasVerifier = 1;
}

def AttnGPU_MmaOp : AttnGPU_Op<"mma"> {
  let summary = "acc += a . B on tensor cores, B read from a shared tile";
  let description = [{
    With `transpose_b`, B is stored [N, K] (the K tile of S = Q K^T) and
    acc[r, n] += sum_k a[r, k] * B[n, k]; otherwise B is stored [K, N] (the V tile of
    O += P V) and acc[r, n] += sum_k a[r, k] * B[k, n]. `kind` is the instruction, chosen by
    attn-gpu-select-mma; attn-gpu-to-nvvm needs it set. acc's columns are a multiple of 8.
    `a` is an operand fragment, or (wgmma only) a swizzled shared tile [rows, K] that the
    tensor cores read through a descriptor: each warpgroup its own 64 rows.

    With `gate %G` (f32 [rows, K]: a gated recurrence chunk's cumulative log gates per
    position and channel), warp w's B element (k, n) is multiplied by exp(G[16 w, k]), or with
    `gate_blocks` by exp(G[16 w, k] - G[16 floor(n / 16), k]): the exact factors of q~ S and
    q~ K~^T (attn_gpu.gate_operand, attn_gpu.gate_keys) that keep every product in range.

    `async`: the product is only issued (one commit group of its own when the kind is wgmma);
    its result is in flight and its one use is an attn_gpu.mma_wait, which gives the finished
    accumulator. Work between the two runs while the tensor cores compute. mma.sync is
    synchronous anyway: there `async` changes nothing.
  }];
  let arguments = (ins Arg<AnyTypeOf<[AttnGPU_Fragment, AttnGPU_Shared]>, "", [MemRead]>:$a,
                       Arg<AttnGPU_Shared, "", [MemRead]>:$b,
                       AttnGPU_Fragment:$acc,
                       Arg<Optional<MemRefRankOf<[F32], [2]>>, "", [MemRead]>:$gate,
                       UnitAttr:$transpose_b, UnitAttr:$gate_blocks,
                       OptionalAttr<AttnGPU_MmaAttr>:$kind, UnitAttr:$async);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = [{
    $a `,` $b `,` $acc (`gate` $gate^)? attr-dict `:` type($a) `,` type($b) `,` type($acc)
    (`gate` type($gate)^)? `->` type($result)
  }];
  let hasVerifier = 1;
}

def AttnGPU_MmaWaitOp : AttnGPU_Op<"mma_wait"> {
  let summary = "Waits for asynchronous mmas: their accumulators, finished";
  let description = [{
    Each operand is the in-flight result of an `async` attn_gpu.mma; the results are the same
    accumulators once at most `pending` of the commit groups issued after the oldest of them
    are still running (wgmma.wait_group `pending`: groups finish in issue order, so
    `pending = 1` waits for every group but the last one issued). Only the accumulators
    listed here may be read afterwards; an mma still in flight must be waited for by a later
    mma_wait.
  }];
  let arguments = (ins Variadic<AttnGPU_Fragment>:$inflight,
                       ConfinedAttr<I64Attr, [IntMinValue<0>]>:$pending);
  let results = (outs Variadic<AttnGPU_Fragment>:$results);
  let assemblyFormat = "$inflight attr-dict `:` type($inflight) `->` type($results)";
  let builders = [OpBuilder<(ins "::mlir::ValueRange":$inflight, "int64_t":$pending)>];
  let hasVerifier = 1;
}

def AttnGPU_ScoreOp : AttnGPU_Op<"score", [AttrSizedOperandSegments]> {
  let summary = "Masked score evaluation on an accumulator tile of dot products";
  let description = [{
    result[r, c] = score(b, hr, ir, j, s[r, c]) where mask(b, hr, ir, j) holds and j < kv_len,
    `fill` elsewhere; (hr, ir) = (h + p % pack, p / pack) for p = i0 + r (rows past the query
    length are evaluated as its last row and never stored), j = j0 + c. With `cum_q`/`cum_k`
    (a per-step decay) the score is multiplied by exp(cum_q[r] - cum_k[c]) (with `log_decay`,
    a forget-gate softmax, it gains cum_q[r] - cum_k[c]), with
    `key_scale %f` by f[c] (a recurrence's key factors). A key tile that
    lies inside kv_len (and that an exact affine mask fully allows, or for which `full` holds:
    a block plan's verdict that the mask allows every element) takes a branch without range
    checks (and without the mask).

    `transposed` (the backward's key-major tiles, pack 1, no key factors): rows are keys and
    columns queries, result[r, c] = score(b, h, i0 + c, j0 + r, s[r, c]) where the mask
    holds, j0 + r < kv_len and i0 + c < q_len, `fill` elsewhere; a decay reads cum_q[c] and
    cum_k[r].

    With `norms %nq, %nk` (the row norms dot(q, q) and dot(k, k) of the tile's queries and
    keys, attn_gpu.row_squares) the score region takes (b, h, i, j, dot, nq, nk): nq[r] and
    nk[c], or transposed nq[c] and nk[r].
  }];
  let arguments = (ins AttnGPU_Fragment:$s, Index:$b, Index:$h, Index:$i0, Index:$j0,
                       Index:$q_len, Index:$kv_len,
                       Optional<MemRefRankOf<[F32], [1]>>:$cum_q,
                       Optional<MemRefRankOf<[F32], [1]>>:$cum_k,
                       Optional<MemRefRankOf<[F32], [1]>>:$key_scale,
                       Optional<MemRefRankOf<[F32], [1]>>:$q_norms,
                       Optional<MemRefRankOf<[F32], [1]>>:$k_norms,
                       Optional<I1>:$full,
                       F32Attr:$fill,
                       DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<1>]>, "1">:$pack,
                       UnitAttr:$transposed, UnitAttr:$log_decay);
  let results = (outs AttnGPU_Fragment:$result);
  let regions = (region SizedRegion<1>:$score, AnyRegion:$mask);
  let assemblyFormat = [{
    $s `[` $b `,` $h `,` $i0 `,` $j0 `]` `below` $q_len `,` $kv_len
    (`decay` $cum_q^ `,` $cum_k)? (`key_scale` $key_scale^)? (`norms` $q_norms^ `,` $k_norms)?
    (`full` $full^)? attr-dict `:` type($s)
    (`,` type($cum_q)^ `,` type($cum_k))? (`key_scale` type($key_scale)^)?
    (`norms` type($q_norms)^ `,` type($k_norms))?
    `->` type($result) `score` $score (`mask` $mask^)?
  }];
  let hasVerifier = 1;
}

def AttnGPU_RowReduceOp : AttnGPU_Op<"row_reduce", [Pure]> {
  let summary = "Each thread's reduction of its elements of each row it holds";
  let description = [{
    acc fragment -> rows fragment. The result is per thread: a full row reduction also needs
    attn_gpu.quad_reduce (the four lanes of a quad share a row).
  }];
  let arguments = (ins AttnGPU_Fragment:$x, AttnGPU_ReduceAttr:$kind);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$kind $x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

def AttnGPU_QuadReduceOp : AttnGPU_Op<"quad_reduce", [Pure, AllTypesMatch<["x", "result"]>]> {
  let summary = "Reduces a rows fragment over the four lanes that share each row";
  let arguments = (ins AttnGPU_Fragment:$x, AttnGPU_ReduceAttr:$kind);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$kind $x attr-dict `:` type($x)";
  let hasVerifier = 1;
}

def AttnGPU_ClusterPublishOp : AttnGPU_Op<"cluster_publish"> {
  let summary = "Publishes a rows fragment to the blocks of a thread-block cluster";
  let description = [{
    The first lane of each quad (x holds each row's value in every lane of its quad, as after
    quad_reduce) writes its rows to scratch[slot + r], then every thread arrives on the
    cluster barrier (barrier.cluster.arrive, release): the first half of a cluster-wide
    reduction whose attn_gpu.cluster_gather may come much later, so the wait for the slowest
    block of the cluster overlaps other work. The kernel declares its cluster
    (`nvvm.cluster_dim`, sm_90a); every thread of every block runs publish and gather
    alternately, the same number of times. A slot is rewritten only after a gather of a later
    publish (two slots alternating do: the barrier between orders every block's reads of the
    old values before the new write).
  }];
  let arguments = (ins AttnGPU_Fragment:$x,
                       Arg<MemRefRankOf<[F32], [1]>, "", [MemWrite]>:$scratch, Index:$slot);
  let assemblyFormat = "$x `,` $scratch `[` $slot `]` attr-dict `:` type($x) `,` type($scratch)";
  let hasVerifier = 1;
}

def AttnGPU_ClusterGatherOp : AttnGPU_Op<"cluster_gather"> {
  let summary = "Sums the rows every block of the cluster published";
  let description = [{
    Waits on the cluster barrier (barrier.cluster.wait, acquire: every block's
    cluster_publish has landed), then result[r] = the sum over the blocks c of the cluster,
    in rank order, of block c's scratch[slot + r], read through distributed shared memory
    (mapa, ld.shared::cluster). Every block gets the same sums, bit for bit. An output
    rmsnorm whose value channels are split over the blocks of a cluster (the chunk kernel)
    sums its rows' squares with publish and gather.
  }];
  let arguments = (ins Arg<MemRefRankOf<[F32], [1]>, "", [MemRead]>:$scratch, Index:$slot);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$scratch `[` $slot `]` attr-dict `:` type($scratch) `->` type($result)";
  let hasVerifier = 1;
}

def AttnGPU_ClusterSyncOp : AttnGPU_Op<"cluster_sync"> {
  let summary = "barrier.cluster arrive and wait: no block goes on (or exits) before all arrive";
  let description = [{
    After the last cluster_gather: a block's shared memory must outlive its peers' reads of it.
  }];
  let assemblyFormat = "attr-dict";
  let hasVerifier = 1;
}

def AttnGPU_BroadcastRowsOp : AttnGPU_Op<"broadcast_rows", [Pure]> {
  let summary = "An accumulator tile whose every element is its row's value";
  let arguments = (ins AttnGPU_Fragment:$x);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

def AttnGPU_ToOperandOp : AttnGPU_Op<"to_operand", [Pure]> {
  let summary = "An f32 accumulator tile rounded to 16 bits as the A operand of the next mma";
  let description = [{
    The S accumulators of two 8-column blocks are exactly the A fragment of one 16-column k
    step (FlashAttention-2's P): no data moves between threads.
  }];
  let arguments = (ins AttnGPU_Fragment:$x);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

def AttnGPU_ColumnsOp : AttnGPU_Op<"columns", [Pure]> {
  let summary = "A block of an accumulator tile's columns (no data moves)";
  let description = [{ result[r, c] = x[r, from + c]; `from` and the widths are multiples of
    8, so the result is a subset of each thread's registers. }];
  let arguments = (ins AttnGPU_Fragment:$x, I64Attr:$from);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = "$x `[` $from `]` attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

def AttnGPU_VoteAllOp : AttnGPU_Op<"vote_all"> {
  let summary = "Whether a boolean rows fragment holds in every row of the warp";
  let arguments = (ins AttnGPU_Fragment:$x);
  let results = (outs I1:$result);
  let assemblyFormat = "$x attr-dict `:` type($x)";
}

//===----------------------------------------------------------------------===//
// Stores
//===----------------------------------------------------------------------===//

def AttnGPU_StoreTileOp : AttnGPU_Op<"store_tile", [AttrSizedOperandSegments]> {
  let summary = "Writes an accumulator tile to rows of the output";
  let description = [{
    Row r (query p / pack of head h + p % pack, p = i0 + r) goes to out[b, head, query, :] --
    or, with `split s`, to out[s, b, head, query, :] of a rank-5 partial buffer -- for the
    queries below q_len, rounded to the output's element type; with `columns_from %c0` the
    tile's columns are the output's c0 .. (a value slice).
  }];
  let arguments = (ins AttnGPU_Fragment:$x, Arg<AttnGPU_GlobalOut, "", [MemWrite]>:$out,
                       Index:$b, Index:$h, Index:$i0, Index:$q_len, Variadic<Index>:$split,
                       Optional<Index>:$col0,
                       DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<1>]>, "1">:$pack);
  let assemblyFormat = [{
    $x `->` $out `[` $b `,` $h `,` $i0 `]` (`split` $split^)? (`columns_from` $col0^)?
    `below` $q_len attr-dict `:` type($x) `->` type($out)
  }];
  let hasVerifier = 1;
}

def AttnGPU_LoadTileOp : AttnGPU_Op<"load_tile"> {
  let summary = "Reads rows of a global f32 tensor into the accumulator layout";
  let description = [{
    The inverse of attn_gpu.store_tile: element (r, c) is src[b, h, i0 + r, c] for
    i0 + r < q_len, 0 past it (the backward's f32 dQ accumulator, converted to dq).
  }];
  let arguments = (ins Arg<MemRefRankOf<[F32], [4]>, "", [MemRead]>:$src, Index:$b, Index:$h,
                       Index:$i0, Index:$q_len);
  let results = (outs AttnGPU_Fragment:$result);
  let assemblyFormat = [{
    $src `[` $b `,` $h `,` $i0 `]` `below` $q_len attr-dict `:` type($src) `->` type($result)
  }];
  let hasVerifier = 1;
}

def AttnGPU_ShareTileOp : AttnGPU_Op<"share_tile"> {
  let summary = "Rounds an accumulator tile to 16 bits into a padded shared tile";
  let description = [{
    Element (r, c) of the [R, C] tile goes to row r, column c of the [R, C + pad] shared tile
    (each warp its 16 rows), so that an op of another layout can read it -- the backward's dS
    for its dQ product. Readers of the tile's previous contents must be past a barrier; a
    barrier must follow before it is read.
  }];
  let arguments = (ins AttnGPU_Fragment:$x, Arg<AttnGPU_Shared, "", [MemWrite]>:$tile);
  let assemblyFormat = "$x `->` $tile attr-dict `:` type($x) `->` type($tile)";
  let hasVerifier = 1;
}

def AttnGPU_AtomicAddProductOp : AttnGPU_Op<"atomic_add_product"> {
  let summary = "Adds A^T B of two shared tiles into rows of a global f32 tensor, atomically";
  let description = [{
    out[b, h, i0 + r, c] += sum_k A[k, r] B[k, c] for r < R (A's columns), i0 + r < q_len and
    c < C (B's columns), with A [K, R] and B [K, C] 16-bit shared tiles (padded, or B
    swizzled): the backward's dQ += dS^T K from its key-major kernel, where blocks of
    different key tiles add into the same rows. The block's warps split the product into
    16 x 32 pieces (mma.sync m16n8k16, both operands by ldmatrix.trans) and add each element
    with one f32 reduction to global memory. The tiles must be landed and published (a
    barrier) before; `out` must not be read by the same kernel.
  }];
  let arguments = (ins Arg<AttnGPU_Shared, "", [MemRead]>:$a, Arg<AttnGPU_Shared, "", [MemRead]>:$b,
                       Arg<MemRefRankOf<[F32], [4]>, "", [MemRead, MemWrite]>:$out,
                       Index:$batch, Index:$h, Index:$i0, Index:$q_len);
  let assemblyFormat = [{
    $a `,` $b `->` $out `[` $batch `,` $h `,` $i0 `]` `below` $q_len attr-dict `:` type($a) `,`
    type($b) `->` type($out)
  }];
  let hasVerifier = 1;
}

def AttnGPU_StoreRowsOp : AttnGPU_Op<"store_rows"> {
  let summary = "Writes one value per row (the log-sum-exp) for the rows in range";
  let arguments = (ins AttnGPU_Fragment:$x, Arg<MemRefOf<[F32]>, "", [MemWrite]>:$out,
                       Index:$b, Index:$h, Index:$i0, Index:$q_len, Variadic<Index>:$split,
                       DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<1>]>, "1">:$pack);
  let assemblyFormat = [{
    $x `->` $out `[` $b `,` $h `,` $i0 `]` (`split` $split^)? `below` $q_len attr-dict `:`
    type($x) `->` type($out)
  }];
  let hasVerifier = 1;
}

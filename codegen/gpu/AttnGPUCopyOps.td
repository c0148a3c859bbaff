// attn_gpu ops: shared memory, global -> shared copies (cp.async, TMA), mbarriers, warp
// specialisation, dequantisation and the per-position prefixes the copies feed.
// Included by AttnGPUOps.td (the dialect, its attributes and types are there).

//===----------------------------------------------------------------------===//
// Shared memory and global -> shared copies
//===----------------------------------------------------------------------===//

def AttnGPU_AllocSharedOp : AttnGPU_Op<"alloc_shared"> {
  let summary = "A tile of the block's dynamic shared memory";
  let description = [{
    `offset` (bytes into the dynamic shared memory) is assigned by attn-gpu-allocate-shared, in
    program order, each tile 16-byte aligned. 16-bit tiles are padded by 8 elements per row so
    the 8 rows one ldmatrix reads fall in different banks (the pad is in the type).
  }];
  let arguments = (ins OptionalAttr<I64Attr>:$offset);
  let results = (outs AttnGPU_Shared:$tile);
  let assemblyFormat = "attr-dict `:` type($tile)";
  let hasVerifier = 1;
}

def AttnGPU_CopyQueryTileOp : AttnGPU_Op<"copy_query_tile"> {
  let summary = "Starts the async copy of a query tile into shared memory";
  let description = [{
    Row r of `tile` receives q[b, h + p % pack, p / pack, :] with p = i0 + r (GQA packing: the
    rows of a tile hold the heads of a group, query-major); rows past the query length are
    zero-filled and read nothing. The block's threads share the copy (cp.async, 16 bytes a
    copy); it completes at the next `nvgpu.device_async_wait` that covers its group.
  }];
  let arguments = (ins Arg<AttnGPU_Global4, "", [MemRead]>:$q,
                       Arg<AttnGPU_Shared, "", [MemWrite]>:$tile,
                       Index:$b, Index:$h, Index:$i0,
                       DefaultValuedAttr<ConfinedAttr<I64Attr, [IntMinValue<1>]>, "1">:$pack);
  let assemblyFormat = [{
    $q `[` $b `,` $h `,` $i0 `]` `->` $tile attr-dict `:` type($q) `->` type($tile)
  }];
  let hasVerifier = 1;
}

def AttnGPU_CopyKeyTileOp : AttnGPU_Op<"copy_key_tile", [AttrSizedOperandSegments]> {
  let summary = "Starts the async copy of a key (or value) tile into shared memory";
  let description = [{
    Row r of `tile` receives the stored row of key j = j0 + r of kv head hk, or zeros for
    j >= kv_len. With `pages %table` the source is a page pool and key j is row j % P of page
    table[b, j / P] (clamped into the table and the pool, so a bad entry cannot read outside);
    when P is a multiple of the tile's rows the table is read once per tile. A quantised source
    (i8, e4m3, i4 as bytes) lands as stored, in a staging tile for attn_gpu.dequantize. With
    `columns_from %c0` the tile holds the stored channels c0 .. c0 + width (a value slice).
    With `interior` (not with pages), a tile that lies inside kv_len takes a branch whose
    copies have no per-row range checks: fewer instructions per copy, at the cost of the
    copy code twice (the flash softmax kernels gain registers from it, measured; other
    kernels lose them).

    Without `by`, the block's threads share the copy (cp.async, 16 bytes a copy) and it
    completes at the next `nvgpu.device_async_wait` that covers its group. With `by %map
    signals %barrier` (attn-gpu-tensor-copies, sm_90a), one thread copies the tile by tensor
    memory access through the TMA descriptor `map` of `kv` (a kernel argument, boxes of 64
    columns into the swizzled tile's column blocks; kv_len must be the tensor's own extent,
    past which TMA reads zeros) and arrives on the mbarrier `barrier` expecting the tile's
    bytes: the copy completes when that barrier's phase does (attn_gpu.wait_barrier).
  }];
  let arguments = (ins Arg<AttnGPU_Global4, "", [MemRead]>:$kv,
                       Arg<AttnGPU_Shared, "", [MemWrite]>:$tile,
                       Index:$b, Index:$hk, Index:$j0, Index:$kv_len,
                       Optional<MemRefRankOf<[I32], [2]>>:$block_table,
                       Optional<Index>:$col0,
                       Optional<LLVM_AnyPointer>:$map,
                       Arg<Optional<AttnGPU_Barrier>, "", [MemWrite]>:$barrier,
                       DefaultValuedAttr<I64Attr, "0">:$page_size, UnitAttr:$interior);
  let assemblyFormat = [{
    $kv `[` $b `,` $hk `,` $j0 `]` `below` $kv_len (`pages` $block_table^)?
    (`columns_from` $col0^)? `->` $tile (`by` $map^ `signals` $barrier)? attr-dict
    `:` type($kv) (`pages` type($block_table)^)? `->` type($tile)
    (`by` type($map)^ `,` type($barrier))?
  }];
  let hasVerifier = 1;
}

def AttnGPU_InitBarrierOp : AttnGPU_Op<"init_barrier"> {
  let summary = "Initialises an mbarrier in shared memory for `arrivals` arrivals per phase";
  let description = [{
    One thread initialises the mbarrier (`barrier`, 8 bytes of shared memory) with an
    expected arrival count of `arrivals` (default 1: the thread that issues a tensor copy;
    a warp-specialised kernel's "tile free" barriers count every consumer thread) and fences
    the initialisation; a block barrier must follow before any thread uses it.
  }];
  let arguments = (ins Arg<AttnGPU_Barrier, "", [MemWrite]>:$barrier,
                       DefaultValuedAttr<I64Attr, "1">:$arrivals);
  let assemblyFormat = "$barrier (`arrivals` $arrivals^)? attr-dict `:` type($barrier)";
  let hasVerifier = 1;
}

def AttnGPU_ArriveBarrierOp : AttnGPU_Op<"arrive_barrier"> {
  let summary = "Each executing thread arrives once on an mbarrier (release)";
  let description = [{
    mbarrier.arrive with release semantics at CTA scope: the thread's earlier reads of the
    shared memory the barrier guards are done before a waiter of the phase proceeds. A
    warp-specialised kernel's consumers arrive on a tile's "free" barrier after their last
    read of it, so the producer may refill it.
  }];
  let arguments = (ins Arg<AttnGPU_Barrier, "", [MemRead, MemWrite]>:$barrier);
  let assemblyFormat = "$barrier attr-dict `:` type($barrier)";
  let hasVerifier = 1;
}

def AttnGPU_TurnAction : I32EnumAttr<"TurnAction", "a step of the consumers' ping-pong", [
  I32EnumAttrCase<"start", 0>, I32EnumAttrCase<"wait", 1>, I32EnumAttrCase<"pass", 2>]> {
  let cppNamespace = "::mlir::attngpu";
}

def AttnGPU_TurnOp : AttnGPU_Op<"turn"> {
  let summary = "Ping-pong of the consumer warpgroups: wait for this warpgroup's turn, or pass it";
  let description = [{
    In the consumer region of an attn_gpu.warp_specialize, the consumer warpgroups take turns
    in round-robin order (FlashAttention-3's ping-pong: one warpgroup's GEMMs while the others
    run their softmax). `wait`: until the previous warpgroup passed the turn to this one;
    `pass`: hand it to the next; `start` (once, before the first wait): the first warpgroup
    holds the turn. Named barriers 2 + warpgroup of two warpgroups' threads (bar.sync by the
    waiter, bar.arrive by the passer). Every consumer warpgroup must wait and pass equally
    often: turns go around ops every consumer thread runs the same number of times.
  }];
  let arguments = (ins AttnGPU_TurnAction:$action);
  let assemblyFormat = "$action attr-dict";
  let hasVerifier = 1;
}

def AttnGPU_WarpSpecializeOp : AttnGPU_Op<"warp_specialize", [NoTerminator]> {
  let summary = "Consumer warpgroups and a producer warpgroup, each running its own region";
  let description = [{
    The block's threads split by warpgroup (128 threads): the first `consumers` warpgroups
    run the `consumer` region, the last warpgroup the `producer` region (its first warp
    only; the others exit). With `registers`, each role first re-balances the register file
    (setmaxnreg: consumers raise their count to the first number, the producer lowers its
    to the second). In the consumer region the block's threads are the consumers' (copies
    shared by the block, fragment layouts) and barriers are named barriers of the consumers
    alone; in the producer region the leader of a copy is the producer's first thread.
    attn-gpu-warp-specialize builds it.
  }];
  let arguments = (ins ConfinedAttr<I64Attr, [IntMinValue<1>]>:$consumers,
                       OptionalAttr<DenseI64ArrayAttr>:$registers);
  let regions = (region SizedRegion<1>:$consumer, SizedRegion<1>:$producer);
  let assemblyFormat = [{
    `consumers` `(` $consumers `)` (`registers` $registers^)? $consumer `producer` $producer
    attr-dict
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// Threads of the consumer warpgroups (the producer's first thread is this index).
    int64_t getConsumerThreads() { return getConsumers() * 128; }
  }];
}

def AttnGPU_WaitBarrierOp : AttnGPU_Op<"wait_barrier"> {
  let summary = "Waits for the phase of an mbarrier with the given parity to complete";
  let description = [{
    Every thread waits until the phase of `barrier` whose parity is `phase` % 2 has completed
    (mbarrier.try_wait.parity, retried): the tensor copies that signalled it have landed and
    their data is visible to the thread, to the generic and the async proxy alike.
  }];
  let arguments = (ins Arg<AttnGPU_Barrier, "", [MemRead, MemWrite]>:$barrier, Index:$phase);
  let assemblyFormat = "$barrier `phase` $phase attr-dict `:` type($barrier)";
  let hasVerifier = 1;
}

def AttnGPU_DequantizeOp : AttnGPU_Op<"dequantize"> {
  let summary = "Dequantises a landed staging tile of K or V into a 16-bit tile";
  let description = [{
    tile[r, e] = stage value (key j0 + r, channel e) * scale[coordinates of (b, hk, j, e) on
    `axes`, e / group on the channel axis], rounded to the tile's type; i8 stages with
    `packing = 2` hold two signed nibbles per byte (low first). Rows past kv_len were
    zero-filled and stay 0. Every thread of the block takes part; a barrier must follow.
  }];
  let arguments = (ins Arg<AttnGPU_Shared, "", [MemRead]>:$stage,
                       Arg<AttnGPU_Shared, "", [MemWrite]>:$tile,
                       Arg<MemRefOf<[F32, F16, BF16]>, "", [MemRead]>:$scale,
                       Index:$b, Index:$hk, Index:$j0, Index:$kv_len,
                       DenseI64ArrayAttr:$axes,
                       DefaultValuedAttr<I64Attr, "1">:$group,
                       DefaultValuedAttr<I64Attr, "1">:$packing);
  let assemblyFormat = [{
    $stage `->` $tile `[` $b `,` $hk `,` $j0 `]` `below` $kv_len `scale` $scale attr-dict `:`
    type($stage) `->` type($tile) `,` type($scale)
  }];
}

def AttnGPU_MapTileOp : AttnGPU_Op<"map_tile"> {
  let summary = "Applies a feature map to every element of a landed 16-bit tile, in place";
  let arguments = (ins Arg<AttnGPU_Shared, "", [MemRead, MemWrite]>:$tile);
  let regions = (region SizedRegion<1>:$feature);
  let assemblyFormat = "$tile attr-dict `:` type($tile) $feature";
}

def AttnGPU_LogDecayPrefixOp : AttnGPU_Op<"log_decay_prefix", [AttrSizedOperandSegments]> {
  let summary = "Cumulative log decays of a tile of positions, into shared memory";
  let description = [{
    cum[c] = base + log gamma(b, h, p0) + ... + log gamma(b, h, p0 + c) for c < dim(cum, 0),
    where gamma is the `decay` region and base = sum over p < p0 of log gamma(b, h, p) -- or,
    with `carry %x`, base = x[0], which then becomes the tile's total (the next key tile
    continues from it). With `total_to %t` (and `carry`), only carry[0] = sum over p < t is
    written. With `relative`, base = 0 (a recurrence chunk's own decays). With `exclusive
    %x` (a strict-causal recurrence's queries, which read the state before their own step),
    x[c] = cum[c] - log gamma(b, h, p0 + c) is written too. Positions past the query length
    are clamped (their keys are masked). Warp 0 computes the prefix sums (a shuffle scan), so
    dim(cum, 0) is at most 32 or a multiple of 32; barriers before and after.
  }];
  let arguments = (ins Arg<MemRefRankOf<[F32], [1]>, "", [MemRead, MemWrite]>:$cum,
                       Index:$b, Index:$h, Index:$p0, Index:$q_len,
                       Optional<MemRefRankOf<[F32], [1]>>:$carry,
                       Arg<Optional<MemRefRankOf<[F32], [1]>>, "", [MemWrite]>:$exclusive,
                       UnitAttr:$total_only, UnitAttr:$relative);
  let regions = (region SizedRegion<1>:$decay);
  let assemblyFormat = [{
    $cum `[` $b `,` $h `,` $p0 `]` `below` $q_len (`carry` $carry^)?
    (`exclusive` $exclusive^)? attr-dict `:`
    type($cum) (`,` type($carry)^)? (`exclusive` type($exclusive)^)? $decay
  }];
  let hasVerifier = 1;
}

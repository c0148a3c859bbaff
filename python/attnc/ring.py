"""Ring attention (context parallelism) with attnc kernels: the sequence is sharded over P ranks,
K/V blocks travel around the ring while each rank attends its queries to the block it holds,
and the partial results merge by their log-sum-exp with the kernel's own combine.

    ring = attnc.ring.compile(spec, dims="d=128")            # softmax variants; cpu or cuda
    # P virtual ranks in one process (the loopback transport): same kernels, same merge
    o, lse = ring.virtual(world=4, q=q, k=k, v=v, slope=slope)
    # one rank of a torch.distributed process group (NCCL for CUDA tensors, gloo on the CPU)
    q_r = ring.shard(q, "q", rank, world)                    # this rank's rows of q (zigzag)
    o_r, lse_r = ring(q=q_r, k=k_r, v=v_r, slope=slope, group=group)
    o = ring.unshard([o_0, ..., o_P-1], "o")                 # back to the global order

Sharding (`layout`): "zigzag" (default) cuts the sequence into 2P chunks and gives rank r the
chunks r and 2P - 1 - r, so that a causal mask gives every rank the same work; "contiguous"
gives rank r the r-th of P pieces. Chunk sizes differ by at most one (any length works). The
kernel is compiled with position offsets: each launch on a (query chunk, key chunk) pair gets
the chunks' global positions as q_offset / k_offset, so the spec's mask and score see global
positions (no rewriting by hand), and its key-tile skipping (attn-mask-bounds) skips the
pairs a causal mask excludes. Params indexed by the query dim are sharded with q, those indexed
by the key dim travel with K and V; others are replicated. Per-step transfers are NCCL
send/recv (batch_isend_irecv, NCCL's own stream), posted before the step's compute and waited
for after it, so they overlap.

The partial results of a query chunk live in three f32 slots [3, b, h, i, dv]: the first pair
writes slot 0, each next one slot 1, and Kernel.combine merges (acc, new) into the other free
slot; the result goes back to the output's storage order and q's dtype at the end.
"""
from .runtime import Error

_OFFSETS = ("q_offset", "k_offset")


def chunk_bounds(length: int, world: int, layout: str = "zigzag") -> list:
    """Per rank, its chunks of a sequence of `length` as (start, size) pairs in local order."""
    if world < 1:
        raise Error(f"attnc.ring: world must be >= 1, got {world}")
    if layout not in ("zigzag", "contiguous"):
        raise Error(f"attnc.ring: unknown layout '{layout}'; use zigzag or contiguous")
    pieces = 2 * world if layout == "zigzag" else world
    sizes = [length // pieces + (c < length % pieces) for c in range(pieces)]
    starts = [sum(sizes[:c]) for c in range(pieces)]
    if layout == "contiguous":
        return [[(starts[r], sizes[r])] for r in range(world)]
    return [[(starts[r], sizes[r]), (starts[pieces - 1 - r], sizes[pieces - 1 - r])]
            for r in range(world)]


class RingKernel:
    """A softmax variant compiled for ring blocks (position offsets, f32 partial outputs)."""

    def __init__(self, kernel, layout: str = "zigzag", grad=None):
        """kernel: the block forward (position offsets, f32 output); grad: the backward of the
        same variant with position offsets in its spec dtypes (`<variant>_grad`), or None."""
        names = {a.name: a for a in kernel._args}
        if any(n not in names for n in _OFFSETS):
            raise Error(f"kernel '{kernel.name}': a ring needs a kernel compiled with position "
                        "offsets (attnc.ring.compile, or jit.compile(..., "
                        "position_offsets=True))")
        outs = [a for a in kernel._args if a.kind == "output"]
        lse = [a for a in kernel._args if a.kind == "lse"]
        if not lse:
            raise Error(f"kernel '{kernel.name}': ring attention merges blocks by their "
                        "log-sum-exp; only softmax variants have one")
        if outs[0].dtype != "f32":
            raise Error(f"kernel '{kernel.name}': ring blocks write f32 partial results; "
                        "compile with out_dtype='f32'")
        chunk_bounds(1, 1, layout)  # checks the layout's name
        self.kernel, self.layout = kernel, layout
        self.out, self.lse = outs[0], lse[0]
        inputs = [a for a in kernel._args if a.kind == "input"]
        self.q, self.k, self.v = inputs[0], inputs[1], inputs[2]
        self.q_seq = self.q.dims[2]   # canonical [b, h, i, d]
        self.k_seq = self.k.dims[2]
        self.params = [a for a in kernel._args if a.kind == "param" and a.name not in _OFFSETS]
        for p in self.params:
            if self.q_seq in p.dims and self.k_seq in p.dims:
                raise Error(f"kernel '{kernel.name}': param '{p.name}' is indexed by both the "
                            f"query dim '{self.q_seq}' and the key dim '{self.k_seq}'; a ring "
                            "shards both, so it cannot hold a block of it")
        self._offsets = {}
        self.grad = grad
        if grad is not None:
            if any(n not in grad._by_name for n in _OFFSETS):
                raise Error(f"kernel '{grad.name}': the ring's backward needs the backward "
                            "compiled with position offsets")
            self._grad_outs = [a for a in grad._args if a.kind == "output"]
            for p in self.params:
                if p.dtype in ("f32", "f16", "bf16") and (self.q_seq in p.dims or
                                                         self.k_seq in p.dims):
                    raise Error(f"kernel '{grad.name}': the ring's backward sums param "
                                f"gradients over blocks; float param '{p.name}' is indexed by "
                                "a sequence position, which it does not support yet")

    # ---- sharding -------------------------------------------------------------------------

    def _seq_axis(self, name: str):
        """(storage axis of the sequence dim, 'q' or 'k') of argument `name` (or 'o', 'lse')."""
        arg = {"o": self.out, "lse": self.lse}.get(name) or self.kernel._by_name.get(name)
        if arg is None and self.grad is not None:  # d<o>, the backward's
            arg = self.grad._by_name.get(name)
        if arg is None:
            raise Error(f"kernel '{self.kernel.name}': no argument '{name}'")
        for dim, side in ((self.q_seq, "q"), (self.k_seq, "k")):
            if dim in arg.storage_dims:
                return arg.storage_dims.index(dim), side
        return None, None

    def shard(self, tensor, name: str, rank: int, world: int):
        """Rank `rank`'s rows of a global tensor of argument `name` (q, k, v, a param; o/lse)."""
        import torch

        axis, _ = self._seq_axis(name)
        if axis is None:
            return tensor
        chunks = chunk_bounds(tensor.shape[axis], world, self.layout)[rank]
        return torch.cat([tensor.narrow(axis, s, n) for s, n in chunks], axis)

    def unshard(self, shards: list, name: str):
        """The global tensor from every rank's shard of argument `name` (o and lse included)."""
        import torch

        axis, _ = self._seq_axis(name)
        if axis is None:
            return shards[0]
        world = len(shards)
        length = sum(s.shape[axis] for s in shards)
        bounds = chunk_bounds(length, world, self.layout)
        pieces = []
        for r, chunks in enumerate(bounds):
            at = 0
            for start, n in chunks:
                pieces.append((start, shards[r].narrow(axis, at, n)))
                at += n
        return torch.cat([p for _, p in sorted(pieces, key=lambda x: x[0])], axis)

    # ---- one rank's schedule --------------------------------------------------------------

    def _offset(self, value: int, device):
        import torch

        key = (value, str(device))
        t = self._offsets.get(key)
        if t is None:
            t = self._offsets[key] = torch.tensor(value, dtype=torch.int32, device=device)
        return t

    def _split(self, tensors: dict, side: str, chunks: list) -> list:
        """Per chunk, the tensors of one side (q or k) narrowed to it along their sequence axis."""
        out = []
        at = 0
        for _, n in chunks:
            piece = {}
            for name, t in tensors.items():
                axis, s = self._seq_axis(name)
                piece[name] = t.narrow(axis, at, n) if s == side else t
            out.append(piece)
            at += n
        return out

    def _rank_forward(self, rank: int, world: int, length: int, local: dict, blocks):
        """Rank `rank` of `world`: its queries and query-side params (`local`) against the key
        block of each step, `blocks(step)` -> (tensors of the key side, source rank)."""
        import torch

        bounds = chunk_bounds(length, world, self.layout)
        q_side = {n: t for n, t in local.items() if self._seq_axis(n)[1] != "k"}
        q_chunks = self._split(q_side, "q", bounds[rank])
        perm_o = [self.out.perm.index(p) for p in range(len(self.out.perm))]
        device = local[self.q.name].device
        states = []
        for (q_start, n), tensors in zip(bounds[rank], q_chunks):
            q = tensors[self.q.name]
            sizes = self.kernel.dim_sizes(**{self.q.name: q})
            b, h = sizes[self.out.dims[0]], sizes[self.out.dims[1]]
            dv = sizes.get(self.out.dims[3]) or local[self.v.name].shape[
                self.v.storage_dims.index(self.v.dims[3])]
            work = torch.empty((3, b, h, n, dv), dtype=torch.float32, device=device)
            lse = torch.empty((3, b, h, n), dtype=torch.float32, device=device)
            states.append({"start": q_start, "q": tensors, "o": work, "lse": lse, "acc": None})
        for step in range(world):
            k_side, source = blocks(step)
            for state in states:
                for (k_start, _), keys in zip(bounds[source],
                                              self._split(k_side, "k", bounds[source])):
                    self._pair(state, keys, k_start, perm_o, device)
        results, lses = [], []
        for state in states:
            acc = state["acc"]
            o = state["o"][acc].permute(perm_o)  # storage order of the output
            results.append(o)
            lses.append(state["lse"][acc])
        axis, _ = self._seq_axis("o")
        return torch.cat(results, axis), torch.cat(lses, 2)

    def _pair(self, state, keys: dict, k_start: int, perm_o, device):
        """One (query chunk, key chunk) launch, merged into the chunk's partial result."""
        slot = 0 if state["acc"] is None else 1
        args = dict(state["q"])
        args.update(keys)
        args[_OFFSETS[0]] = self._offset(state["start"], device)
        args[_OFFSETS[1]] = self._offset(k_start, device)
        args[self.out.name] = state["o"][slot].permute(perm_o)
        args[self.lse.name] = state["lse"][slot]
        self.kernel(**args)
        if state["acc"] is None:
            state["acc"] = 0
            return
        acc = state["acc"]
        pair = slice(0, 2) if acc == 0 else slice(1, 3)
        into = 2 if acc == 0 else 0
        self.kernel.combine(state["o"][pair], state["lse"][pair], state["o"][into],
                            state["lse"][into])
        state["acc"] = into

    # ---- the backward: dQ stays, dK/dV travel with their block ----------------------------

    def _rank_backward(self, rank: int, world: int, length: int, local: dict, blocks, deposit):
        """Rank `rank`'s backward: `local` holds its queries, query-side params, o (the merged
        output in q's dtype), lse (the merged log-sum-exp) and d<o>; at each step, for each
        (query chunk, key chunk) pair of the block `blocks(step)` gives, the backward kernel
        (recomputing P from the global lse) adds into this rank's dQ and into the block's
        dK/dV, which `deposit(step, source, grads)` sends on with the block (a loopback just
        keeps them by source). Returns (dq by storage order, float param gradients)."""
        import torch

        bounds = chunk_bounds(length, world, self.layout)
        q_side = {n: t for n, t in local.items() if self._seq_axis(n)[1] != "k"}
        q_chunks = self._split(q_side, "q", bounds[rank])
        dq = torch.zeros(local[self.q.name].shape, dtype=torch.float32,
                         device=local[self.q.name].device)
        dq_chunks = [c[self.q.name] for c in self._split({self.q.name: dq}, "q", bounds[rank])]
        params = {}
        device = local[self.q.name].device
        for step in range(world):
            k_side, source = blocks(step)
            grads = {n: torch.zeros(t.shape, dtype=torch.float32, device=t.device)
                     for n, t in k_side.items() if n in (self.k.name, self.v.name)}
            k_chunks = self._split(k_side, "k", bounds[source])
            g_chunks = self._split(grads, "k", bounds[source])
            for (q_start, _), queries, dq_chunk in zip(bounds[rank], q_chunks, dq_chunks):
                for (k_start, _), keys, g in zip(bounds[source], k_chunks, g_chunks):
                    args = dict(queries)
                    args.update(keys)
                    args[_OFFSETS[0]] = self._offset(q_start, device)
                    args[_OFFSETS[1]] = self._offset(k_start, device)
                    outs = self.grad.allocate_outputs(**args)
                    self.grad(**args, **outs)
                    dq_chunk += outs["d" + self.q.name]
                    g[self.k.name] += outs["d" + self.k.name]
                    g[self.v.name] += outs["d" + self.v.name]
                    for a in self._grad_outs:
                        name = a.name[1:]
                        if name not in (self.q.name, self.k.name, self.v.name):
                            params[name] = params.get(name, 0) + outs[a.name].float()
            deposit(step, source, grads)
        return dq, params

    # ---- entry points ---------------------------------------------------------------------

    def _check(self, tensors: dict):
        names = [a.name for a in self.kernel._args if a.kind in ("input", "param")
                 and a.name not in _OFFSETS]
        self.kernel._check_names(tensors, names, takes=", ".join(names))

    def virtual(self, world: int, **tensors):
        """The whole ring with `world` virtual ranks in this process (a loopback transport):
        global tensors in, global (o, lse) out; each rank runs the same schedule, kernels and
        merge as on its own GPU. o in q's dtype, lse f32. With a backward kernel (compile(...,
        backward=True)), o is differentiable: q, k, v and the float params get gradients by
        the ring's backward (dQ local, dK/dV travelling with their blocks)."""
        self._check(tensors)
        if self.grad is not None and any(t.requires_grad for t in tensors.values()):
            names = list(tensors)
            o, lse = _RingFunction.apply(self, world, names, *[tensors[n] for n in names])
            return o, lse
        return self._virtual_forward(world, tensors)

    def _virtual_forward(self, world: int, tensors: dict):
        length = tensors[self.q.name].shape[self._seq_axis(self.q.name)[0]]
        k_length = tensors[self.k.name].shape[self._seq_axis(self.k.name)[0]]
        if length != k_length:
            raise Error(f"attnc.ring: queries and keys shard the same sequence; q has {length} "
                        f"positions and k {k_length}")
        shards = [{n: self.shard(t, n, r, world) for n, t in tensors.items()}
                  for r in range(world)]
        k_names = [n for n in tensors if self._seq_axis(n)[1] == "k"]
        outs, lses = [], []
        for r in range(world):
            def blocks(step, r=r):
                source = (r - step) % world
                return {n: shards[source][n] for n in k_names}, source
            o, lse = self._rank_forward(r, world, length, shards[r], blocks)
            outs.append(o)
            lses.append(lse)
        q_dtype = tensors[self.q.name].dtype
        o = self.unshard(outs, "o").to(q_dtype)
        return o, self.unshard(lses, "lse")

    def _virtual_backward(self, world: int, tensors: dict, o, lse, do):
        """Gradients of the virtual ring: {name: gradient} for q, k, v and the float params."""
        import torch

        length = tensors[self.q.name].shape[self._seq_axis(self.q.name)[0]]
        full = dict(tensors)
        full[self.out.name] = o
        full[self.lse.name] = lse
        full["d" + self.out.name] = do.to(o.dtype)
        shards = [{n: self.shard(t, n, r, world) for n, t in full.items()}
                  for r in range(world)]
        k_names = [n for n in tensors if self._seq_axis(n)[1] == "k"]
        dkv = {}  # source rank -> its block's dK / dV, summed as they would travel

        def deposit(step, source, grads):
            held = dkv.setdefault(source, {n: torch.zeros_like(g) for n, g in grads.items()})
            for n, g in grads.items():
                held[n] += g

        dqs, params = [], {}
        for r in range(world):
            def blocks(step, r=r):
                source = (r - step) % world
                return {n: shards[source][n] for n in k_names}, source
            dq, ps = self._rank_backward(r, world, length, shards[r], blocks, deposit)
            dqs.append(dq)
            for n, g in ps.items():
                params[n] = params.get(n, 0) + g
        grads = {self.q.name: self.unshard(dqs, self.q.name)}
        for n in (self.k.name, self.v.name):
            grads[n] = self.unshard([dkv[r][n] for r in range(world)], n)
        grads.update(params)
        return grads

    def __call__(self, group=None, **tensors):
        """This rank's part of the ring over the torch.distributed process group `group`
        (default: the world): its shards of q, k, v and the sequence-indexed params in, its
        shard of (o, lse) out. Every rank must call it with shards of one layout. With a
        backward kernel, o is differentiable (dQ stays, dK/dV travel with their blocks and
        return to their owner, float param gradients are all-reduced)."""
        self._check(tensors)
        if self.grad is not None and any(t.requires_grad for t in tensors.values()):
            names = list(tensors)
            return _RingFunction.apply(self, group, names, *[tensors[n] for n in names])
        return self._dist_forward(group, tensors)

    def _dist_setup(self, group, tensors):
        """(rank, world, length, bounds) of the group, after checking every rank's shards."""
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            raise Error("attnc.ring: torch.distributed is not initialised (use ring.virtual for "
                        "ranks in one process)")
        backend = dist.get_backend(group)
        device = tensors[self.q.name].device
        if device.type == "cuda" and backend != "nccl":
            raise Error(f"attnc.ring: CUDA tensors travel by NCCL; the process group's backend "
                        f"is '{backend}'")
        rank, world = dist.get_rank(group), dist.get_world_size(group)
        q_axis = self._seq_axis(self.q.name)[0]
        k_axis = self._seq_axis(self.k.name)[0]
        # Every rank's shape, to size the blocks it sends and to refuse disagreeing shards.
        mine = torch.tensor([tensors[self.q.name].shape[q_axis],
                             tensors[self.k.name].shape[k_axis]]
                            + [s for a in (self.q, self.k, self.v)
                               for i, s in enumerate(tensors[a.name].shape)
                               if i != self._seq_axis(a.name)[0]],
                            dtype=torch.int64, device=device)
        every = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(every, mine, group=group)
        every = [e.tolist() for e in every]
        for r, e in enumerate(every):  # every rank finds the same problem: none waits forever
            if e[0] != e[1] or e[2:] != every[0][2:]:
                raise Error(f"attnc.ring: rank {r} holds q/k shards of {e[0]}/{e[1]} positions "
                            f"and other dims {e[2:]} (rank 0: {every[0][2:]}); the ranks' q "
                            "and k shards cut one sequence the same way")
        length = sum(e[0] for e in every)
        bounds = chunk_bounds(length, world, self.layout)
        for r, e in enumerate(every):
            expect = sum(n for _, n in bounds[r])
            if e[0] != expect:
                raise Error(f"attnc.ring: rank {r} holds {e[0]} positions, but a {self.layout} "
                            f"sharding of {length} positions over {world} ranks gives it "
                            f"{expect} (ring.shard cuts them)")
        return rank, world, length, bounds

    def _passing(self, group, rank, world, bounds, source_of):
        """A ring exchange of tensors cut along the key sequence: `exchange(step, tensors)`
        sends `tensors` (those of block source_of(step)) to the next rank and receives the
        previous rank's (of block source_of(step + 1)); `wait()` returns them."""
        import torch
        import torch.distributed as dist

        nxt, prv = (rank + 1) % world, (rank - 1) % world

        def exchange(step, tensors):
            n_src = sum(n for _, n in bounds[source_of(step + 1)])
            incoming, ops = {}, []
            for name, t in tensors.items():
                axis = self._seq_axis(name)[0]
                shape = list(t.shape)
                shape[axis] = n_src
                incoming[name] = torch.empty(shape, dtype=t.dtype, device=t.device)
                ops.append(dist.P2POp(dist.isend, t.contiguous(), nxt, group))
                ops.append(dist.P2POp(dist.irecv, incoming[name], prv, group))
            requests = dist.batch_isend_irecv(ops)

            def wait():
                for req in requests:
                    req.wait()
                return incoming
            return wait
        return exchange

    def _blocks(self, group, rank, world, bounds, k_side: dict):
        """blocks(step) -> (the K/V block held at `step`, its source rank), the next block's
        exchange posted before the step's launches (it overlaps them)."""
        source_of = lambda step: (rank - step) % world  # noqa: E731
        exchange = self._passing(group, rank, world, bounds, source_of)
        state = {"held": {n: t.contiguous() for n, t in k_side.items()}, "wait": None}

        def blocks(step):
            if step > 0:
                state["held"] = state["wait"]()
            state["wait"] = exchange(step, state["held"]) if step + 1 < world else None
            return state["held"], source_of(step)
        return blocks

    def _dist_forward(self, group, tensors: dict):
        rank, world, length, bounds = self._dist_setup(group, tensors)
        k_side = {n: t for n, t in tensors.items() if self._seq_axis(n)[1] == "k"}
        blocks = self._blocks(group, rank, world, bounds, k_side)
        o, lse = self._rank_forward(rank, world, length, tensors, blocks)
        return o.to(tensors[self.q.name].dtype), lse

    def _dist_backward(self, group, tensors: dict, o, lse, do):
        """This rank's gradients: dq, its own block's dk / dv (accumulated around the ring and
        sent home after the last step) and the float params' (all-reduced)."""
        import torch.distributed as dist

        rank, world, length, bounds = self._dist_setup(group, tensors)
        local = dict(tensors)
        local[self.out.name] = o
        local[self.lse.name] = lse
        local["d" + self.out.name] = do.to(o.dtype)
        k_side = {n: t for n, t in tensors.items() if self._seq_axis(n)[1] == "k"}
        blocks = self._blocks(group, rank, world, bounds, k_side)
        # The dK/dV accumulator of the block held at step t goes to the next rank, which holds
        # that block at t + 1; after the last step it reaches the block's owner.
        source_of = lambda step: (rank - step) % world  # noqa: E731
        exchange = self._passing(group, rank, world, bounds, source_of)
        state = {"wait": None, "home": None}

        def deposit(step, source, grads):
            if step > 0:
                for n, g in state["wait"]().items():
                    grads[n] += g
            if world == 1:
                state["home"] = grads
            else:
                state["wait"] = exchange(step, grads)

        dq, params = self._rank_backward(rank, world, length, local, blocks, deposit)
        # this rank's own block, summed over every rank
        home = state["home"] if world == 1 else state["wait"]()
        grads = {self.q.name: dq, self.k.name: home[self.k.name], self.v.name: home[self.v.name]}
        for n, g in params.items():
            dist.all_reduce(g, group=group)
            grads[n] = g
        return grads


class _RingFunction:
    """torch.autograd.Function over a ring's forward and backward: `where` is a number of
    virtual ranks, or a process group (None: the world) for one rank of a distributed ring.
    Built lazily: torch is optional."""

    _fn = None

    @classmethod
    def apply(cls, ring, where, names, *tensors):
        if cls._fn is None:
            import torch

            class Fn(torch.autograd.Function):
                @staticmethod
                def forward(ctx, ring, where, names, *tensors):
                    inputs = dict(zip(names, tensors))
                    if isinstance(where, int):
                        o, lse = ring._virtual_forward(where, inputs)
                    else:
                        o, lse = ring._dist_forward(where, inputs)
                    ctx.ring, ctx.where, ctx.names = ring, where, names
                    ctx.save_for_backward(*tensors, o, lse)
                    ctx.mark_non_differentiable(lse)
                    return o, lse

                @staticmethod
                def backward(ctx, do, _dlse):
                    saved = ctx.saved_tensors
                    inputs = dict(zip(ctx.names, saved[:len(ctx.names)]))
                    o, lse = saved[len(ctx.names):]
                    if isinstance(ctx.where, int):
                        grads = ctx.ring._virtual_backward(ctx.where, inputs, o, lse,
                                                           do.contiguous())
                    else:
                        grads = ctx.ring._dist_backward(ctx.where, inputs, o, lse,
                                                        do.contiguous())
                    answer = []
                    for n in ctx.names:
                        g = grads.get(n)
                        t = inputs[n]
                        answer.append(None if g is None or not t.is_floating_point()
                                      else g.to(t.dtype).view(t.shape))
                    return (None, None, None, *answer)

            cls._fn = Fn
        return cls._fn.apply(ring, where, names, *tensors)


def compile(spec: str, variant: str = None, *, dims: str = None, target: str = "cuda",
            chip: str = None, layout: str = "zigzag", cache_dir: str = None,
            backward: bool = False) -> RingKernel:
    """Compiles `variant` of `spec` for ring blocks (position offsets, f32 partial outputs);
    with backward, also the variant's backward with position offsets (the ring's dQ/dK/dV)."""
    from .jit import compile as jit_compile

    kernel = jit_compile(spec, variant, dims=dims, target=target, chip=chip, cache_dir=cache_dir,
                         position_offsets=True, out_dtype="f32")
    grad = None
    if backward:
        grad = jit_compile(spec, variant, dims=dims, target=target, chip=chip,
                           cache_dir=cache_dir, position_offsets=True, backward=True).grad
    return RingKernel(kernel, layout, grad)

"""Ring attention (attnc.ring) without several GPUs: P virtual ranks in one process (the same
schedule, kernels and merge as on P GPUs, a loopback transport) and P processes of a gloo
process group on the CPU (the torch.distributed path a NCCL group takes on GPUs) must match
the single-device kernel up to summation order, at ragged lengths, for causal (zigzag and
contiguous shards), windowed, ALiBi, document-masked, bucketed-bias and GQA variants. Also
Kernel.combine against the merge formula, and the errors a user meets.

Device: $ATTNC_RING_DEVICE ("cpu", the default: the CPU back end through libattnc.so as CTest
built it; "cuda": the same tests on one GPU, in bf16). As a script: exits 77 (skipped) when
torch or pytest is missing.
"""
import os
import sys
from pathlib import Path

if __name__ == "__main__":
    import script_main  # skipped (77) without the modules the tests need
    script_main.run(__file__)

import pytest

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(REPO / "tests" / "gpu"))
import attnc  # noqa: E402
import attnc.ring  # noqa: E402
import harness  # noqa: E402

DEVICE = os.environ.get("ATTNC_RING_DEVICE", "cpu")
TARGET = "cpu" if DEVICE == "cpu" else "cuda"
# f32 on the CPU: summation order only. bf16 on a GPU: the single kernel rounds its output to
# bf16 once, the ring merges f32 blocks and rounds at the end.
TOL = 2e-5 if DEVICE == "cpu" else 1.5e-2
# Gradients: the ring adds each pair's dQ (dK, dV) in f32, the single kernel sums in its own
# order; on a GPU each pair's gradient is rounded to bf16 before the sum.
GRAD_TOL = 2e-4 if DEVICE == "cpu" else 3e-2
SPECS = ["causal", "sliding_window", "alibi", "document", "t5_bias", "softcap", "gqa", "mha",
         "prefix_lm"]

_compiled = {}


def dims_for(spec):
    """Head dim 32 where the spec leaves it dynamic (its static d is kept)."""
    return None if "d = " in spec.split("input")[0] else "d=32"


def kernels(name):
    """(single-device kernel, ring kernel) of specs/<name>.attn: JIT-compiled, or on a GPU host
    without LLVM loaded from $ATTNC_RING_KERNELS/{full,ring}/<name>.{ptx,json}
    (scripts/compile_ring_kernels.sh)."""
    if name not in _compiled:
        aot = os.environ.get("ATTNC_RING_KERNELS")
        if aot:
            load = lambda kind: attnc.load_kernel(f"{aot}/{kind}/{name}.ptx",  # noqa: E731
                                                  f"{aot}/{kind}/{name}.json")
            _compiled[name] = (load("full"), attnc.ring.RingKernel(load("ring")))
            return _compiled[name]
        spec = (REPO / "specs" / f"{name}.attn").read_text()
        full = attnc.compile(spec, dims=dims_for(spec), target=TARGET)
        _compiled[name] = (full, attnc.ring.compile(spec, dims=dims_for(spec), target=TARGET))
    return _compiled[name]


def inputs(full, length, seed):
    sizes = harness.dim_sizes(full, length, length, batch=2, head_dim=32)
    tensors = harness.make_inputs(full, sizes, seed=seed, device=DEVICE)
    return harness.sort_ids(full, tensors, seed=seed)


def single(full, tensors):
    outs = full.allocate_outputs(**tensors)
    full(**tensors, **outs)
    return outs


def rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def check_lse(got, want):
    finite = torch.isfinite(want)
    assert torch.equal(finite, torch.isfinite(got)), "rows without keys differ"
    if finite.any():
        assert (got[finite] - want[finite]).abs().max().item() < 1e-3


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("world,length", [(1, 45), (2, 77), (3, 131), (4, 64)])
def test_virtual_ranks_match_single_kernel(name, world, length):
    full, ring = kernels(name)
    for layout in ("zigzag", "contiguous"):
        ring.layout = layout
        tensors = inputs(full, length, seed=world * 100 + length)
        want = single(full, tensors)
        o, lse = ring.virtual(world, **tensors)
        assert o.dtype == want["o"].dtype and o.shape == want["o"].shape
        assert rel(o, want["o"]) < TOL, (layout, rel(o, want["o"]))
        check_lse(lse, want["lse"])
    ring.layout = "zigzag"


def test_more_ranks_than_positions():
    """Ranks with empty chunks (8 ranks, 16 chunks, 11 positions) still merge correctly."""
    full, ring = kernels("causal")
    tensors = inputs(full, 11, seed=3)
    want = single(full, tensors)
    o, lse = ring.virtual(8, **tensors)
    assert rel(o, want["o"]) < TOL
    check_lse(lse, want["lse"])


def test_shard_unshard_round_trip():
    _, ring = kernels("document")
    x = torch.arange(2 * 37).view(2, 37)  # doc_q[b, i]
    for layout in ("zigzag", "contiguous"):
        ring.layout = layout
        parts = [ring.shard(x, "doc_q", r, 5) for r in range(5)]
        # zigzag: 10 chunks of 4 or 3, rank r holds r and 9 - r; contiguous: 5 of 8 or 7
        assert [p.shape[1] for p in parts] == ([7, 7, 7, 8, 8] if layout == "zigzag"
                                               else [8, 8, 7, 7, 7])
        assert torch.equal(ring.unshard(parts, "doc_q"), x)
        o = torch.arange(2 * 3 * 37 * 2).view(2, 3, 37, 2)  # o[b, h, i, dv]
        assert torch.equal(ring.unshard([ring.shard(o, "o", r, 3) for r in range(3)], "o"), o)
    ring.layout = "zigzag"
    # zigzag: rank 0 holds the first and the last of 10 chunks
    bounds = attnc.ring.chunk_bounds(37, 5)
    assert bounds[0] == [(0, 4), (34, 3)] and bounds[4] == [(16, 4), (20, 4)]


def value_dim(ring):
    """The kernel's dv where it is static (AOT kernels fix d), else 32."""
    dim = ring.kernel._dims[ring.out.dims[3]]
    return dim.get("static") or 32


def test_combine_matches_the_merge_formula():
    _, ring = kernels("causal")
    gen = torch.Generator().manual_seed(1)
    s, b, h, i, dv = 3, 2, 2, 7, value_dim(ring)
    part = torch.randn(s, b, h, i, dv, generator=gen).to(DEVICE)
    lse = (torch.randn(s, b, h, i, generator=gen) * 3).to(DEVICE)
    lse[0, 0, 0, :] = float("-inf")   # a partial result with no key
    lse[:, 1, 1, 2] = float("-inf")   # a row with no key at all
    out = torch.empty(b, h, i, dv, device=DEVICE)
    total = torch.empty(b, h, i, device=DEVICE)
    ring.kernel.combine(part, lse, out, total)
    want_lse = torch.logsumexp(lse.double(), 0)
    weights = torch.exp(lse.double() - want_lse).nan_to_num(0.0)
    want = (weights.unsqueeze(-1) * part.double()).sum(0)
    assert rel(out, want) < 1e-5
    check_lse(total, want_lse)
    assert torch.all(out[1, 1, 2] == 0)


def test_combine_errors():
    _, ring = kernels("causal")
    dv = value_dim(ring)
    part = torch.zeros(2, 1, 1, 4, dv, device=DEVICE)
    lse = torch.zeros(2, 1, 1, 4, device=DEVICE)
    out = torch.empty(1, 1, 4, dv, device=DEVICE)
    total = torch.empty(1, 1, 4, device=DEVICE)
    with pytest.raises(attnc.Error, match="at least 2 partial results"):
        ring.kernel.combine(part[:1], lse[:1], out, total)
    with pytest.raises(attnc.Error, match="overlaps 'part_out'"):
        ring.kernel.combine(part, lse, part[0], total)
    with pytest.raises(attnc.Error, match="axis i is 3, but part_out's is 4"):
        ring.kernel.combine(part, lse, out[:, :, :3], total)
    with pytest.raises(attnc.Error, match="expected f32 of rank 3"):
        ring.kernel.combine(part, lse, out, total.to(torch.float16))


@pytest.mark.skipif(bool(os.environ.get("ATTNC_RING_KERNELS")), reason="compiles specs (JIT)")
def test_ring_errors():
    full, ring = kernels("causal")
    with pytest.raises(attnc.Error, match="compiled with position offsets"):
        attnc.ring.RingKernel(full)
    spec = (REPO / "specs" / "causal.attn").read_text().replace("softmax", "sigmoid")
    with pytest.raises(attnc.Error, match="only softmax variants"):
        attnc.ring.compile(spec, dims=dims_for(spec), target=TARGET)
    spec = (REPO / "specs" / "relative_bias.attn").read_text()
    with pytest.raises(attnc.Error, match="indexed by both the query dim"):
        attnc.ring.compile(spec, dims=dims_for(spec), target=TARGET)
    bottom_right = (REPO / "specs" / "causal.attn").read_text().replace(
        "mask   j <= i", "mask   j <= i + kv_len - q_len")
    with pytest.raises(attnc.Error, match="reads the length of a sequence"):
        attnc.ring.compile(bottom_right, dims="d=32", target=TARGET)
    recurrence = (REPO / "specs" / "retnet.attn").read_text()
    with pytest.raises(attnc.Error, match="need attention computed tile by tile"):
        attnc.ring.compile(recurrence, target=TARGET)
    tensors = inputs(full, 20, seed=1)
    with pytest.raises(attnc.Error, match="the same sequence"):
        ring.virtual(2, q=tensors["q"], k=tensors["k"][:, :, :10], v=tensors["v"][:, :, :10])
    with pytest.raises(attnc.Error, match="not initialised"):
        ring(**tensors)
    with pytest.raises(attnc.Error, match="unknown layout"):
        attnc.ring.chunk_bounds(10, 2, "striped")


# ---- several processes (gloo on the CPU: the torch.distributed path of a NCCL ring) --------

def _worker(rank, world, name, length, layout, port, results, bad_shard, backward=False):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        full, ring = grad_kernels(name) if backward else kernels(name)
        if backward:
            full = full.kernel
        ring.layout = layout
        tensors = inputs(full, length, seed=length)
        local = {n: ring.shard(t, n, rank, world) for n, t in tensors.items()}
        if bad_shard and rank == 1:
            local["q"] = local["q"].narrow(2, 0, local["q"].shape[2] - 1)
        floats = [n for n, t in local.items() if t.is_floating_point()] if backward else []
        for n in floats:
            local[n] = local[n].clone().requires_grad_(True)
        try:
            o, lse = ring(**local)
            grads = {}
            if backward:
                do = torch.randn(o.shape, generator=torch.Generator().manual_seed(11 + rank))
                o.backward(do.to(o.dtype))
                grads = {n: local[n].grad.numpy() for n in floats}
                grads["do"] = do.numpy()
            # by value (numpy): a tensor would go by a file descriptor this process may close
            results.put((rank, o.detach().numpy(), lse.numpy(), None, grads))
        except Exception as e:  # any failure comes back as a message: the parent never hangs
            import traceback
            text = str(e) if isinstance(e, attnc.Error) else traceback.format_exc()
            results.put((rank, None, None, text, {}))
    finally:
        dist.destroy_process_group()


def _spawn(world, name, length, layout, bad_shard=False, backward=False):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker,
                         args=(r, world, name, length, layout, port, results, bad_shard,
                               backward))
             for r in range(world)]
    for p in procs:
        p.start()
    got = [results.get(timeout=300) for _ in range(world)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return sorted(got, key=lambda x: x[0])


@pytest.mark.skipif(DEVICE != "cpu", reason="gloo runs the CPU target")
@pytest.mark.parametrize("world,length,layout,name", [(2, 77, "zigzag", "causal"),
                                                      (3, 100, "zigzag", "document"),
                                                      (3, 50, "contiguous", "alibi")])
def test_process_group_matches_single_kernel(world, length, layout, name):
    got = _spawn(world, name, length, layout)
    full, ring = kernels(name)
    ring.layout = layout
    tensors = inputs(full, length, seed=length)
    want = single(full, tensors)
    assert all(g[3] is None for g in got), [g[3] for g in got]
    o = ring.unshard([torch.from_numpy(g[1]) for g in got], "o")
    lse = ring.unshard([torch.from_numpy(g[2]) for g in got], "lse")
    ring.layout = "zigzag"
    assert rel(o, want["o"]) < TOL
    check_lse(lse, want["lse"])


@pytest.mark.skipif(DEVICE != "cpu", reason="gloo runs the CPU target")
def test_process_group_refuses_disagreeing_shards():
    got = _spawn(2, "causal", 40, "zigzag", bad_shard=True)
    for _, _, _, err, _ in got:  # every rank says so: none waits for a block that never comes
        assert err and "rank 1 holds q/k shards of 19/20 positions" in err


@pytest.mark.skipif(not os.environ.get("ATTNC_RING_KERNELS"),
                    reason="the ring kernels' float64 references (.ref.py) come with AOT kernels")
@pytest.mark.parametrize("name", SPECS)
def test_block_kernel_matches_its_reference(name):
    """A block kernel alone at random offsets (q ahead of, behind and level with k) against
    the float64 torch reference `--emit=ptx` wrote beside it, which reads the same offsets."""
    _, ring = kernels(name)
    reference = harness.load_reference(Path(os.environ["ATTNC_RING_KERNELS"]) / "ring", name)
    for seed, (q_off, k_off) in enumerate([(0, 0), (300, 0), (0, 300), (1000, 937)]):
        sizes = harness.dim_sizes(ring.kernel, 77, 131, batch=2)
        tensors = harness.sort_ids(ring.kernel, harness.make_inputs(
            ring.kernel, sizes, seed=seed, device=DEVICE), seed=seed)
        tensors["q_offset"] = torch.tensor(q_off, dtype=torch.int32, device=DEVICE)
        tensors["k_offset"] = torch.tensor(k_off, dtype=torch.int32, device=DEVICE)
        outs = harness.run(ring.kernel, tensors)
        result = harness.compare(ring.kernel, reference, tensors, outs)
        assert not result["problems"], (q_off, k_off, result)


_grads = {}


def grad_kernels(name):
    """(single-device differentiable function, ring with its backward) of specs/<name>.attn."""
    if name not in _grads:
        import attnc.torch
        aot = os.environ.get("ATTNC_RING_KERNELS")
        if aot:
            load = lambda kind, n: attnc.load_kernel(f"{aot}/{kind}/{n}.ptx",  # noqa: E731
                                                     f"{aot}/{kind}/{n}.json")
            full = load("full", name)
            full.grad = load("full", name + "_grad")
            _grads[name] = (attnc.torch.function(full),
                            attnc.ring.RingKernel(load("ring", name),
                                                  grad=load("grad", name + "_grad")))
            return _grads[name]
        spec = (REPO / "specs" / f"{name}.attn").read_text()
        full = attnc.compile(spec, dims=dims_for(spec), target=TARGET, backward=True)
        _grads[name] = (attnc.torch.function(full),
                        attnc.ring.compile(spec, dims=dims_for(spec), target=TARGET,
                                           backward=True))
    return _grads[name]


@pytest.mark.parametrize("name", ["causal", "alibi", "document", "sliding_window", "gqa"])
@pytest.mark.parametrize("world,length", [(2, 77), (3, 100)])
def test_virtual_backward_matches_single_kernel(name, world, length):
    """dQ, dK, dV and the float params' gradients of the ring (dQ local, dK/dV travelling with
    their blocks) against the single-device backward, through torch.autograd."""
    fn, ring = grad_kernels(name)
    for layout in ("zigzag", "contiguous"):
        ring.layout = layout
        base = inputs(fn.kernel, length, seed=length + world)
        floats = [n for n, t in base.items() if t.is_floating_point()]
        gen = torch.Generator(device=DEVICE).manual_seed(world)
        got, want = {}, {}
        for which, out in (("ring", got), ("single", want)):
            tensors = {n: (t.clone().requires_grad_(True) if n in floats else t)
                       for n, t in base.items()}
            o = (ring.virtual(world, **tensors)[0] if which == "ring" else fn(**tensors))
            do = torch.randn(o.shape, generator=gen.manual_seed(7), device=DEVICE)
            o.backward(do.to(o.dtype))
            out.update({n: tensors[n].grad for n in floats})
            out["o"] = o.detach()
        assert rel(got["o"], want["o"]) < TOL
        for n in floats:
            assert got[n] is not None, n
            assert rel(got[n], want[n]) < GRAD_TOL, (layout, n, rel(got[n], want[n]))
    ring.layout = "zigzag"


@pytest.mark.skipif(DEVICE != "cpu", reason="gloo runs the CPU target")
@pytest.mark.parametrize("world,length,layout,name", [(2, 77, "zigzag", "alibi"),
                                                      (3, 64, "contiguous", "document")])
def test_process_group_backward_matches_single_kernel(world, length, layout, name):
    """Each rank's dq, its own block's dk / dv (home after travelling the ring) and the
    all-reduced dslope against the single kernel's autograd on the whole sequence."""
    got = _spawn(world, name, length, layout, backward=True)
    assert all(g[3] is None for g in got), [g[3] for g in got]
    fn, ring = grad_kernels(name)
    ring.layout = layout
    base = inputs(fn.kernel, length, seed=length)
    floats = [n for n, t in base.items() if t.is_floating_point()]
    tensors = {n: (t.clone().requires_grad_(True) if n in floats else t) for n, t in base.items()}
    o = fn(**tensors)
    do = ring.unshard([torch.from_numpy(g[4]["do"]) for g in got], "o")
    o.backward(do)
    for n in floats:
        if ring._seq_axis(n)[0] is None:  # replicated (slope): every rank has the full sum
            mine = torch.from_numpy(got[0][4][n])
        else:
            mine = ring.unshard([torch.from_numpy(g[4][n]) for g in got], n)
        assert rel(mine, tensors[n].grad) < GRAD_TOL, (n, rel(mine, tensors[n].grad))
    ring.layout = "zigzag"


@pytest.mark.skipif(DEVICE != "cuda", reason="a NCCL group needs a GPU")
def test_one_rank_nccl_group_forward_and_backward():
    """The process-group path over NCCL with the one GPU there is (no exchange happens): the
    NCCL checks, the all-gather of shapes and the autograd function, against the single kernel;
    a gloo group is refused for CUDA tensors."""
    import tempfile

    import torch.distributed as dist

    fn, ring = grad_kernels("alibi")
    base = inputs(fn.kernel, 131, seed=5)
    floats = [n for n, t in base.items() if t.is_floating_point()]
    with tempfile.NamedTemporaryFile() as f:
        store = dist.FileStore(f.name, 1)
        dist.init_process_group("nccl", store=store, rank=0, world_size=1)
        try:
            got = {n: (t.clone().requires_grad_(True) if n in floats else t)
                   for n, t in base.items()}
            o, _ = ring(**got)
            do = torch.randn(o.shape, device=DEVICE, generator=torch.Generator(
                device=DEVICE).manual_seed(3)).to(o.dtype)
            o.backward(do)
            gloo = dist.new_group(backend="gloo")
            with pytest.raises(attnc.Error, match="CUDA tensors travel by NCCL"):
                ring(group=gloo, **base)
        finally:
            dist.destroy_process_group()
    want = {n: (t.clone().requires_grad_(True) if n in floats else t) for n, t in base.items()}
    o_want = fn(**want)
    o_want.backward(do)
    assert rel(o, o_want) < TOL
    for n in floats:
        assert rel(got[n].grad, want[n].grad) < GRAD_TOL, n

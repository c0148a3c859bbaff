"""Every compiled kernel (and the runtime's fixture) against its float64 reference on ragged
shapes, through the attnc Python package; then the errors a caller can make, each of which must
raise attnc.Error with a message naming the argument."""
import math

import pytest

import harness

torch = pytest.importorskip("torch")
import attnc  # noqa: E402  (after the skip: the package is only useful with torch)


def _case(kernel, reference, q_len, kv_len, seed=0, layout=None):
    if reference is None:
        pytest.skip(f"no {kernel.name}.ref.py (attnc --emit=torch) next to the kernel")
    inputs = harness.make_inputs(kernel, harness.dim_sizes(kernel, q_len, kv_len), seed=seed)
    if layout:
        inputs = {n: layout(t) for n, t in inputs.items()}
    outs = harness.run(kernel, inputs)
    result = harness.compare(kernel, reference, inputs, outs)
    line = (f"{kernel.name:24s} q_len={q_len:<4d} kv_len={kv_len:<4d}{' strided' if layout else ''}: "
            f"rel {result['rel']:.2e}"
            + (f", lse rel {result['lse_rel']:.2e}" if result["lse_rel"] is not None else ""))
    harness.REPORT.append(line)  # printed at the end of the session (conftest.py)
    assert not result["problems"], "; ".join(result["problems"])


@pytest.mark.parametrize("q_len,kv_len", harness.SHAPES)
def test_matches_reference(kernel_and_reference, q_len, kv_len):
    kernel, reference = kernel_and_reference
    _case(kernel, reference, q_len, kv_len)


# Decoding shapes: one or a few queries per head against many key tiles.
DECODE_SHAPES = [(1, 1000), (4, 3001), (1, 65)]


@pytest.mark.parametrize("splits", [0, 2, 7, 32])
@pytest.mark.parametrize("q_len,kv_len", DECODE_SHAPES)
def test_split_kv_matches_reference(kernel_and_reference, q_len, kv_len, splits):
    """Forced split counts (0: the runtime's heuristic): partial results merged by the combine
    kernel must match the reference as the unsplit kernel does."""
    kernel, reference = kernel_and_reference
    if "split_kv" not in kernel.manifest:
        pytest.skip(f"{kernel.name} has no split_kv (not softmax)")
    kernel.set_splits(splits)
    try:
        _case(kernel, reference, q_len, kv_len, seed=splits)
        block_k = kernel.manifest["split_kv"]["block_k"]
        page = kernel.manifest.get("paged", {}).get("page_size")
        # the key length as the harness sized it (`j = i` aliases follow the query length)
        kv_name = next(d["name"] for d in kernel.manifest["dims"] if d["role"] == "kv_seq")
        kv_len = harness.dim_sizes(kernel, q_len, kv_len)[kv_name]
        keys = -(-kv_len // page) * page if page else kv_len  # paged: whole pages
        if splits:
            assert kernel.last_splits == min(splits, -(-keys // block_k))
        else:
            assert kernel.last_splits >= 1
    finally:
        kernel.set_splits(0)


def _other_layout(t):
    """Same values and shape, different strides: the two middle axes swapped in memory."""
    if t.dim() < 4:
        return t
    return t.transpose(1, 2).contiguous().transpose(1, 2)


def test_strided_views(kernel_and_reference):
    kernel, reference = kernel_and_reference
    _case(kernel, reference, *harness.SMALL, seed=1, layout=_other_layout)


def test_zero_queries_is_a_no_op(kernel):
    q_seq = next(d for d in kernel.manifest["dims"] if d["role"] == "q_seq")
    if q_seq.get("static") is not None:
        pytest.skip(f"{kernel.name} has a static query length")
    inputs = harness.make_inputs(kernel, harness.dim_sizes(kernel, 0, 65))
    outs = harness.run(kernel, inputs)
    states = {a["name"] for a in kernel.manifest["args"] if a["kind"] == "state"}
    for n, t in outs.items():
        # Outputs by query are empty; a sum over the queries (a backward's dK, dV, dparams)
        # is written as zeros over the NaN the harness poisoned it with.
        if n not in states:
            assert t.numel() == 0 or torch.equal(t, torch.zeros_like(t)), f"{n}: not zero"
    for n in states:  # no step taken: the state comes back as it went in
        assert torch.equal(outs[n], inputs[n])


# --- errors ---------------------------------------------------------------------------------

def _args(kernel):
    inputs = harness.make_inputs(kernel, harness.dim_sizes(kernel, *harness.SMALL))
    return {**inputs, **kernel.allocate_outputs(**inputs)}


def _first(kernel, predicate):
    """The first manifest argument satisfying predicate, else skip."""
    for a in kernel.manifest["args"]:
        if predicate(a):
            return a
    pytest.skip("no argument of that kind in this kernel")


def _raises(kernel, args, *fragments):
    with pytest.raises(attnc.Error) as info:
        kernel(**args)
    message = str(info.value)
    print(message)
    for fragment in fragments:
        assert fragment in message, f"'{fragment}' not in: {message}"


def test_wrong_dtype(kernel):
    args = _args(kernel)
    a = _first(kernel, lambda a: a["kind"] == "input")
    args[a["name"]] = args[a["name"]].float() if a["dtype"] != "f32" else args[a["name"]].half()
    _raises(kernel, args, f"argument '{a['name']}'", f"expected dtype {a['dtype']}")


def test_wrong_rank(kernel):
    args = _args(kernel)
    a = _first(kernel, lambda a: a["kind"] == "input")
    args[a["name"]] = args[a["name"]][0]
    _raises(kernel, args, f"argument '{a['name']}'", f"expected {len(a['dims'])} dims")


def test_wrong_shape(kernel):
    # v's kv_seq axis one shorter than k's: the runtime names the arg and its storage axis.
    # (v is the last input with the kv_seq dim: the manifest lists q, k, v in that order.)
    args = _args(kernel)
    roles = {d["name"]: d["role"] for d in kernel.manifest["dims"]}
    with_kv = [a for a in kernel.manifest["args"] if a["kind"] == "input" and
               any(roles[n] == "kv_seq" for n in a["dims"])]
    if len(with_kv) < 2:
        pytest.skip("no value argument with a kv_seq axis")
    a = with_kv[-1]
    axis = next(p for p, n in enumerate(a["storage_dims"]) if roles[n] == "kv_seq")
    n = args[a["name"]].shape[axis]  # 65, or a static kv length
    args[a["name"]] = args[a["name"]].narrow(axis, 0, n - 1)
    _raises(kernel, args, f"argument '{a['name']}' axis {axis} ", f"expected {n}", f"got {n - 1}")


def test_cpu_tensor(kernel):
    args = _args(kernel)
    a = _first(kernel, lambda a: a["kind"] == "input")
    args[a["name"]] = args[a["name"]].cpu()
    _raises(kernel, args, f"argument '{a['name']}'", "expected a CUDA tensor")


def test_runtime_refuses_host_memory(kernel):
    # Bypasses the Python checks to reach the runtime's own device-pointer check.
    args = _args(kernel)
    a = _first(kernel, lambda a: a["kind"] == "input")
    tensors = [args[x["name"]] if x["name"] != a["name"] else args[a["name"]].cpu().pin_memory()
               for x in kernel.manifest["args"]]
    device = tensors[-1].device
    with pytest.raises(attnc.Error, match=f"argument '{a['name']}': pointer 0x[0-9a-f]+ is host memory"):
        attnc.Launch(kernel, tensors, device)()


def test_misaligned_view(kernel):
    args = _args(kernel)
    a = _first(kernel, lambda a: a["alignment"] > torch.tensor([], dtype=harness.torch_dtype(a["dtype"])).element_size())
    t = args[a["name"]]
    flat = torch.empty(t.numel() + 1, dtype=t.dtype, device=t.device)
    args[a["name"]] = flat[1:].view(t.shape)  # starts one element past an aligned address
    _raises(kernel, args, f"argument '{a['name']}': data pointer 0x", f"is not aligned to {a['alignment']} bytes")


def test_non_contiguous_last_dim(kernel):
    args = _args(kernel)
    a = _first(kernel, lambda a: a["unit_stride_last"] and a["kind"] == "input" and len(a["dims"]) > 0)
    t = args[a["name"]]
    wide = torch.empty(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device)
    args[a["name"]] = wide[..., ::2]
    last = a["storage_dims"].index(a["dims"][-1])
    _raises(kernel, args, f"argument '{a['name']}' axis {last} ", "expected stride 1", "got 2")


def test_missing_and_unknown_arguments(kernel):
    args = _args(kernel)
    o_name, _ = harness.output_names(kernel)
    del args[o_name]
    args["extra"] = args[next(iter(args))]
    _raises(kernel, args, f"missing {o_name}", "unknown extra", "it takes " + kernel.name + "(")


def test_outputs_are_written_on_the_given_stream(kernel_and_reference):
    kernel, reference = kernel_and_reference
    if reference is None:
        pytest.skip("no reference")
    inputs = harness.make_inputs(kernel, harness.dim_sizes(kernel, *harness.SMALL), seed=2)
    outs = kernel.allocate_outputs(**inputs)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    # A state is updated in place: the kernel gets a copy, `inputs` keeps the initial one.
    states = {a["name"]: inputs[a["name"]].clone() for a in kernel.manifest["args"]
              if a["kind"] == "state"}
    with torch.cuda.stream(stream):
        for t in outs.values():
            t.fill_(math.nan)
        kernel(**{**inputs, **states}, **outs)  # torch's current stream is `stream` here
    stream.synchronize()
    assert not harness.compare(kernel, reference, inputs, {**outs, **states})["problems"]

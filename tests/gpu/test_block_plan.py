"""Block plans (attn-block-plan, docs/block-sparsity.md): kernels whose mask reads params run a
plan kernel first and visit only the key tiles it allows. Against the float64 reference with
document ids sorted along the sequence (one document, long, short and one-token documents) and
random, at shapes whose tile edges cut documents anywhere."""
import pytest

import harness

torch = pytest.importorskip("torch")
import attnc  # noqa: E402

SHAPES = [(200, 200), (77, 131), (1, 1), (5, 300), (1000, 1000), (129, 4099)]


@pytest.mark.parametrize("sorted_ids", [True, False])
@pytest.mark.parametrize("q_len,kv_len", SHAPES)
def test_planned_kernels_match_reference(kernel_and_reference, q_len, kv_len, sorted_ids):
    kernel, reference = kernel_and_reference
    if "block_plan" not in kernel.manifest:
        pytest.skip(f"{kernel.name} has no block plan")
    if reference is None:
        pytest.skip(f"no {kernel.name}.ref.py next to the kernel")
    sizes = harness.dim_sizes(kernel, q_len, kv_len, batch=4)
    inputs = harness.make_inputs(kernel, sizes, seed=q_len)
    if sorted_ids:
        inputs = harness.sort_ids(kernel, inputs, seed=kv_len)
    outs = harness.run(kernel, inputs)
    result = harness.compare(kernel, reference, inputs, outs)
    harness.REPORT.append(f"{kernel.name:24s} plan q_len={q_len:<5d} kv_len={kv_len:<5d} "
                          f"{'sorted' if sorted_ids else 'random'}: rel {result['rel']:.2e}")
    assert not result["problems"], "; ".join(result["problems"])


# The masks of the specs the plan tests read entry by entry: (doc or prefix params) -> allowed.
MASKS = {
    "document": lambda p, i, j: (p["doc_q"][:, i][:, :, None] == p["doc_k"][:, j][:, None, :])
    & (j[None, None, :] <= i[None, :, None]),
    "prefix_lm": lambda p, i, j: (j[None, None, :] <= i[None, :, None])
    | (j[None, None, :] < p["prefix"][:, None, None]),
}


def _planned(kernel_and_reference, q_len, kv_len, sorted_ids=True):
    kernel, _ = kernel_and_reference
    if "block_plan" not in kernel.manifest or kernel.name not in MASKS:
        pytest.skip(f"{kernel.name}: no block plan with a mask this test knows")
    sizes = harness.dim_sizes(kernel, q_len, kv_len, batch=4)
    inputs = harness.make_inputs(kernel, sizes, seed=7)
    if sorted_ids:
        inputs = harness.sort_ids(kernel, inputs, seed=7)
    outs = kernel.allocate_outputs(**inputs)
    return kernel, inputs, outs


@pytest.mark.parametrize("q_len,kv_len", [(200, 200), (1000, 1000), (77, 131)])
def test_plan_entries_are_sound_and_tight(kernel_and_reference, q_len, kv_len):
    """Every allowed pair of a query tile lies in its range; with sorted ids shared by queries
    and keys (packed documents) the range starts at its first allowed key and ends after its
    last; the full range holds only keys every row of the tile allows."""
    kernel, inputs, outs = _planned(kernel_and_reference, q_len, kv_len)
    exact = kernel.name == "prefix_lm" or q_len == kv_len
    if kernel.name == "document" and q_len == kv_len:  # one sequence: the same ids
        inputs["doc_k"] = inputs["doc_q"].clone()
    plan = kernel.plan(**inputs, **outs).cpu()
    torch.cuda.synchronize()
    rows, block_k = kernel.manifest["tile"]["block_q"], kernel.manifest["tile"]["block_k"]
    params = {n: t.cpu() for n, t in inputs.items() if t.dtype == torch.int32}
    j = torch.arange(kv_len)
    for t in range(plan.shape[2]):
        i = torch.arange(t * rows, min((t + 1) * rows, q_len))
        allowed = MASKS[kernel.name](params, i, j)  # [b, rows, keys]
        for b in range(plan.shape[0]):
            first, end, full_first, full_end, count = plan[b, 0, t].tolist()
            keys = allowed[b].any(0).nonzero().flatten()
            if len(keys):
                assert first <= int(keys[0]) and int(keys[-1]) < end, (b, t)
                if exact:
                    assert first == int(keys[0]) and end == int(keys[-1]) + 1, (b, t)
            else:
                assert end == 0, (b, t)
            if count and count == full_end - full_first:
                assert bool(allowed[b][:, full_first:full_end].all()), (b, t)


def test_reused_plan_gives_the_same_output(kernel_and_reference):
    kernel, inputs, outs = _planned(kernel_and_reference, 300, 500)
    kernel(**inputs, **outs)
    first = {n: t.clone() for n, t in outs.items()}
    plan = kernel.plan(**inputs, **outs)
    for t in outs.values():
        t.fill_(float("nan"))
    kernel(**inputs, **outs, block_plan=plan)
    torch.cuda.synchronize()
    for n, t in outs.items():
        assert torch.equal(t, first[n]), n
    with pytest.raises(attnc.Error, match="block plan must be a contiguous i32 tensor of shape"):
        kernel(**inputs, **outs, block_plan=plan[:, :, :1])
    with pytest.raises(attnc.Error, match="block plan must be a contiguous i32 tensor"):
        kernel(**inputs, **outs, block_plan=plan.float())

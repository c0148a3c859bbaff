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

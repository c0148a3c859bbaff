"""Every spec in specs/ through the JIT API (attnc.compile -> libattnc.so, with its kernel cache)
on the GPU, against the same float64 reference as the ahead-of-time kernels. Needs
$ATTNC_JIT_LIB (a libattnc.so that runs here, e.g. the static build)."""
import os
import re
from pathlib import Path

import pytest

import harness

torch = pytest.importorskip("torch")
import attnc  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "specs").glob("*.attn"))


@pytest.fixture(scope="module")
def jit_available():
    if not os.environ.get("ATTNC_JIT_LIB"):
        pytest.skip("ATTNC_JIT_LIB is not set (no libattnc.so for this host)")


def _check(kernel, reference, shapes, seed):
    """The kernel against the float64 reference at each (q_len, kv_len)."""
    for q_len, kv_len in shapes:
        inputs = harness.make_inputs(kernel, harness.dim_sizes(kernel, q_len, kv_len), seed=seed)
        result = harness.compare(kernel, reference, inputs, harness.run(kernel, inputs))
        assert not result["problems"], "; ".join(result["problems"])


def dynamic_d(text):
    """Whether the spec declares a dynamic dim d (no size): it is fixed to 128, as the CLI does."""
    for line in re.findall(r"^\s*dims\b(.*)$", text, re.M):
        for item in line.split(","):
            name = item.split(":")[0].strip()
            if name == "d" and "=" not in item:
                return True
    return False


@pytest.mark.parametrize("spec", SPECS, ids=[s.stem for s in SPECS])
def test_jit_matches_reference(jit_available, spec, tmp_path):
    text = spec.read_text()
    dims = "d=128" if dynamic_d(text) else None
    kernel = attnc.compile(text, dims=dims, cache_dir=str(tmp_path))
    assert not kernel.from_cache
    again = attnc.compile(text, dims=dims, cache_dir=str(tmp_path))
    assert again.from_cache
    reference = harness.load_reference(harness.kernel_dir(), kernel.manifest["variant"])
    if reference is None:
        pytest.skip("no .ref.py for this variant in ATTNC_KERNEL_DIR")
    _check(again, reference, [(77, 130), (128, 64)], seed=3)


def test_jit_reports_spec_errors(jit_available):
    with pytest.raises(attnc.Error, match=r"<spec>:1:.*error: "):
        attnc.compile("variant x { dims b score s = 1 }", cache_dir="")


@pytest.mark.parametrize("max_value", ["-4", "3", "1000"])
def test_unified_max_fast_and_fallback_paths(jit_available, max_value, tmp_path):
    """norm softmax(max = M) with M below the scores (every tile takes the fallback), among them
    (a mix of the warp-vote fast path and the fallback) and far above them (rows restart from
    their own max): all must give softmax's result."""
    text = (ROOT / "specs" / "unified_max_decode.attn").read_text()
    kernel = attnc.compile(text.replace("max = 6", f"max = {max_value}"), cache_dir=str(tmp_path))
    reference = harness.load_reference(harness.kernel_dir(), "unified_max_decode")
    if reference is None:
        pytest.skip("no unified_max_decode.ref.py in ATTNC_KERNEL_DIR")
    _check(kernel, reference, [(1, 2000), (77, 130)], seed=5)

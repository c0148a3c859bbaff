"""What users load, tested as built: the attnc Python package over libattnc.so (the JIT C ABI)
and libattnc_runtime.so compiles every spec in specs/ to PTX and a manifest (no GPU needed:
the runtime loads modules lazily), the kernel cache serves the second compile, and a bad spec
raises attnc.Error with its location. CTest passes the libraries it built through
$ATTNC_JIT_LIB and $ATTNC_RUNTIME_LIB.

  python3 tests/python/test_shared_library.py     (exits 77 when pytest is missing)
"""
import re
import sys
import tempfile
from pathlib import Path

if __name__ == "__main__":
    import script_main  # skipped (77) without the modules the tests need
    script_main.run(__file__, ("pytest",))

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))
import attnc  # noqa: E402

SPECS = sorted((REPO / "specs").glob("*.attn"))


def dims_for(text: str):
    """A dynamic head dim (`d` without a value) is fixed to 128, as tests/ptx does."""
    line = re.search(r"^\s*dims\s+(.*)$", text, re.M)
    items = [item.strip() for item in line.group(1).split("#")[0].split(",")] if line else []
    return "d=128" if "d" in items else None


@pytest.fixture(scope="module")
def cache():
    with tempfile.TemporaryDirectory() as path:
        yield path


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_spec_compiles_through_the_library(spec, cache):
    text = spec.read_text()
    kernel = attnc.compile(text, dims=dims_for(text), cache_dir=cache)
    assert not kernel.from_cache
    name = kernel.manifest["entry"]
    assert kernel.manifest["format"] == attnc.MANIFEST_FORMAT
    assert kernel.manifest["block"][0] > 0 and len(kernel.manifest["grid"]) == 3
    assert f".entry {name}(" in kernel.ptx
    again = attnc.compile(text, dims=dims_for(text), cache_dir=cache)
    assert again.from_cache and again.manifest == kernel.manifest


def test_a_bad_spec_raises_with_its_location():
    bad = (REPO / "specs" / "alibi.attn").read_text().replace("slope[h] *", "slop[h] *")
    with pytest.raises(attnc.Error, match=r":\d+:\d+: error: unknown name 'slop'"):
        attnc.compile(bad, cache_dir="")


def test_the_default_chip_follows_the_environment_and_the_device(monkeypatch):
    # No CUDA here: the portable sm_80 path; $ATTNC_CHIP overrides; either way the manifest
    # says which chip the kernel was built for, and sm_90a kernels use wgmma.
    monkeypatch.delenv("ATTNC_CHIP", raising=False)
    mha = (REPO / "specs" / "mha.attn").read_text()
    try:
        import torch
        on_hopper = torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)
    except ImportError:
        on_hopper = False
    assert attnc.jit.default_chip() == ("sm_90a" if on_hopper else "sm_80")
    assert attnc.compile(mha, cache_dir="").manifest["arch"] == attnc.jit.default_chip()
    monkeypatch.setenv("ATTNC_CHIP", "sm_90a")
    kernel = attnc.compile(mha, cache_dir="")
    assert kernel.manifest["arch"] == "sm_90a"
    assert "wgmma.mma_async" in kernel.ptx and "ldmatrix" not in kernel.ptx
    assert kernel.manifest["tile"]["block_k"] == 64
    sm80 = attnc.compile(mha, chip="sm_80", cache_dir="")
    assert "wgmma" not in sm80.ptx and sm80.manifest["tile"]["block_k"] == 32

"""What users load, tested as built: the attnc Python package over libattnc.so (the JIT C ABI)
and libattnc_runtime.so compiles every spec in specs/ to PTX and a manifest (no GPU needed:
the runtime loads modules lazily), the kernel cache serves the second compile, and a bad spec
raises attnc.Error with its location. CTest passes the libraries it built through
$ATTNC_JIT_LIB and $ATTNC_RUNTIME_LIB.

  python3 tests/python/test_shared_library.py     (exits 77 when pytest is missing)
"""
import json
import re
import sys
import tempfile
from pathlib import Path

if __name__ == "__main__":
    try:
        import pytest
    except ImportError:
        print("skipped: pytest is not installed")
        sys.exit(77)
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"] + sys.argv[1:]))

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

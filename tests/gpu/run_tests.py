"""CTest entry of the GPU tests: exits 77 (CTest's SKIP_RETURN_CODE) when pytest, torch or a
CUDA GPU is missing, else runs pytest on this directory. scripts/gpu.sh runs pytest directly.

  python3 tests/gpu/run_tests.py [pytest args]
"""
import sys
from pathlib import Path

if __name__ == "__main__":
    try:
        import pytest
        import torch
    except ImportError as missing:
        print(f"skipped: {missing.name} is not installed")
        sys.exit(77)
    if not torch.cuda.is_available():
        print("skipped: no CUDA GPU")
        sys.exit(77)
    here = Path(__file__).resolve().parent
    sys.exit(pytest.main([str(here), "-q", "-rs", "-p", "no:cacheprovider"] + sys.argv[1:]))

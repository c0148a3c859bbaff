"""The tests of this folder as scripts (CTest runs them so): pytest over the file, or exit 77
(CTest's "skipped") when a module the tests need is not installed."""
import importlib
import sys


def run(test_file, needs=("pytest", "torch")):
    for name in needs:
        try:
            importlib.import_module(name)
        except ImportError:
            print(f"skipped: {name} is not installed")
            sys.exit(77)
    import pytest
    sys.exit(pytest.main([test_file, "-q", "-p", "no:cacheprovider"] + sys.argv[1:]))

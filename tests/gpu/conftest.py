"""GPU tests of compiled attnc kernels through the Python package. Skipped cleanly without
torch or a CUDA GPU; each kernel of $ATTNC_KERNEL_DIR (default .device/kernels) and the
hand-written fixture become test parameters."""
from pathlib import Path

import pytest

import harness

try:
    import torch
except ImportError:
    torch = None


def _skip_reason():
    if torch is None:
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _skip_reason()
    if reason:
        here = Path(__file__).resolve().parent
        for item in items:
            if here in Path(str(item.fspath)).resolve().parents:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter):
    if harness.REPORT:
        terminalreporter.section("relative errors against the float64 references")
        for line in harness.REPORT:
            terminalreporter.write_line(line)


def pytest_generate_tests(metafunc):
    if "variant" in metafunc.fixturenames:
        names = list(harness.FIXTURES) + harness.compiled_variants()
        metafunc.parametrize("variant", names)


@pytest.fixture(scope="session")
def fixture_dir(tmp_path_factory):
    if not harness.nvcc():
        pytest.skip("nvcc not found: cannot build the test fixture")
    return harness.build_fixtures(tmp_path_factory.mktemp("fixture"))


@pytest.fixture(scope="session")
def kernels():
    """Lazily loaded {variant: (Kernel, reference or None)}, shared by the session."""
    return {}


@pytest.fixture
def kernel_and_reference(variant, kernels, request):
    if variant not in kernels:
        fixture = variant in harness.FIXTURES
        directory = request.getfixturevalue("fixture_dir") if fixture else harness.kernel_dir()
        kernels[variant] = harness.load(directory, variant)
    return kernels[variant]


@pytest.fixture
def kernel(kernel_and_reference):
    return kernel_and_reference[0]

"""Launches each kernel once on one small ragged shape (q_len 77, kv_len 65: partial tiles on
both axes) and checks it: the program that scripts/gpu.sh runs under compute-sanitizer memcheck.

  python3 tests/gpu/sanitize_one.py [VARIANT ...]     # default: the fixture and every kernel
Exit status 1 if a kernel disagrees with its reference.
"""
import sys
import tempfile
from pathlib import Path

import harness


def main(names):
    import torch
    if not torch.cuda.is_available():
        print("sanitize_one: no CUDA GPU")
        return 0
    fixture_dir = harness.build_fixtures(Path(tempfile.mkdtemp())) if harness.nvcc() else None
    available = {n: fixture_dir for n in harness.FIXTURES if fixture_dir}
    available.update({n: harness.kernel_dir() for n in harness.compiled_variants()})
    status = 0
    for name in names or list(available):
        if name not in available:
            print(f"sanitize_one: no kernel '{name}' (have: {', '.join(available)})")
            status = 1
            continue
        kernel, reference = harness.load(available[name], name)
        inputs = harness.make_inputs(kernel, harness.dim_sizes(kernel, *harness.SMALL))
        outs = harness.run(kernel, inputs)
        if reference is None:
            print(f"{name}: ran (no reference to compare with)")
            continue
        result = harness.compare(kernel, reference, inputs, outs)
        print(f"{name}: rel {result['rel']:.2e} {'; '.join(result['problems']) or 'ok'}")
        status |= bool(result["problems"])
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

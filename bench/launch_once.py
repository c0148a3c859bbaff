"""Launches the attnc kernels of the named variant-suite cases (bench.py names: mha_d128, alibi,
...) three times each, for a profiler: python3 bench/launch_once.py KERNEL_DIR NAME..."""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402
import torch  # noqa: E402

kernels = bench.attnc.load_dir(sys.argv[1], on_error=lambda *e: None)
for case in bench.cases(["variants"], True):
    if case.bench not in sys.argv[2:]:
        continue
    q, k, v, params = bench.make_data(case)
    kernel = bench.pick_kernel(kernels, case)
    args, o = bench.attnc_args(kernel, q, k, v, params)
    launch = kernel.prepare(**args)
    for _ in range(3):
        launch()
    torch.cuda.synchronize()
    print(case.label, "done", flush=True)

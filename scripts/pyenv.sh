#!/usr/bin/env bash
# The Python environment of the tests: a virtual environment with PyTorch (from PyPI; it runs on
# the CPU here), numpy and pytest, so the torch-reference tests run in CI instead of skipping;
# matplotlib for the bench plots (bench/plot.py); and ptxas for the PTX test.
# Kept in ${ATTNC_VENV:-~/.cache/attnc/venv} across clones; prints its python.
set -euo pipefail
venv=${ATTNC_VENV:-$HOME/.cache/attnc/venv}
if ! "$venv/bin/python" -c "import torch, numpy, pytest" >/dev/null 2>&1; then
  echo "pyenv: installing torch, numpy, pytest into $venv (once)" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q torch numpy pytest >&2
fi
if ! "$venv/bin/python" -c "import matplotlib" >/dev/null 2>&1; then
  echo "pyenv: installing matplotlib into $venv (once)" >&2
  "$venv/bin/python" -m pip install -q matplotlib >&2
fi
# ptxas (NVIDIA's CUDA compiler wheel, no GPU needed): the PTX test assembles every spec's
# kernels for sm_90a with it on machines without a CUDA toolkit.
if ! ls "$venv"/lib/python3*/site-packages/nvidia/cuda_nvcc/bin/ptxas >/dev/null 2>&1; then
  echo "pyenv: installing ptxas (nvidia-cuda-nvcc-cu12) into $venv (once)" >&2
  "$venv/bin/python" -m pip install -q nvidia-cuda-nvcc-cu12 >&2
fi
echo "$venv/bin/python"

#!/usr/bin/env bash
# The Python environment of the tests: a virtual environment with PyTorch (from PyPI; it runs on
# the CPU here), numpy and pytest, so the torch-reference tests run in CI instead of skipping.
# Kept in ${ATTNC_VENV:-~/.cache/attnc/venv} across clones; prints its python.
set -euo pipefail
venv=${ATTNC_VENV:-$HOME/.cache/attnc/venv}
if ! "$venv/bin/python" -c "import torch, numpy, pytest" >/dev/null 2>&1; then
  echo "pyenv: installing torch, numpy, pytest into $venv (once)" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q torch numpy pytest >&2
fi
echo "$venv/bin/python"

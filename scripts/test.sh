#!/usr/bin/env bash
# The test job: build attnc, then run every test (lit, GoogleTest unit, CPU numerics) via CTest.
# GPU tests are labelled and skip themselves without a GPU.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
start=$(date +%s)
# PyTorch for the torch-reference tests (CPU): CMake's Python is the virtual environment's.
python=$(bash "$root/scripts/pyenv.sh")
ATTNC_PYTHON=$python bash "$root/scripts/build.sh" "$build"
ctest --test-dir "$build" --output-on-failure -j1
# The Python package as users install it: `pip install .` into a fresh virtual environment.
bash "$root/tests/install/check_pip.sh" "$root"
# libFuzzer smoke (docs/fuzzing.md): front end, whole compile, manifest/cache reader, clang-22
# with ASan + UBSan, ATTNC_FUZZ_SECONDS (default 60) each.
bash "$root/scripts/fuzz.sh" "${ATTNC_FUZZ_SECONDS:-60}"
echo "test.sh: done in $(( $(date +%s) - start )) s"

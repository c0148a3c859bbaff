#!/usr/bin/env bash
# Configures and builds attnc (Ninja, ccache in ~/.ccache, lld). Usage: build.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
bash "$root/scripts/setup.sh"
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
# Paths relative to the checkout, so a fresh clone elsewhere still hits the cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$root}
linker=()
command -v ld.lld >/dev/null 2>&1 || [ -x /usr/lib/llvm-22/bin/ld.lld ] && linker=(-DLLVM_USE_LINKER=lld)
export PATH=/usr/lib/llvm-22/bin:$PATH
python=()
[ -n "${ATTNC_PYTHON:-}" ] && python=(-DPython3_EXECUTABLE="$ATTNC_PYTHON")
if [ ! -f "$build/build.ninja" ]; then
  cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ "${linker[@]}" "${python[@]}"
elif [ ${#python[@]} -gt 0 ]; then
  cmake -B "$build" "${python[@]}" >/dev/null
fi
jobs=$(nproc)
cmake --build "$build" -- -j"$jobs"

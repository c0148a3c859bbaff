#!/usr/bin/env bash
# The GPU job, on a host with CUDA, cmake, ninja, g++ and PyTorch (no LLVM): builds the runtime
# standalone into build-rt, runs the GPU tests, then compute-sanitizer memcheck, racecheck and
# synccheck on one small run of each kernel. Logs: ${OUT:-/tmp}/gpu-{build,pytest,sanitizer}.log.
#   ATTNC_KERNEL_DIR    compiled kernels (DIR/<variant>.{ptx,json,ref.py}); default .device/kernels
#   ATTNC_JSON_INCLUDE  directory holding nlohmann/json.hpp if the host lacks it
#                       (default .device/include when that exists)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-/tmp}
mkdir -p "$out"
export ATTNC_KERNEL_DIR=${ATTNC_KERNEL_DIR:-$root/.device/kernels}
json_include=${ATTNC_JSON_INCLUDE:-}
[ -z "$json_include" ] && [ -f "$root/.device/include/nlohmann/json.hpp" ] && json_include=$root/.device/include
export PATH=$PATH:/usr/local/cuda/bin

echo "== build the runtime (standalone) into build-rt"
if ! { cmake -S "$root/runtime" -B "$root/build-rt" -G Ninja -DCMAKE_BUILD_TYPE=Release \
         ${json_include:+-DATTNC_JSON_INCLUDE="$json_include"} &&
       ninja -C "$root/build-rt"; } >"$out/gpu-build.log" 2>&1; then
  cat "$out/gpu-build.log"
  echo "gpu.sh: the runtime did not build"
  exit 1
fi
export ATTNC_RUNTIME_LIB=$root/build-rt/libattnc_runtime.so
export PYTHONPATH=$root/python${PYTHONPATH:+:$PYTHONPATH}
status=0
if [ -x "$root/build-rt/attnc-runtime-tests" ]; then
  "$root/build-rt/attnc-runtime-tests" --gtest_brief=1 >>"$out/gpu-build.log" 2>&1 || status=1
  tail -n 3 "$out/gpu-build.log"
fi

echo "== GPU tests (kernels: $ATTNC_KERNEL_DIR)"
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader || true
python3 -m pytest -q -rs tests/gpu 2>&1 | tee "$out/gpu-pytest.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== compute-sanitizer memcheck, one small run per kernel"
if command -v compute-sanitizer >/dev/null; then
  # Without torch's caching allocator every tensor is its own allocation, so memcheck sees an
  # access past a tensor's end instead of landing silently in a neighbour in the same pool.
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck --error-exitcode 3 \
    --print-limit 20 python3 "$root/tests/gpu/sanitize_one.py" >"$out/gpu-sanitizer.log" 2>&1
  rc=$?
  tail -n 25 "$out/gpu-sanitizer.log"
  [ $rc -eq 0 ] || { echo "gpu.sh: compute-sanitizer exit $rc"; status=1; }
else
  echo "compute-sanitizer not found: skipped" | tee "$out/gpu-sanitizer.log"
fi
# Shared-memory hazards (racecheck) and barrier misuse (synccheck), the same run per kernel:
# every kernel family (flash, decode, combine, block plans, chunk, scan) has its own schedule of
# copies, waits and barriers. GPU_SANITIZERS="" skips them.
for tool in ${GPU_SANITIZERS-racecheck synccheck}; do
  echo "== compute-sanitizer $tool, one small run per kernel"
  command -v compute-sanitizer >/dev/null || break
  compute-sanitizer --tool "$tool" --error-exitcode 3 --print-limit 20 \
    python3 "$root/tests/gpu/sanitize_one.py" >"$out/gpu-$tool.log" 2>&1
  rc=$?
  tail -n 3 "$out/gpu-$tool.log"
  [ $rc -eq 0 ] || { echo "gpu.sh: compute-sanitizer $tool exit $rc"; status=1; }
done
echo "gpu.sh: $([ $status -eq 0 ] && echo ok || echo FAILED) (logs in $out/gpu-*.log)"
exit $status

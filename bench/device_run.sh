#!/usr/bin/env bash
# One lease on a GPU host with no LLVM: unpack the self-contained attnc (built here with
# -DATTNC_STATIC_LLVM=ON, carried xz'd in .device/bin), compile every spec there, measure JIT
# latency, run the GPU tests + memcheck (scripts/gpu.sh), then the benchmark.
#   usage: bench/device_run.sh [tests|bench|all] [bench args...]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd); cd "$root"
mode=${1:-all}; shift || true
out=${OUT:-/tmp/attnc-out}; mkdir -p "$out"
bin=$root/.device/bin
for f in "$bin"/*.xz; do [ -f "$f" ] && xz -dkf "$f"; done
chmod +x "$bin/attnc"
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader | tee "$out/device.txt"
echo "== attnc on this host: $(ldd "$bin/attnc" | awk '{print $1}' | tr '\n' ' ')"

kernels=$root/.device/kernels; rm -rf "$kernels"; mkdir -p "$kernels"
echo "== compile every spec (spec -> PTX + manifest + torch reference) with the static attnc"
for spec in specs/*.attn bench/specs/*.attn; do
  extra=(); "$bin/attnc" "$spec" --emit=ast | grep -q "^  dim d :" && extra=(--set d=128)
  "$bin/attnc" compile "$spec" --emit=ptx "${extra[@]}" -o "$kernels" 2>&1 | tee -a "$out/compile.log" \
    || echo "COMPILE FAILED: $spec"
done
export ATTNC_KERNEL_DIR=$kernels
python3 bench/compile_latency.py "$bin/libattnc.so" specs/*.attn --out "$kernels/compile_times.json" \
  2>&1 | tee "$out/compile-latency.log"
cp "$kernels/compile_times.json" "$out/" 2>/dev/null

if [ "$mode" = tests ] || [ "$mode" = all ]; then
  OUT=$out bash scripts/gpu.sh 2>&1 | tail -n 40
fi
if [ "$mode" = bench ] || [ "$mode" = all ]; then
  [ -d build-rt ] || OUT=$out bash scripts/gpu.sh >/dev/null 2>&1
  ATTNC_RUNTIME_LIB=$root/build-rt/libattnc_runtime.so PYTHONPATH=$root/python \
    python3 bench/bench.py "$@" 2>&1 | tee "$out/bench.log" | tail -n 60
  cp bench/results/*.md "$out/" 2>/dev/null
fi

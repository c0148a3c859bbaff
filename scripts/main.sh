#!/usr/bin/env bash
# The main job: build attnc, then compile every spec in specs/ and run it on random inputs,
# checked against a float64 reference: on the GPU when there is one (PTX through attnc's
# runtime, scripts/gpu.sh; needs PyTorch), else on the CPU back end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
bash "$root/scripts/build.sh" "$build"
status=0
if nvidia-smi -L >/dev/null 2>&1 && python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  kernels=$build/kernels
  # sm_90a (wgmma) on a compute-capability 9.0 GPU (H100/H200), else the portable sm_80 path.
  chip=sm_80
  [ "$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1)" = "9.0" ] && chip=sm_90a
  echo "== attnc compile ($chip): every spec to PTX + manifest + torch reference in $kernels"
  for spec in "$root"/specs/*.attn; do
    extra=()
    "$build/bin/attnc" "$spec" --emit=ast | grep -q "^  dim d :" && extra=(--set d=128)
    "$build/bin/attnc" compile "$spec" --emit=ptx --chip=$chip "${extra[@]}" -o "$kernels" || status=1
  done
  echo "== run on the GPU against the float64 references"
  ATTNC_KERNEL_DIR=$kernels bash "$root/scripts/gpu.sh" || status=1
else
  echo "== attnc run: every spec, CPU back end, f32 (tolerance 1e-5) and declared dtypes (2e-2)"
  for spec in "$root"/specs/*.attn; do
    "$build/bin/attnc" run "$spec" --dtype=f32 || status=1
    "$build/bin/attnc" run "$spec" || status=1
  done
fi
exit $status

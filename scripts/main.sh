#!/usr/bin/env bash
# The main job: build attnc, then compile every spec in specs/ and run it on random inputs,
# checked against the float64 reference (on the CPU back end).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
bash "$root/scripts/build.sh" "$build"
status=0
echo "== attnc run: every spec, CPU back end, f32 (tolerance 1e-5) and declared dtypes (2e-2)"
for spec in "$root"/specs/*.attn; do
  "$build/bin/attnc" run "$spec" --dtype=f32 || status=1
  "$build/bin/attnc" run "$spec" || status=1
done
exit $status

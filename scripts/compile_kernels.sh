#!/usr/bin/env bash
# Compiles every spec (specs/, bench/specs/, the recurrence and output-map test specs) to PTX +
# manifest + torch reference into DIR with this checkout's attnc, for a GPU host without LLVM
# (bench/device_run.sh ab-* modes carry DIR in .device/). A spec with a dynamic head dim gets d = 128. A spec the
# options reject (e.g. a gate with --dtype=f16) is reported and skipped.
#   usage: scripts/compile_kernels.sh DIR [attnc options...]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
attnc=${ATTNC:-$root/build/bin/attnc}
dir=${1:?usage: compile_kernels.sh DIR [attnc options...]}; shift
rm -rf "$dir"; mkdir -p "$dir"
failed=0
for spec in "$root"/specs/*.attn "$root"/bench/specs/*.attn "$root"/tests/python/specs/recurrence_*.attn \
            "$root"/tests/python/specs/output_maps.attn "$root"/tests/python/specs/several_scores.attn \
            "$root"/tests/python/specs/several_scores_shared.attn "$root"/tests/python/specs/f32_output.attn \
            "$root"/tests/python/specs/forget_gate.attn "$root"/tests/python/specs/strict_recurrence.attn \
            "$root"/tests/python/specs/row_norms.attn; do
  extra=(); "$attnc" "$spec" --emit=ast | grep -q "^  dim d :" && extra=(--set d=128)
  if ! log=$("$attnc" compile "$spec" --emit=ptx "${extra[@]}" "$@" -o "$dir" 2>&1); then
    echo "skipped $(basename "$spec") $*: $(echo "$log" | head -n 1)"; failed=$((failed + 1))
  fi
done
echo "compile_kernels: $(ls "$dir"/*.ptx | wc -l) kernels in $dir ($failed specs skipped)"

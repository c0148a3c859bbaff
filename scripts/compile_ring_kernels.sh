#!/usr/bin/env bash
# Ring attention's kernels for a GPU host without LLVM (tests/python/test_ring.py with
# ATTNC_RING_KERNELS=DIR, bench/ring.py with ATTNC_KERNEL_DIR=DIR): DIR/full/<name> the
# single-device kernel and DIR/ring/<name> its ring block form (--position-offsets
# --out-dtype f32) of the softmax specs the ring test and bench use, each with its backward
# (DIR/full/<name>_grad; DIR/grad/<name>_grad with position offsets). A dynamic head dim gets 64.
#   usage: scripts/compile_ring_kernels.sh DIR [attnc options, e.g. --chip=sm_90a]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
attnc=${ATTNC:-$root/build/bin/attnc}
dir=${1:?usage: compile_ring_kernels.sh DIR [attnc options...]}; shift
rm -rf "$dir"; mkdir -p "$dir/full" "$dir/ring" "$dir/grad"
for name in causal sliding_window alibi document t5_bias softcap gqa mha prefix_lm; do
  spec=$root/specs/$name.attn
  extra=(); "$attnc" "$spec" --emit=ast | grep -q "^  dim d :" && extra=(--set d=64)
  "$attnc" compile "$spec" --emit=ptx --backward "${extra[@]}" "$@" -o "$dir/full"
  "$attnc" compile "$spec" --emit=ptx "${extra[@]}" --position-offsets --out-dtype f32 "$@" \
    -o "$dir/ring"
  "$attnc" compile "$spec" --emit=ptx --backward "${extra[@]}" --position-offsets "$@" \
    -o "$dir/grad"
done
for name in mha_d128 causal_d128; do
  "$attnc" compile "$root/bench/specs/$name.attn" --emit=ptx "$@" -o "$dir/full"
  "$attnc" compile "$root/bench/specs/$name.attn" --emit=ptx --position-offsets --out-dtype f32 \
    "$@" -o "$dir/ring"
done
echo "compile_ring_kernels: $(ls "$dir"/full/*.ptx | wc -l) + $(ls "$dir"/ring/*.ptx | wc -l) kernels in $dir"

#!/usr/bin/env bash
# Compiles every spec in specs/ to PTX (bf16 as declared; a dynamic head dim fixed to 128) and
# assembles it with `ptxas -arch=sm_90a`, recording registers, stack and spills per kernel.
# Every trainable spec's backward (--backward: <name>_grad.ptx, the dQ and dK/dV kernels, for
# sm_80 and sm_90a; and for sm_90a with --dq-atomic, the three kernels of dQ by atomics) too;
# a spec attn-grad refuses (decoding, recurrences) must say so with its "no backward" error;
# with --dq-atomic, which they refuse, a forget gate, row norms and several scores with the
# CUDA back end's.
# Fails if a spec does not compile, ptxas rejects its PTX or warns that it serialised a wgmma
# (the sm_90a kernels' tensor-core pipeline). ptxas: $ATTNC_PTXAS, the PATH, /usr/local/cuda,
# or the test venv's nvidia-cuda-nvcc wheel (scripts/pyenv.sh). Skips (exit 77) without one.
set -uo pipefail
attnc=$1; specs=$2; out=${3:-$(mktemp -d)}
venv=${ATTNC_VENV:-$HOME/.cache/attnc/venv}
ptxas=${ATTNC_PTXAS:-$(command -v ptxas || echo /usr/local/cuda/bin/ptxas)}
[ -x "$ptxas" ] || ptxas=$(ls "$venv"/lib/python3*/site-packages/nvidia/cuda_nvcc/bin/ptxas 2>/dev/null | head -n 1)
if [ ! -x "$ptxas" ]; then echo "check_ptx: no ptxas; skipped"; exit 77; fi
echo "check_ptx: $ptxas ($("$ptxas" --version | tail -n 1))"
# ptxas's verdicts that a kernel lost its wgmma pipeline ("wgmma.mma_async instructions are
# serialized ..."): a failure, not a note.
serialised() { echo "$2" | grep -i "wgmma" | grep -qi "serializ" && { echo "FAIL wgmma serialised in $1:"; echo "$2" | grep -i wgmma; }; }
mkdir -p "$out"
status=0
printf '%-18s %-9s %6s %8s %s\n' kernel chip regs spills "compile"
for spec in "$specs"/*.attn; do
  set_d=()
  "$attnc" "$spec" --emit=ast | grep -q "^  dim d :" && set_d=(--set d=128)
  for chip in sm_80 sm_90a; do
    dir="$out/$chip"
    if ! log=$("$attnc" compile "$spec" --emit=ptx --chip=$chip "${set_d[@]}" -o "$dir" 2>&1); then
      echo "FAIL compile $spec ($chip):"; echo "$log"; status=1; continue
    fi
    ms=$(echo "$log" | sed -n 's/.*(\([0-9]*\) ms).*/\1/p' | head -1)
    name=$(basename "$spec" .attn)
    for ptx in "$dir"/$name*.ptx; do
      if ! info=$("$ptxas" -arch=sm_90a -v "$ptx" -o /dev/null 2>&1); then
        echo "FAIL ptxas $ptx:"; echo "$info"; status=1; continue
      fi
      serialised "$ptx" "$info" && status=1
      regs=$(echo "$info" | sed -n 's/.*Used \([0-9]*\) registers.*/\1/p')
      spills=$(echo "$info" | sed -n 's/.*, \([0-9]*\) bytes spill loads.*/\1/p')
      printf '%-18s %-9s %6s %8s %s ms\n' "$(basename "$ptx" .ptx)" "$chip" "$regs" "$spills" "$ms"
    done
  done
  # The backward as sm_80 and sm_90a build it (dQ kernel), and as sm_90a with dQ by atomics.
  for config in "sm_80" "sm_90a" "sm_90a --dq-atomic"; do
    read -r chip extra <<< "$config"
    dir="$out/grad-$chip${extra:+-atomic}"
    if ! log=$("$attnc" compile "$spec" --emit=ptx --backward --chip=$chip $extra "${set_d[@]}" -o "$dir" 2>&1); then
      # no backward at all (recurrences, decode-only variants), or none by atomics
      refused="attn-grad: no backward for"
      [ -n "$extra" ] && refused="$refused|the CUDA backward of (a forget gate|row norms|several scores)"
      echo "$log" | grep -qE "$refused" ||
        { echo "FAIL backward $spec ($config):"; echo "$log"; status=1; }
      continue
    fi
    name=$(basename "$spec" .attn)
    for ptx in "$dir"/${name}*_grad.ptx; do
      if ! info=$("$ptxas" -arch=sm_90a -v "$ptx" -o /dev/null 2>&1); then
        echo "FAIL ptxas $ptx:"; echo "$info"; status=1; continue
      fi
      serialised "$ptx" "$info" && status=1
      echo "$info" | sed -n "s/.*Compiling entry function '\([a-z0-9_]*\)'.*/\1/p" | paste - <(
        echo "$info" | sed -n 's/.*Used \([0-9]*\) registers.*/\1/p') <(
        echo "$info" | sed -n 's/.*, \([0-9]*\) bytes spill loads.*/\1/p') |
        while read -r entry regs spills; do
          printf '%-18s %-9s %6s %8s backward %s\n' "$entry" "$chip" "$regs" "$spills" "$extra"
        done
    done
  done
done
exit $status

#!/usr/bin/env bash
# One lease on a GPU host with no LLVM: unpack the self-contained attnc (built here with
# -DATTNC_STATIC_LLVM=ON, carried xz'd in .device/bin), compile every spec there, measure JIT
# latency, run the GPU tests + memcheck (scripts/gpu.sh), then the benchmark.
#   usage: bench/device_run.sh [tests|bench|all|coverage] [bench args...]
#   coverage: f16 and sm_90a kernels and the JIT API on the GPU, and block-q=128 timings.
#   tune: variant-suite timings of the default kernels against other compile options.
#   decode / decode-tests: decode kernels under several options, (the GPU tests,) bench/decode.py.
#   recurrent: bench/recurrent.py against flash-linear-attention (fla-core and einops wheels
#   carried in .device/wheels, unpacked into .device/pylib: the GPU host has no network);
#   recurrent-tests runs the recurrence kernels' GPU tests and memcheck first.
#   grad: the CUDA backward's GPU tests (kernels and torch autograd), sanitizers and
#   bench/backward.py (.device/kernels-grad).
#   ab-tests / ab-bench / ab-recurrent: kernels compiled here (scripts/compile_kernels.sh into
#   .device/kernels, the earlier compiler's into .device/kernels-before), no static attnc needed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd); cd "$root"
mode=${1:-all}; shift || true
out=${OUT:-/tmp/attnc-out}; mkdir -p "$out"
if [ "$mode" = grad ]; then
  # The CUDA backward: kernels compiled here with `scripts/compile_kernels.sh .device/kernels-grad
  # --backward` (carry .device/kernels-grad); GPU tests against the reference's autograd,
  # compute-sanitizer on the small shapes, then bench/backward.py beside SDPA and FlexAttention.
  nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader | tee "$out/device.txt"
  (cmake -S runtime -B build-rt -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C build-rt) \
    > "$out/build.log" 2>&1 || { tail -n 20 "$out/build.log"; exit 1; }
  export ATTNC_RUNTIME_LIB=$root/build-rt/libattnc_runtime.so
  export PYTHONPATH=$root/python:$root/tests/gpu ATTNC_GRAD_KERNEL_DIR=$root/.device/kernels-grad
  python3 -m pytest -q -p no:cacheprovider --tb=line tests/gpu/test_backward.py > "$out/grad.log" 2>&1
  grep -E "passed|failed" "$out/grad.log" | tail -n 2
  # torch autograd through attnc.torch: reference gradients, torch.compile, CUDA graphs, training
  python3 -m pytest -q -p no:cacheprovider --tb=short -rs tests/gpu/test_autograd.py \
    > "$out/autograd.log" 2>&1
  grep -E "passed|failed|training loss" "$out/autograd.log" | tail -n 3
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck --error-exitcode 3 \
    python3 -m pytest -q -p no:cacheprovider tests/gpu/test_backward.py -k "77x65 or 1x1" \
    > "$out/memcheck.log" 2>&1; echo "memcheck exit $?"
  for tool in racecheck synccheck; do
    compute-sanitizer --tool $tool --error-exitcode 3 python3 -m pytest -q -p no:cacheprovider \
      tests/gpu/test_backward.py -k "77x65 and (causal_d64 or alibi or gqa or relative_bias)" \
      > "$out/$tool.log" 2>&1; echo "$tool exit $?"
  done
  python3 bench/backward.py --kernels "$root/.device/kernels-grad" "$@" > "$out/bench.log" 2>&1
  tail -n 12 "$out/bench.log"; exit 0
fi
if [ "$mode" = ab-tests ] || [ "$mode" = ab-bench ] || [ "$mode" = ab-recurrent ]; then
  # A compiler change checked without a static attnc: kernels compiled on the build machine
  # (.device/kernels: after; .device/kernels-before: before; -f16, -quadratic: more paths).
  # ab-tests: GPU tests + memcheck on the new kernels; ab-bench: before vs after in one process
  # per benchmark, next to the anchors. Everything lands in $OUT/ab-<mode>.tgz.
  nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader | tee "$out/device.txt"
  export ATTNC_KERNEL_DIR=$root/.device/kernels
  # At most 8 files come back from a lease: the logs travel as one archive.
  pack() { tar czf "/tmp/ab-$mode.tgz" -C "$out" . && find "$out" -type f -delete &&
           mv "/tmp/ab-$mode.tgz" "$out/"; }
  if [ "$mode" = ab-bench ]; then
    [ -d build-rt ] || OUT=$out bash scripts/gpu.sh > "$out/gpu.log" 2>&1
    export ATTNC_RUNTIME_LIB=$root/build-rt/libattnc_runtime.so PYTHONPATH=$root/python
    echo "== bench: after (attnc) vs before, anchors in the same process"
    python3 bench/bench.py --baseline "$root/.device/kernels-before" "$@" > "$out/bench.log" 2>&1
    grep -E "^\| (dense|variants|gqa)" "$out/bench.log" | cut -d'|' -f2-9
    echo "== decode: after vs before"
    python3 bench/decode.py --no-flex --tag decode-ab \
      --dirs "after=$root/.device/kernels,before=$root/.device/kernels-before" > "$out/decode.log" 2>&1
    grep -E "^\| b" "$out/decode.log" | head -n 20
    pack; exit 0
  fi
  if [ "$mode" = ab-recurrent ]; then
    # The recurrence kernels: GPU tests + memcheck of the new ones, then bench/recurrent.py with
    # the peers (fla-core/einops wheels in .device/wheels, mamba_ssm's Triton ops in
    # .device/mamba_src) and the before kernels timed beside the new, in one process.
    [ -d build-rt ] || OUT=$out bash scripts/gpu.sh > "$out/gpu.log" 2>&1
    export ATTNC_RUNTIME_LIB=$root/build-rt/libattnc_runtime.so PYTHONPATH=$root/python:$root/tests/gpu
    recs="linear_relu linear_elu retnet retnet_state mamba2_ssd mamba2_step gla mamba1_selective_scan"
    recs="$recs s4d recurrence_chain recurrence_gated_state recurrence_groups recurrence_scan"
    recs="$recs linear_elu_norm transnormer recurrence_normalised performer recurrence_projected"
    echo "== GPU tests of the recurrence kernels"
    python3 -m pytest -q -p no:cacheprovider --tb=short tests/gpu/test_specs.py \
      -k "$(echo $recs | sed 's/ / or /g')" > "$out/gpu-tests.log" 2>&1
    grep -E "^E |Error|FAILED|passed|failed" "$out/gpu-tests.log" | tail -n 30
    PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck --error-exitcode 3 \
      --print-limit 10 python3 tests/gpu/sanitize_one.py $recs > "$out/memcheck.log" 2>&1
    echo "memcheck exit $?"; tail -n 4 "$out/memcheck.log"
    for tool in racecheck synccheck; do  # shared-memory hazards of the chunk kernels' stages
      compute-sanitizer --tool $tool --error-exitcode 3 --print-limit 10 \
        python3 tests/gpu/sanitize_one.py retnet gla linear_elu_norm mamba2_step performer \
        > "$out/$tool.log" 2>&1
      echo "$tool exit $?"; tail -n 3 "$out/$tool.log"
    done
    pylib=/tmp/attnc-pylib; rm -rf "$pylib"; mkdir -p "$pylib"
    for w in "$root"/.device/wheels/*.whl; do [ -f "$w" ] && python3 -m zipfile -e "$w" "$pylib"; done
    [ -d "$root/.device/mamba_src" ] && cp -r "$root/.device/mamba_src/mamba_ssm" "$pylib/"
    PYTHONPATH=$root/python:$pylib python3 bench/recurrent.py --baseline "$root/.device/kernels-before" \
      --quadratic-dir "$root/.device/kernels-quadratic" "$@" > "$out/recurrent.log" 2>&1
    grep -E "^\| [a-z]" "$out/recurrent.log" | cut -d'|' -f2,4,7,8,9,12-14
    cp bench/results/"$(date +%F)"-*recurrent* "$out/" 2>/dev/null
    pack; exit 0
  fi
  OUT=$out bash scripts/gpu.sh > "$out/gpu.log" 2>&1; echo "gpu.sh exit $?"
  grep -E "passed|failed|FAILED|ERROR|gpu.sh:" "$out/gpu.log" | tail -n 15
  export ATTNC_RUNTIME_LIB=$root/build-rt/libattnc_runtime.so PYTHONPATH=$root/python:$root/tests/gpu
  for extra in f16 quadratic; do
    echo "== GPU tests, $extra kernels"
    ATTNC_KERNEL_DIR=$root/.device/kernels-$extra python3 -m pytest -q -p no:cacheprovider \
      --tb=short tests/gpu/test_specs.py -k "matches_reference or split_kv" > "$out/gpu-$extra.log" 2>&1
    grep -E "^E |FAILED|passed|failed" "$out/gpu-$extra.log" | tail -n 8
  done
  pack; exit 0
fi
bin=$root/.device/bin
for f in "$bin"/*.xz; do [ -f "$f" ] && xz -dkf "$f"; done
chmod +x "$bin/attnc"
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader | tee "$out/device.txt"
echo "== attnc on this host: $(ldd "$bin/attnc" | awk '{print $1}' | tr '\n' ' ')"

kernels=$root/.device/kernels; rm -rf "$kernels"; mkdir -p "$kernels"
echo "== compile every spec (spec -> PTX + manifest + torch reference) with the static attnc"
for spec in specs/*.attn bench/specs/*.attn tests/python/specs/recurrence_*.attn; do
  extra=(); "$bin/attnc" "$spec" --emit=ast | grep -q "^  dim d :" && extra=(--set d=128)
  "$bin/attnc" compile "$spec" --emit=ptx "${extra[@]}" -o "$kernels" 2>&1 | tee -a "$out/compile.log" \
    || echo "COMPILE FAILED: $spec"
done
export ATTNC_KERNEL_DIR=$kernels ATTNC_JIT_LIB=$bin/libattnc.so  # tests/gpu/test_jit.py uses it
python3 bench/compile_latency.py "$bin/libattnc.so" specs/*.attn --out "$kernels/compile_times.json" \
  2>&1 | tee "$out/compile-latency.log"
cp "$kernels/compile_times.json" "$out/" 2>/dev/null

if [ "$mode" = tests ] || [ "$mode" = all ]; then
  OUT=$out bash scripts/gpu.sh 2>&1 | tail -n 40
fi
build_runtime() {  # the runtime alone into build-rt; the GPU tests' environment
  local json_include=
  [ -f "$root/.device/include/nlohmann/json.hpp" ] && json_include=$root/.device/include
  { cmake -S runtime -B build-rt -G Ninja -DCMAKE_BUILD_TYPE=Release \
      ${json_include:+-DATTNC_JSON_INCLUDE="$json_include"} && ninja -C build-rt; } \
    >"$out/rt-build.log" 2>&1 || { tail -n 30 "$out/rt-build.log"; exit 1; }
  export ATTNC_RUNTIME_LIB=$root/build-rt/libattnc_runtime.so PYTHONPATH=$root/python:$root/tests/gpu
}
compile_dir() {  # compile_dir DIR attnc-options...: every spec into DIR
  local dir=$1; shift; rm -rf "$dir"; mkdir -p "$dir"
  for spec in specs/*.attn bench/specs/*.attn; do
    local extra=(); "$bin/attnc" "$spec" --emit=ast | grep -q "^  dim d :" && extra=(--set d=128)
    "$bin/attnc" compile "$spec" --emit=ptx "${extra[@]}" "$@" -o "$dir" >>"$out/compile.log" 2>&1 \
      || echo "COMPILE FAILED: $spec $*"
  done
}
if [ "$mode" = coverage ]; then
  [ -d build-rt ] || OUT=$out bash scripts/gpu.sh >/dev/null 2>&1
  export ATTNC_RUNTIME_LIB=$root/build-rt/libattnc_runtime.so PYTHONPATH=$root/python:$root/tests/gpu
  for flavour in "f16:--dtype=f16" "sm90a:--chip=sm_90a"; do
    name=${flavour%%:*}; compile_dir "$root/.device/kernels-$name" "${flavour#*:}"
    echo "== GPU tests, $name kernels"
    ATTNC_KERNEL_DIR=$root/.device/kernels-$name python3 -m pytest -q -p no:cacheprovider \
      tests/gpu/test_specs.py -k matches_reference 2>&1 | tail -n 3
  done
  echo "== GPU tests through the JIT API (libattnc.so)"
  ATTNC_JIT_LIB=$bin/libattnc.so python3 -m pytest -q -p no:cacheprovider tests/gpu/test_jit.py \
    2>&1 | tail -n 5
  compile_dir "$root/.device/kernels-bq128" --block-q=128
  echo "== block-q 128 (8 warps) vs 64"
  for dir in kernels kernels-bq128; do
    ATTNC_KERNEL_DIR=$root/.device/$dir python3 bench/bench.py --quick --no-flex \
      --suites variants --tag "$dir" 2>&1 | grep -E "^\| variants" | cut -d'|' -f3,4
  done
fi
if [ "$mode" = tune ]; then
  [ -d build-rt ] || OUT=$out bash scripts/gpu.sh >/dev/null 2>&1
  export ATTNC_RUNTIME_LIB=$root/build-rt/libattnc_runtime.so PYTHONPATH=$root/python
  for flavour in "default:" "bk32:--block-k=32" "sm90a:--chip=sm_90a" "bk32-sm90a:--block-k=32 --chip=sm_90a"; do
    name=${flavour%%:*}; opts=${flavour#*:}
    [ "$name" = default ] || compile_dir "$root/.device/kernels-$name" $opts
    dir=$root/.device/kernels; [ "$name" = default ] || dir=$root/.device/kernels-$name
    echo "== $name ($opts)"
    ATTNC_KERNEL_DIR=$dir python3 bench/bench.py --quick --no-flex --suites variants,gqa \
      --tag "tune-$name" 2>&1 | grep -E "^\| (variants|gqa)" | cut -d'|' -f3,4,11
  done
fi
if [ "$mode" = decode ] || [ "$mode" = decode-tests ]; then
  # Decode kernels under several compile options, then (decode-tests) the GPU tests, then the
  # decode benchmark with every option side by side.
  build_runtime
  dirs="default=$kernels"
  for flavour in "bk64:--block-k=64" \
                 "p64bk64:--page-size=64 --block-k=64" "p256bk64:--page-size=256 --block-k=64"; do
    name=${flavour%%:*}; d=$root/.device/kernels-$name; rm -rf "$d"; mkdir -p "$d"
    for spec in specs/gqa_decode.attn specs/paged_decode.attn specs/int8_kv_decode.attn \
                specs/int8_group_decode.attn specs/fp8_paged_decode.attn specs/unified_max_decode.attn \
                specs/int4_kv_decode.attn specs/int4_paged_decode.attn specs/int8_paged_decode.attn \
                specs/fp8_kv_decode.attn; do
      "$bin/attnc" compile "$spec" --emit=ptx ${flavour#*:} -o "$d" >>"$out/compile.log" 2>&1 \
        || echo "COMPILE FAILED: $spec ${flavour#*:}"
    done
    dirs="$dirs,$name=$d"
  done
  if [ "$mode" = decode-tests ]; then
    echo "== GPU tests (default kernels)"
    python3 -m pytest -q -p no:cacheprovider --tb=line tests/gpu/test_specs.py tests/gpu/test_runtime.py \
      > "$out/gpu-tests.log" 2>&1; grep -E "^E |Error|FAILED|passed|failed" "$out/gpu-tests.log" | tail -n 40
    for name in bk64 p64bk64; do
      echo "== GPU tests, decode kernels $name"
      ATTNC_KERNEL_DIR=$root/.device/kernels-$name python3 -m pytest -q -p no:cacheprovider \
        tests/gpu/test_specs.py -k "matches_reference" 2>&1 | tail -n 3
    done
  fi
  python3 bench/decode.py --dirs "$dirs" "$@" 2>&1 | tee "$out/decode.log" | tail -n 30
  cp bench/results/*decode*.md "$out/" 2>/dev/null
fi
if [ "$mode" = recurrent ] || [ "$mode" = recurrent-tests ]; then
  if [ "$mode" = recurrent-tests ]; then  # the recurrence kernels' GPU tests and memcheck only
    build_runtime
    recs="linear_relu linear_elu retnet retnet_state mamba2_ssd mamba2_step gla mamba1_selective_scan"
    recs="$recs s4d recurrence_chain recurrence_gated_state recurrence_groups recurrence_scan"
    recs="$recs linear_elu_norm transnormer recurrence_normalised performer recurrence_projected"
    echo "== GPU tests of the recurrence kernels"
    python3 -m pytest -q -p no:cacheprovider --tb=short tests/gpu/test_specs.py tests/gpu/test_jit.py \
      -k "$(echo $recs | sed 's/ / or /g')" > "$out/gpu-tests.log" 2>&1
    grep -E "^E |Error|FAILED|passed|failed|rel " "$out/gpu-tests.log" | tail -n 40
    PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck --error-exitcode 3 \
      --print-limit 10 python3 tests/gpu/sanitize_one.py $recs 2>&1 | tail -n 12
  fi
  [ -d build-rt ] || OUT=$out bash scripts/gpu.sh >/dev/null 2>&1
  pylib=$root/.device/pylib; rm -rf "$pylib"; mkdir -p "$pylib"
  for w in "$root"/.device/wheels/*.whl; do [ -f "$w" ] && python3 -m zipfile -e "$w" "$pylib"; done
  # mamba_ssm's Triton SSD kernels: its ops/triton and utils sources (the CUDA extensions are
  # not needed for them), carried in .device/mamba_src.
  [ -d "$root/.device/mamba_src" ] && cp -r "$root/.device/mamba_src/mamba_ssm" "$pylib/"
  quad=$root/.device/kernels-quadratic; rm -rf "$quad"; mkdir -p "$quad"
  for spec in specs/linear_relu.attn specs/linear_elu.attn specs/retnet.attn; do
    "$bin/attnc" compile "$spec" --emit=ptx --no-chunk -o "$quad" >>"$out/compile.log" 2>&1 \
      || echo "COMPILE FAILED: $spec --no-chunk"
  done
  ATTNC_RUNTIME_LIB=$root/build-rt/libattnc_runtime.so PYTHONPATH=$root/python:$pylib \
    python3 bench/recurrent.py --dir "$kernels" --quadratic-dir "$quad" "$@" 2>&1 \
    | tee "$out/recurrent.log" | tail -n 30
  # RECURRENT_FLAVOURS="name:attnc options ..." (space-separated, options joined by commas):
  # the same specs compiled otherwise, attnc's kernels only, for the tuning notes.
  for flavour in ${RECURRENT_FLAVOURS:-}; do
    name=${flavour%%:*}; opts=$(echo "${flavour#*:}" | tr ',' ' ')
    d=$root/.device/kernels-$name; rm -rf "$d"; mkdir -p "$d"
    for spec in specs/linear_relu.attn specs/linear_elu.attn specs/retnet.attn specs/gla.attn \
                specs/mamba2_ssd.attn specs/mamba2_step.attn; do
      "$bin/attnc" compile "$spec" --emit=ptx $opts -o "$d" >>"$out/compile.log" 2>&1 \
        || echo "COMPILE FAILED: $spec $opts"
    done
    echo "== flavour $name ($opts)"
    ATTNC_RUNTIME_LIB=$root/build-rt/libattnc_runtime.so PYTHONPATH=$root/python:$pylib \
      python3 bench/recurrent.py --dir "$d" --no-peers --tag "recurrent-$name" "$@" 2>&1 \
      | grep -E "^\| (linear|retnet|mamba|gla)" | cut -d'|' -f2,7
  done
fi
if [ "$mode" = bench ] || [ "$mode" = all ]; then
  [ -d build-rt ] || OUT=$out bash scripts/gpu.sh >/dev/null 2>&1
  ATTNC_RUNTIME_LIB=$root/build-rt/libattnc_runtime.so PYTHONPATH=$root/python \
    python3 bench/bench.py "$@" 2>&1 | tee "$out/bench.log" | tail -n 60
  cp bench/results/*.md "$out/" 2>/dev/null
fi

#!/usr/bin/env bash
# libFuzzer runs (docs/fuzzing.md): builds the fuzz targets with clang-22 (ASan + UBSan, every
# library instrumented) in build-fuzz, then runs each for SECONDS, seeded with the specs, the
# front-end error tests and manifests; the corpus grows in build-fuzz/corpus. A crash, a
# sanitizer report, a timeout or an out-of-memory fails the script and leaves the input in
# build-fuzz/artifacts.
#   usage: scripts/fuzz.sh [SECONDS (default 60)] [frontend|compile|manifest ...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frontend compile manifest)
bash "$root/scripts/setup.sh"
# libFuzzer comes with clang; the sanitizer runtimes (ASan, UBSan) with libclang-rt-22-dev, which
# clang-22 only recommends.
if [ ! -x /usr/lib/llvm-22/bin/clang++ ] || ! dpkg-query -W -f='${Status}' libclang-rt-22-dev 2>/dev/null |
     grep -q "install ok installed"; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends clang-22 \
    libclang-rt-22-dev
fi
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.ccache} CCACHE_BASEDIR=${CCACHE_BASEDIR:-$root}
if [ ! -f "$build/build.ninja" ]; then
  cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DATTNC_FUZZ=ON \
    -DBUILD_TESTING=OFF -DCMAKE_C_COMPILER=/usr/lib/llvm-22/bin/clang \
    -DCMAKE_CXX_COMPILER=/usr/lib/llvm-22/bin/clang++ -DLLVM_USE_LINKER=lld > "$build.cmake.log" 2>&1 ||
    { cat "$build.cmake.log"; exit 1; }
fi
cmake --build "$build" --target "${targets[@]/#/attnc-fuzz-}" -- -j"$(nproc)"

seeds=$build/seeds
mkdir -p "$seeds/spec" "$seeds/manifest" "$build/artifacts"
cp "$root"/specs/*.attn "$root"/bench/specs/*.attn "$root"/tests/python/specs/*.attn "$seeds/spec/"
find "$root/tests/lit/frontend" -name '*.attn' -exec cp {} "$seeds/spec/" \; 2>/dev/null || true
cp "$root"/tests/fuzz/seeds/manifest/* "$seeds/manifest/"
status=0
for t in "${targets[@]}"; do
  corpus=$build/corpus/$t
  mkdir -p "$corpus"
  seed=$seeds/spec
  [ "$t" = manifest ] && seed=$seeds/manifest
  log=$build/fuzz-$t.log
  # Leaks are not checked: MLIR keeps process-wide registries alive on purpose.
  if ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
     "$build/bin/attnc-fuzz-$t" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 \
       -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" "$corpus" "$seed" > "$log" 2>&1; then
    echo "fuzz $t: $(grep -E "^stat::number_of_executed_units" "$log" | awk '{print $2}') runs in ${seconds} s," \
         "$(grep -oE "cov: [0-9]+" "$log" | tail -n 1), corpus $(ls "$corpus" | wc -l), no crash"
  else
    echo "fuzz $t: FAILED (log $log, inputs in $build/artifacts)"; tail -n 30 "$log"; status=1
  fi
done
exit $status

#!/usr/bin/env bash
# What a C++ host gets from `cmake --install`: installs the build into a fresh prefix, builds
# examples/host against it through find_package(attnc CONFIG REQUIRED), runs it (the CPU back
# end: a JIT-compiled variant checked against float64), and checks the installed attnc tool.
#   usage: check_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1; src=$2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
for f in bin/attnc lib/libattnc.so lib/libattnc_runtime.so include/attnc/attnc.hpp \
         include/attnc/attnc.h include/attnc/attnc_runtime.h lib/cmake/attnc/attncConfig.cmake; do
  [ -e "$work/prefix/$f" ] || { echo "check_install: $f was not installed"; exit 1; }
done
generator=(); command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$src/examples/host" -B "$work/host" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/host" > "$work/build.log" || { cat "$work/build.log"; exit 1; }
"$work/host/attnc_host"
# The installed tool runs from its prefix (its run path reaches LLVM's shared library).
"$work/prefix/bin/attnc" "$src/specs/alibi.attn" --emit=ast > /dev/null
echo "check_install: installed, found by find_package, example built and run"

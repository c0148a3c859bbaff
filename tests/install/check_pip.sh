#!/usr/bin/env bash
# What `pip install .` gives a user: a fresh virtual environment, the package built from this
# checkout (scikit-build-core; objects from ccache after scripts/build.sh), then -- with no
# ATTNC_* variable set -- `import attnc` finds its own libraries, compiles a spec for the CPU
# back end and for CUDA (PTX), and the `attnc` command runs.
#   usage: check_pip.sh SOURCE_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.ccache} CCACHE_BASEDIR=${CCACHE_BASEDIR:-$src}
start=$(date +%s)
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip >/dev/null
if ! "$work/venv/bin/python" -m pip install "$src" > "$work/pip.log" 2>&1; then
  tail -n 40 "$work/pip.log"; echo "check_pip: pip install failed"; exit 1
fi
cd "$work"  # not the checkout: the installed package, not python/attnc
env -u ATTNC_JIT_LIB -u ATTNC_RUNTIME_LIB -u PYTHONPATH "$work/venv/bin/python" - "$src" <<'PY'
import sys
from pathlib import Path
import attnc
import attnc.runtime

import importlib.metadata
src = Path(sys.argv[1])
assert attnc.__version__ == importlib.metadata.version("attnc"), attnc.__version__
package = Path(attnc.__file__).parent
assert package.is_relative_to(Path(sys.prefix)), f"imported {package}, not the installed package"
assert attnc.runtime.library_path().parent == package / "lib", attnc.runtime.library_path()
spec = (src / "specs" / "alibi.attn").read_text()
host = attnc.compile(spec, target="cpu", cache_dir="")
assert host.manifest["arch"] == "host", host.manifest["arch"]
kernel = attnc.compile(spec, dims="d=128", chip="sm_90a", cache_dir="")
assert ".entry alibi(" in kernel.ptx and "wgmma.mma_async" in kernel.ptx
print(f"check_pip: import attnc from {package}: cpu and sm_90a kernels compiled")
PY
"$work/venv/bin/attnc" "$src/specs/alibi.attn" --emit=ast > /dev/null
echo "check_pip: pip install ., import, the attnc command: ok ($(( $(date +%s) - start )) s)"

"""The docs' code runs as written: docs/getting-started.md's training script (its Python block,
unchanged, on the cpu target of libattnc.so with an empty compile cache, fewer steps through its
STEPS variable) and every spec of docs/from-flex.md (`attnc run`: compiled for the CPU back end
and checked against the float64 reference on random inputs, forward and, through central
differences, backward).

CTest passes the libraries and the attnc binary it built ($ATTNC_JIT_LIB, $ATTNC_RUNTIME_LIB,
$ATTNC_BIN). As a script: exits 77 (skipped) when torch or pytest is missing.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":
    import script_main  # skipped (77) without the modules the tests need
    script_main.run(__file__)

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
ATTNC_BIN = Path(os.environ.get("ATTNC_BIN", REPO / "build" / "bin" / "attnc"))


def blocks(page, lang):
    """The fenced code blocks of a page whose info string is `lang` ("" for plain fences)."""
    out, current = [], None
    for line in (DOCS / page).read_text().splitlines(keepends=True):
        if line.startswith("```"):
            if current is None:
                current = (line[3:].strip(), [])
            else:
                if current[0] == lang:
                    out.append("".join(current[1]))
                current = None
        elif current is not None:
            current[1].append(line)
    return out


def getting_started_script():
    scripts = [b for b in blocks("getting-started.md", "python")
               if b.startswith("# getting_started.py")]
    assert len(scripts) == 1, "getting-started.md has one script block"
    return scripts[0]


def test_getting_started_script_runs_as_written(tmp_path):
    pytest.importorskip("torch")
    script = tmp_path / "getting_started.py"
    script.write_text(getting_started_script())
    env = dict(os.environ, STEPS="40", ATTNC_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(REPO / "python"), CUDA_VISIBLE_DEVICES="")
    run = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "step 39: loss" in run.stdout and "on cpu" in run.stdout, run.stdout


def test_the_page_shows_the_spec_the_script_runs():
    shown = [b for b in blocks("getting-started.md", "") if b.lstrip().startswith("variant alibi")]
    script = getting_started_script()
    spec = re.search(r'SPEC = """\n(.*?)"""', script, re.S).group(1)
    assert shown and shown[0].strip() == spec.strip()


FLEX_SPECS = blocks("from-flex.md", "attn")


@pytest.mark.parametrize("spec", FLEX_SPECS, ids=[re.search(r"variant (\w+)", s).group(1)
                                                  for s in FLEX_SPECS])
def test_from_flex_specs_match_their_reference(spec, tmp_path):
    path = tmp_path / "spec.attn"
    path.write_text(spec)
    for extra in ([], ["--backward", "--sizes=b=1,h=4,i=9,j=9,d=8"]):
        run = subprocess.run([str(ATTNC_BIN), "run", str(path), "--dtype=f32", *extra],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0 and "FAIL" not in run.stdout, run.stdout + run.stderr
        assert run.stdout.count("PASS") == (2 if extra else 1), run.stdout


def test_from_flex_has_every_idiom():
    names = [re.search(r"variant (\w+)", s).group(1) for s in FLEX_SPECS]
    assert len(names) == len(set(names)) >= 10, names

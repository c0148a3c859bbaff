"""bench/plot.py draws the committed results of bench.py (TFLOP/s against sequence length, bars
for single-length cases) and bench/decode.py (GB/s against the copy ceiling), and
bench.write_report writes the JSON and the PNG beside the report and links it; results it does
not draw are reported, not an error. No GPU needed. As a script: exits 77 (skipped) when
matplotlib or pytest is missing.
"""
import sys
from pathlib import Path

if __name__ == "__main__":
    import script_main  # skipped (77) without the modules the tests need
    script_main.run(__file__, ("pytest", "matplotlib"))

import json

import pytest

pytest.importorskip("matplotlib")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
import plot  # noqa: E402

RESULTS = REPO / "bench" / "results"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["2026-12-04-diet-vs-head", "2026-12-04-spec-language",
                                  "2026-12-04-decode-diet"])
def test_committed_results_plot(name, tmp_path):
    out = plot.plot(RESULTS / f"{name}.json", tmp_path / f"{name}.png")
    data = out.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000


def test_rows_group_by_sequence_length():
    rows = json.loads((RESULTS / "2026-12-04-diet-vs-head.json").read_text())
    assert plot.parse_config(rows[0]["config"]) == ("mha_d64", 1024)
    names = plot.implementations(rows, {"suite", "config", "flops"})
    assert names[:3] == ["attnc", "flash", "cudnn"] and "attnc_rel" not in names


def test_other_results_are_refused(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"retnet": {"attnc_ms": 1.0}}))
    with pytest.raises(ValueError, match="neither bench.py rows"):
        plot.plot(path)


def test_write_report_links_the_plot(tmp_path, monkeypatch):
    import bench
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    monkeypatch.setattr(bench, "device_line", lambda: "a test device")
    monkeypatch.delenv("OUT", raising=False)
    rows = json.loads((RESULTS / "2026-12-04-spec-language.json").read_text())
    bench.write_report("# report\n", rows, "plot-test")
    written = sorted(p.name for p in (tmp_path / "bench" / "results").iterdir())
    stem = written[0].rsplit(".", 1)[0]
    assert written == [f"{stem}.json", f"{stem}.md", f"{stem}.png"]
    assert f"![{stem}]({stem}.png)" in (tmp_path / "bench" / "results" / f"{stem}.md").read_text()

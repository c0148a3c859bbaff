"""Shared by the one-shape comparison benches (bench/diff.py, bench/cosine.py): kernels loaded
from $ATTNC_KERNEL_DIR, inputs laid out in a kernel's storage order, a table of timed rows with
notes for peers that cannot run, and the report under bench/results/. Protocol: METHOD.md."""
import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "bench"))
import attnc  # noqa: E402
from bench import device_line, time_ms, write_report  # noqa: E402


def parse_args(doc, tag):
    """--tag (the report's name), --repeats, --no-flex."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--tag", default=tag)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--no-flex", action="store_true")
    parser.add_argument("--backward", action="store_true",
                        help="time training steps (forward + backward) where the bench has them")
    return parser.parse_args()


def load_kernels():
    """Every kernel of $ATTNC_KERNEL_DIR (default .device/kernels), by name."""
    kernel_dir = Path(os.environ.get("ATTNC_KERNEL_DIR", ROOT / ".device" / "kernels"))
    return attnc.load_dir(kernel_dir, on_error=lambda name, e: print(f"skipped {name}: {e}"))


def storage(kernel, canonical):
    """The kernel's inputs and params in its storage order, contiguous, plus its outputs."""
    args = {}
    for a in kernel.manifest["args"]:
        if a["kind"] == "input":
            perm = [a["dims"].index(n) for n in a["storage_dims"]]
            args[a["name"]] = canonical[a["name"]].permute(*perm).contiguous()
        elif a["kind"] == "param":
            args[a["name"]] = canonical[a["name"]]
    args.update(kernel.allocate_outputs(**args))
    return args


class Table:
    """Timed rows (name, ms, TFLOP/s) and notes; a peer that cannot run leaves a note."""

    def __init__(self, repeats, flops):
        self.repeats, self.flops = repeats, flops
        self.rows, self.notes = [], []

    def row(self, name, fn, flops=None):
        try:
            ms = time_ms(fn, self.repeats)
            self.rows.append((name, ms, (flops or self.flops) / ms / 1e9))
        except Exception as e:  # noqa: BLE001  (a peer that cannot run this shape: say why)
            self.notes.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")

    def report(self, title, intro, base_name, ratio_header, tag):
        """The markdown table (each row's time against `base_name`'s), printed and written."""
        base = dict((n, m) for n, m, _ in self.rows).get(base_name)
        lines = [title, "", f"Device: {device_line()}", "", intro, "",
                 f"| kernel | ms | TFLOP/s | {ratio_header} |", "|---|---|---|---|"]
        for name, m, tf in self.rows:
            ratio = f"{base / m:.2f}" if base else ""
            lines.append(f"| {name} | {m:.3f} | {tf:.0f} | {ratio} |")
        lines += [""] + [f"- {n}" for n in self.notes]
        text = "\n".join(lines) + "\n"
        print(text)
        write_report(text, {"rows": self.rows, "notes": self.notes}, tag)

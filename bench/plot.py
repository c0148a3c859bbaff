"""PNG plots of bench results (matplotlib), beside the report they illustrate.

Reads the JSON a benchmark wrote and draws, per suite:
  - bench.py rows (a list of {"suite", "config": "<case> b.. h.. s<len> d..", "flops", then one
    time in ms per implementation: "attnc", "flash", "cudnn", "flex", a baseline ...): for a
    case timed at several sequence lengths, TFLOP/s against the sequence length, one line per
    implementation; the cases timed at one length, grouped bars;
  - bench/decode.py results (a dict of "<shape>" -> {"kv_bytes", implementation -> ms, with
    ":err" / ":splits" side entries}): GB/s of K + V read per implementation and shape, against
    the device's copy ceiling (a dashed line).
Implementations whose entry is not a number (failed, wrong, not run) are left out of the plot.

  usage: python3 bench/plot.py RESULTS.json [--out PLOT.png] [--title TEXT]
         (default out: the JSON's path with .png)
"""
import argparse
import json
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

COPY_CEILING = 4240.0  # GB/s, device-to-device copy on the H200 (BENCH.md, 2026-12-03)
ORDER = ["attnc", "flash", "cudnn", "flex"]  # attnc first, then the anchors of BENCH.md
SIDE = re.compile(r".*(_rel|:err|:splits|:S\d+)$")


def implementations(rows, skip):
    """Implementation names with a numeric time in any row, attnc and the anchors first."""
    found = []
    for row in rows:
        for key, value in row.items():
            if key in skip or SIDE.match(key) or not isinstance(value, (int, float)):
                continue
            if key not in found:
                found.append(key)
    return sorted(found, key=lambda k: (ORDER.index(k) if k in ORDER else len(ORDER), k))


def parse_config(config):
    """'causal_d128 b2 h16 s8192 d128' -> ('causal_d128', 8192)."""
    parts = config.split()
    seq = next((int(p[1:]) for p in parts[1:] if re.fullmatch(r"s\d+", p)), None)
    return parts[0], seq


def plot_rows(rows, out, title):
    """bench.py's rows: TFLOP/s per implementation, lines over sequence lengths or bars."""
    suites = sorted({r.get("suite", "") for r in rows})
    panels = []  # (suite, case or None, rows)
    for suite in suites:
        cases = {}
        for row in rows:
            if row.get("suite", "") == suite:
                cases.setdefault(parse_config(row["config"])[0], []).append(row)
        single = []
        for case, group in cases.items():
            if len({parse_config(r["config"])[1] for r in group}) > 1:
                panels.append((suite, case, group))
            else:
                single.extend(group)
        if single:
            panels.append((suite, None, single))
    names = implementations(rows, {"suite", "config", "flops"})
    cols = min(3, len(panels))
    fig, axes = plt.subplots(math.ceil(len(panels) / cols), cols, squeeze=False,
                             figsize=(5.2 * cols, 3.8 * math.ceil(len(panels) / cols)))
    colors = {n: plt.cm.tab10(i % 10) for i, n in enumerate(names)}
    for ax, (suite, case, group) in zip(axes.flat, panels):
        tflops = lambda row, n: (row["flops"] / row[n] / 1e9  # noqa: E731
                                 if isinstance(row.get(n), (int, float)) and row[n] > 0 else None)
        if case:  # TFLOP/s against the sequence length
            group = sorted(group, key=lambda r: parse_config(r["config"])[1])
            seqs = [parse_config(r["config"])[1] for r in group]
            for n in names:
                pts = [(s, tflops(r, n)) for s, r in zip(seqs, group) if tflops(r, n)]
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=n, color=colors[n],
                            linewidth=2.5 if n == "attnc" else 1.5)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("sequence length")
            ax.set_title(f"{suite}: {case}", fontsize=10)
        else:  # one length per case: grouped bars
            width = 0.8 / max(1, len(names))
            for k, n in enumerate(names):
                xs = [x + k * width for x, r in enumerate(group) if tflops(r, n)]
                ys = [tflops(r, n) for r in group if tflops(r, n)]
                ax.bar(xs, ys, width, label=n, color=colors[n])
            ax.set_xticks([x + 0.4 - width / 2 for x in range(len(group))])
            ax.set_xticklabels([r["config"].split()[0] for r in group], rotation=30,
                               ha="right", fontsize=8)
            ax.set_title(suite, fontsize=10)
        ax.set_ylabel("TFLOP/s")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    legend = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.suptitle(title, y=0.995, fontsize=11)
    fig.legend(list(legend.values()), list(legend), loc="upper center", ncol=len(legend),
               frameon=False, bbox_to_anchor=(0.5, 0.965))
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_decode(results, out, title):
    """bench/decode.py's dict: GB/s of K + V per implementation and shape, and the ceiling."""
    shapes = list(results)
    names = implementations(results.values(), {"kv_bytes"})
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(min(16.0, 4 + 0.18 * len(shapes) * len(names)), 4.5))
    for k, n in enumerate(names):
        xs, ys = [], []
        for x, shape in enumerate(shapes):
            ms = results[shape].get(n)
            if isinstance(ms, (int, float)) and ms > 0:
                xs.append(x + k * width)
                ys.append(results[shape]["kv_bytes"] / ms / 1e6)
        ax.bar(xs, ys, width, label=n, color=plt.cm.tab20(k % 20))
    ax.axhline(COPY_CEILING, color="black", linestyle="--", linewidth=1,
               label=f"copy ceiling {COPY_CEILING:.0f} GB/s")
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(shapes))])
    ax.set_xticklabels(shapes)
    ax.set_ylabel("GB/s of K + V read")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot(path, out=None, title=None):
    """Plots one results file; returns the PNG's path."""
    path = Path(path)
    data = json.loads(path.read_text())
    out = Path(out) if out else path.with_suffix(".png")
    title = title or path.stem
    if isinstance(data, list) and data and "config" in data[0] and "flops" in data[0]:
        plot_rows(data, out, title)
    elif isinstance(data, dict) and data and all(
            isinstance(v, dict) and "kv_bytes" in v for v in data.values()):
        plot_decode(data, out, title)
    else:
        raise ValueError(f"{path}: neither bench.py rows nor bench/decode.py results")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--out", default=None)
    parser.add_argument("--title", default=None)
    args = parser.parse_args()
    print(f"wrote {plot(args.results, args.out, args.title)}")


if __name__ == "__main__":
    main()

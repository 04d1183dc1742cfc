"""Per-job run time and memory from Snakemake's benchmark files (results/benchmarks/**/*.tsv).

A benchmark file holds one row per repeat (columns s, h:m:s, max_rss, max_vms, ..., cpu_time; max_rss in
MB); the table has the mean over repeats. The job is the file's path under the directory without .tsv,
the rule its first component (the workflow names benchmark files benchmarks/<rule>[/<wildcards>].tsv).
Snakemake samples cpu_time and max_rss (every 1 s for 30 s, then every 30 s): wall time is exact, CPU time
can miss a job's last 30 s.
The summary holds the files present when it runs: in the workflow it runs after the metric and judge
tables, so nearly every job has finished by then.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rpm.analysis.common import AnalysisInputError, new_figure, numbers, read_table

RUNTIME_COLUMNS = ["job", "rule", "wall_seconds", "cpu_seconds", "max_rss_mb", "repeats"]
BENCHMARK_COLUMNS = ["s", "max_rss", "cpu_time"]


def read_benchmark(path) -> dict:
    """Mean wall seconds, CPU seconds and max RSS (MB) over the repeats of one benchmark file."""
    df = read_table(path, BENCHMARK_COLUMNS, sep="\t")
    out = {"repeats": len(df)}
    for key, col in (("wall_seconds", "s"), ("cpu_seconds", "cpu_time"), ("max_rss_mb", "max_rss")):
        v = numbers(df, col)
        out[key] = float(np.mean(v)) if np.isfinite(v).all() else math.nan  # an NA stays visible as NaN
    return out


def runtime_table(benchmarks_dir) -> list[dict]:
    root = Path(benchmarks_dir)
    if not root.is_dir():
        raise AnalysisInputError(f"{root}: no such benchmarks directory")
    files = sorted(root.rglob("*.tsv"))
    if not files:
        raise AnalysisInputError(f"{root}: holds no benchmark files (*.tsv)")
    rows = []
    for f in files:
        job = f.relative_to(root).with_suffix("").as_posix()
        rows.append({"job": job, "rule": job.split("/")[0], **read_benchmark(f)})
    return rows


def runtime_figure(rows: list[dict]):
    rows = sorted(rows, key=lambda r: -1 if math.isnan(r["wall_seconds"]) else r["wall_seconds"])
    fig, (ax1, ax2) = new_figure(1, 2, figsize=(12, 0.22 * len(rows) + 1.5), sharey=True)
    ys = np.arange(len(rows))
    ax1.barh(ys, [r["wall_seconds"] for r in rows], color="tab:blue", label="wall")
    ax1.barh(ys, [r["cpu_seconds"] for r in rows], color="tab:orange", alpha=0.6, height=0.4, label="CPU")
    ax1.set_yticks(ys)
    ax1.set_yticklabels([r["job"] for r in rows], fontsize=6)
    ax1.set_xlabel("seconds")
    ax1.legend(fontsize=7)
    total = np.nansum([r["wall_seconds"] for r in rows])
    ax1.set_title(f"run time per job ({len(rows)} jobs, total wall {total:.0f} s)", fontsize=9)
    ax2.barh(ys, [r["max_rss_mb"] for r in rows], color="tab:green")
    ax2.set_xlabel("max RSS (MB)")
    ax2.set_title("peak memory per job", fontsize=9)
    for ax in (ax1, ax2):
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig

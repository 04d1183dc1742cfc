"""Table 14: the time and cost of R-EMID against the LLM judge, both measured here.

R-EMID: the Snakemake benchmark files of the jobs that produce it (the reasoning traces, the log-prob
matrices, the R-EMI table), summed; n_samples = the (RPM, sample) responses scored (the `n` of every
R-EMI row of remi.csv). Tokens and calls are not metered for a local model: left empty.
Judge: the judge rule's benchmark files, summed, and the cost ledger (tokens in/out and calls,
summed over judges); n_samples = the responses judged (the `n_samples` of the chosen judge's rows).
"""

from __future__ import annotations

import math

import numpy as np

from rpm.analysis.common import (
    LEDGER_COLUMNS,
    SCORES_COLUMNS,
    AnalysisInputError,
    new_figure,
    numbers,
    only,
    read_table,
)
from rpm.analysis.runtime import read_benchmark
from rpm.metrics.tables import REMI_COLUMNS

TABLE14_COLUMNS = ["method", "n_samples", "wall_seconds", "cpu_seconds", "prompt_tokens", "completion_tokens", "calls"]


def _summed(files, what: str) -> tuple[float, float]:
    files = list(files)
    if not files:
        raise AnalysisInputError(f"no benchmark files given for {what}")
    b = [read_benchmark(f) for f in files]
    return (float(sum(x["wall_seconds"] for x in b)), float(sum(x["cpu_seconds"] for x in b)))


def _total(df, column) -> float:
    v = numbers(df, column)
    return float(v.sum())  # a NaN cell makes the total NaN: reported, not dropped


def table14(remid_benchmarks, judge_benchmarks, ledger_csv, remi_csv, scores_csv, *, judge: str = "ensemble",
            estimator: str | None = None) -> list[dict]:
    remi = only(only(read_table(remi_csv, REMI_COLUMNS), "estimator", estimator, "estimator"), "quantity", "R-EMI",
                "quantity")
    scores = only(read_table(scores_csv, SCORES_COLUMNS), "judge", judge, "judge")
    ledger = read_table(ledger_csv, LEDGER_COLUMNS)
    wall_r, cpu_r = _summed(remid_benchmarks, "R-EMID (--remid-benchmark)")
    wall_j, cpu_j = _summed(judge_benchmarks, "the judge (--judge-benchmark)")
    nan = math.nan
    return [
        {"method": "R-EMID", "n_samples": int(_total(remi, "n")), "wall_seconds": wall_r, "cpu_seconds": cpu_r,
         "prompt_tokens": nan, "completion_tokens": nan, "calls": nan},
        {"method": "judge", "n_samples": int(_total(scores, "n_samples")), "wall_seconds": wall_j, "cpu_seconds": cpu_j,
         "prompt_tokens": _total(ledger, "prompt_tokens"), "completion_tokens": _total(ledger, "completion_tokens"),
         "calls": _total(ledger, "calls")},
    ]


def table14_figure(rows: list[dict]):
    fig, (ax1, ax2) = new_figure(1, 2, figsize=(10, 4))
    names = [r["method"] for r in rows]
    xs = np.arange(len(rows))
    for k, (key, label) in enumerate((("wall_seconds", "wall"), ("cpu_seconds", "CPU"))):
        ax1.bar(xs - 0.2 + 0.4 * k, [r[key] for r in rows], 0.4, label=label)
        per_sample = [r[key] / r["n_samples"] if r["n_samples"] else math.nan for r in rows]
        ax2.bar(xs - 0.2 + 0.4 * k, per_sample, 0.4, label=label)
    for ax, title in ((ax1, "total seconds"), (ax2, "seconds per scored response")):
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{n}\n(n = {r['n_samples']})" for n, r in zip(names, rows)])
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Table 14: cost of R-EMID vs the LLM judge, measured", fontsize=10)
    fig.tight_layout()
    return fig

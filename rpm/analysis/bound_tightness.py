"""The empirical tightness of the Theorem 3.4 bound (bound.csv of `rpm bound`).

Figure 5a: over the (rpm, ID -> OOD) points, the correlation between the bound estimated on n samples
per side (the mean over the seeds of that size) and R-EMID on all samples, as n grows; beside it the
mean bound and the mean R-EMID per n (the paper: the bound "converges toward" R-EMID).
Figure 5b: the scatter of bound against R-EMID at one sample count (the paper: 100).
Table 13: the Pearson (and Spearman) correlation of Figure 5b per shift type.
"""

from __future__ import annotations

import math

import numpy as np

from rpm.analysis.common import (
    SHIFT_TITLES,
    AnalysisInputError,
    Points,
    join_points,
    new_figure,
    numbers,
    only,
    read_table,
)
from rpm.analysis.correlation import correlate, correlate_points, correlation_row
from rpm.analysis.plots import scatter_with_fit
from rpm.metrics.tables import BOUND_COLUMNS

FIG5A_COLUMNS = ["size", "mean_n_source", "n_points", "n_excluded", "n_seeds", "mean_bound", "mean_r_emid",
                 "pearson_r", "pearson_p", "pearson_ci_low", "pearson_ci_high",
                 "spearman_rho", "spearman_p", "spearman_ci_low", "spearman_ci_high"]
POINT_COLUMNS = ["rpm", "subset", "shift", "size", "bound", "r_emid", "included", "note"]
TABLE13_COLUMNS = ["shift", "size", "n", "pearson_r", "pearson_p", "pearson_ci_low", "pearson_ci_high",
                   "spearman_rho", "spearman_p", "spearman_ci_low", "spearman_ci_high"]


def read_bound(path, estimator: str | None = None):
    df = read_table(path, BOUND_COLUMNS)
    return only(df, "estimator", estimator, "estimator")


def sizes_in(df) -> list[str]:
    """The sample counts in the table, numeric ascending, "all" last."""
    sizes = list(dict.fromkeys(df["size"].tolist()))
    bad = [s for s in sizes if s != "all" and not s.isdigit()]
    if bad:
        raise AnalysisInputError(f"{df.attrs.get('path')}: size {bad[0]!r} is neither a count nor 'all'")
    return sorted(sizes, key=lambda s: (s == "all", int(s) if s.isdigit() else 0))


def bound_points(df, size: str, column: str = "bound") -> tuple[Points, int, float]:
    """Points (rpm, target): x = the bound at `size` averaged over seeds, y = R-EMID on all samples.
    Also returns the number of seeds and the mean samples per side."""
    sel = df[df["size"] == size]
    if sel.empty:
        raise AnalysisInputError(f"{df.attrs.get('path')}: no rows of size {size!r}; sizes: {sizes_in(df)}")
    b, r, n_src = numbers(sel, column), numbers(sel, "r_emid"), numbers(sel, "n_source")
    acc: dict[tuple[str, str], list] = {}
    for k, key in enumerate(zip(sel["rpm"], sel["target"])):
        acc.setdefault(key, []).append((b[k], r[k]))
    # A NaN bound of any seed makes the point's mean NaN: it is excluded and counted, not averaged away.
    x = {key: float(np.mean([v[0] for v in vals])) for key, vals in acc.items()}
    y = {key: float(np.mean([v[1] for v in vals])) for key, vals in acc.items()}
    n_seeds = max(len(v) for v in acc.values())
    pts = join_points(x, y, column, "R-EMID")
    return pts, n_seeds, float(np.nanmean(n_src)) if np.isfinite(n_src).any() else math.nan


def fig5a(df, *, column: str = "bound", n_boot: int = 1000, seed: int = 0, confidence: float = 0.95):
    rows, corr_rows = [], []
    for size in sizes_in(df):
        pts, n_seeds, n_src = bound_points(df, size, column)
        x, y = pts.arrays()
        c = correlate(x, y, n_boot=n_boot, seed=seed, confidence=confidence)
        corr_rows.append(correlation_row("fig5a", column, "R-EMID", f"size={size}", c))
        rows.append({"size": size, "mean_n_source": n_src, "n_points": c.n, "n_excluded": pts.n_excluded,
                     "n_seeds": n_seeds, "mean_bound": float(x.mean()) if x.size else math.nan,
                     "mean_r_emid": float(y.mean()) if y.size else math.nan,
                     **{k: v for k, v in corr_rows[-1].items() if k.startswith(("pearson", "spearman"))}})
    fig, (ax1, ax2) = new_figure(1, 2, figsize=(11, 4.2))
    labels = [f"{r['size']}" if r["size"] != "all" else f"all\n(~{r['mean_n_source']:.0f})" for r in rows]
    xs = np.arange(len(rows))
    for key, name, color in (("pearson", "Pearson r", "tab:blue"), ("spearman", "Spearman ρ", "tab:red")):
        stat = "pearson_r" if key == "pearson" else "spearman_rho"
        v = np.array([r[stat] for r in rows], dtype=float)
        lo = np.array([r[f"{key}_ci_low"] for r in rows], dtype=float)
        hi = np.array([r[f"{key}_ci_high"] for r in rows], dtype=float)
        ax1.plot(xs, v, marker="o", color=color, label=name)
        ax1.fill_between(xs, lo, hi, color=color, alpha=0.15)
    ax1.set_xticks(xs)
    ax1.set_xticklabels(labels)
    ax1.set_xlabel("samples per side used for the bound")
    ax1.set_ylabel("correlation of bound with R-EMID")
    ax1.set_title("(a) correlation as the sample count grows", fontsize=10)
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.plot(xs, [r["mean_bound"] for r in rows], marker="o", label=f"mean {column}")
    ax2.plot(xs, [r["mean_r_emid"] for r in rows], marker="s", label="mean R-EMID (all samples)")
    ax2.set_xticks(xs)
    ax2.set_xticklabels(labels)
    ax2.set_xlabel("samples per side used for the bound")
    ax2.set_title("mean bound and mean R-EMID over the points", fontsize=10)
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return rows, corr_rows, fig


def fig5b(df, size: str, *, column: str = "bound", n_boot: int = 1000, seed: int = 0, confidence: float = 0.95):
    """Rows of the points table, the overall correlation, and the scatter."""
    pts, _, n_src = bound_points(df, size, column)
    x, y = pts.arrays()
    c = correlate(x, y, n_boot=n_boot, seed=seed, confidence=confidence)
    rows = [{"size": size, "bound": r["x"], "r_emid": r["y"], **{k: r[k] for k in POINT_COLUMNS
                                                                 if k not in ("size", "bound", "r_emid")}}
            for r in pts.rows]
    fig, ax = new_figure(figsize=(5.5, 4.5))
    scatter_with_fit(ax, pts, c, title=f"(b) bound vs R-EMID, {size} samples per side (~{n_src:.0f})",
                     xlabel=f"R-EMID upper bound ({column})", ylabel="R-EMID")
    fig.tight_layout()
    return rows, c, fig


def table13(df, size: str, *, column: str = "bound", n_boot: int = 1000, seed: int = 0, confidence: float = 0.95):
    """Per shift type: correlation of bound and R-EMID at `size`; rows, correlation rows, bar figure."""
    pts, _, _ = bound_points(df, size, column)
    _, corr = correlate_points("table13", pts, n_boot=n_boot, seed=seed, confidence=confidence)
    corr = [r for r in corr if r["scope"] != "all"]
    rows = [{"shift": r["scope"], "size": size, **{k: r[k] for k in TABLE13_COLUMNS if k not in ("shift", "size")}}
            for r in corr]
    fig, ax = new_figure(figsize=(6, 4))
    shifts = [r["shift"] for r in rows]
    v = np.array([r["pearson_r"] for r in rows], dtype=float)
    err = np.array([[r["pearson_r"] - r["pearson_ci_low"], r["pearson_ci_high"] - r["pearson_r"]] for r in rows],
                   dtype=float).T.reshape(2, -1)
    # A percentile interval need not contain the point estimate (few points, few resamples): an error bar
    # cannot be negative, so such a side is drawn at zero length (the CSV keeps the interval as computed).
    ax.bar(np.arange(len(rows)), np.nan_to_num(v), yerr=np.clip(np.nan_to_num(err), 0, None), capsize=4,
           color=["tab:blue", "tab:orange", "tab:green", "0.5"][:len(rows)])
    for k, r in enumerate(rows):
        ax.text(k, 0, f"p={r['pearson_p']:.3g}\nn={r['n']}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(np.arange(len(rows)))
    ax.set_xticklabels([SHIFT_TITLES.get(s, s) for s in shifts], fontsize=8)
    ax.set_ylabel("Pearson r (bound, R-EMID)")
    ax.set_title(f"Table 13: per shift type, {size} samples per side; {pts.exclusion_note() or 'no exclusions'}",
                 fontsize=9)
    ax.axhline(0, color="black", lw=0.6)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return rows, corr, fig


"""Comparing the RPM training methods: Table 20 and Figure 6 (R-EMI per method and subset) and
Figure 7 (the R-EMID upper bound per method and ID -> OOD shift, lower is better)."""

from __future__ import annotations

import math

import numpy as np

from rpm.analysis.bound_tightness import read_bound
from rpm.analysis.common import (
    AnalysisInputError,
    metric_values,
    new_figure,
    numbers,
    split_rpm,
    subset_label,
    subset_order,
)
from rpm.analysis.plots import grouped_bars
from rpm.core.names import SUBSET_NAMES

FIG7_COLUMNS = ["base", "method", "rpm", "target", "shift", "label", "bound", "shift_term", "output_term", "r_emid"]


def table20_columns(subsets=SUBSET_NAMES) -> list[str]:
    return ["base", "method", *subsets, "avg", "n_missing"]


def table20(remi_csv, *, estimator: str | None = None, quantity: str = "R-EMI") -> list[dict]:
    """Methods as rows (grouped by base model), the 12 subsets as columns, and Avg. = the row mean over
    all 12 subsets (ID included, as the paper's Avg.). A missing or NaN cell leaves Avg. NaN and is
    counted in n_missing."""
    values = metric_values(remi_csv, quantity, estimator)
    unknown = sorted({s for _, s in values if s not in SUBSET_NAMES})
    if unknown:
        raise AnalysisInputError(f"{remi_csv}: unknown subset(s) {unknown}")
    rows = []
    for rpm in dict.fromkeys(r for r, _ in values):
        base, method = split_rpm(rpm)
        cells = {s: values.get((rpm, s), math.nan) for s in SUBSET_NAMES}
        missing = sum(math.isnan(v) for v in cells.values())
        avg = float(np.mean(list(cells.values()))) if not missing else math.nan
        rows.append({"base": base, "method": method, **cells, "avg": avg, "n_missing": missing})
    return rows


def fig6(rows: list[dict]):
    """One panel per base model: R-EMI per subset, one bar per method."""
    bases = list(dict.fromkeys(r["base"] for r in rows))
    fig, axes = new_figure(len(bases), 1, figsize=(12, 4 * len(bases)), squeeze=False)
    for ax, base in zip(axes[:, 0], bases):
        sel = [r for r in rows if r["base"] == base]
        grouped_bars(ax, [subset_label(s) for s in SUBSET_NAMES],
                     {r["method"]: [r[s] for s in SUBSET_NAMES] for r in sel},
                     ylabel="R-EMI (higher is better)", title=f"Figure 6: R-EMI per method and subset, base {base}")
    fig.tight_layout()
    return fig


def table20_figure(rows: list[dict]):
    """Table 20 as an annotated heat map (rows base/method, columns the subsets and Avg.)."""
    cols = [*SUBSET_NAMES, "avg"]
    data = np.array([[r[c] for c in cols] for r in rows], dtype=float)
    fig, ax = new_figure(figsize=(1.0 * len(cols) + 2, 0.45 * len(rows) + 1.8))
    im = ax.imshow(np.ma.masked_invalid(data), cmap="RdYlGn", aspect="auto")
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            ax.text(j, i, "NaN" if math.isnan(data[i, j]) else f"{data[i, j]:.3g}", ha="center", va="center",
                    fontsize=6.5)
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([subset_label(c) if c != "avg" else "Avg." for c in cols], fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['base']}/{r['method']}" for r in rows], fontsize=8)
    ax.set_title("Table 20: R-EMI (higher is better)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    return fig


def fig7_rows(bound_csv, *, estimator: str | None = None, column: str = "bound") -> list[dict]:
    """The bound on all samples ("all" size) per RPM and ID -> OOD subset."""
    df = read_bound(bound_csv, estimator)
    sel = df[df["size"] == "all"]
    if sel.empty:
        raise AnalysisInputError(f"{bound_csv}: no rows of size 'all' (run `rpm bound` with 'all' among --sizes)")
    sel.attrs = dict(df.attrs)
    vals = {c: numbers(sel, c) for c in (column, "shift_term", "output_term", "r_emid")}
    rows, seen = [], set()
    for k, rec in enumerate(sel.to_dict("records")):
        key = (rec["rpm"], rec["target"])
        if key in seen:
            raise AnalysisInputError(f"{bound_csv}: {key} appears twice at size 'all'")
        seen.add(key)
        base, method = split_rpm(rec["rpm"])
        rows.append({"base": base, "method": method, "rpm": rec["rpm"], "target": rec["target"],
                     "shift": rec["shift"], "label": f"ID→{subset_label(rec['target'])}", "bound": vals[column][k],
                     "shift_term": vals["shift_term"][k], "output_term": vals["output_term"][k],
                     "r_emid": vals["r_emid"][k]})
    rows.sort(key=lambda r: (r["base"], subset_order(r["target"])))
    return rows


def fig7(rows: list[dict]):
    bases = list(dict.fromkeys(r["base"] for r in rows))
    fig, axes = new_figure(len(bases), 1, figsize=(12, 4 * len(bases)), squeeze=False)
    for ax, base in zip(axes[:, 0], bases):
        sel = [r for r in rows if r["base"] == base]
        targets = sorted({r["target"] for r in sel}, key=subset_order)
        by = {(r["method"], r["target"]): r["bound"] for r in sel}
        methods = list(dict.fromkeys(r["method"] for r in sel))
        grouped_bars(ax, [f"ID→{subset_label(t)}" for t in targets],
                     {m: [by.get((m, t), math.nan) for t in targets] for m in methods},
                     ylabel="R-EMID upper bound (lower is better)",
                     title=f"Figure 7: maximum performance-drop risk per method and shift, base {base}")
    fig.tight_layout()
    return fig

"""Table 12: the divergence terms of Theorem 3.4 and the R-EMID upper bound per ID -> OOD shift, from
bound.csv at size "all" (every term, not only the sum). The paper prints it for one RPM (SFT on
Qwen3-4B); the table here has every RPM, the figure the chosen one."""

from __future__ import annotations

import math

import numpy as np

from rpm.analysis.bound_tightness import read_bound
from rpm.analysis.common import (
    SHIFT_TITLES,
    AnalysisInputError,
    new_figure,
    numbers,
    split_rpm,
    subset_label,
    subset_order,
)

TERMS = ["d_user", "d_character", "d_dialogue", "d_joint", "h_hat", "delta_p", "delta_q", "delta", "sum_sqrt_d",
         "shift_term", "output_term", "bound", "bound_scale_adjusted", "r_emid"]
TABLE12_COLUMNS = ["rpm", "shift", "shift_type", "source", "target", "label", "n_source", "n_target", *TERMS]


def table12(bound_csv, *, estimator: str | None = None) -> list[dict]:
    df = read_bound(bound_csv, estimator)
    sel = df[df["size"] == "all"]
    if sel.empty:
        raise AnalysisInputError(f"{bound_csv}: no rows of size 'all' (run `rpm bound` with 'all' among --sizes)")
    sel.attrs = dict(df.attrs)
    vals = {t: numbers(sel, t) for t in TERMS}
    rows = []
    for k, rec in enumerate(sel.to_dict("records")):
        split_rpm(rec["rpm"])
        rows.append({"rpm": rec["rpm"], "shift": rec["shift"],
                     "shift_type": SHIFT_TITLES.get(rec["shift"], rec["shift"]),
                     "source": rec["source"], "target": rec["target"], "label": f"ID→{subset_label(rec['target'])}",
                     "n_source": rec["n_source"], "n_target": rec["n_target"], **{t: vals[t][k] for t in TERMS}})
    rows.sort(key=lambda r: (r["rpm"], subset_order(r["target"])))
    return rows


def default_rpm(rows: list[dict], method: str = "sft") -> str:
    """The paper's choice: an SFT RPM (the first one), else the first RPM of the table."""
    sft = [r["rpm"] for r in rows if split_rpm(r["rpm"])[1] == method]
    return sft[0] if sft else rows[0]["rpm"]


def table12_figure(rows: list[dict], rpm: str):
    sel = [r for r in rows if r["rpm"] == rpm]
    if not sel:
        raise AnalysisInputError(f"no bound rows for RPM {rpm!r}; RPMs: {sorted({r['rpm'] for r in rows})}")
    labels = [r["label"] for r in sel]
    xs = np.arange(len(sel))
    fig, (ax1, ax2) = new_figure(1, 2, figsize=(13, 4.3))
    names = {"d_user": "D_JS(P_Xu||Q_Xu) user persona", "d_character": "D_JS(P_Xa||Q_Xa) agent character",
             "d_dialogue": "D_JS(P_Xd||Q_Xd) dialogue context"}
    for k, (term, name) in enumerate(names.items()):
        ax1.bar(xs - 0.3 + 0.2 * (k + 0.5), [r[term] for r in sel], 0.2, label=name)
    ax1.set_xticks(xs)
    ax1.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    ax1.set_ylabel("D_JS")
    ax1.set_title("divergence terms per shift", fontsize=10)
    ax1.legend(fontsize=7)
    ax1.grid(axis="y", alpha=0.3)
    shift = np.array([r["shift_term"] for r in sel], dtype=float)
    output = np.array([r["output_term"] for r in sel], dtype=float)
    ax2.bar(xs, np.nan_to_num(shift), label="sqrt(2/3)·H_hat·Σ_z sqrt(D_JS) (input shift)")
    ax2.bar(xs, np.nan_to_num(output), bottom=np.nan_to_num(shift), label="8·Δ^(1/4) (output mismatch)")
    for x, r in zip(xs, sel):
        nan = math.isnan(r["bound"])
        ax2.text(x, 0 if nan else r["bound"], "NaN" if nan else f"{r['bound']:.3g}", ha="center", va="bottom",
                 fontsize=6.5)
    ax2.set_xticks(xs)
    ax2.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    ax2.set_ylabel("R-EMID upper bound")
    ax2.set_title(f"bound = shift term + output term, RPM {rpm}", fontsize=10)
    ax2.legend(fontsize=7)
    ax2.grid(axis="y", alpha=0.3)
    fig.suptitle("Table 12: divergence terms and the R-EMID upper bound under each shift", fontsize=10)
    fig.tight_layout()
    return fig

"""The controlled-shift validation (beyond the paper): divergence, bound and R-EMID against the known
severity of each shift type.

The mini benchmark's knob (`rpm bench synth --severity`) sets the fraction of each OOD subset that is
really shifted, so the true order of shift magnitudes is known. Each severity's `rpm bound` table
(one RPM, one or more subsets per shift type, the CoRL estimator) gives the divergence of the shifted
input component, the joint divergence, the bound and R-EMID; over the severities, Spearman's rho
per shift type says whether each rises in the known order.
"""

from __future__ import annotations

import math
from pathlib import Path

from rpm.analysis.common import (
    SHIFT_COLORS,
    SHIFT_TITLES,
    AnalysisInputError,
    new_figure,
    numbers,
    read_table,
    save_figure,
)
from rpm.analysis.correlation import correlate
from rpm.metrics.tables import BOUND_COLUMNS, SHIFT_ORDER, write_csv

# The input component each shift type changes (Theorem 3.4's z), as bound.csv names its divergence.
COMPONENT = {"user": "d_user", "character": "d_character", "dialogue": "d_dialogue"}
QUANTITIES = ("d_component", "d_joint", "bound", "r_emid")
SWEEP_COLUMNS = ["severity", "rpm", "estimator", "subset", "shift", "n_source", "n_target", *QUANTITIES]
SPEARMAN_COLUMNS = ["shift", "quantity", "n_severities", "n_points", "spearman_rho", "spearman_p", "pearson_r",
                    "pearson_p"]


def sweep_rows(runs: dict[float, str | Path]) -> list[dict]:
    """One row per (severity, subset) from each severity's bound.csv (all samples, first seed)."""
    if len(runs) < 2:
        raise AnalysisInputError(f"a sweep needs at least two severities, got {sorted(runs)}")
    rows = []
    for severity, path in sorted(runs.items()):
        df = read_table(path, BOUND_COLUMNS)
        df = df[df["size"] == "all"]
        if df.empty:
            raise AnalysisInputError(f"{path}: no rows with size 'all' (run `rpm bound --sizes all`)")
        df = df.drop_duplicates(subset=["rpm", "estimator", "target"], keep="first")
        for rec, d_joint, bound, r_emid in zip(df.to_dict("records"), numbers(df, "d_joint"), numbers(df, "bound"),
                                               numbers(df, "r_emid")):
            shift = rec["shift"]
            if shift not in COMPONENT:
                raise AnalysisInputError(f"{path}: subset {rec['target']!r} has shift {shift!r}, not an OOD shift type")
            rows.append({"severity": severity, "rpm": rec["rpm"], "estimator": rec["estimator"],
                         "subset": rec["target"], "shift": shift, "n_source": int(rec["n_source"]),
                         "n_target": int(rec["n_target"]),
                         "d_component": float(rec[COMPONENT[shift]]), "d_joint": d_joint, "bound": bound,
                         "r_emid": r_emid})
    return rows


def spearman_rows(rows: list[dict]) -> list[dict]:
    """Severity against each quantity, per shift type (all subsets of that type pooled)."""
    out = []
    for shift in [s for s in SHIFT_ORDER if s in COMPONENT]:
        sel = [r for r in rows if r["shift"] == shift]
        if not sel:
            continue
        for q in QUANTITIES:
            pts = [(r["severity"], r[q]) for r in sel if math.isfinite(r[q])]
            excluded = len(sel) - len(pts)
            c = correlate([p[0] for p in pts], [p[1] for p in pts], n_boot=0)
            out.append({"shift": shift, "quantity": q, "n_severities": len({r["severity"] for r in sel}),
                        "n_points": f"{c.n}" + (f" ({excluded} non-finite excluded)" if excluded else ""),
                        "spearman_rho": c.spearman_rho, "spearman_p": c.spearman_p, "pearson_r": c.pearson_r,
                        "pearson_p": c.pearson_p})
    return out


def sweep_figure(rows: list[dict], spearman: list[dict]):
    titles = {"d_component": "D_JS of the shifted component", "bound": "Theorem 3.4 bound", "r_emid": "R-EMID"}
    rho = {(r["shift"], r["quantity"]): r["spearman_rho"] for r in spearman}
    fig, axes = new_figure(1, 3, figsize=(13, 3.8))
    for ax, q in zip(axes, titles):
        for shift in COMPONENT:
            sel = sorted((r for r in rows if r["shift"] == shift), key=lambda r: r["severity"])
            if not sel:
                continue
            sev = sorted({r["severity"] for r in sel})
            mean = [sum(r[q] for r in sel if r["severity"] == s) / sum(r["severity"] == s for r in sel) for s in sev]
            ax.plot(sev, mean, marker="o", color=SHIFT_COLORS[shift],
                    label=f"{SHIFT_TITLES[shift]} (ρ = {rho.get((shift, q), math.nan):.2f})")
        ax.set_xlabel("severity (fraction of the subset really shifted)")
        ax.set_title(titles[q])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def parse_runs(specs) -> dict[float, str]:
    runs = {}
    for spec in specs:
        sev, sep, path = spec.partition("=")
        try:
            value = float(sev)
        except ValueError:
            value = math.nan
        if not sep or not path or not 0.0 <= value <= 1.0:
            raise AnalysisInputError(f"--run {spec!r}: expected SEVERITY=BOUND_CSV with a severity in [0, 1]")
        if value in runs:
            raise AnalysisInputError(f"--run {spec!r}: severity {value:g} given twice")
        runs[value] = path
    return runs


def write_sweep(runs: dict[float, str | Path], out_dir: str | Path) -> tuple[list[dict], list[dict]]:
    rows = sweep_rows(runs)
    spearman = spearman_rows(rows)
    out_dir = Path(out_dir)
    write_csv(out_dir / "sweep.csv", rows, SWEEP_COLUMNS)
    write_csv(out_dir / "sweep_spearman.csv", spearman, SPEARMAN_COLUMNS)
    save_figure(sweep_figure(rows, spearman), [out_dir / "sweep.png", out_dir / "sweep.pdf"])
    return rows, spearman

"""The controlled-shift validation (beyond the paper): divergence, bound and R-EMID against the known
severity of each shift type.

The mini benchmark's knob (`rpm bench synth --severity`) sets the fraction of each OOD subset that is
really shifted, so the true order of shift magnitudes is known. Each severity's `rpm bound` table
(one RPM, one or more subsets per shift type, the CoRL estimator) gives the divergence of the shifted
input component, the joint divergence, the bound and R-EMID; over the severities, Spearman's rho
per shift type says whether each rises in the known order.

With each severity's bootstrap replicates (`rpm bound --replicates`), the slope of each quantity over
severity comes with a bootstrap CI that resamples samples, not severities: the benchmark's severities are
nested (the same samples, more of them shifted), and the replicates of every severity draw the same sample
indices, so replicate b of the curve is one resample of the samples seen at every severity. The slope is
least squares over the severities; replicates with an undefined value at any severity are counted
(`undefined_replicates`), never silently dropped. "rose" / "fell" when the 95% CI excludes 0, otherwise
"not shown". sweep.csv then carries each quantity's per-severity CI (the figure's error bars).

The intervals are bootstrap percentiles, and the divergences are plug-in estimates with a finite-sample
floor: a resample repeats samples (~63% distinct), its density matrices have fewer directions, and its D_JS
is larger than the sample's. So a divergence's interval can sit above its point estimate, and the slope's
interval (the floor rises least where the true divergence is already large) below it. `replicate_mean`
beside each slope shows that shift. The verdict stays a valid test of "no rise": without a shift every
severity's resamples carry the same floor, and the slope's replicates centre on 0.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

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
from rpm.metrics.tables import BOUND_COLUMNS, SHIFT_ORDER, load_replicates, write_csv

# The input component each shift type changes (Theorem 3.4's z), as bound.csv names its divergence.
COMPONENT = {"user": "d_user", "character": "d_character", "dialogue": "d_dialogue"}
QUANTITIES = ("d_component", "d_joint", "bound", "r_emid")
SWEEP_COLUMNS = ["severity", "rpm", "estimator", "subset", "shift", "n_source", "n_target", *QUANTITIES,
                 *[f"{q}_{end}" for q in QUANTITIES for end in ("ci_low", "ci_high")]]
SLOPE_COLUMNS = ["shift", "rpm", "subset", "quantity", "severities", "n_target", "slope", "ci_low", "ci_high", "n_boot",
                 "replicate_mean", "undefined_replicates", "verdict"]
CONFIDENCE = 0.95
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


def _replicate_key(quantity: str, shift: str) -> str:
    return COMPONENT[shift] if quantity == "d_component" else quantity


def _slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row of y (replicates x severities) over x."""
    xc = x - x.mean()
    return ((y - y.mean(axis=-1, keepdims=True)) * xc).sum(axis=-1) / (xc * xc).sum()


def slope_rows(rows: list[dict], replicates: dict[float, dict]) -> list[dict]:
    """The slope of each quantity over severity per (RPM, subset), with its paired bootstrap CI; also fills
    each sweep row's per-severity CI."""
    alpha = (1 - CONFIDENCE) / 2
    out = []
    for (rpm, subset) in dict.fromkeys((r["rpm"], r["subset"]) for r in rows):
        sel = sorted((r for r in rows if (r["rpm"], r["subset"]) == (rpm, subset)), key=lambda r: r["severity"])
        sev = np.array([r["severity"] for r in sel])
        shift = sel[0]["shift"]
        for q in QUANTITIES:
            key = _replicate_key(q, shift)
            try:
                reps = np.stack([replicates[r["severity"]][(rpm, subset)][key] for r in sel], axis=1)
            except KeyError as e:
                raise AnalysisInputError(f"no bootstrap replicates of {key} for RPM {rpm!r}, subset {subset!r} at "
                                         f"one of the severities ({e}); run `rpm bound --replicates` per severity")
            for k, r in enumerate(sel):
                col = reps[:, k][np.isfinite(reps[:, k])]
                lo, hi = np.quantile(col, [alpha, 1 - alpha]) if col.size else (math.nan, math.nan)
                r[f"{q}_ci_low"], r[f"{q}_ci_high"] = float(lo), float(hi)
            ok = np.isfinite(reps).all(axis=1)
            boot = _slope(sev, reps[ok]) if ok.any() else np.empty(0)
            lo, hi = np.quantile(boot, [alpha, 1 - alpha]) if boot.size else (math.nan, math.nan)
            point = float(_slope(sev, np.array([[r[q] for r in sel]]))[0])
            verdict = "rose" if lo > 0 else "fell" if hi < 0 else "not shown"
            out.append({"shift": shift, "rpm": rpm, "subset": subset, "quantity": q,
                        "severities": ",".join(f"{s:g}" for s in sev), "n_target": sel[0]["n_target"],
                        "slope": point, "ci_low": float(lo), "ci_high": float(hi), "n_boot": len(reps),
                        "replicate_mean": float(boot.mean()) if boot.size else math.nan,
                        "undefined_replicates": int((~ok).sum()), "verdict": verdict})
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
            mean = np.array([np.mean([r[q] for r in sel if r["severity"] == s]) for s in sev])
            lo = np.array([np.mean([r.get(f"{q}_ci_low", math.nan) for r in sel if r["severity"] == s]) for s in sev])
            hi = np.array([np.mean([r.get(f"{q}_ci_high", math.nan) for r in sel if r["severity"] == s]) for s in sev])
            err = None if np.isnan(lo).any() else [np.clip(mean - lo, 0, None), np.clip(hi - mean, 0, None)]
            ax.errorbar(sev, mean, yerr=err, marker="o", capsize=3, color=SHIFT_COLORS[shift],
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


def write_sweep(runs: dict[float, str | Path], out_dir: str | Path,
                replicates: dict[float, str | Path] | None = None) -> tuple[list[dict], list[dict]]:
    rows = sweep_rows(runs)
    spearman = spearman_rows(rows)
    out_dir = Path(out_dir)
    if replicates:
        if set(replicates) != set(runs):
            raise AnalysisInputError(f"replicates for severities {sorted(replicates)}, bound tables for {sorted(runs)}")
        write_csv(out_dir / "sweep_slopes.csv", slope_rows(rows, {s: load_replicates(p) for s, p in
                                                                   replicates.items()}), SLOPE_COLUMNS)
    write_csv(out_dir / "sweep.csv", rows, SWEEP_COLUMNS)
    write_csv(out_dir / "sweep_spearman.csv", spearman, SPEARMAN_COLUMNS)
    save_figure(sweep_figure(rows, spearman), [out_dir / "sweep.png", out_dir / "sweep.pdf"])
    return rows, spearman

"""Figure 2, the pilot study: WinRate of the SFT models per OOD subset against the shift's severity
D_JS(P_X || Q_X) (the joint input divergence of divergences.csv), one panel per shift type, the
subsets sorted by severity as in the paper."""

from __future__ import annotations

import math

import numpy as np

from rpm.analysis.common import (
    SHIFT_TITLES,
    AnalysisInputError,
    join_points,
    judge_winrates,
    keyed,
    new_figure,
    only,
    read_table,
    split_rpm,
    subset_label,
)
from rpm.analysis.correlation import correlate_points
from rpm.metrics.tables import DIVERGENCE_COLUMNS

POINT_COLUMNS = ["rpm", "subset", "shift", "d_js", "winrate", "winrate_id", "included", "note"]
X_NAME = "D_JS(P_X||Q_X)"


def joint_divergences(path, id_subset: str = "id_test", embedder: str | None = None) -> dict[str, float]:
    """{OOD subset: D_JS of the joint input representation between the ID subset and it}."""
    df = read_table(path, DIVERGENCE_COLUMNS)
    df = only(df, "embedder", embedder, "embedder")
    df = only(df, "source", id_subset, "source")
    df = only(df, "component", "joint", "component")
    return {sub: v for (sub,), v in keyed(df, ["target"], "jsd").items()}


def pilot_points(scores_csv, divergences_csv, *, method: str = "sft", judge: str = "ensemble",
                 id_subset: str = "id_test", embedder: str | None = None):
    winrate = judge_winrates(scores_csv, judge)
    rpms = sorted({rpm for rpm, _ in winrate if split_rpm(rpm)[1] == method})
    if not rpms:
        present = sorted({rpm for rpm, _ in winrate})
        raise AnalysisInputError(f"{scores_csv}: no RPM of method {method!r} (judge {judge!r}); RPMs: {present}")
    d = joint_divergences(divergences_csv, id_subset, embedder)
    x = {(rpm, sub): v for rpm in rpms for sub, v in d.items()}
    y = {k: v for k, v in winrate.items() if k[0] in rpms and k[1] != id_subset}
    pts = join_points(x, y, X_NAME, "WinRate")
    for r in pts.rows:
        r["d_js"], r["winrate"] = r.pop("x"), r.pop("y")
        r["winrate_id"] = winrate.get((r["rpm"], id_subset), math.nan)
    return pts


def fig2(pts, *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95, judge_validity: str = ""):
    """Rows of the points table, rows of the correlation table, and the figure. `judge_validity` (what the
    judge's validity check showed) goes into every correlation row and the figure's title."""
    for r in pts.rows:
        r["x"], r["y"] = r["d_js"], r["winrate"]
    overall, corr_rows = correlate_points("fig2", pts, n_boot=n_boot, seed=seed, confidence=confidence,
                                          judge_validity=judge_validity)
    rows = [{c: r[c] for c in POINT_COLUMNS} for r in pts.rows]
    fig, axes = new_figure(1, 3, figsize=(14, 4.2), sharey=True)
    by_scope = {r["scope"]: r for r in corr_rows}
    for ax, shift in zip(axes, ("user", "character", "dialogue")):
        sel = [r for r in pts.rows if r["shift"] == shift]
        subsets = sorted({r["subset"] for r in sel}, key=lambda s: next(
            (r["d_js"] for r in sel if r["subset"] == s and not math.isnan(r["d_js"])), math.inf))
        xs = np.arange(len(subsets))
        for rpm in sorted({r["rpm"] for r in sel}):
            by = {r["subset"]: r for r in sel if r["rpm"] == rpm}
            ys = [by[s]["winrate"] if s in by and by[s]["included"] else math.nan for s in subsets]
            line, = ax.plot(xs, ys, marker="o", label=rpm)
            wid = next(iter(by.values()))["winrate_id"] if by else math.nan
            if not math.isnan(wid):
                ax.axhline(wid, ls="--", lw=0.8, color=line.get_color(), label=f"{rpm} on ID")
        ax.set_xticks(xs)
        dvals = {r["subset"]: r["d_js"] for r in sel}
        ax.set_xticklabels([f"{subset_label(s)}\n{dvals[s]:.3f}" for s in subsets], fontsize=8)
        c = by_scope.get(shift)
        extra = f"\nPearson r = {c['pearson_r']:.3f}, Spearman ρ = {c['spearman_rho']:.3f}" if c else ""
        ax.set_title(SHIFT_TITLES[shift] + extra, fontsize=9)
        ax.set_xlabel(f"OOD subset, sorted by {X_NAME}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("WinRate")
    axes[-1].legend(fontsize=7)
    note = pts.exclusion_note()
    fig.suptitle(f"Pilot study: WinRate of the SFT RPMs under distribution shift (overall Pearson r = "
                 f"{overall.pearson_r:.3f}, n = {overall.n}){'; ' + note if note else ''}"
                 f"{chr(10) + judge_validity if judge_validity else ''}", fontsize=10)
    fig.tight_layout()
    return rows, corr_rows, fig

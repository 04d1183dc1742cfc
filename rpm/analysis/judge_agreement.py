"""Figure 4 a-d: the information-theoretic metrics against the LLM judge, over (rpm, subset) points.

(a) EMI vs WinRate, (b) EMID vs WinRate difference, (c) R-EMI vs WinRate, (d) R-EMID vs WinRate
difference. WinRate difference = WinRate(ID) - WinRate(OOD), the sign convention of R-EMID
(R-EMI(ID) - R-EMI(OOD)): both are positive when the RPM does worse out of distribution.
"""

from __future__ import annotations

from rpm.analysis.common import Points, differences, join_points, judge_winrates, metric_values, new_figure
from rpm.analysis.correlation import correlate_points
from rpm.analysis.plots import scatter_with_fit

POINT_COLUMNS = ["panel", "rpm", "subset", "shift", "x_name", "x", "y_name", "y", "included", "note"]
# panel -> (metric file, quantity, judge quantity, title)
PANELS = {
    "fig4a": ("emi", "EMI", "WinRate", "(a) EMI vs WinRate"),
    "fig4b": ("emi", "EMID", "WinRate difference", "(b) EMID vs WinRate difference"),
    "fig4c": ("remi", "R-EMI", "WinRate", "(c) R-EMI (ours) vs WinRate"),
    "fig4d": ("remi", "R-EMID", "WinRate difference", "(d) R-EMID (ours) vs WinRate difference"),
}


def fig4_points(remi_csv, emi_csv, scores_csv, *, judge: str = "ensemble", remi_estimator: str | None = None,
                emi_estimator: str | None = None, id_subset: str = "id_test") -> dict[str, Points]:
    winrate = judge_winrates(scores_csv, judge)
    judged = {"WinRate": winrate, "WinRate difference": differences(winrate, id_subset)}
    files = {"emi": (emi_csv, emi_estimator), "remi": (remi_csv, remi_estimator)}
    out = {}
    for panel, (which, quantity, judge_quantity, _) in PANELS.items():
        path, est = files[which]
        out[panel] = join_points(metric_values(path, quantity, est), judged[judge_quantity], quantity, judge_quantity)
    return out


def fig4(points: dict[str, Points], *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95,
         judge_validity: str = ""):
    """Rows of the points table, rows of the correlation table, and the 2 x 2 figure. `judge_validity` (what
    the judge's validity check showed) goes into every correlation row and the figure's title."""
    fig, axes = new_figure(2, 2, figsize=(10, 8.5))
    point_rows, corr_rows = [], []
    if judge_validity:
        fig.suptitle(judge_validity, fontsize=8)
    for ax, (panel, pts) in zip(axes.flat, points.items()):
        overall, rows = correlate_points(panel, pts, n_boot=n_boot, seed=seed, confidence=confidence,
                                         judge_validity=judge_validity)
        corr_rows += rows
        point_rows += [{"panel": panel, "x_name": pts.x_name, "y_name": pts.y_name, **r} for r in pts.rows]
        scatter_with_fit(ax, pts, overall, title=PANELS[panel][3], xlabel=pts.x_name, ylabel=pts.y_name)
    fig.tight_layout()
    return point_rows, corr_rows, fig

"""What the run shows, and how sure it is: the report's first table, one claim per row.

Each row states a claim the run can test, its estimate with an interval or a p-value, and a verdict that is
"shown" only when the interval or the test supports it at 95%, otherwise "not shown" (never a claim the data
cannot support). The claims:

    sweep       per shift type and quantity (the shifted component's D_JS, the joint D_JS, the bound,
                R-EMID): did it rise with the severity? The slope over severity with its bootstrap CI
                (samples resampled, paired across the nested severities), and Spearman's rho with its exact
                p over the severities (five severities: p >= 1/60 at best).
    divergence  at the highest severity, does each shift type's component D_JS exceed its permutation null?
                The estimate, the null's mean and the permutation p; also the bound's tightness there
                (bound / |R-EMID|, a measured figure: "reported (no test)").
    control     per estimator, does the planted RPM's R-EMI fall as its planted fraction grows? The slope
                and its bootstrap CI (control.py).
    judge       per judge, does it prefer a sample's own golden reply to another's? Accuracy and its CI
                against chance 0.5 (rpm judge validity).
    roleplay    do the RPMs role-play (roleplay.py)? The SFT RPM's log-prob gain over its base (>= 0.5
                nats/token), the share of its responses closing the tag (>= 90%), no identical methods.
"""

from __future__ import annotations

import math

from rpm.analysis.common import new_figure, read_table
from rpm.analysis.control import SLOPE_COLUMNS
from rpm.analysis.roleplay import ROLEPLAY_COLUMNS
from rpm.analysis.sweep import COMPONENT, SLOPE_COLUMNS as SWEEP_SLOPE_COLUMNS, SPEARMAN_COLUMNS
from rpm.metrics.tables import BOUND_COLUMNS

SUMMARY_COLUMNS = ["section", "claim", "estimate", "ci_low", "ci_high", "p", "n", "verdict", "source"]
QUANTITY_NAMES = {"d_component": "the shifted component's D_JS", "d_joint": "the joint D_JS", "bound": "the bound",
                  "r_emid": "R-EMID"}
ALPHA = 0.05
VALIDITY_READ = ["judge", "n_samples", "accuracy", "ci_low", "ci_high", "verdict"]


def _f(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _name(r) -> str:
    return QUANTITY_NAMES.get(r["quantity"], r["quantity"])


def _row(section, claim, estimate, lo, hi, p, n, shown, source) -> dict:
    """shown: True / False for a tested claim; None for a measured figure that no test decides."""
    verdict = "reported (no test)" if shown is None else "shown" if shown else "not shown"
    return {"section": section, "claim": claim, "estimate": estimate, "ci_low": lo, "ci_high": hi, "p": p, "n": n,
            "verdict": verdict, "source": source}


def sweep_claims(spearman_csv) -> list[dict]:
    rows = []
    for r in read_table(spearman_csv, SPEARMAN_COLUMNS).to_dict("records"):
        rho, p = _f(r["spearman_rho"]), _f(r["spearman_p"])
        rows.append(_row("sweep", f"{r['shift']} shift: {_name(r)} rises with severity",
                         rho, math.nan, math.nan, p, r["n_points"], rho > 0 and p < ALPHA, str(spearman_csv)))
    return rows


def slope_claims(slopes_csv) -> list[dict]:
    rows = []
    for r in read_table(slopes_csv, SWEEP_SLOPE_COLUMNS).to_dict("records"):
        lo, hi, slope = _f(r["ci_low"]), _f(r["ci_high"]), _f(r["slope"])
        # A plug-in divergence's resamples are biased (README, "Sweep intervals"): say so where it shows.
        outside = (f"; the slope lies outside its percentile CI, whose resamples average {_f(r['replicate_mean']):.3g}"
                   if math.isfinite(lo) and math.isfinite(hi) and not lo <= slope <= hi else "")
        rows.append(_row("sweep", f"{r['shift']} shift ({r['subset']}): {_name(r)} "
                         f"rises with severity (slope over {r['severities']}; {r['undefined_replicates']} undefined "
                         f"replicates{outside})", slope, lo, hi, math.nan, r["n_target"], lo > 0, str(slopes_csv)))
    return rows


def divergence_claims(bound_csv, severity: str) -> list[dict]:
    rows = []
    df = read_table(bound_csv, BOUND_COLUMNS)
    df = df[df["size"] == "all"].drop_duplicates(subset=["target"], keep="first")
    for r in df.to_dict("records"):
        if r["shift"] not in COMPONENT:
            continue
        term = COMPONENT[r["shift"]]
        p = _f(r[f"{term}_null_p"])
        rows.append(_row("divergence", f"{r['target']} at severity {severity}: {term} = D_JS of the shifted component "
                         f"exceeds its permutation null (null mean {_f(r[f'{term}_null_mean']):.3g})",
                         _f(r[term]), math.nan, math.nan, p, r["n_target"], p < ALPHA, str(bound_csv)))
        rows.append(_row("divergence", f"{r['target']} at severity {severity}: tightness = bound / |R-EMID| "
                         f"(bound {_f(r['bound']):.3g}, null-corrected {_f(r['bound_null_corrected']):.3g})",
                         _f(r["tightness"]), math.nan, math.nan, math.nan, r["n_target"], None, str(bound_csv)))
    return rows


def control_claims(slope_csv) -> list[dict]:
    rows = []
    for r in read_table(slope_csv, SLOPE_COLUMNS).to_dict("records"):
        lo, hi = _f(r["ci_low"]), _f(r["ci_high"])
        rows.append(_row("control", f"{r['estimator']}: R-EMI of the planted RPM falls as f grows (slope over "
                         f"f = {r['fractions']}; {r['undefined_replicates']} undefined subset-replicates)",
                         _f(r["slope"]), lo, hi, math.nan, f"{r['subsets']} subsets x {r['n_per_subset']}",
                         hi < 0, str(slope_csv)))
    return rows


def judge_claims(validity_csv) -> list[dict]:
    rows = []
    for r in read_table(validity_csv, VALIDITY_READ).to_dict("records"):
        lo = _f(r["ci_low"])
        rows.append(_row("judge", f"judge {r['judge']}: prefers a sample's own golden reply to another's (chance 0.5)",
                         _f(r["accuracy"]), lo, _f(r["ci_high"]), math.nan, r["n_samples"], lo > 0.5,
                         str(validity_csv)))
    return rows


def roleplay_claims(roleplay_csv) -> list[dict]:
    rows = []
    for r in read_table(roleplay_csv, ROLEPLAY_COLUMNS).to_dict("records"):
        if r["check"] == "close" and r["rpm"] != "sft":
            continue                    # required of SFT; every method's share is in roleplay.csv
        threshold = _f(r["threshold"])
        if r["check"] == "gain":
            claim = (f"{r['rpm']}: raises the ID-test golden log-prob over its base by >= {threshold:g} nats/token "
                     f"({r['note']})")
        elif r["check"] == "close":
            claim = f"{r['rpm']}: >= {threshold:.0%} of its responses close the response tag ({r['note']})"
        else:
            claim = f"{r['rpm']}: response sets differ ({r['note']})"
        verdict = r["verdict"]
        rows.append(_row("roleplay", claim, _f(r["estimate"]), _f(r["ci_low"]), _f(r["ci_high"]), math.nan, r["n"],
                         verdict == "met", str(roleplay_csv)))
        if verdict == "undecided":
            rows[-1]["verdict"] = "not shown (CI straddles the threshold)"
    return rows


def summary_rows(*, control_slope, validity, spearman=None, top_bound=None, top_severity: str = "1",
                 sweep_slopes=None, roleplay=None) -> list[dict]:
    rows = roleplay_claims(roleplay) if roleplay else []
    if sweep_slopes:
        rows += slope_claims(sweep_slopes)
    if spearman:
        rows += sweep_claims(spearman)
    if top_bound:
        rows += divergence_claims(top_bound, top_severity)
    return rows + control_claims(control_slope) + judge_claims(validity)


def summary_figure(rows: list[dict]):
    """Intervals of the claims that have one (control slopes against 0, judge accuracies against 0.5)."""
    panels = [("control", 0.0, "slope of R-EMI over the planted fraction"), ("judge", 0.5, "judge validity accuracy")]
    fig, axes = new_figure(1, 2, figsize=(11, 3.6))
    for ax, (section, ref, title) in zip(axes, panels):
        sel = [r for r in rows if r["section"] == section]
        for k, r in enumerate(sel):
            est, lo, hi = r["estimate"], r["ci_low"], r["ci_high"]
            err = None if math.isnan(lo) or math.isnan(hi) else [[max(est - lo, 0)], [max(hi - est, 0)]]
            ax.errorbar([est], [k], xerr=err, fmt="o", capsize=3, color="C2" if r["verdict"] == "shown" else "C3")
        ax.set_yticks(range(len(sel)), [r["claim"].split(":")[0] for r in sel], fontsize=7)
        ax.axvline(ref, color="grey", lw=0.8, ls="--")
        ax.set_title(f"{title} (green: shown, red: not shown)", fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig

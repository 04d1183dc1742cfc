"""The join: each published cell beside our value from the run's CSVs (`rpm.audit.ours`), with the
difference and a verdict, after the paper's checks against itself (`rpm.audit.consistency`).

Verdicts: "match" / "differs" within a stated tolerance (listed in `rpm.audit.ours`) when the run is
at the paper's scale, "scale differs" when it is not, "not reproduced" when we have no value (a
missing input, or a cell the run did not produce), and "not printed" for our values the paper shows
only in a plot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from rpm.audit.consistency import Finding, implied_remid, self_consistency
from rpm.audit.labels import BASE, FIG4_PANELS, FIG5_SIZES, T14_ROW
from rpm.audit.ours import (
    AuditInputError,
    AuditRow,
    Ours,
    Tolerance,
    ours_correlations,
    ours_table1,
    ours_table2,
    ours_table12,
    ours_table14,
    ours_table20,
    read_csv_rows,
)
from rpm.audit.published import Published, cells, load as load_published

VERDICTS = ("match", "differs", "scale differs", "not reproduced", "not printed")
SCALES = ("paper", "small")


@dataclass
class Audit:
    scale: str
    findings: list[Finding] = field(default_factory=list)
    rows: list[AuditRow] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)   # input name -> path or "(not given)"
    fits: dict[str, float] = field(default_factory=dict)   # Table 12 fit results, for the summary
    validity: list[dict] = field(default_factory=list)     # the judges' validity check (validity.csv rows)


def _verdict(ours: Ours | None, paper: Published | None, scale: str) -> tuple[str, float | None, str]:
    if ours is None or (ours.value is not None and math.isnan(ours.value)):
        return "not reproduced", None, ""
    if paper is None:
        return "not printed", None, ""
    tol = ours.tolerance
    if tol.rule == "p<0.05":
        diff = ours.value - paper.value
        verdict = "match" if (ours.value < 0.05) == (paper.value < 0.05 or paper.relation == "<") else "differs"
    else:
        diff = ours.value - paper.value
        width = tol.width(paper.value) + (paper.rounding if tol.relative and not tol.absolute else 0.0)
        verdict = "match" if abs(diff) <= width + 1e-12 else "differs"
    if scale != "paper":
        verdict = "scale differs"
    return verdict, diff, tol.describe(paper.value)


def join_table(audit: Audit, table: str, paper: dict[tuple[str, str], Published], ours: dict | None,
               missing_note: str, *, label: str | None = None, derived: dict | None = None) -> None:
    """One audit row per published cell (and per ours-only cell); `ours` None means the input was not given."""
    label = label or table
    for key, p in paper.items():
        o = None if ours is None else ours.get(key)
        verdict, diff, tol = _verdict(o, p, audit.scale)
        note = missing_note if ours is None else (o.note if o else "the run produced no value for this cell")
        audit.rows.append(AuditRow(label, key[0], key[1], None if o is None else o.value, p.text, diff, verdict, tol,
                                   note))
    for key, o in (ours or {}).items():
        if key not in paper:
            audit.rows.append(AuditRow(label, key[0], key[1], o.value, None, None, "not printed", "", o.note))


def _derived_published(table: str, values: dict[tuple[str, str], float], source: str, decimals: int) -> dict:
    return {k: Published(table, k[0], k[1], f"{v:.{decimals}f}", v, "=", decimals, source) for k, v in values.items()}


def run_audit(*, scale: str, published: Sequence[Published] | None = None, remi=None, perplexity=None, bound=None,
              stats=None, bench_dir=None, correlations=None, cost=None,
              base_map: dict[str, str] | None = None, judge_validity=None) -> Audit:
    """The whole audit: self-consistency findings, then one row per published cell (paths None = not given)."""
    if scale not in SCALES:
        raise AuditInputError(f"scale must be one of {SCALES}, got {scale!r}")
    published = list(published if published is not None else load_published())
    bmap = {**BASE, **(base_map or {})}
    unknown = sorted(set(bmap.values()) - {r.split("/")[0] for r, _ in cells(published, "Table 20")})
    if unknown:
        raise AuditInputError(f"base map names paper base(s) {unknown} that Table 20 does not have")
    audit = Audit(scale)
    audit.findings, fit = self_consistency(published)
    audit.fits = {"h_hat": fit.h_hat, "delta": fit.delta, "max_residual": float(np.abs(fit.residuals).max()),
                  "minimax_excess": fit.minimax_excess,
                  "h_hat_delta0_min": float(fit.h_hat_if_delta_zero.min()),
                  "h_hat_delta0_max": float(fit.h_hat_if_delta_zero.max()),
                  "delta_h0_max": float(fit.delta_if_h_zero.max()),
                  "slope": fit.slope, "intercept": fit.intercept}
    given = {"remi": remi, "perplexity": perplexity, "bound": bound, "stats": stats, "bench_dir": bench_dir,
             "correlations": correlations, "cost": cost, "judge_validity": judge_validity}
    if judge_validity:
        audit.validity = [r for _, r in read_csv_rows(judge_validity, ["judge", "n_samples", "accuracy", "ci_low",
                                                                       "ci_high", "verdict"])]
    audit.inputs = {k: str(v) if v is not None else "(not given)" for k, v in given.items()}

    def absent(name):
        return f"not reproduced: no {name} input given"

    # Table 1
    join_table(audit, "Table 1", cells(published, "Table 1"), ours_table1(perplexity) if perplexity else None,
               absent("perplexity.csv"))
    # Table 2
    join_table(audit, "Table 2", cells(published, "Table 2"), ours_table2(stats, bench_dir) if stats else None,
               absent("stats.tsv"))
    # Table 12, and our H_hat / Delta beside what the printed bounds imply
    t12_ours, terms = ours_table12(bound, bmap) if bound else (None, {})
    join_table(audit, "Table 12", cells(published, "Table 12"), t12_ours, absent("bound.csv"))
    implied = {}
    for k, row in enumerate(fit.rows):
        implied[(row, "H_hat if Delta = 0")] = float(fit.h_hat_if_delta_zero[k])
    implied_pub = _derived_published("Table 12 (implied)", implied, "derived from Table 12", 4)
    implied_ours = None if not bound else {(row, "H_hat if Delta = 0"): Ours(h, Tolerance(relative=0.10),
                                                                             f"our H_hat ({rpm}); our Delta = {d:.3g}")
                                           for row, (h, d, rpm) in terms.items()}
    join_table(audit, "Table 12 (implied)", implied_pub, implied_ours, absent("bound.csv"))
    # Table 13, Figures 4 and 5
    t13, fig, corr_extra = ours_correlations(correlations) if correlations else (None, None, [])
    join_table(audit, "Table 13", cells(published, "Table 13"), t13, absent("correlations.csv"))
    fig4 = cells(published, "Figure 4")
    fig4_pub = {(panel, "pairs"): fig4[("all panels", "pairs")] for panel in FIG4_PANELS}
    join_table(audit, "Figure 4", fig4_pub,
               None if fig is None else {k: v for k, v in fig.items() if k not in FIG5_SIZES},
               absent("correlations.csv"))
    join_table(audit, "Figure 5", cells(published, "Figure 5"),
               None if fig is None else {k: v for k, v in fig.items() if k in FIG5_SIZES}, absent("correlations.csv"))
    audit.rows.extend(corr_extra)
    # Table 14
    t14 = cells(published, "Table 14")
    t14_rows = {k: v for k, v in t14.items() if k[1] in ("Time (min)", "Cost (USD)", "tokens per sample",
                                                         "input tokens (million)")}
    rem, jud = T14_ROW["R-EMID"], T14_ROW["judge"]
    ratio = t14[(jud, "Time (min)")].value / t14[(rem, "Time (min)")].value
    t14_rows.update(_derived_published("Table 14", {("judge / R-EMID", "time ratio"): ratio},
                                       "derived from Table 14", 2))
    join_table(audit, "Table 14", t14_rows, ours_table14(cost, published) if cost else None,
               absent("table14_cost.csv"))
    # Table 20: R-EMI, and the R-EMID it implies beside ours
    remi_ours, remid_ours, remi_extra = ours_table20(remi, bmap) if remi else (None, None, [])
    join_table(audit, "Table 20", cells(published, "Table 20"), remi_ours, absent("remi.csv"))
    implied_t20 = _derived_published("Table 20 (implied R-EMID)", implied_remid(published),
                                     "R-EMI(ID) - R-EMI(subset), Table 20", 3)
    join_table(audit, "Table 20 (implied R-EMID)", implied_t20, remid_ours, absent("remi.csv"))
    audit.rows.extend(remi_extra)
    return audit

"""The paper's tables checked against themselves (no model, no run): the first half of `rpm audit`.

Each check is a plain function over the published numbers (`rpm.audit.published`) and returns
`Finding`s, worded neutrally: Table 20's Avg. column against its row means; the R-EMID values Table 20
implies (R-EMI(ID) - R-EMI(OOD)) against every R-EMID-related number printed elsewhere (Table 12's
bounds, which Theorem 3.4 says they cannot exceed); Table 12's bounds against the Theorem 3.4 formula
sqrt(2/3) * H_hat * sum_z sqrt(D_z) + 8 * Delta^(1/4), i.e. what H_hat and Delta the printed bounds
imply; the n that Table 13's (r, p) pairs imply; the text's benchmark sizes against Table 2; Table 14's
footnote arithmetic; and the claims the text makes about these tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import optimize, stats

from rpm.audit.labels import (
    T1_COLUMN,
    T1_ROW,
    T2_ROW,
    T12_BOUND,
    T12_D_COLUMNS,
    T12_ROW,
    T12_RPM,
    T14_ROW,
    T20_AVG,
    T20_COLUMN,
)
from rpm.audit.published import Cells, Published, PublishedError, cells
from rpm.bench.subsets import subset as subset_info

SQRT_2_3 = math.sqrt(2.0 / 3.0)


@dataclass
class Finding:
    """One self-consistency check of the published tables."""
    check: str           # what was checked (a short title)
    table: str
    subject: str         # the row / cell / quantity
    printed: str         # what the paper prints
    derived: str         # what the other printed numbers imply
    difference: float | None
    tolerance: str
    consistent: bool | None   # None: informational (nothing to be consistent with)
    note: str = ""


def _f(v: float, digits: int = 4) -> str:
    return f"{v:.{digits}f}"


def _t20_rows(t20: dict) -> list[str]:
    return list(dict.fromkeys(r for r, _ in t20))


def check_table20_avg(published: Sequence[Published]) -> list[Finding]:
    """Avg. against the mean of the 12 subset columns (and, for the note, of the 11 OOD columns)."""
    t20 = cells(published, "Table 20")
    out = []
    for row in _t20_rows(t20):
        values = [t20[(row, c)] for c in T20_COLUMN.values()]
        avg = t20[(row, T20_AVG)]
        mean12 = float(np.mean([v.value for v in values]))
        mean11 = float(np.mean([v.value for v in values[1:]]))
        # Each cell is rounded by at most half a unit, so is their mean; the printed Avg. adds its own rounding.
        tol = max(v.rounding for v in values) + avg.rounding
        diff = avg.value - mean12
        out.append(Finding("Table 20: Avg. equals the mean of the 12 subset columns", "Table 20", row, avg.text,
                           _f(mean12), diff, f"±{tol:g} (printed rounding)", abs(diff) <= tol + 1e-12,
                           f"mean of the 11 OOD columns only: {_f(mean11)}"))
    return out


def implied_remid(published: Sequence[Published]) -> dict[tuple[str, str], float]:
    """R-EMID(ID -> OOD) = R-EMI(ID) - R-EMI(OOD) for each Table 20 row and OOD column."""
    t20 = cells(published, "Table 20")
    out = {}
    for row in _t20_rows(t20):
        rid = t20[(row, "ID")].value
        for col in list(T20_COLUMN.values())[1:]:
            out[(row, col)] = round(rid - t20[(row, col)].value, 6)
    return out


def check_remid_vs_bound(published: Sequence[Published]) -> list[Finding]:
    """Table 20's implied R-EMID of Qwen3-4B SFT against Table 12's bound for the same RPM (Theorem 3.4:
    R-EMID <= bound); the paper prints no R-EMID value itself."""
    remid = implied_remid(published)
    t12 = cells(published, "Table 12")
    t20row = "/".join(T12_RPM)
    out = [Finding("R-EMID values printed elsewhere in the paper", "Table 20", "all rows",
                   "none: Figures 4d, 5 and 7 show R-EMID (or its bound) only as plots",
                   f"{len(remid)} values implied by Table 20", None, "", None,
                   "the implied values are listed in the join (Table 20 (implied R-EMID)) and checked against "
                   "Table 12's bounds below")]
    for sub, t12row in T12_ROW.items():
        col = T20_COLUMN[sub]
        bound = t12[(t12row, T12_BOUND)]
        r = remid[(t20row, col)]
        out.append(Finding("R-EMID implied by Table 20 does not exceed Table 12's bound (same RPM)", "Table 12 / 20",
                           f"{t20row} {t12row}", bound.text, _f(r, 3), bound.value - r, "R-EMID <= bound",
                           r <= bound.value, f"implied R-EMID = R-EMI(ID) - R-EMI({col}) from Table 20"))
    return out


def check_remid_signs(published: Sequence[Published]) -> list[Finding]:
    """How many implied R-EMID values are negative (R-EMI higher on the OOD subset than on ID)."""
    remid = implied_remid(published)
    out = []
    for col in list(T20_COLUMN.values())[1:]:
        vals = {row: v for (row, c), v in remid.items() if c == col}
        neg = [row for row, v in vals.items() if v < 0]
        out.append(Finding("Sign of the R-EMID implied by Table 20 (ID -> subset)", "Table 20", col,
                           f"{len(vals)} rows", f"{len(neg)} of {len(vals)} negative", None, "",
                           None, f"mean {np.mean(list(vals.values())):+.3f}; negative means R-EMI is higher on the "
                                 "OOD subset than on ID"))
    return out


@dataclass(frozen=True)
class BoundFit:
    """What Table 12's printed bounds imply for Theorem 3.4's bound = a * S + b, with S = sum_z sqrt(D_z),
    a = sqrt(2/3) * H_hat and b = 8 * Delta^(1/4)."""
    rows: tuple[str, ...]
    sum_sqrt_d: np.ndarray
    bound: np.ndarray
    bound_rounding: np.ndarray   # half a printed unit of each bound
    s_rounding: np.ndarray       # how far the rounded D terms can move each S
    slope: float                 # least squares, unconstrained
    intercept: float
    nn_slope: float              # least squares with a, b >= 0: the H_hat, Delta the rows imply
    nn_intercept: float
    minimax_excess: float        # <= 0: some a, b >= 0 reproduce every row within its printed rounding
    minimax_slope: float
    minimax_intercept: float

    @property
    def h_hat(self) -> float:
        return self.nn_slope / SQRT_2_3

    @property
    def delta(self) -> float:
        return (self.nn_intercept / 8.0) ** 4

    @property
    def residuals(self) -> np.ndarray:
        return self.bound - (self.nn_slope * self.sum_sqrt_d + self.nn_intercept)

    @property
    def h_hat_if_delta_zero(self) -> np.ndarray:
        return self.bound / (SQRT_2_3 * self.sum_sqrt_d)

    @property
    def delta_if_h_zero(self) -> np.ndarray:
        return (self.bound / 8.0) ** 4


def fit_table12(published: Sequence[Published]) -> BoundFit:
    t12 = cells(published, "Table 12")
    rows = tuple(dict.fromkeys(r for r, _ in t12))
    if not rows:
        raise PublishedError("the transcription has no Table 12 cells")
    d = np.array([[t12[(r, c)].value for c in T12_D_COLUMNS] for r in rows])
    s = np.sqrt(d).sum(axis=1)
    b = np.array([t12[(r, T12_BOUND)].value for r in rows])
    a = np.c_[s, np.ones_like(s)]
    (slope, intercept), *_ = np.linalg.lstsq(a, b, rcond=None)
    (nn_slope, nn_intercept), _ = optimize.nnls(a, b)
    rb = np.array([t12[(r, T12_BOUND)].rounding for r in rows])
    d_round = np.array([[t12[(r, c)].rounding for c in T12_D_COLUMNS] for r in rows])
    rs = (d_round / (2 * np.sqrt(d))).sum(axis=1)   # first-order effect of rounded D on sqrt(D)
    # Chebyshev fit: minimise t subject to |a S_i + b - B_i| <= rb_i + a rs_i + t, a, b >= 0 (linear in a, b, t).
    # t <= 0 means one non-negative (H_hat, Delta) reproduces every printed bound within its rounding.
    n = len(rows)
    a_ub = np.vstack([np.c_[s - rs, np.ones(n), -np.ones(n)], np.c_[-s - rs, -np.ones(n), -np.ones(n)]])
    b_ub = np.concatenate([b + rb, -b + rb])
    lp = optimize.linprog([0, 0, 1], A_ub=a_ub, b_ub=b_ub, bounds=[(0, None), (0, None), (None, None)],
                          method="highs")
    if not lp.success:
        raise RuntimeError(f"Table 12 minimax fit failed: {lp.message}")
    mm_a, mm_b, mm_t = lp.x
    return BoundFit(rows, s, b, rb, rs, float(slope), float(intercept), float(nn_slope), float(nn_intercept),
                    float(mm_t), float(mm_a), float(mm_b))


def check_table12_formula(published: Sequence[Published]) -> tuple[list[Finding], BoundFit]:
    fit = fit_table12(published)
    out = []
    for k, row in enumerate(fit.rows):
        out.append(Finding(
            "Table 12: what each printed bound implies for Theorem 3.4's H_hat and Delta", "Table 12", row,
            _f(fit.bound[k]), f"H_hat = {fit.h_hat_if_delta_zero[k]:.4f} if Delta = 0; "
                              f"Delta = {fit.delta_if_h_zero[k]:.3g} if H_hat = 0",
            float(fit.residuals[k]), "", None,
            f"sum_z sqrt(D_z) = {fit.sum_sqrt_d[k]:.4f}; difference = printed bound - the least-squares fit "
            f"(H_hat = {fit.h_hat:.4f}, Delta = {fit.delta:.3g})"))
    h0 = fit.h_hat_if_delta_zero
    out.append(Finding(
        "Table 12: one non-negative (H_hat, Delta) reproduces every printed bound", "Table 12", "all rows",
        f"{len(fit.rows)} bounds {fit.bound.min():.4f}-{fit.bound.max():.4f}",
        f"least squares (H_hat, Delta >= 0): H_hat = {fit.h_hat:.4f}, Delta = {fit.delta:.3g}, max |residual| "
        f"{np.abs(fit.residuals).max():.4f}", fit.minimax_excess,
        "printed rounding of the bounds and the D terms", fit.minimax_excess <= 0,
        f"difference = how far beyond the rounding the best worst-case (minimax, H_hat, Delta >= 0) fit misses "
        f"its worst row (<= 0: reproducible). With Delta = 0 each row needs its own H_hat, "
        f"{h0.min():.4f}-{h0.max():.4f}; since 8 * Delta^(1/4) <= bound, every row needs Delta <= "
        f"{fit.delta_if_h_zero.max():.2g}. The theorem allows H_hat and Delta to differ between shifts "
        "(Delta depends on Q); the paper does not print either value."))
    return out, fit


def check_table12_text(published: Sequence[Published]) -> list[Finding]:
    """App. B.2's statements: the dominant divergence term is the shifted component; user-shift bounds are highest."""
    t12 = cells(published, "Table 12")
    expect = {"user": T12_D_COLUMNS[0], "character": T12_D_COLUMNS[1], "dialogue": T12_D_COLUMNS[2]}
    out = []
    for sub, row in T12_ROW.items():
        shift = subset_info(sub).shift
        vals = {c: t12[(row, c)].value for c in T12_D_COLUMNS}
        top = max(vals, key=vals.get)
        out.append(Finding("App. B.2: the shifted component has the largest divergence term", "Table 12", row,
                           f"largest: {top} = {vals[top]:.4f}", f"expected {expect[shift]} ({shift} shift)", None, "",
                           top == expect[shift]))
    bounds = {subset_info(s).shift: [] for s in T12_ROW}
    for sub, row in T12_ROW.items():
        bounds[subset_info(sub).shift].append(t12[(row, T12_BOUND)].value)
    lo_user = min(bounds["user"])
    hi_other = max(bounds["character"] + bounds["dialogue"])
    out.append(Finding("App. B.2 / Finding 1: the user-shift bounds are the highest", "Table 12", "all rows",
                       f"user {lo_user:.4f}-{max(bounds['user']):.4f}", f"other shifts at most {hi_other:.4f}",
                       lo_user - hi_other, "", lo_user > hi_other))
    return out


def _p_two_sided(r, n):
    """Two-sided p-value of Pearson r over n points (the t-test scipy.stats.pearsonr uses); n may be an array."""
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore"):
        t = np.abs(r) * np.sqrt((n - 2) / max(1 - r * r, 0.0))
    p = 2 * stats.t.sf(t, n - 2)
    return float(p) if p.ndim == 0 else p


def implied_n(r: Published, p: Published, n_max: int = 2000) -> list[int]:
    """Sample sizes n for which the t-test p-value of Pearson r, with r and p inside their printed rounding,
    gives the printed p (or a p below the printed limit for "p < x")."""
    n = np.arange(4, n_max + 1)
    a, b = _p_two_sided(r.value - r.rounding, n), _p_two_sided(r.value + r.rounding, n)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    if p.relation == "<":
        ok = lo < p.value
    else:
        ok = (lo <= p.value + p.rounding) & (hi >= p.value - p.rounding)
    return [int(k) for k in n[ok]]


def check_table13(published: Sequence[Published]) -> list[Finding]:
    """The n each (r, p) pair implies under the usual t-test, against 11 LLMs x the shift's subsets (Sec. 3.4)."""
    t13 = cells(published, "Table 13")
    fig4 = cells(published, "Figure 4")
    llms = int(fig4[("all panels", "foundation LLMs")].value)
    subsets = {"User Shift": 5, "Character Shift": 4, "Dialogue Compositional Shift": 2}
    out = []
    for row, k in subsets.items():
        r, p = t13[(row, "Pearson r")], t13[(row, "p")]
        ns = implied_n(r, p)
        expected = llms * k
        p_exp = _p_two_sided(r.value, expected)
        ok = expected in ns
        if ns and ns[-1] - ns[0] + 1 == len(ns) and p.relation == "<" and ns[-1] >= 2000:
            span = f"n >= {ns[0]}"
        elif ns:
            span = f"n = {ns[0]}-{ns[-1]}" if ns[0] != ns[-1] else f"n = {ns[0]}"
        else:
            span = "no n"
        out.append(Finding("Table 13: n implied by the printed r and p (two-sided t-test)", "Table 13", row,
                           f"r = {r.text}, p {'<' if p.relation == '<' else '='} {p.text.lstrip('<')}",
                           f"{span}", None, "printed rounding of r and p", ok,
                           f"if the correlation used the Sec. 3.4 setup ({llms} LLMs x {k} subsets = {expected} "
                           f"points), r = {r.text} would give p = {p_exp:.2g}; the paper does not state n here"))
    # One number of points per subset (e.g. one per RPM) that fits every row's implied n.
    per_row = {row: set(implied_n(t13[(row, "Pearson r")], t13[(row, "p")])) for row in subsets}
    common = [m for m in range(1, 201) if all(m * k in per_row[row] for row, k in subsets.items())]
    out.append(Finding("Table 13: one number of points per subset fits all three rows", "Table 13", "all rows",
                       ", ".join(f"{row}: {k} subsets" for row, k in subsets.items()),
                       f"points per subset m = {', '.join(map(str, common[:10])) or 'none'}", None,
                       "printed rounding of r and p", None,
                       f"{llms} (the LLMs of Sec. 3.4) {'fits' if llms in common else 'does not fit'}"))
    panels = fig4[("all panels", "pairs")].value
    scen = fig4[("all panels", "shift scenarios")].value
    out.append(Finding("Sec. 3.4: 121 pairs = 11 LLMs x 11 shift scenarios", "Figure 4", "all panels",
                       f"{panels:g} pairs", f"{llms} x {scen:g} = {llms * scen:g}", panels - llms * scen, "exact",
                       panels == llms * scen, "Figure 4 a and c (metric vs WinRate on one distribution) could also "
                                              "include the ID subset (12 per LLM); the text gives 121 for all panels"))
    return out


def check_table2_text(published: Sequence[Published]) -> list[Finding]:
    t2 = cells(published, "Table 2")
    text = cells(published, "Text")
    n = {row: t2[(row, "Total Samples")].value for row in T2_ROW.values()}
    out = []

    def add(subject, printed, derived_value, derived_text, note=""):
        tol = printed.rounding
        diff = derived_value - printed.value
        out.append(Finding("Benchmark sizes in the text against Table 2", "Table 2 / text", subject,
                           f"{printed.text} ({printed.source})", derived_text, diff,
                           f"±{tol:g} (printed rounding)", abs(diff) <= tol + 1e-9, note))

    total = sum(n.values())
    add("total samples", text[("Sec. 2.3", "total samples")], total, f"{total:g} (all five splits)",
        f"without IDTest: {total - n['IDTest']:g}")
    add("ID samples", text[("Sec. 2.3", "ID samples")], n["IDTrain"], f"{n['IDTrain']:g} (IDTrain)",
        f"IDTrain + IDTest = {n['IDTrain'] + n['IDTest']:g}")
    add("user shift samples", text[("Sec. 2.3", "user shift samples")], n["User Shift"], f"{n['User Shift']:g}")
    add("character shift samples", text[("Sec. 2.3", "character shift samples")], n["Character Shift"],
        f"{n['Character Shift']:g}")
    dial = n["Dialogue Compositional Shift"]
    add("dialogue compositional shift samples (Sec. 2.3)", text[("Sec. 2.3", "dialogue compositional shift samples")],
        dial, f"{dial:g}")
    turn = text[("App. A.1", "eight-turn (turn-level) dialogues")]
    word = text[("App. A.1", "word-level modified dialogues")]
    out.append(Finding("Benchmark sizes in the text against Table 2", "Table 2 / text",
                       "dialogue compositional shift samples (App. A.1)",
                       f"{turn.text} + {word.text} = {turn.value + word.value:g} (App. A.1)", f"{dial:g}",
                       dial - (turn.value + word.value), f"±{turn.rounding + word.rounding:g} (printed rounding)",
                       abs(dial - (turn.value + word.value)) <= turn.rounding + word.rounding + 1e-9,
                       "App. A.1 gives the counts of dialogues collected in Step 3"))
    add("original ID dataset (Sec. 4.1)", text[("Sec. 4.1", "original ID dataset samples")], n["IDTrain"],
        f"{n['IDTrain']:g} (IDTrain)")
    for row in T2_ROW.values():
        samples = t2[(row, "Total Samples")].value
        for col in ("User Personas", "Agent Characters"):
            v = t2[(row, col)].value
            out.append(Finding("Table 2: unique counts do not exceed the sample count", "Table 2", f"{row} {col}",
                               f"{v:g}", f"<= {samples:g}", samples - v, "", v <= samples))
    return out


def check_table14(published: Sequence[Published]) -> list[Finding]:
    t14 = cells(published, "Table 14")
    rem, judge = T14_ROW["R-EMID"], T14_ROW["judge"]
    out = []
    price, minutes, cost = (t14[(rem, "A100-80GB price (USD per hour)")], t14[(rem, "Time (min)")],
                            t14[(rem, "Cost (USD)")])
    derived = price.value * minutes.value / 60 * t14[(rem, "GPUs (A100)")].value
    out.append(Finding("Table 14 footnote 1: cost = price per hour x hours", "Table 14", rem, cost.text,
                       f"{price.text} x {minutes.value:g}/60 = {derived:.4f}", cost.value - derived,
                       f"±{cost.rounding:g}", abs(cost.value - derived) <= cost.rounding + 1e-9))
    samples, per = t14[("both", "test samples")], t14[(judge, "tokens per sample")]
    tokens = t14[(judge, "input tokens (million)")]
    d_tok = samples.value * per.value / 1e6
    out.append(Finding("Table 14 footnote 2: tokens = samples x tokens per sample", "Table 14", judge, tokens.text,
                       f"{samples.value:g} x {per.value:g} = {d_tok:g} M", tokens.value - d_tok, "exact",
                       abs(tokens.value - d_tok) <= tokens.rounding))
    jprice, jcost = t14[(judge, "price (USD per million tokens)")], t14[(judge, "Cost (USD)")]
    d_cost = tokens.value * jprice.value
    out.append(Finding("Table 14 footnote 2: cost = tokens x price", "Table 14", judge, jcost.text,
                       f"{tokens.value:g} M x {jprice.value:g} = {d_cost:.4f}", jcost.value - d_cost,
                       f"±{jcost.rounding:g}", abs(jcost.value - d_cost) <= jcost.rounding + 1e-9,
                       "the footnote prices input tokens only; the judge's output tokens are not counted"))
    return out


def check_text_claims(published: Sequence[Published]) -> list[Finding]:
    """Sec. 3.4 (Table 1), Sec. 4.2 Findings 2 and 3 and App. E.2 against Tables 1 and 20."""
    out = []
    t1 = cells(published, "Table 1")
    for col in T1_COLUMN.values():
        vals = [t1[(row, col)].value for row in T1_ROW.values()]
        out.append(Finding("Table 1: Ours < w/o CoRL < w/o Reasoning (Sec. 3.4)", "Table 1", col,
                           " < ".join(f"{v:g}" for v in vals), "increasing", None, "",
                           all(a < b for a, b in zip(vals, vals[1:]))))
    t20 = cells(published, "Table 20")
    bases = list(dict.fromkeys(r.split("/")[0] for r in _t20_rows(t20)))
    subs = list(T20_COLUMN.values())
    for base in bases:
        sft = {c: t20[(f"{base}/SFT", c)].value for c in subs}
        rl = {c: t20[(f"{base}/RL", c)].value for c in subs}
        better = sum(rl[c] > sft[c] for c in subs)
        out.append(Finding("Finding 2: RL outperforms SFT in most cases (R-EMI, Table 20)", "Table 20", base,
                           "most subsets", f"RL > SFT on {better} of {len(subs)} subsets", None, "",
                           better > len(subs) / 2))
        avg = Cells({r.split("/")[1]: t20[(r, T20_AVG)].value for r in _t20_rows(t20) if r.startswith(base + "/")})
        for m in ("ThinkingSFT", "ThinkingRL"):
            out.append(Finding("Finding 3: Thinking methods perform worse than SFT (Avg., Table 20)", "Table 20",
                               f"{base}/{m}", f"Avg. {avg[m]:g}", f"SFT Avg. {avg['SFT']:g}", avg[m] - avg["SFT"],
                               "", avg[m] < avg["SFT"]))
        best = max(avg, key=avg.get)
        out.append(Finding("App. E.2: Ours has the best average R-EMI (Table 20)", "Table 20", base,
                           f"Ours Avg. {avg['Ours']:g}", f"best: {best} {avg[best]:g}", avg["Ours"] - avg[best], "",
                           best == "Ours"))
    return out


def self_consistency(published: Sequence[Published]) -> tuple[list[Finding], BoundFit]:
    t12_findings, fit = check_table12_formula(published)
    findings = [*check_table20_avg(published), *check_remid_vs_bound(published), *check_remid_signs(published),
                *t12_findings, *check_table12_text(published), *check_table13(published),
                *check_table2_text(published), *check_table14(published), *check_text_claims(published)]
    return findings, fit


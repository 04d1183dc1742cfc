"""The audit against the paper: the paper's tables checked against themselves, and our numbers put
beside the published ones (`rpm audit`).

Two parts, both plain functions over rpm/paper/published.csv:

1. Self-consistency (no model, no run): Table 20's Avg. column against its row means; the R-EMID
   values Table 20 implies (R-EMI(ID) - R-EMI(OOD)) against every R-EMID-related number printed
   elsewhere (Table 12's bounds, which Theorem 3.4 says they cannot exceed); Table 12's bounds
   against the Theorem 3.4 formula sqrt(2/3) * H_hat * sum_z sqrt(D_z) + 8 * Delta^(1/4), i.e. what
   H_hat and Delta the printed bounds imply; the n that Table 13's (r, p) pairs imply; the text's
   benchmark sizes against Table 2; Table 14's footnote arithmetic; and the claims the text makes
   about these tables. Each result is a `Finding`, worded neutrally.
2. The join: each published cell beside our value from the run's CSVs, with the difference and a
   verdict: "match" / "differs" within a stated tolerance when the run is at the paper's scale,
   "scale differs" when it is not, "not reproduced" when we have no value (a missing input, or a
   cell the run did not produce), and "not printed" for our values the paper shows only in a plot.

Tolerances (scale "paper"); each row of audit.csv states the one it used:
- R-EMI (Table 20): max(0.01, our 95% bootstrap CI half-width) + half a printed unit (0.0005);
  implied R-EMID: the same + 0.0005 more (a difference of two rounded cells). Avg.: 0.01 + 0.0005.
- perplexity (Table 1): 5% of the paper's value.
- benchmark counts (Table 2): exact (the benchmark is a fixed, published data set).
- D_JS terms and the bound (Table 12): 10% of the paper's value (the embedder is our choice).
- Pearson r (Table 13): max(0.1, our bootstrap CI half-width); p-values: the same side of 0.05.
- cost (Table 14): 50% of the paper's value (other hardware, other judge), tokens per sample 25%.
- sample counts (Figures 4 and 5): exact.
"""

from __future__ import annotations

import csv
import math
import os
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import optimize, stats

from rpm.io import write_text
from rpm.paper import Published, cells
from rpm.paper import load as load_published

AUDIT_COLUMNS = ["table", "row", "column", "ours", "paper", "difference", "verdict", "tolerance", "note"]
VERDICTS = ("match", "differs", "scale differs", "not reproduced", "not printed")
SCALES = ("paper", "small")

# ------------------------------------------------------------------ the one mapping: our names -> the paper's labels

# Our subset names (rpm/bench/subsets.py) -> Table 20's columns and Table 12's rows.
T20_COLUMN = OrderedDict([
    ("id_test", "ID"), ("user_de", "User G."), ("user_es", "User S."), ("user_zh", "User C."), ("user_ja", "User J."),
    ("user_ko", "User K."), ("char_literature", "Character L."), ("char_film", "Character F."),
    ("char_theater", "Character T."), ("char_gaming", "Character G."), ("dial_turn", "Dialogue T."),
    ("dial_word", "Dialogue W."),
])
T20_AVG = "Avg."
T12_ROW = OrderedDict([
    ("user_de", "ID->DE"), ("user_es", "ID->ES"), ("user_zh", "ID->ZH"), ("user_ja", "ID->JA"), ("user_ko", "ID->KO"),
    ("char_literature", "ID->Literature"), ("char_film", "ID->Film"), ("char_theater", "ID->Theater"),
    ("char_gaming", "ID->Gaming"), ("dial_turn", "ID->TurnLevel"), ("dial_word", "ID->WordLevel"),
])
T12_COLUMN = OrderedDict([("d_user", "D_JS(P_Xu||Q_Xu)"), ("d_character", "D_JS(P_Xa||Q_Xa)"),
                          ("d_dialogue", "D_JS(P_Xd||Q_Xd)"), ("bound", "R-EMID Upper Bound")])
T12_D_COLUMNS = tuple(T12_COLUMN.values())[:3]
T12_BOUND = T12_COLUMN["bound"]
T12_RPM = ("Qwen3-4B", "SFT")  # App. B.2: "a RPM (trained via SFT based on Qwen3-4B)"
# Our method names (rpm/train/methods.py) -> Table 20's rows; "Ours" is the paper's E.2 method.
METHOD = OrderedDict([("icl", "ICL"), ("sft", "SFT"), ("da", "DA"), ("dpo", "DPO"), ("rft", "RFT"), ("rl", "RL"),
                      ("thinking_sft", "ThinkingSFT"), ("thinking_rl", "ThinkingRL"), ("corl", "Ours")])
# Our base-model names (config `models:`) -> Table 20's base blocks. Small runs map theirs with --base-map.
BASE = {"qwen3_4b_base": "Qwen3-4B", "llama3_8b": "Meta-Llama3-8B"}
# Table 1: our estimator variants -> rows; our shift groups (perplexity.csv scope=shift) -> columns.
T1_ROW = OrderedDict([("corl", "Ours"), ("wo_corl", "Ours w/o CoRL"), ("wo_reasoning", "Ours w/o Reasoning")])
T1_COLUMN = OrderedDict([("id", "ID"), ("user", "U. Shift"), ("character", "C. Shift"), ("dialogue", "D. Shift")])
# Table 2: RPGBench splits (stats.tsv column `split`) -> rows; stats.tsv columns -> columns.
T2_ROW = OrderedDict([("IDTrain", "IDTrain"), ("IDTest", "IDTest"), ("OOD1Test", "User Shift"),
                      ("OOD2Test", "Character Shift"), ("OOD3Test", "Dialogue Compositional Shift")])
T2_COLUMN = OrderedDict([("samples", "Total Samples"), ("user_personas", "User Personas"),
                         ("agent_characters", "Agent Characters")])
# Table 13 rows: our shift names (correlations.csv scope of figure table13).
T13_ROW = OrderedDict([("user", "User Shift"), ("character", "Character Shift"),
                       ("dialogue", "Dialogue Compositional Shift")])
# Table 14: table14_cost.csv `method` -> rows.
T14_ROW = OrderedDict([("R-EMID", "R-EMID (Ours)"), ("judge", "LLM-as-a-Judge (Claude-3.7-Sonnet)")])
FIG4_PANELS = ("fig4a", "fig4b", "fig4c", "fig4d")
# Figure 5's printed sample sizes (Sec. 3.4 text and caption) -> our fig5a rows (scope "size=N").
FIG5_SIZES = {("(a)", "samples at which both correlations reach high levels"): 30,
              ("(b)", "samples for bound estimation"): 100}

SQRT_2_3 = math.sqrt(2.0 / 3.0)


class AuditInputError(ValueError):
    pass


# ------------------------------------------------------------------ records


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


@dataclass
class AuditRow:
    table: str
    row: str
    column: str
    ours: float | None
    paper: str | None
    difference: float | None
    verdict: str
    tolerance: str
    note: str = ""

    def as_dict(self) -> dict:
        return {"table": self.table, "row": self.row, "column": self.column, "ours": _num(self.ours),
                "paper": "" if self.paper is None else self.paper, "difference": _num(self.difference),
                "verdict": self.verdict, "tolerance": self.tolerance, "note": self.note}


@dataclass
class Tolerance:
    """|ours - paper| <= absolute + relative * |paper|, or a significance rule for p-values."""
    absolute: float = 0.0
    relative: float = 0.0
    rule: str = ""       # "" (numeric) | "p<0.05"

    def width(self, paper: float) -> float:
        return self.absolute + self.relative * abs(paper)

    def describe(self, paper: float) -> str:
        if self.rule:
            return "same side of p = 0.05"
        if self.relative and not self.absolute:
            return f"{self.relative:.0%} (±{self.width(paper):.4g})"
        if self.relative:
            return f"±{self.absolute:.4g} + {self.relative:.0%}"
        return "exact" if self.absolute == 0 else f"±{self.absolute:.4g}"


@dataclass
class Audit:
    scale: str
    findings: list[Finding] = field(default_factory=list)
    rows: list[AuditRow] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)   # input name -> path or "(not given)"
    fits: dict[str, float] = field(default_factory=dict)   # Table 12 fit results, for the summary


def _num(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _f(v: float, digits: int = 4) -> str:
    return f"{v:.{digits}f}"


# ------------------------------------------------------------------ 1. the paper against itself


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
    from rpm.bench.subsets import subset as subset_info

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
    turn, word = text[("App. A.1", "eight-turn (turn-level) dialogues")], text[("App. A.1", "word-level modified dialogues")]
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
        avg = {r.split("/")[1]: t20[(r, T20_AVG)].value for r in _t20_rows(t20) if r.startswith(base + "/")}
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


# ------------------------------------------------------------------ 2. our numbers beside the paper's


def read_csv_rows(path: str | os.PathLike, columns: Sequence[str], *, sep: str = ",") -> list[tuple[int, dict]]:
    """(line number, row) of a CSV/TSV; a missing column or an empty table is an error naming the file."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter=sep)
        header = reader.fieldnames or []
        missing = [c for c in columns if c not in header]
        if missing:
            raise AuditInputError(f"{path}: missing column(s) {missing}; it has {header}")
        rows = [(k, r) for k, r in enumerate(reader, start=2)]
    if not rows:
        raise AuditInputError(f"{path}: the table has no rows")
    return rows


def number(path, lineno: int, row: dict, column: str, *, allow_empty: bool = False) -> float:
    text = (row.get(column) or "").strip()
    if text == "" or text.lower() == "nan":
        if allow_empty:
            return math.nan
        raise AuditInputError(f"{path}, line {lineno}: column {column!r} is empty")
    try:
        return float(text)
    except ValueError:
        raise AuditInputError(f"{path}, line {lineno}: column {column!r} holds {text!r}, not a number") from None


def split_rpm(path, lineno: int, rpm: str, base_map: dict[str, str]) -> tuple[str | None, str]:
    """Our "{base}/{method}" -> (paper base or None, paper method)."""
    if rpm.count("/") != 1:
        raise AuditInputError(f"{path}, line {lineno}: column 'rpm' holds {rpm!r}, not '{{base}}/{{method}}'")
    base, method = rpm.split("/")
    if method not in METHOD:
        raise AuditInputError(f"{path}, line {lineno}: unknown method {method!r} in rpm {rpm!r}; known: {list(METHOD)}")
    return base_map.get(base), METHOD[method]


def _ci_half(lo: float, hi: float) -> float:
    return (hi - lo) / 2 if math.isfinite(lo) and math.isfinite(hi) else 0.0


@dataclass
class Ours:
    """Our value for one published cell, its tolerance and a note."""
    value: float
    tolerance: Tolerance
    note: str = ""


def ours_table20(path, base_map) -> tuple[dict, dict, list[AuditRow]]:
    """R-EMI per (paper row, column) and implied-R-EMID counterparts from remi.csv; rows whose base has no paper
    counterpart come back as "not printed" rows."""
    rows = read_csv_rows(path, ["rpm", "metric", "quantity", "subset", "value", "ci_low", "ci_high"])
    remi: dict[tuple[str, str], Ours] = {}
    remid: dict[tuple[str, str], Ours] = {}
    extra: list[AuditRow] = []
    per_row: dict[str, dict[str, float]] = OrderedDict()
    for lineno, r in rows:
        if r["quantity"] not in ("R-EMI", "R-EMID"):
            continue
        if r["subset"] not in T20_COLUMN:
            raise AuditInputError(f"{path}, line {lineno}: unknown subset {r['subset']!r}; known: {list(T20_COLUMN)}")
        base, method = split_rpm(path, lineno, r["rpm"], base_map)
        value = number(path, lineno, r, "value")
        half = _ci_half(number(path, lineno, r, "ci_low", allow_empty=True),
                        number(path, lineno, r, "ci_high", allow_empty=True))
        col = T20_COLUMN[r["subset"]]
        if base is None:
            extra.append(AuditRow("Table 20" if r["quantity"] == "R-EMI" else "Table 20 (implied R-EMID)", r["rpm"],
                                  col, value, None, None, "not printed", "",
                                  f"base {r['rpm'].split('/')[0]!r} has no paper counterpart (map it with --base-map)"))
            continue
        key = (f"{base}/{method}", col)
        note = f"ours: {r['rpm']}, 95% CI half-width {half:.3g}"
        if r["quantity"] == "R-EMI":
            if key in remi:
                raise AuditInputError(f"{path}, line {lineno}: a second R-EMI row for {key} (several runs map to one "
                                      "paper row; check --base-map)")
            remi[key] = Ours(value, Tolerance(max(0.01, half) + 0.0005), note)
            per_row.setdefault(key[0], {})[r["subset"]] = value
        else:
            remid[key] = Ours(value, Tolerance(max(0.01, half) + 0.001), note)
    for row, vals in per_row.items():
        if len(vals) == len(T20_COLUMN):
            remi[(row, T20_AVG)] = Ours(float(np.mean(list(vals.values()))), Tolerance(0.0105),
                                        "mean of our 12 subsets (the paper's Avg. is the 12-column mean, see checks)")
    return remi, remid, extra


def ours_table1(path) -> dict:
    rows = read_csv_rows(path, ["estimator", "scope", "name", "perplexity"])
    out = {}
    for lineno, r in rows:
        if r["scope"] != "shift" or r["name"] not in T1_COLUMN:
            continue
        if r["estimator"] not in T1_ROW:
            raise AuditInputError(f"{path}, line {lineno}: unknown estimator {r['estimator']!r}; known: {list(T1_ROW)}")
        out[(T1_ROW[r["estimator"]], T1_COLUMN[r["name"]])] = Ours(number(path, lineno, r, "perplexity"),
                                                                   Tolerance(relative=0.05), f"n_samples {r.get('n_samples', '')}")
    return out


def ours_table12(path, base_map) -> tuple[dict, dict]:
    """Our divergence terms and bound (all samples) for the RPM mapped to Table 12's, plus our H_hat and Delta."""
    rows = read_csv_rows(path, ["rpm", "target", "size", *T12_COLUMN, "h_hat", "delta"])
    out, terms = {}, {}
    for lineno, r in rows:
        if r["size"] != "all":
            continue
        base, method = split_rpm(path, lineno, r["rpm"], base_map)
        if (base, method) != T12_RPM:
            continue
        if r["target"] not in T12_ROW:
            raise AuditInputError(f"{path}, line {lineno}: unknown target subset {r['target']!r}; known: {list(T12_ROW)}")
        row = T12_ROW[r["target"]]
        for ours_col, col in T12_COLUMN.items():
            out[(row, col)] = Ours(number(path, lineno, r, ours_col), Tolerance(relative=0.10), f"ours: {r['rpm']}")
        terms[row] = (number(path, lineno, r, "h_hat"), number(path, lineno, r, "delta"), r["rpm"])
    return out, terms


def ours_table2(stats_path, bench_dir) -> dict:
    """Counts per RPGBench split: samples summed from stats.tsv; unique personas and characters of a split with
    several subset files need the files themselves (`bench_dir`), since stats.tsv counts them per file."""
    rows = read_csv_rows(stats_path, ["file", "split", *T2_COLUMN], sep="\t")
    per_split: dict[str, list[tuple[int, dict]]] = OrderedDict()
    for lineno, r in rows:
        if r["split"] not in T2_ROW:
            raise AuditInputError(f"{stats_path}, line {lineno}: unknown split {r['split']!r}; known: {list(T2_ROW)}")
        per_split.setdefault(r["split"], []).append((lineno, r))
    from rpm.bench.subsets import SUBSETS

    files_of = Counter(s.split for s in SUBSETS) + Counter({"IDTrain": 1})
    out = {}
    loaded = None
    for split, items in per_split.items():
        row = T2_ROW[split]
        note = f"{len(items)} of the split's {files_of[split]} file(s) in {Path(stats_path).name}"
        out[(row, "Total Samples")] = Ours(sum(number(stats_path, k, r, "samples") for k, r in items), Tolerance(),
                                           note)
        if files_of[split] == 1:
            k, r = items[0]
            for col in ("user_personas", "agent_characters"):
                out[(row, T2_COLUMN[col])] = Ours(number(stats_path, k, r, col), Tolerance(), "")
        elif bench_dir is not None:
            from rpm.bench.load import read_jsonl

            if loaded is None:
                loaded = {}
            samples = [s for _, r in items for s in loaded.setdefault(r["file"],
                                                                       read_jsonl(Path(bench_dir) / f"{r['file']}.jsonl"))]
            # The same definition as stats.tsv (rpm/bench/fetch.py: stats_table), over the split's files together.
            out[(row, "User Personas")] = Ours(float(len({s.user_persona for s in samples})), Tolerance(),
                                               f"unique over {len(items)} files of {bench_dir}")
            out[(row, "Agent Characters")] = Ours(float(len({s.agent_character.character_name for s in samples})),
                                                  Tolerance(), f"unique over {len(items)} files of {bench_dir}")
    return out


CORRELATION_REQUIRED = ["figure", "x", "y", "scope", "n", "pearson_r", "pearson_p", "pearson_ci_low",
                        "pearson_ci_high", "spearman_rho", "spearman_p"]


def ours_correlations(path) -> tuple[dict, dict, list[AuditRow]]:
    """Table 13 cells, Figure 4 sample counts, and every other correlation as a "not printed" row."""
    rows = read_csv_rows(path, CORRELATION_REQUIRED)
    t13, fig, extra = {}, {}, []
    for lineno, r in rows:
        figure = r["figure"]
        n = number(path, lineno, r, "n")
        pr = number(path, lineno, r, "pearson_r", allow_empty=True)
        pp = number(path, lineno, r, "pearson_p", allow_empty=True)
        half = _ci_half(number(path, lineno, r, "pearson_ci_low", allow_empty=True),
                        number(path, lineno, r, "pearson_ci_high", allow_empty=True))
        if figure == "table13" and r["scope"] in T13_ROW:
            row = T13_ROW[r["scope"]]
            t13[(row, "Pearson r")] = Ours(pr, Tolerance(max(0.1, half)), f"n = {n:g}; {r['y']} vs {r['x']}")
            t13[(row, "p")] = Ours(pp, Tolerance(rule="p<0.05"), f"n = {n:g}")
            continue
        if figure in FIG4_PANELS and r["scope"] in ("all", ""):
            fig[(figure, "pairs")] = Ours(n, Tolerance(), f"{r['y']} vs {r['x']}")
        if figure == "fig5a" and r["scope"].startswith("size="):
            # Figure 5 prints sample sizes only; ours is the same size where our sweep has it, with its r and rho.
            size = r["scope"][len("size="):]
            for key, want in FIG5_SIZES.items():
                if size == str(want):
                    rho = number(path, lineno, r, "spearman_rho", allow_empty=True)
                    fig[key] = Ours(float(want), Tolerance(), f"our bound vs R-EMID at {want} samples per side: "
                                                              f"Pearson r = {pr:.3g}, Spearman rho = {rho:.3g}")
        label = f"{figure}: {r['y']} vs {r['x']} ({r['scope'] or 'all'})"
        for col, value in (("n", n), ("Pearson r", pr), ("Pearson p", pp),
                           ("Spearman rho", number(path, lineno, r, "spearman_rho", allow_empty=True)),
                           ("Spearman p", number(path, lineno, r, "spearman_p", allow_empty=True))):
            extra.append(AuditRow(_figure_table(figure), label, col, value, None, None, "not printed", "",
                                  "the paper shows this correlation only in a figure legend"))
    return t13, fig, extra


def _figure_table(figure: str) -> str:
    if figure.startswith("fig"):
        return f"Figure {figure[3:].rstrip('abcd')}"
    return figure


COST_COLUMNS = ["method", "n_samples", "wall_seconds", "cpu_seconds", "prompt_tokens", "completion_tokens", "calls"]


def ours_table14(path, published: Sequence[Published]) -> dict:
    """Our measured cost, brought to the paper's 1,500 samples and priced with the paper's own prices."""
    rows = read_csv_rows(path, COST_COLUMNS)
    t14 = cells(published, "Table 14")
    samples = t14[("both", "test samples")].value
    out, minutes = {}, {}
    for lineno, r in rows:
        if r["method"] not in T14_ROW:
            raise AuditInputError(f"{path}, line {lineno}: unknown method {r['method']!r}; known: {list(T14_ROW)}")
        row = T14_ROW[r["method"]]
        n = number(path, lineno, r, "n_samples")
        if n <= 0:
            raise AuditInputError(f"{path}, line {lineno}: column 'n_samples' must be positive, got {n:g}")
        scale = samples / n
        m = number(path, lineno, r, "wall_seconds") / 60 * scale
        minutes[r["method"]] = m
        note = f"measured on {n:g} samples, scaled to {samples:g}"
        out[(row, "Time (min)")] = Ours(m, Tolerance(relative=0.5), note)
        if r["method"] == "R-EMID":
            price = t14[(row, "A100-80GB price (USD per hour)")].value
            out[(row, "Cost (USD)")] = Ours(m / 60 * price, Tolerance(relative=0.5),
                                            f"{note}; the paper's A100 price applied to our wall time")
        else:
            tokens = number(path, lineno, r, "prompt_tokens")
            price = t14[(row, "price (USD per million tokens)")].value
            out[(row, "Cost (USD)")] = Ours(tokens * scale / 1e6 * price, Tolerance(relative=0.5),
                                            f"{note}; the paper's price per input token")
            out[(row, "tokens per sample")] = Ours(tokens / n, Tolerance(relative=0.25), "prompt tokens per sample, "
                                                   "all judge calls of a sample")
            out[(row, "input tokens (million)")] = Ours(tokens * scale / 1e6, Tolerance(relative=0.25), note)
    if "R-EMID" in minutes and "judge" in minutes and minutes["R-EMID"] > 0:
        out[("judge / R-EMID", "time ratio")] = Ours(minutes["judge"] / minutes["R-EMID"], Tolerance(relative=0.5))
    return out


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
              base_map: dict[str, str] | None = None) -> Audit:
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
             "correlations": correlations, "cost": cost}
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
    join_table(audit, "Figure 4", fig4_pub, None if fig is None else {k: v for k, v in fig.items() if k not in FIG5_SIZES},
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


# ------------------------------------------------------------------ 3. writing


def write_csv(path: str | os.PathLike, audit: Audit) -> None:
    from rpm.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=AUDIT_COLUMNS, lineterminator="\n")
        w.writeheader()
        for row in audit.rows:
            w.writerow(row.as_dict())


def _md_cell(v) -> str:
    text = _num(v) if not isinstance(v, str) else v
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return lines


def render_markdown(audit: Audit) -> str:
    tables = list(dict.fromkeys(r.table for r in audit.rows))
    counts = OrderedDict((v, sum(r.verdict == v for r in audit.rows)) for v in VERDICTS)
    bad = [f for f in audit.findings if f.consistent is False]
    n_checks = sum(f.consistent is not None for f in audit.findings)
    fits = audit.fits
    t12_line = (f"- Table 12's bounds imply, with one H_hat and Delta for all rows (least squares, both >= 0), "
                f"H_hat = {fits['h_hat']:.4f} and Delta = {fits['delta']:.3g} (max residual {fits['max_residual']:.4f}"
                + ("; no non-negative pair reproduces all rows within the printed rounding"
                   if fits["minimax_excess"] > 0 else "; within the printed rounding")
                + f"); with Delta = 0 each row needs its own H_hat, {fits['h_hat_delta0_min']:.4f}-"
                f"{fits['h_hat_delta0_max']:.4f}; 8 * Delta^(1/4) <= bound needs Delta <= {fits['delta_h0_max']:.2g}.")
    lines = ["# Audit against the paper", "",
             "The paper's published numbers (rpm/paper/published.csv) checked against each other, then put beside "
             "this run's. Generated by `rpm audit`.", "", "## Summary", "",
             f"- Scale of this run: **{audit.scale}**" + ("" if audit.scale == "paper" else
                                                          " (not the paper's configuration: every reproduced "
                                                          "value's verdict is \"scale differs\")"),
             f"- Self-consistency checks of the published tables: {n_checks} (plus "
             f"{len(audit.findings) - n_checks} informational rows), of which {len(bad)} found the printed numbers "
             "inconsistent with each other or with the text (listed first below).",
             t12_line,
             "- Cells compared: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n) + ".", "",
             "Inputs:", ""]
    lines += [f"- {k}: `{v}`" for k, v in audit.inputs.items()]
    lines += ["", "Per table:", ""]
    lines += _md_table(["table", *VERDICTS], [[t, *(sum(r.table == t and r.verdict == v for r in audit.rows)
                                                     for v in VERDICTS)] for t in tables])
    lines += ["", "## The paper against itself", "",
              "Each check uses only numbers printed in the paper. \"consistent\" means within the stated tolerance "
              "(the printed rounding unless noted).", ""]
    ordered = bad + [f for f in audit.findings if f.consistent is not False]
    for check in dict.fromkeys(f.check for f in ordered):
        group = [f for f in ordered if f.check == check]
        n_bad = sum(f.consistent is False for f in group)
        n_chk = sum(f.consistent is not None for f in group)
        lines += [f"### {check}", "", f"{n_chk - n_bad} of {n_chk} consistent." if n_chk else "Informational.", ""]
        lines += _md_table(["subject", "printed", "derived", "difference", "tolerance", "consistent", "note"],
                           [[f.subject, f.printed, f.derived, f.difference, f.tolerance,
                             {True: "yes", False: "**no**", None: "-"}[f.consistent], f.note] for f in group])
        lines.append("")
    lines += ["## Our numbers beside the paper's", "",
              "difference = ours - paper. Verdicts: match / differs (within the stated tolerance, at the paper's "
              "scale), scale differs (this run's configuration is not the paper's), not reproduced (no value of "
              "ours), not printed (the paper shows the value only in a figure, or not at all).", ""]
    for t in tables:
        rows = [r for r in audit.rows if r.table == t]
        lines += [f"### {t}", ""]
        lines += _md_table(["row", "column", "ours", "paper", "difference", "verdict", "tolerance", "note"],
                           [[r.row, r.column, r.ours, r.paper or "", r.difference, r.verdict, r.tolerance, r.note]
                            for r in rows])
        lines.append("")
    return "\n".join(lines)


def write_markdown(path: str | os.PathLike, audit: Audit) -> None:
    write_text(path, render_markdown(audit))

"""Pearson and Spearman correlation with p-values (scipy.stats) and seeded bootstrap intervals.

Spearman's p-value is exact for n <= EXACT_SPEARMAN_MAX_N: the share of all n! orderings of y whose |rho| is
at least the observed one (scipy's t approximation gives p = 1e-24 for rho = 1 at n = 5, where the exact
two-sided p is 2/120 = 0.017). Above that n, scipy's approximation is used.

The bootstrap resamples the points (pairs) with replacement; a resample whose x or y is constant
has no correlation and is left out of the percentiles (its count is not needed by any table).
Every figure's correlations go through `correlate`, and all of them land in correlations.csv.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from rpm.analysis.common import AnalysisInputError, read_table
from rpm.core.errors import RpmInputError
from rpm.metrics.tables import SHIFT_ORDER

# judge_validity: for a correlation with a judge's WinRate, what the judge's validity check showed (rpm judge
# validity); "not shown ..." means the correlation is not a finding. Empty for correlations without a judge.
CORRELATION_COLUMNS = ["figure", "x", "y", "scope", "n", "pearson_r", "pearson_p", "pearson_ci_low", "pearson_ci_high",
                       "spearman_rho", "spearman_p", "spearman_ci_low", "spearman_ci_high", "judge_validity"]
FIGURES = ("fig2", "fig4a", "fig4b", "fig4c", "fig4d", "fig5a", "table13")
EXACT_SPEARMAN_MAX_N = 8   # 8! = 40,320 orderings


@dataclass(frozen=True)
class Correlation:
    n: int
    pearson_r: float
    pearson_p: float
    pearson_ci_low: float
    pearson_ci_high: float
    spearman_rho: float
    spearman_p: float
    spearman_ci_low: float
    spearman_ci_high: float

    def label(self) -> str:
        """The legend text of a scatter plot (as the paper's Figure 4 legends: coefficient and p-value)."""
        return (f"Pearson r = {self.pearson_r:.3f} (p = {self.pearson_p:.3g})\n"
                f"Spearman ρ = {self.spearman_rho:.3f} (p = {self.spearman_p:.3g})\nn = {self.n}")


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=1) / den
    r[den <= 1e-300] = np.nan
    return np.clip(r, -1.0, 1.0)


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def exact_spearman_p(x, y) -> float:
    """Two-sided p of Spearman's rho by scipy's permutation test over every ordering of y (n! of them)."""
    rx = stats.rankdata(x)

    def rho(ry, axis=-1):   # Spearman's rho is Pearson's r of the ranks; permuting y permutes its ranks
        ry = np.moveaxis(ry, axis, -1)
        return _rowwise_pearson(np.broadcast_to(rx, ry.shape).reshape(-1, rx.size),
                                ry.reshape(-1, rx.size)).reshape(ry.shape[:-1])

    return float(stats.permutation_test((stats.rankdata(y),), rho, permutation_type="pairings", vectorized=True,
                                        n_resamples=np.inf, alternative="two-sided").pvalue)


def correlate(x, y, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> Correlation:
    """Correlation of paired finite values; fewer than 3 points or a constant side give NaN (with n)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise RpmInputError(f"x and y must be 1-D and of one length, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise RpmInputError("correlate: NaN or infinite values; exclude (and count) them before correlating")
    n = int(x.size)
    nan = math.nan
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Correlation(n, nan, nan, nan, nan, nan, nan, nan, nan)
    pr = stats.pearsonr(x, y)
    sr = stats.spearmanr(x, y)
    p_lo = p_hi = s_lo = s_hi = nan
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(n_boot, n))
        xb, yb = x[idx], y[idx]
        p_lo, p_hi = _interval(_rowwise_pearson(xb, yb), confidence)
        s_lo, s_hi = _interval(_rowwise_pearson(stats.rankdata(xb, axis=1), stats.rankdata(yb, axis=1)), confidence)
    sp = exact_spearman_p(x, y) if n <= EXACT_SPEARMAN_MAX_N else float(sr.pvalue)
    return Correlation(n, float(pr.statistic), float(pr.pvalue), p_lo, p_hi,
                       float(sr.statistic), sp, s_lo, s_hi)


def correlation_row(figure: str, x_name: str, y_name: str, scope: str, c: Correlation,
                    judge_validity: str = "") -> dict:
    if figure not in FIGURES:
        raise RpmInputError(f"unknown figure {figure!r}; one of {FIGURES}")
    return {"figure": figure, "x": x_name, "y": y_name, "scope": scope, **asdict(c), "judge_validity": judge_validity}


def merge_correlation_files(paths) -> list[dict]:
    """The rows of each figure's correlation CSV, concatenated, checked for the columns and figure names."""
    rows = []
    for path in paths:
        df = read_table(path, CORRELATION_COLUMNS)
        for k, rec in enumerate(df.to_dict("records")):
            if rec["figure"] not in FIGURES:
                raise AnalysisInputError(f"{path}, line {k + 2}: figure {rec['figure']!r} is not one of {FIGURES}")
            rows.append({c: rec[c] for c in CORRELATION_COLUMNS})
    return rows


def correlate_points(figure: str, points, *, n_boot: int, seed: int, confidence: float = 0.95,
                     by_shift: bool = True, judge_validity: str = "") -> tuple[Correlation, list[dict]]:
    """The correlation over all included points (scope "all") and, with by_shift, per shift type;
    returns the overall correlation and the correlations.csv rows."""

    x, y = points.arrays()
    overall = correlate(x, y, n_boot=n_boot, confidence=confidence, seed=seed)
    rows = [correlation_row(figure, points.x_name, points.y_name, "all", overall, judge_validity)]
    if by_shift:
        for shift in SHIFT_ORDER:
            sel = [r for r in points.included if r["shift"] == shift]
            if sel:
                c = correlate([r["x"] for r in sel], [r["y"] for r in sel], n_boot=n_boot, confidence=confidence,
                              seed=seed)
                rows.append(correlation_row(figure, points.x_name, points.y_name, shift, c, judge_validity))
    return overall, rows

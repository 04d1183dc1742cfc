"""How many samples per (shift, severity) the controlled-shift sweep needs: a power calculation.

The sweep fits a least-squares slope of a per-sample quantity (a sample's contribution to R-EMI, in
nats/token) over the severities s_1..s_m, with N samples at each. Treating the severities' means as
independent (the nested draws make them positively correlated, which only shrinks the slope's variance, so
this is conservative), the slope's standard error is

    SE = sigma / sqrt(N * sum_k (s_k - mean s)^2)

and a two-sided test at level alpha has power 1 - beta against a true slope delta when
delta >= (z_{1 - alpha/2} + z_{1 - beta}) * SE, so

    N >= ((z_{1 - alpha/2} + z_{1 - beta}) * sigma / delta)^2 / sum_k (s_k - mean s)^2.

sigma is the per-sample standard deviation measured on a run (`per_sample_sd`), delta the smallest slope
worth seeing, stated before the run. `simulated_power` checks the formula by drawing the same design.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from rpm.core.errors import RpmInputError


def _spread(severities) -> float:
    s = np.asarray(severities, dtype=float)
    if s.size < 2 or np.ptp(s) == 0:
        raise RpmInputError(f"a slope needs at least two distinct severities, got {list(severities)}")
    return float(((s - s.mean()) ** 2).sum())


def samples_needed(sigma: float, delta: float, severities, alpha: float = 0.05, power: float = 0.8) -> int:
    """The smallest N per severity that gives `power` against a slope `delta` (two-sided, level alpha)."""
    if sigma <= 0 or delta <= 0:
        raise RpmInputError(f"sigma and delta must be positive, got {sigma} and {delta}")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise RpmInputError(f"alpha and power lie in (0, 1), got {alpha} and {power}")
    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    return math.ceil((z * sigma / delta) ** 2 / _spread(severities))


def power_at(n: int, sigma: float, delta: float, severities, alpha: float = 0.05) -> float:
    """The power of the design with N samples per severity (normal approximation, two-sided)."""
    se = sigma / math.sqrt(n * _spread(severities))
    z = norm.ppf(1 - alpha / 2)
    return float(norm.cdf(delta / se - z) + norm.cdf(-delta / se - z))


def simulated_power(n: int, sigma: float, delta: float, severities, alpha: float = 0.05, trials: int = 2000,
                    seed: int = 0) -> float:
    """The share of simulated sweeps (independent normal samples, true slope delta) whose slope's 95% normal
    interval excludes 0: the formula's check."""
    rng = np.random.default_rng(seed)
    s = np.asarray(severities, dtype=float)
    means = delta * s[None, :] + rng.normal(0, sigma / math.sqrt(n), size=(trials, s.size))
    sc = s - s.mean()
    slopes = means @ sc / (sc @ sc)
    se = sigma / math.sqrt(n * (sc @ sc))
    return float((np.abs(slopes) > norm.ppf(1 - alpha / 2) * se).mean())


def per_sample_sd(model_scores: np.ndarray, golden_scores: np.ndarray) -> float:
    """The SD over samples of a sample's contribution to R-EMI: (model positive - mean model negative) -
    (golden positive - mean golden negative), from per-token score matrices s[i, j] (NaN: unscored)."""
    def contribution(s):
        s = np.asarray(s, dtype=float)
        off = np.where(np.eye(len(s), dtype=bool), np.nan, s)
        return np.diag(s) - np.nanmean(off, axis=1)

    c = contribution(model_scores) - contribution(golden_scores)
    if c.size < 2:
        raise RpmInputError("the per-sample SD needs at least two samples")
    return float(np.std(c, ddof=1))

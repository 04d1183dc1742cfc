"""The positive control: a planted RPM whose R-EMI is known in advance, scored by every estimator.

For a fraction f of each subset's samples the planted RPM answers with another sample's golden response
(a fixed derangement within the subset); the others it answers with their own golden response. At f = 0
its responses are the golden ones and R-EMI is 0 by construction; as f grows the responses carry less
information about their own inputs, so an estimator that can resolve anything must see R-EMI fall. Its
slope over f, with a bootstrap interval, is the instrument's resolution at the run's N: Table 1's
question (which estimator tracks the response distribution) asked a second way.

Nothing is scored again: a planted response is a golden response, so the planted matrix is the golden
matrix with its columns permuted, lp_planted[i, j] = lp_golden[i, c(j)] (c(j) = the sample whose golden
reply j answers with), the same token counts permuted alike. The planted set is nested in f (one fixed
order for each subset size, the first round(f * n) samples answer with another's reply) and seeded by the config's
seed. The bootstrap resamples the samples of each subset with one seed per subset, the same at every f
(so the curve's replicates are paired), and the slope is the least-squares slope over f of the mean R-EMI
over subsets, replicate by replicate; a subset's undefined replicate (every draw one sample) is left out
of that replicate's mean and counted (`undefined_replicates`, in subset-replicates).
"""

from __future__ import annotations

import math

import numpy as np

from rpm.analysis.common import new_figure
from rpm.core.errors import RpmInputError
from rpm.metrics.matrices import LogprobMatrices
from rpm.metrics.mi import MIConfig, remi, subset_seed
from rpm.metrics.pairs import control_cycle

FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
CONTROL_COLUMNS = ["estimator", "subset", "fraction", "n", "planted", "r_emi", "ci_low", "ci_high"]
SLOPE_COLUMNS = ["estimator", "subsets", "n_per_subset", "fractions", "slope", "ci_low", "ci_high", "n_boot",
                 "undefined_replicates", "shown"]


def planted_columns(n: int, fraction: float, seed: int, subset: str) -> np.ndarray:
    """c(j) for each sample j: itself, or (for the first round(fraction * n) of a fixed order) the next sample
    of a fixed random cycle (rpm.metrics.pairs.control_cycle, which K sampled negatives always score), so no
    planted response is its own golden reply."""
    successor, order = control_cycle(n, seed, subset)
    cols = np.arange(n)
    chosen = order[:round(fraction * n)]
    cols[chosen] = successor[chosen]
    return cols


def control_curves(golden: dict[str, dict[str, LogprobMatrices]], fractions=FRACTIONS, cfg: MIConfig = MIConfig()
                   ) -> tuple[list[dict], list[dict]]:
    """golden: {estimator: {subset: golden-only LogprobMatrices}} -> (rows per estimator, subset and f;
    one slope row per estimator). Rows with subset "mean" hold the curve the slope is fitted to."""
    if len(fractions) < 2:
        raise RpmInputError(f"the control needs at least two fractions, got {list(fractions)}")
    rows, slopes = [], []
    f = np.asarray(fractions, dtype=float)
    for estimator, subsets in golden.items():
        if not subsets:
            raise RpmInputError(f"estimator {estimator}: no golden matrices")
        means = np.zeros(len(f))
        rep_sum, rep_count = np.zeros((cfg.n_boot, len(f))), np.zeros((cfg.n_boot, len(f)))
        for subset, m in sorted(subsets.items()):
            lp, ntok = m.golden.lp, m.golden.ntok
            for k, frac in enumerate(f):
                c = planted_columns(m.n, frac, cfg.seed, subset)
                r = remi(lp[:, c], ntok[:, c], lp, ntok, cfg, boot_seed=subset_seed(cfg.seed, subset)).remi
                rows.append({"estimator": estimator, "subset": subset, "fraction": frac, "n": m.n,
                             "planted": int((c != np.arange(m.n)).sum()), "r_emi": r.value, "ci_low": r.ci_low,
                             "ci_high": r.ci_high})
                means[k] += r.value / len(subsets)
                if cfg.n_boot:
                    ok = np.isfinite(r.replicates)
                    rep_sum[ok, k] += r.replicates[ok]
                    rep_count[ok, k] += 1
        slope = _slope(f, means)
        # A subset's replicate whose draws are all one sample has no R-EMI: that replicate's mean is over the
        # other subsets (counted in undefined_replicates as subset-replicates).
        with np.errstate(invalid="ignore", divide="ignore"):
            reps = rep_sum / rep_count
        finite = np.isfinite(reps).all(axis=1)
        undefined = int((len(subsets) - rep_count[:, 0]).sum()) if cfg.n_boot else 0
        boot = np.array([_slope(f, r) for r in reps[finite]])
        alpha = (1 - cfg.confidence) / 2
        lo, hi = (np.quantile(boot, [alpha, 1 - alpha]) if boot.size else (math.nan, math.nan))
        n_all = sum(m.n for m in subsets.values())
        for k, frac in enumerate(f):   # the curve the slope is fitted to: the mean over subsets, with its CI
            m_lo, m_hi = (np.quantile(reps[finite, k], [alpha, 1 - alpha]) if finite.any() else (math.nan, math.nan))
            rows.append({"estimator": estimator, "subset": "mean", "fraction": frac, "n": n_all,
                         "planted": sum(r["planted"] for r in rows if r["estimator"] == estimator
                                        and r["fraction"] == frac and r["subset"] != "mean"),
                         "r_emi": means[k], "ci_low": float(m_lo), "ci_high": float(m_hi)})
        slopes.append({"estimator": estimator, "subsets": len(subsets),
                       "n_per_subset": ",".join(sorted({str(m.n) for m in subsets.values()})),
                       "fractions": ",".join(f"{x:g}" for x in f), "slope": slope, "ci_low": float(lo),
                       "ci_high": float(hi), "n_boot": cfg.n_boot,
                       "undefined_replicates": undefined,
                       "shown": bool(boot.size and hi < 0)})
    return rows, slopes


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc * xc).sum())


def control_figure(rows: list[dict], slopes: list[dict]):
    fig, ax = new_figure(figsize=(6.5, 4.0))
    by = {s["estimator"]: s for s in slopes}
    for estimator in by:
        sel = sorted((r for r in rows if r["estimator"] == estimator and r["subset"] == "mean"),
                     key=lambda r: r["fraction"])
        fr, mean = [r["fraction"] for r in sel], np.array([r["r_emi"] for r in sel])
        lo, hi = np.array([r["ci_low"] for r in sel]), np.array([r["ci_high"] for r in sel])
        err = None if np.isnan(lo).any() else [np.clip(mean - lo, 0, None), np.clip(hi - mean, 0, None)]
        s = by[estimator]
        ax.errorbar(fr, mean, yerr=err, marker="o", capsize=3,
                    label=f"{estimator}: slope {s['slope']:+.3f} [{s['ci_low']:+.3f}, {s['ci_high']:+.3f}]")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("fraction f of responses replaced by another sample's golden reply")
    ax.set_ylabel("R-EMI, mean over subsets (bootstrap CI)")
    ax.set_title("Positive control: a planted RPM of known R-EMI")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig

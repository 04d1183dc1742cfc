"""CLUB mutual information from a log-prob matrix (paper Eq. 2), R-EMI, R-EMID and their bootstrap
confidence intervals.

The estimator (Cheng et al. 2020, as the paper's Eq. 2 and the authors' script use it)
    MI = mean_i s(i, i) - mean_{(i, j) in negatives} s(i, j),   s(i, j) from lp(i, j) = log q(y_j | x_i, r_i)
    normalization "mean" (default, as the authors ran it): s = lp / (tokens of y_j)
                  "sum"  (Eq. 2 as printed):                  s = lp
    pairs "all"     (default): every ordered pair i != j that was scored (all of them, unless
                    `rpm logprobs --negatives K` scored K sampled negatives per row: the rest are NaN).
                    (Eq. 2 as printed averages over all N^2 pairs including i = j; excluding the diagonal
                    is the CLUB estimator proper and what the authors' sampled pairs do.)
          "sampled" K ordered pairs drawn uniformly with replacement among i != j, seeded
                    (the authors: K = 1000).
    R-EMI  = MI(x_R, y_model) - MI(x_R, y_golden), both from the same estimator and the same samples.
    R-EMID(P -> Q) = R-EMI(P) - R-EMI(Q). EMI / EMID are the same numbers from the estimator without r.

What CLUB estimates
    With the true conditional q = p(y | x), E[MI_hat] = E_{p(x,y)} log p(y|x) - E_{p(x)p(y)} log p(y|x),
    the CLUB *upper bound* on I(X; Y). For a Gaussian channel with correlation rho it equals
    rho^2 / (1 - rho^2), above the true MI -0.5 log(1 - rho^2) (the two agree to first order only as
    rho -> 0, where the bound is about twice the MI). tests/test_metrics.py checks both facts.

Bootstrap (seeded, percentile, default 95%)
    A replicate resamples the sample indices i with replacement; the same resample is applied to the
    rows and columns of every matrix in the estimate (model and golden jointly, so R-EMI's interval
    accounts for their correlation). Negative pairs that join two copies of one original sample are
    not negatives and are excluded. With sampled pairs, each replicate draws its own K pairs among
    the resampled samples, so pair-sampling noise is in the interval too. R-EMID's interval combines
    independent replicates of the two subsets (they are different samples).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rpm.core.errors import RpmInputError

NORMALIZATIONS = ("mean", "sum")
PAIR_SCHEMES = ("all", "sampled")
AUTHORS_K = 1000


@dataclass(frozen=True)
class MIConfig:
    normalization: str = "mean"
    pairs: str = "all"
    k: int = AUTHORS_K
    seed: int = 0
    n_boot: int = 1000
    confidence: float = 0.95

    def __post_init__(self):
        if self.normalization not in NORMALIZATIONS:
            raise RpmInputError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if self.pairs not in PAIR_SCHEMES:
            raise RpmInputError(f"pairs must be one of {PAIR_SCHEMES}, got {self.pairs!r}")
        if self.k < 1:
            raise RpmInputError("k must be >= 1")
        if self.n_boot < 0:
            raise RpmInputError("n_boot must be >= 0")
        if not 0 < self.confidence < 1:
            raise RpmInputError("confidence must be in (0, 1)")


@dataclass
class Estimate:
    """A point estimate with its bootstrap percentile interval (nan when n_boot = 0)."""

    value: float
    ci_low: float
    ci_high: float
    n: int
    replicates: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)

    @property
    def undefined(self) -> int:
        """Bootstrap replicates with no value (every draw one sample: no negative pair), left out of the
        interval and counted in the tables' boot_undefined."""
        return int(self.replicates.size - np.isfinite(self.replicates).sum())


@dataclass
class REMIResult:
    mi_model: Estimate
    mi_golden: Estimate
    remi: Estimate


def scores(lp: np.ndarray, ntok: np.ndarray | None = None, normalization: str = "mean") -> np.ndarray:
    """s(i, j): summed log-prob, or per-token mean (divided by the tokens of continuation j)."""
    lp = np.asarray(lp, dtype=np.float64)
    if lp.ndim != 2 or lp.shape[0] != lp.shape[1]:
        raise RpmInputError(f"expected a square matrix, got shape {lp.shape}")
    if normalization == "sum":
        return lp
    if normalization != "mean":
        raise RpmInputError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if ntok is None:
        raise RpmInputError("per-token mean normalisation needs the token counts")
    ntok = np.asarray(ntok, dtype=np.float64)
    if ntok.ndim == 1:
        ntok = np.broadcast_to(ntok[None, :], lp.shape)
    if ntok.shape != lp.shape or (ntok <= 0).any():
        raise RpmInputError("token counts must be positive, one per continuation or per pair")
    return lp / ntok


def sample_pairs(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """K ordered pairs (i, j), i != j, uniform with replacement."""
    i = rng.integers(0, n, size=k)
    j = (i + rng.integers(1, n, size=k)) % n
    return i, j


def _check_n(n: int) -> None:
    if n < 2:
        raise RpmInputError(f"CLUB needs at least 2 samples (negative pairs i != j), got {n}")


def club_mi(lp: np.ndarray, ntok: np.ndarray | None = None, *, normalization: str = "mean",
            pairs: str = "all", k: int = AUTHORS_K, seed: int = 0) -> float:
    """Eq. 2: mean positive score minus mean negative score."""
    s = scores(lp, ntok, normalization)
    n = s.shape[0]
    _check_n(n)
    pos = float(np.mean(np.diag(s)))
    if pairs == "all" and not np.isnan(s).any():
        neg = float((s.sum() - np.trace(s)) / (n * (n - 1)))
    elif pairs == "all":                  # K sampled negatives: the scored pairs only
        neg = float(np.nanmean(s[~np.eye(n, dtype=bool)]))
    elif np.isnan(s).any():
        raise RpmInputError("pairs 'sampled' draws from every pair; these matrices scored K sampled negatives "
                            "per row only: use pairs 'all' (every scored pair)")
    elif pairs == "sampled":
        i, j = sample_pairs(n, k, np.random.default_rng(seed))
        neg = float(s[i, j].mean())
    else:
        raise RpmInputError(f"pairs must be one of {PAIR_SCHEMES}, got {pairs!r}")
    return pos - neg


def _replicates(mats: list[np.ndarray], cfg: MIConfig, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, len(mats)) bootstrap replicates of club_mi, one joint resample per row."""
    n = mats[0].shape[0]
    out = np.full((cfg.n_boot, len(mats)), np.nan)
    if cfg.n_boot == 0:
        return out
    idx = rng.integers(0, n, size=(cfg.n_boot, n))
    if cfg.pairs == "all":
        counts = np.zeros((cfg.n_boot, n))
        np.add.at(counts, (np.repeat(np.arange(cfg.n_boot), n), idx.ravel()), 1.0)
        sq = (counts ** 2).sum(axis=1)
        for m, s in enumerate(mats):
            pos = counts @ np.diag(s) / n
            if not np.isnan(s).any():
                # Ordered pairs of positions joining two different original samples: n^2 - sum c^2.
                quad = np.einsum("bi,bi->b", counts @ s, counts) - (counts ** 2) @ np.diag(s)
                denom = n * n - sq
            else:
                # K sampled negatives: a resampled pair (p, q) counts when it joins two different samples that
                # were scored together, weight w = scored and off-diagonal, so neg = c'(w s)c / c'wc.
                w = np.isfinite(s) & ~np.eye(n, dtype=bool)
                quad = np.einsum("bi,bi->b", counts @ np.where(w, s, 0.0), counts)
                denom = np.einsum("bi,bi->b", counts @ w.astype(float), counts)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[:, m] = np.where(denom > 0, pos - quad / denom, np.nan)
        return out
    if any(np.isnan(s).any() for s in mats):
        raise RpmInputError("pairs 'sampled' needs every pair scored: use pairs 'all' for K sampled negatives")
    for b in range(cfg.n_boot):
        rows = idx[b]
        if len(np.unique(rows)) < 2:
            continue                      # every draw the same sample: no negative pair exists
        a, c = sample_pairs(n, cfg.k, rng)
        same = rows[a] == rows[c]
        while same.any():                 # two copies of one sample are not a negative pair
            a2, c2 = sample_pairs(n, int(same.sum()), rng)
            a[same], c[same] = a2, c2
            same = rows[a] == rows[c]
        for m, s in enumerate(mats):
            out[b, m] = s[rows, rows].mean() - s[rows[a], rows[c]].mean()
    return out


def _interval(reps: np.ndarray, confidence: float) -> tuple[float, float]:
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(reps, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _estimate(value: float, reps: np.ndarray, n: int, cfg: MIConfig) -> Estimate:
    lo, hi = _interval(reps, cfg.confidence)
    return Estimate(float(value), lo, hi, n, reps)


def mi(lp: np.ndarray, ntok: np.ndarray | None, cfg: MIConfig = MIConfig(), *, boot_seed=None) -> Estimate:
    """MI with its bootstrap interval."""
    s = scores(lp, ntok, cfg.normalization)
    _check_n(s.shape[0])
    value = club_mi(s, normalization="sum", pairs=cfg.pairs, k=cfg.k, seed=cfg.seed)
    reps = _replicates([s], cfg, np.random.default_rng(_boot_seed(cfg, boot_seed)))[:, 0]
    return _estimate(value, reps, s.shape[0], cfg)


def remi(model_lp, model_ntok, golden_lp, golden_ntok, cfg: MIConfig = MIConfig(), *, boot_seed=None) -> REMIResult:
    """R-EMI = MI(model responses) - MI(golden responses), with a joint bootstrap."""
    sm = scores(model_lp, model_ntok, cfg.normalization)
    sg = scores(golden_lp, golden_ntok, cfg.normalization)
    if sm.shape != sg.shape:
        raise RpmInputError(f"model and golden matrices differ in shape: {sm.shape} vs {sg.shape}")
    n = sm.shape[0]
    _check_n(n)
    # The same K pairs for model and golden (same seed): common random numbers, as one would want.
    vm = club_mi(sm, normalization="sum", pairs=cfg.pairs, k=cfg.k, seed=cfg.seed)
    vg = club_mi(sg, normalization="sum", pairs=cfg.pairs, k=cfg.k, seed=cfg.seed)
    reps = _replicates([sm, sg], cfg, np.random.default_rng(_boot_seed(cfg, boot_seed)))
    return REMIResult(_estimate(vm, reps[:, 0], n, cfg), _estimate(vg, reps[:, 1], n, cfg),
                      _estimate(vm - vg, reps[:, 0] - reps[:, 1], n, cfg))


def remid(p: REMIResult, q: REMIResult, cfg: MIConfig = MIConfig()) -> Estimate:
    """R-EMID(P -> Q) = R-EMI(P) - R-EMI(Q); the interval pairs independent replicates of P and Q.

    P's and Q's replicates must come from different bootstrap seeds (see `subset_seed`), otherwise
    the two subsets would share resample patterns.
    """
    value = p.remi.value - q.remi.value
    rp, rq = p.remi.replicates, q.remi.replicates
    reps = rp - rq if rp.size and rp.size == rq.size else np.empty(0)
    return _estimate(value, reps, min(p.remi.n, q.remi.n), cfg)


def _boot_seed(cfg: MIConfig, boot_seed):
    return [cfg.seed, 0x5EED] if boot_seed is None else boot_seed


def subset_seed(seed: int, name: str) -> list[int]:
    """A stable bootstrap seed per subset: independent across subsets, identical across RPMs."""
    import zlib

    return [int(seed), zlib.crc32(name.encode("utf-8"))]

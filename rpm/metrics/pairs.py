"""Which (prompt i, continuation j) pairs `rpm logprobs` scores: all N^2, or K sampled negatives per row.

All pairs (the exact option, the default) cost N prompts and N^2 continuations. The authors' estimator
draws K negatives instead; scoring only those makes the cost N * (K + 1) continuations, linear in N.
A row's plan is its own positive (i, i) and K distinct negatives j != i, uniform without replacement, and
seeded by the pair seed and N alone: subsets of one size share the plan, so OOD subsets that hold the same
texts (the sweep's shared bases at severity 0) give the same rows and are scored once (row_reuse.py).
One of the K is the successor of i on the positive control's fixed random cycle (`control_cycle`;
rpm/analysis/control.py plants that successor's golden reply as i's response), so the planted RPM's
positive pair lp[i, succ(i)] is always among the scored pairs and the control needs no scoring of its
own. The successor is itself a uniform draw among the other samples, so the K negatives stay a uniform
sample.

Unscored pairs are NaN in the .npz (rpm/metrics/matrices.py); MI then averages the scored negatives and
its bootstrap weighs each resampled pair by whether it was scored (rpm/metrics/mi.py).
"""

from __future__ import annotations

import zlib

import numpy as np

from rpm.core.errors import RpmInputError


def control_cycle(n: int, seed: int, subset: str) -> tuple[np.ndarray, np.ndarray]:
    """(successor of each sample on a fixed random cycle, a fixed order of the samples), seeded by seed and n
    (`subset` only names the subset in errors)."""
    if n < 2:
        raise RpmInputError(f"subset {subset}: the positive control needs at least 2 samples, got {n}")
    rng = np.random.default_rng([int(seed), zlib.crc32(b"control")])
    cycle = rng.permutation(n)
    successor = np.empty(n, dtype=int)
    successor[cycle] = np.roll(cycle, -1)
    return successor, rng.permutation(n)


def negative_plan(n: int, k: int | None, seed: int, subset: str) -> list[list[int]]:
    """Per row i: the columns to score, i first. k None (or >= n - 1): every column."""
    if k is not None and k < 1:
        raise RpmInputError(f"negatives must be >= 1 (or none for all pairs), got {k}")
    if k is None or k >= n - 1 or n < 2:
        return [list(range(n)) for _ in range(n)]
    successor, _ = control_cycle(n, seed, subset)
    rng = np.random.default_rng([int(seed), zlib.crc32(b"negatives")])
    plan = []
    for i in range(n):
        others = np.array([j for j in range(n) if j != i and j != successor[i]])
        drawn = rng.choice(others, size=k - 1, replace=False) if k > 1 else np.empty(0, dtype=int)
        plan.append([i, int(successor[i]), *sorted(int(j) for j in drawn)])
    return plan


def plan_from_mask(scored: np.ndarray) -> list[list[int]]:
    """The per-row plan a scored-pair mask stands for (its diagonal first)."""
    return [[i, *[int(j) for j in np.flatnonzero(row) if j != i]] for i, row in enumerate(scored)]


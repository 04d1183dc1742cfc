"""The judge's validity check, run with every judge: can it tell a sample's golden reply from another's?

For each chosen sample, the WinRate prompt compares its own golden reply with the golden reply of another
sample of the same subset (a seeded derangement), in both presentation orders. A judge that reads the
dialogue prefers the sample's own golden reply: its accuracy is the mean, over samples, of the probability
(or the 0 / 0.5 / 1 outcome of a parsed verdict) it gives the own reply, averaged over the two orders.
Chance is 0.5. The percentile bootstrap resamples samples. A judge whose interval includes 0.5 is "not
shown" to measure anything, and analyses that correlate with its WinRate say so.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace
from typing import Sequence

import numpy as np

from rpm.judge.core import ENSEMBLE, Item

VALIDITY_COLUMNS = ["judge", "n_samples", "n_verdicts", "n_unparsed", "accuracy", "ci_low", "ci_high", "chance",
                    "n_boot", "n_undefined", "verdict"]
# What the "RPM" of a validity verdict is called in verdicts.csv.
VALIDITY_RPM = "validity/other_golden"
CHANCE = 0.5


def validity_items(items: Sequence[Item], seed: int) -> list[Item]:
    """The same samples, each answered by the golden reply of another sample of its subset (a seeded
    derangement: a random cyclic shift of a random order). A subset with one sample has no other reply and
    is left out (counted by the caller from the difference in samples)."""
    by_subset: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_subset[item.subset].append(item)
    out = []
    for subset, group in by_subset.items():
        if len(group) < 2:
            continue
        order = list(range(len(group)))
        random.Random(f"{seed}:validity:{subset}").shuffle(order)
        for k, i in enumerate(order):
            other = group[order[(k + 1) % len(order)]]
            out.append(replace(group[i], response=other.sample.agent_golden_response))
    return out


def validity_rows(verdicts: Sequence[dict], *, n_boot: int, seed: int, confidence: float = 0.95) -> list[dict]:
    """validity.csv rows, one per judge and one for the ensemble (the mean over judges per sample), from the
    WinRate verdict rows of the validity items (score = the other reply's outcome)."""
    per: dict[str, dict[tuple, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for v in verdicts:
        if v["kind"] == "winrate":
            per[v["judge"]][(v["subset"], v["sample_ID"])].append(v)
    rows = []
    judges = list(per)
    if not judges:
        return rows
    samples = sorted(set.intersection(*(set(per[j]) for j in judges)))
    correct = {j: np.array([np.mean([1.0 - float(v["score"]) for v in per[j][s]]) for s in samples])
               for j in judges}
    # The ensemble's row (the mean over judges per sample; one judge's own values when there is one), so every
    # scores.csv row, the ensemble's included, carries its judge's check.
    correct[ENSEMBLE] = np.mean([correct[j] for j in judges], axis=0)
    for judge, values in correct.items():
        members = judges if judge == ENSEMBLE else [judge]
        rows_of = [v for j in members for s in samples for v in per[j][s]]
        rows.append({"judge": judge, "n_samples": len(values), "n_verdicts": len(rows_of),
                     "n_unparsed": sum(not v["parsed"] for v in rows_of),
                     **_accuracy(values, n_boot, seed, confidence)})
    return rows


def _accuracy(values: np.ndarray, n_boot: int, seed: int, confidence: float) -> dict:
    n = len(values)
    acc = float(values.mean()) if n else float("nan")
    lo = hi = float("nan")
    if n and n_boot:
        rng = np.random.default_rng(seed)
        reps = values[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
        alpha = (1 - confidence) / 2
        lo, hi = (float(x) for x in np.quantile(reps, [alpha, 1 - alpha]))
    if not np.isfinite(lo):
        verdict = "not shown (no interval)"
    elif lo > CHANCE:
        verdict = "above chance"
    elif hi < CHANCE:
        verdict = "below chance"
    else:
        verdict = "not shown (interval includes chance)"
    # A mean over a resample of values in [0, 1] is always defined: no replicate is undefined here.
    return {"accuracy": acc, "ci_low": lo, "ci_high": hi, "chance": CHANCE, "n_boot": n_boot, "n_undefined": 0,
            "verdict": verdict}

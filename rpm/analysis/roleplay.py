"""Do the RPMs role-play? The three checks the report prints before any metric of their responses.

    gain     the SFT RPM raises the mean per-token log-prob of the ID-test golden responses (the Table 21
             target, "<Agent Response>\n...\n</Agent Response>", under the Table 21 prompt) over its base
             model by at least 0.5 nats; the per-sample differences are paired, the CI is a seeded bootstrap
             over samples. With a sweep the workflow scores the sweep's ID test (sweep.n_per_subset samples,
             the main ID test's among them, the same training split): a few samples cannot decide it.
    close    at least 90% of the SFT RPM's responses (every subset, and the sweep's where the run has one)
             close the response tag, i.e. generation stopped at "</Agent Response>" rather than at the token
             limit; the CI is Clopper-Pearson's exact interval. Reported for every method, required of SFT.
    distinct no two methods answered every sample identically; a pair that did is named, with how many of
             its responses are equal.

Verdicts: "met" when the CI lies on the right side of the threshold, "not met" when it lies on the wrong
side, "undecided" when it straddles it (the run's N cannot tell), as everywhere in the report.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np

from rpm.analysis.common import new_figure
from rpm.core.errors import RpmInputError
from rpm.prompts import RESPONSE_CLOSE as CLOSE_TAG
from rpm.runtime.scorer import score_pairs
from rpm.train.formats import response_block, rpm_messages

GAIN_NATS = 0.5
CLOSE_SHARE = 0.9
ROLEPLAY_COLUMNS = ["check", "rpm", "estimate", "ci_low", "ci_high", "threshold", "n", "verdict", "note"]


def golden_token_logprobs(model, tok, samples, batch_size: int = 4) -> np.ndarray:
    """Mean per-token log-prob of each sample's golden target under `model` (Table 21 prompt)."""
    r = score_pairs(model, tok, [rpm_messages(s) for s in samples],
                    [response_block(s.agent_golden_response) for s in samples], batch_size=batch_size,
                    sample_ids=[s.sample_ID for s in samples])
    return np.array([lp.astype(np.float64).mean() for lp in r.token_logprobs])


def _verdict(lo: float, hi: float, threshold: float) -> str:
    if math.isnan(lo) or math.isnan(hi):
        return "undecided"
    return "met" if lo >= threshold else "not met" if hi < threshold else "undecided"


def gain_row(base_lp: np.ndarray, sft_lp: np.ndarray, rpm: str, *, n_boot: int, seed: int,
             confidence: float = 0.95) -> dict:
    diff = np.asarray(sft_lp) - np.asarray(base_lp)
    if diff.size == 0:
        raise RpmInputError("the gain check needs at least one ID-test sample")
    rng = np.random.default_rng([int(seed), 0x601D])
    reps = diff[rng.integers(0, diff.size, size=(n_boot, diff.size))].mean(axis=1) if n_boot else np.empty(0)
    a = (1 - confidence) / 2
    lo, hi = (np.quantile(reps, [a, 1 - a]) if reps.size else (math.nan, math.nan))
    return {"check": "gain", "rpm": rpm, "estimate": float(diff.mean()), "ci_low": float(lo), "ci_high": float(hi),
            "threshold": GAIN_NATS, "n": int(diff.size), "verdict": _verdict(lo, hi, GAIN_NATS),
            "note": f"base {np.mean(base_lp):.3f}, RPM {np.mean(sft_lp):.3f} nats/token on the ID-test golden targets"}


def close_row(rows: list[dict], rpm: str, confidence: float = 0.95, extra: int = 0) -> dict:
    """`extra`: how many of `rows` are responses on other samples than the other RPMs' (the sweep's). Rows with
    the same `input` (one generation copied to several subsets: the sweep's shared bases) count once."""
    from scipy.stats import binomtest

    if not rows:
        raise RpmInputError(f"{rpm}: no responses to check for the closing tag")
    first: dict = {}
    for k, r in enumerate(rows):
        first.setdefault(r.get("input") or ("row", k), k)
    kept = sorted(first.values())
    n, repeated = len(kept), len(rows) - len(kept)
    closed = sum(CLOSE_TAG in (rows[k].get("raw") or "") for k in kept)
    ci = binomtest(closed, n).proportion_ci(confidence_level=confidence, method="exact")
    extra_kept = sum(k >= len(rows) - extra for k in kept) if extra else 0
    whose = f" ({extra_kept} of them the sweep's)" if extra else ""
    if repeated:
        whose += f" after {repeated} copies of one input were counted once"
    return {"check": "close", "rpm": rpm, "estimate": closed / n, "ci_low": float(ci.low), "ci_high": float(ci.high),
            "threshold": CLOSE_SHARE, "n": n, "verdict": _verdict(ci.low, ci.high, CLOSE_SHARE),
            "note": f"{closed} of {n} responses end with {CLOSE_TAG}{whose}; the rest stopped without it (token limit "
                    "or EOS)"}


def distinct_rows(responses: dict[str, dict[str, str]]) -> list[dict]:
    """responses: {rpm: {sample_ID: response}} -> one row per pair of RPMs with identical response sets, or one
    row saying none is."""
    rows = []
    for a, b in combinations(sorted(responses), 2):
        ra, rb = responses[a], responses[b]
        if set(ra) != set(rb):
            raise RpmInputError(f"{a} and {b} answered different samples; every RPM answers the same subsets")
        same = sum(ra[k] == rb[k] for k in ra)
        if same == len(ra):
            rows.append({"check": "distinct", "rpm": f"{a} = {b}", "estimate": 1.0, "ci_low": math.nan,
                         "ci_high": math.nan, "threshold": math.nan, "n": len(ra), "verdict": "not met",
                         "note": f"every one of the {len(ra)} responses is identical"})
    if not rows:
        n = len(next(iter(responses.values()))) if responses else 0
        rows.append({"check": "distinct", "rpm": "all pairs", "estimate": 0.0, "ci_low": math.nan, "ci_high": math.nan,
                     "threshold": math.nan, "n": n, "verdict": "met",
                     "note": f"no two of the {len(responses)} RPMs gave identical response sets"})
    return rows


def roleplay_figure(rows: list[dict]):
    """The close-tag share of every RPM with its exact CI, and the SFT gain with its bootstrap CI."""
    fig, (ax_gain, ax_close) = new_figure(1, 2, figsize=(10, 3.4))
    for ax, check, title in ((ax_gain, "gain", "log-prob gain over the base (nats/token)"),
                             (ax_close, "close", "share of responses closing the tag")):
        sel = [r for r in rows if r["check"] == check]
        for k, r in enumerate(sel):
            err = [[max(r["estimate"] - r["ci_low"], 0)], [max(r["ci_high"] - r["estimate"], 0)]]
            ax.errorbar([r["estimate"]], [k], xerr=err, fmt="o", capsize=3,
                        color={"met": "C2", "not met": "C3"}.get(r["verdict"], "C1"))
        ax.set_yticks(range(len(sel)), [r["rpm"] for r in sel], fontsize=8)
        ax.axvline(sel[0]["threshold"] if sel else 0, color="grey", lw=0.8, ls="--")
        ax.set_title(f"{title} (green met, red not met, orange undecided)", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig

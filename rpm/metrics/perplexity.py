"""Perplexity of golden responses under an estimator (paper Table 1).

    perplexity = exp( - sum_i sum_t log q(y_i,t | x_i, r_i, y_i,<t) / sum_i T_i )

i.e. exp of the mean negative log-prob per token, pooled over every token of every golden response
in the group (average="token", the usual corpus perplexity). average="sample" instead averages each
response's per-token mean first, so long and short responses weigh the same. The log-probs are the
positives of a log-prob matrix (its diagonal) or the sums of score_pairs; no extra model pass.
Table 1 reports one number per shift group (ID, user, character, dialogue): a group pools the tokens
of all its subsets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rpm.core.errors import RpmInputError

AVERAGES = ("token", "sample")


@dataclass(frozen=True)
class Perplexity:
    n_samples: int
    n_tokens: int
    nll_per_token: float
    perplexity: float


def perplexity(lp_sums: Sequence[float], ntok: Sequence[int], average: str = "token") -> Perplexity:
    """From summed log-probs and token counts of golden responses."""
    lp = np.asarray(lp_sums, dtype=np.float64)
    nt = np.asarray(ntok, dtype=np.float64)
    if lp.shape != nt.shape or lp.ndim != 1 or lp.size == 0:
        raise RpmInputError("need one summed log-prob and one token count per response (non-empty)")
    if (nt < 1).any():
        raise RpmInputError("every response needs at least one token")
    if average == "token":
        nll = float(-lp.sum() / nt.sum())
    elif average == "sample":
        nll = float(np.mean(-lp / nt))
    else:
        raise RpmInputError(f"average must be one of {AVERAGES}, got {average!r}")
    return Perplexity(int(lp.size), int(nt.sum()), nll, math.exp(nll))


def from_matrix(lp: np.ndarray, ntok: np.ndarray, average: str = "token") -> Perplexity:
    """From the positives (diagonal) of a log-prob matrix: the golden response of each sample's own prompt."""
    return perplexity(np.diag(lp), np.diag(ntok), average)


def from_pairs(scores, average: str = "token") -> Perplexity:
    """From rpm.runtime.scorer.PairScores of golden responses."""
    return perplexity(scores.sums, scores.ntok, average)

"""Verdicts from the judge's token probabilities (endpoints that return `top_logprobs`).

WinRate: the probability the judge gives the RPM's letter, P(letter) / (P(A) + P(B)) over the first answer
token's alternatives (tokens that read "A" or "B" once spaces, quotes, brackets and asterisks are stripped
count together), for each presentation order; scores.csv averages the two orders, as alpaca_eval's
weighted judges do. PointScore: the probability-weighted mean of the scale's integers among the first
token's alternatives. Tokenizers that split "10" into "1" "0" read a leading "1" as 1: on a 1-10 scale the
mean is then a little low when the judge meant 10 (recorded in the verdict's raw answer).
A first token none of whose top alternatives is a verdict leaves the verdict to the text parsers.
"""

from __future__ import annotations

import math

# Alternatives asked for the first answer token (OpenAI allows at most 20).
TOP_LOGPROBS = 20
_STRIP = " \t\n\"'*`([{“‘:."


def _clean(token: str) -> str:
    return token.strip(_STRIP)


def letter_probabilities(top: list) -> dict[str, float]:
    """{"A": P, "B": P} summed over the first token's alternatives that read as either letter."""
    p = {"A": 0.0, "B": 0.0}
    for token, logprob in top or []:
        letter = _clean(token).upper()
        if letter in p and _clean(token) in ("A", "B", "a", "b"):
            p[letter] += math.exp(logprob)
    return p


def winrate_from_logprobs(top: list, order: str) -> float | None:
    """The RPM's share of the verdict mass for one order, or None when neither letter is among the top."""
    p = letter_probabilities(top)
    total = p["A"] + p["B"]
    if total <= 0:
        return None
    model_letter = "A" if order == "model_first" else "B"
    return p[model_letter] / total


def score_from_logprobs(top: list, scale: tuple[float, float]) -> float | None:
    """The probability-weighted mean of the scale's integers among the top alternatives, or None."""
    lo, hi = scale
    mass: dict[int, float] = {}
    for token, logprob in top or []:
        text = _clean(token)
        if text.isdigit() and lo <= int(text) <= hi:
            mass[int(text)] = mass.get(int(text), 0.0) + math.exp(logprob)
    total = sum(mass.values())
    if total <= 0:
        return None
    return sum(k * p for k, p in mass.items()) / total

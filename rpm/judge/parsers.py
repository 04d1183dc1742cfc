"""Verdict parsers: the judge's answer text -> a verdict, or None with the reason it is unparsed.

pairwise_verdict   "A" | "B" | "tie" from a WinRate answer (judge_winrate.yaml). Accepted forms: the
                   answer starting with the letter ("B", "**A**", "A.", "B\\nReply B keeps..."),
                   "[[A]]", "Verdict: B", "Reply A is better", and tie / draw / equal. A sentence that
                   starts with the article "A" ("A good reply would...") is not a verdict, and an answer
                   naming both replies as the verdict is ambiguous: both are unparsed.
point_score        a number on the prompt's `scale` (judge_pointscore.yaml, e.g. [1, 10]) from a
                   PointScore answer: "7", "Score: 8/10", "I would rate it 6 out of 10", "7.5". The
                   first number counts, except a list enumerator opening a line ("1. The response ...");
                   one outside the scale is unparsed, like no number at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from rpm.core.errors import RpmInputError
from rpm.prompts import PromptTemplate


@dataclass(frozen=True)
class Parsed:
    value: object | None   # "A" / "B" / "tie", or a float score; None when unparsed
    reason: str = ""       # why it is unparsed


_TIE = r"tie|draw|equal|equally good|both equally"
# The answer opens with the verdict: a letter not followed by a lower-case word ("A good..." is an article).
_LEADING = re.compile(r"^[\s\"'*`(\[“‘]*(A|B)\b(?![ \t]+[a-z])", re.S)
_LEADING_TIE = re.compile(rf"^[\s\"'*`(\[“‘]*({_TIE})\b", re.I)
_BRACKETS = re.compile(r"\[\[\s*(A|B|tie)\s*\]\]", re.I)
# Each run of spaces has one place in the pattern (no two adjacent `\s*`): the matching time stays linear in
# the answer's length. Three adjacent `\s*` took 7.6 s on "Verdict" + 200 spaces (tests/test_properties.py).
_LABELLED = re.compile(rf"\b(?:verdict|answer|winner|choice|better reply|better response)(?:\s*(?:is|:|-))?"
                       rf"[\s\"'*`]*(?:(?:reply|response)\s*)?(A|B|{_TIE})\b", re.I)
_BETTER = re.compile(r"\b(?:reply|response)\s+(A|B)\s+(?:is|was|fits)\s+(?:the\s+)?(?:better|best|more)", re.I)


def _norm(v: str) -> str:
    return v.upper() if v.upper() in ("A", "B") else "tie"


def pairwise_verdict(text: str) -> Parsed:
    if not text or not text.strip():
        return Parsed(None, "empty answer")
    for pattern in (_BRACKETS, _LABELLED, _BETTER):
        found = {_norm(m.group(1)) for m in pattern.finditer(text)}
        if len(found) > 1:
            return Parsed(None, f"ambiguous: names {sorted(found)} as the verdict")
        if found:
            return Parsed(found.pop())
    m = _LEADING.match(text) or _LEADING_TIE.match(text)
    if m:
        return Parsed(_norm(m.group(1)))
    return Parsed(None, "no verdict (A, B or tie) in the answer")


_NUMBER = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)(?![\w])")
# List enumerators at the start of lines ("1. The response..." / "2) It..."), which are not scores. An answer is
# read as a list when a line opens with "1." or "1)" before a word; a lone "10. The reply fits" is a score.
_LIST_START = re.compile(r"(?m)^[ \t]*1[.)][ \t]+(?=[^\W\d_])")
_ENUMERATOR = re.compile(r"(?m)^[ \t]*\d+[.)][ \t]+(?=[^\W\d_])")


def point_score(text: str, scale: tuple[float, float]) -> Parsed:
    lo, hi = scale
    if not text or not text.strip():
        return Parsed(None, "empty answer")
    if _LIST_START.search(text):
        text = _ENUMERATOR.sub(lambda e: " " * len(e.group(0)), text)
    m = _NUMBER.search(text)
    if m is None:
        return Parsed(None, "no number in the answer (list enumerators such as '1.' are not scores)")
    value = float(m.group(1))
    if not lo <= value <= hi:
        return Parsed(None, f"score {m.group(1)} is outside the scale {lo:g}-{hi:g}")
    return Parsed(value)


PARSERS = ("pairwise_verdict", "point_score")


def make_parser(name: str, template: PromptTemplate) -> Callable[[str], Parsed]:
    """The parser `name` for answers to `template` (point_score reads the template's `scale`)."""
    if name == "pairwise_verdict":
        return pairwise_verdict
    if name == "point_score":
        scale = template.extras.get("scale")
        if not (isinstance(scale, (list, tuple)) and len(scale) == 2 and all(isinstance(v, (int, float)) for v in scale)
                and scale[0] < scale[1]):
            raise RpmInputError(f"prompt {template.name!r}: the point_score parser needs `scale: [low, high]` in the "
                             f"template file, got {scale!r}")
        lo, hi = float(scale[0]), float(scale[1])
        return lambda text: point_score(text, (lo, hi))
    raise RpmInputError(f"unknown verdict parser {name!r}; known: {', '.join(PARSERS)}")


def neutral_value(name: str, template: PromptTemplate) -> float:
    """What an unparsed verdict counts as (it stays in the denominator): a tie (0.5) for WinRate, the
    middle of the scale for PointScore."""
    if name == "pairwise_verdict":
        return 0.5
    lo, hi = template.extras["scale"]
    return (float(lo) + float(hi)) / 2

"""Reading LLM answers that should be JSON, and asking again when they are not.

Shared by the teacher (rpm.teacher.tasks) and the benchmark builder (rpm.construct): an answer is parsed
as JSON; where the intended value is unambiguous it is repaired (a JSON value inside ```json fences or
prose; optionally a trailing comma before a closing bracket, which the paper's own format examples in
Tables 4, 5 and 7 print); otherwise the request is asked again with another seed at a retry
temperature, a bounded number of times, and finally reported per item with its reason. Nothing is
dropped silently: every item of a task gets a row with its status (accepted, repaired, rejected).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Callable, Protocol

from rpm.core import strictjson
from rpm.core.errors import RpmInputError
from rpm.llm.client import ChatClient

STATUSES = ("accepted", "repaired", "rejected")
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def _loads(text: str, want: type, repair_commas: bool) -> tuple[object | None, bool]:
    """(value, comma_repaired) if `text` is JSON of type `want`, else (None, False). JSON that
    `rpm.core.strictjson` refuses (a duplicate key: two readings; runaway nesting) is not parsed either."""
    try:
        value = strictjson.loads(text)
        return (value, False) if isinstance(value, want) else (None, False)
    except strictjson.StrictJSONError:
        return None, False
    except json.JSONDecodeError:
        pass
    if repair_commas:
        fixed = _TRAILING_COMMA.sub(r"\1", text)
        if fixed != text:
            try:
                value = strictjson.loads(fixed)
                return (value, True) if isinstance(value, want) else (None, False)
            except (json.JSONDecodeError, strictjson.StrictJSONError):
                pass
    return None, False


def extract_json(text: str, want: type = dict, *, repair_commas: bool = False) -> tuple[object | None, bool]:
    """(value, repaired): the answer parsed as JSON of type `want` (dict or list), or the one value inside
    code fences or prose. Several fenced blocks that parse to different values are ambiguous: None."""
    value, fixed = _loads(text.strip(), want, repair_commas)
    if value is not None:
        return value, fixed
    fenced = []
    for block in _FENCE.findall(text):
        v, _ = _loads(block.strip(), want, repair_commas)
        if v is not None and v not in fenced:
            fenced.append(v)
    if len(fenced) == 1:
        return fenced[0], True
    if len(fenced) > 1:
        return None, False
    open_, close = ("{", "}") if want is dict else ("[", "]")
    start, end = text.find(open_), text.rfind(close)
    if 0 <= start < end:
        v, _ = _loads(text[start:end + 1], want, repair_commas)
        if v is not None:
            return v, True
    return None, False


def extract_json_object(text: str) -> tuple[dict | None, bool]:
    """The teacher's strict reading: one JSON object, bare or inside fences / prose; no comma repair."""
    return extract_json(text, dict)


class AskPolicy(Protocol):
    retries: int              # extra attempts after the first malformed answer
    retry_temperature: float
    max_tokens: int
    seed: int


# parse(answer text) -> (value or None, repaired, reason)
Parser = Callable[[str], "tuple[object | None, bool, str]"]


def ask_all(client: ChatClient, requests: dict, policy: AskPolicy, parse: Parser, task: str = "", *,
            keyed: bool = False, schema: dict | None = None) -> dict:
    """Ask every request, parse, and ask the malformed ones again with new seeds; returns
    {key: (value or None, repaired, attempts, reason)}. Requests of one round go out together.
    Keys are sortable item keys (indices or IDs); the retry seed depends on the key's position.
    With `keyed`, the parser is called as parse(key, text), for answers that must name their item.
    `schema` (the prompt's response_schema, or a function of the key giving each request's own) is sent
    with every request to endpoints that take it; the parser still checks each answer, as it does for
    endpoints that do not."""
    results, pending, reason = {}, dict(requests), {}
    order = {k: n for n, k in enumerate(sorted(requests))}
    for attempt in range(policy.retries + 1):
        if not pending:
            break
        idx = sorted(pending)
        kwargs = {"max_tokens": policy.max_tokens}
        seeds = None
        if attempt:
            seeds = [policy.seed * 1_000_003 + order[i] * 101 + attempt for i in idx]
            kwargs.update(temperature=policy.retry_temperature)
        if callable(schema):  # a schema that depends on the request: asked one by one
            answers = [client.complete_many([pending[i]], schema=schema(i), seeds=[seeds[n]] if seeds else None,
                                            **kwargs)[0] for n, i in enumerate(idx)]
        else:
            answers = client.complete_many([pending[i] for i in idx], schema=schema, seeds=seeds, **kwargs)
        for i, answer in zip(idx, answers):
            value, repaired, why = parse(i, answer.text) if keyed else parse(answer.text)
            if value is not None:
                results[i] = (value, repaired, attempt + 1, why)
                del pending[i]
            else:
                reason[i] = why
    for i in pending:
        results[i] = (None, False, policy.retries + 1, reason[i])
    return results


@dataclass
class Report:
    """Status and reason per item of one task; `summary()` is what the report files hold."""

    task: str
    rows: list = field(default_factory=list)
    total: int = 0  # items available to the task (it is asked about len(rows) of them)

    def add(self, item_id: str, status: str, reason: str = "", attempts: int = 1, id_key: str = "sample_ID") -> None:
        if status not in STATUSES:
            raise RpmInputError(f"unknown status {status!r}; expected one of {STATUSES}")
        self.rows.append({id_key: item_id, "status": status, "reason": reason, "attempts": attempts})

    def counts(self) -> dict:
        return {s: sum(r["status"] == s for r in self.rows) for s in STATUSES}

    def summary(self) -> dict:
        return {"task": self.task, "split_samples": self.total, "samples": len(self.rows), **self.counts(),
                "details": self.rows}

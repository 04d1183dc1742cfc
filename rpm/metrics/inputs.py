"""What the metrics score: the estimator's prompts for benchmark samples, and the response and
reasoning files that come from other stages.

Scorer prompts (as the authors' release scores R-EMI; docs/architecture.md, "How the authors ran it")
    with reasoning r    the policy model's prompt, paper Table 17 (`policy_rollout`): x plus the core
                        features r; this is the R-EMI estimator q_phi2(y | x, r).
    without reasoning   the same input without r, paper Table 18 (`reasoning_reward`): the EMI and
                        "w/o Reasoning" estimator p(y | x).
    The scored continuation is the template's expected output, "## Agent Response\\n" + response, as
    the authors scored it; its token count (header included) is the per-token normaliser.

Response rows are {"sample_ID": ..., "response": ...}; reasoning rows {"sample_ID": ..., "reasoning": ...}.
Other keys are allowed (generation metadata) and ignored. Every problem stops the run with the file,
line and sample ID: malformed JSON, a missing or non-string field, an empty text, a duplicate ID,
an ID the benchmark file does not have, or a benchmark sample the file lacks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rpm import prompts as prompt_registry
from rpm.bench.schema import Sample
from rpm.core.errors import RpmInputError
from rpm.io import iter_jsonl

WITH_REASONING = "policy_rollout"       # Table 17
WITHOUT_REASONING = "reasoning_reward"  # Table 18


class InputFileError(RpmInputError):
    """A response/reasoning file that cannot be used; the message says where and why."""

    def __init__(self, message: str, *, file: str, line: int | None = None, sample_id: str | None = None):
        self.file, self.line, self.sample_id = file, line, sample_id
        where = [file]
        if line is not None:
            where.append(f"line {line}")
        if sample_id is not None:
            where.append(f"sample {sample_id!r}")
        super().__init__(f"{', '.join(where)}: {message}")


@dataclass(frozen=True)
class TextRow:
    sample_id: str
    text: str
    line: int
    tag: str | None = None   # the row's optional `tag` field (read_text_rows(..., tag=...)), when it has one


def read_text_rows(path: str | os.PathLike, field: str, *, tag: str | None = None) -> dict[str, TextRow]:
    """Read {"sample_ID", <field>} JSONL rows into {sample_ID: TextRow}, validating each line. With `tag`,
    a row may also carry that field (a non-empty string), kept as TextRow.tag so the caller can check it
    against the file (a "subset" a row names in a per-subset file)."""
    groups = read_grouped_rows(path, field, None, tag=tag)
    return groups[None]


def read_grouped_rows(path: str | os.PathLike, field: str, group: str | None, *,
                      tag: str | None = None) -> dict[str | None, dict[str, TextRow]]:
    """Like read_text_rows, for a file whose rows also carry a `group` field (e.g. "subset"): returns
    {group value: {sample_ID: TextRow}}; sample IDs are unique within a group. With group=None every row
    is in the one group None."""
    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise InputFileError("no such file", file=name)
    groups: dict[str | None, dict[str, TextRow]] = {}
    for lineno, obj in iter_jsonl(path, lambda msg, line: InputFileError(msg, file=name, line=line)):
        if not isinstance(obj, dict):
            raise InputFileError(f"expected a JSON object, got {type(obj).__name__}", file=name, line=lineno)
        sid = obj.get("sample_ID")
        if not isinstance(sid, str) or not sid:
            raise InputFileError('missing or non-string "sample_ID"', file=name, line=lineno)
        key = None
        if group is not None:
            key = obj.get(group)
            if not isinstance(key, str) or not key.strip():
                raise InputFileError(f'missing or non-string field "{group}"', file=name, line=lineno, sample_id=sid)
        if field not in obj:
            raise InputFileError(f'missing field "{field}"', file=name, line=lineno, sample_id=sid)
        value = obj[field]
        if not isinstance(value, str):
            raise InputFileError(f'field "{field}" must be a string, got {type(value).__name__}',
                                 file=name, line=lineno, sample_id=sid)
        if not value.strip():
            raise InputFileError(f'field "{field}" is empty', file=name, line=lineno, sample_id=sid)
        note = obj.get(tag) if tag is not None else None
        if note is not None and (not isinstance(note, str) or not note.strip()):
            raise InputFileError(f'field "{tag}" must be a non-empty string (or absent)', file=name, line=lineno,
                                 sample_id=sid)
        rows = groups.setdefault(key, {})
        if sid in rows:
            raise InputFileError(f"duplicate sample ID (first on line {rows[sid].line})",
                                 file=name, line=lineno, sample_id=sid)
        rows[sid] = TextRow(sid, value, lineno, note)
    if not groups:
        raise InputFileError("the file holds no rows", file=name)
    return groups


def align(rows: dict[str, TextRow], samples: Sequence[Sample], *, file: str, bench_file: str) -> list[str]:
    """The texts in benchmark order; refuse extra or missing sample IDs."""
    wanted = [s.sample_ID for s in samples]
    wanted_set = set(wanted)
    extra = [r for sid, r in rows.items() if sid not in wanted_set]
    if extra:
        r = extra[0]
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise InputFileError(f"sample ID is not in the benchmark file {bench_file}{more}",
                             file=file, line=r.line, sample_id=r.sample_id)
    missing = [sid for sid in wanted if sid not in rows]
    if missing:
        more = f" (and {len(missing) - 1} more: {missing[1:6]})" if len(missing) > 1 else ""
        raise InputFileError(f"no row for benchmark sample {missing[0]!r} of {bench_file}{more}",
                             file=file, sample_id=missing[0])
    return [rows[sid].text for sid in wanted]


def scorer_template(with_reasoning: bool):
    return prompt_registry.get(WITH_REASONING if with_reasoning else WITHOUT_REASONING)


def scorer_messages(sample: Sample, reasoning: str | None = None) -> list[dict[str, str]]:
    """The estimator's chat prompt for one sample: Table 17 with r, Table 18 without."""
    fields = sample.prompt_fields(with_golden=False)
    if reasoning is None:
        return scorer_template(False).render(**fields)
    # The template puts its own fence lines around r, so r goes in stripped (see policy_rollout.yaml).
    return scorer_template(True).render(**fields, reasoning_process=reasoning.strip())


def scored_continuation(response: str, with_reasoning: bool = True) -> str:
    """The continuation whose log-prob is scored: "## Agent Response\\n" + response."""
    return scorer_template(with_reasoning).render_expected(agent_golden_response=response)


def component_texts(samples: Sequence[Sample]) -> dict[str, list[str]]:
    """The input components of Theorem 3.4, as text, plus the whole input ("joint").

    user_persona and dialogue_context are the sample's own fields; agent_character is the character
    rendered as the prompts render it; joint is the role-playing model's whole input (paper Table 21,
    `rpm_response` user message), i.e. exactly what the RPM reads.
    """
    rpm_prompt = prompt_registry.get("rpm_response")
    out: dict[str, list[str]] = {"user_persona": [], "agent_character": [], "dialogue_context": [], "joint": []}
    for s in samples:
        f = s.prompt_fields(with_golden=False)
        out["user_persona"].append(f["user_persona"])
        out["agent_character"].append(f["agent_character"])
        out["dialogue_context"].append(f["str_dialogue_context"])
        out["joint"].append(rpm_prompt.render(**f)[-1]["content"])
    return out


COMPONENTS = ("user_persona", "agent_character", "dialogue_context")

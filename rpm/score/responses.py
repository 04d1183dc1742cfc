"""The responses `rpm score` reads: a folder of {subset}.jsonl, or one JSONL with a "subset" field.

Every response is checked against the benchmark before any model loads: missing, extra, duplicate or
empty responses and unknown subsets are all listed (file, line, sample ID), none dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rpm.bench.schema import Sample
from rpm.bench.subsets import subset_for_tag
from rpm.core.errors import RpmInputError
from rpm.core.names import SUBSET_NAMES
from rpm.io import write_jsonl
from rpm.metrics.inputs import TextRow, read_grouped_rows, read_text_rows

# How the responses' rows and files may name a subset besides the stable names (the authors' names).
_ID_ALIASES = {"idtest": "id_test", "id": "id_test"}
_MAX_LISTED = 10


class ScoreInputError(RpmInputError):
    """Input `rpm score` cannot use; the message says where and why."""


class CoverageError(ScoreInputError):
    """The responses do not cover the benchmark; `problems` lists every one (file, line, sample ID)."""

    def __init__(self, source: str, bench_dir: str, problems: list[str]):
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"responses {source} do not cover the benchmark {bench_dir} "
                         f"({len(problems)} problem(s)); nothing was scored:\n{listed}")


# ------------------------------------------------------------------ responses


def subset_name(text: str) -> str | None:
    """The stable subset name for a file stem or a row's "subset" value (id_test, user_de, the authors'
    IDTest / german / "Film & Television", ...); None when it names no subset."""
    text = text.strip()
    if text in SUBSET_NAMES:
        return text
    key = "".join(ch for ch in text.lower() if ch.isalnum())
    if key in _ID_ALIASES:
        return _ID_ALIASES[key]
    try:
        return subset_for_tag(text)
    except ValueError:
        return None


@dataclass
class Responses:
    """One subset's responses in benchmark order, and where they came from."""

    subset: str
    texts: list[str]
    file: str


@dataclass
class ResponseSet:
    source: str
    by_subset: dict[str, Responses]
    ignored: list[str] = field(default_factory=list)   # subsets present but not asked for (--subset)


def _read_rows(path: Path) -> dict[str, tuple[dict[str, TextRow], str]]:
    """{raw subset name: (rows, file, problems)} from a folder of {subset}.jsonl or a file with "subset"."""
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise ScoreInputError(f"{path}: no *.jsonl files; expected one {{subset}}.jsonl per subset "
                                  f"({', '.join(SUBSET_NAMES)})")
        return {f.stem: (read_text_rows(f, "response", tag="subset"), str(f)) for f in files}
    if not path.is_file():
        raise ScoreInputError(f"{path}: no such file or directory")
    return {key: (rows, str(path)) for key, rows in read_grouped_rows(path, "response", "subset").items()}


def read_responses(path: str | os.PathLike, bench: dict[str, list[Sample]], bench_dir: str) -> ResponseSet:
    """Responses for every subset of `bench`, checked against it. Each line is validated as it is read
    (malformed JSON, a missing or empty response, a duplicate ID stop at that line); coverage problems
    (unknown subset names, subsets without responses, missing and extra sample IDs) are all collected
    and reported together in one CoverageError."""
    path = Path(path)
    raw = _read_rows(path)
    problems: list[str] = []
    found: dict[str, tuple[dict[str, TextRow], str]] = {}
    present: set[str] = set()
    for key, (rows, file) in raw.items():
        name = subset_name(key)
        if name is None:
            if path.is_dir():
                problems.append(f"{file}: unknown subset name {key!r} (file names must be subset names: "
                                f"{', '.join(SUBSET_NAMES)})")
            else:
                first = min(rows.values(), key=lambda r: r.line)
                problems.append(f"{file}, line {first.line}, sample {first.sample_id!r}: unknown subset {key!r} "
                                f"({len(rows)} row(s)); known subsets: {', '.join(SUBSET_NAMES)}")
            continue
        present.add(name)
        for r in sorted(rows.values(), key=lambda r: r.line):  # a row of {subset}.jsonl naming another subset
            if r.tag is not None and subset_name(r.tag) != name:
                problems.append(f"{file}, line {r.line}, sample {r.sample_id!r}: the row says \"subset\": {r.tag!r}, "
                                f"but the file holds subset {name!r}: which one is meant is ambiguous")
        if name in found:
            problems.append(f"{file}: subset {key!r} is {name!r}, whose responses are already given "
                            f"({found[name][1] if path.is_dir() else 'under another name'})")
            continue
        found[name] = (rows, file)
    wanted = list(bench)
    for sub in wanted:
        if sub not in found:
            where = f"{path}/{sub}.jsonl" if path.is_dir() else f'rows with "subset": "{sub}" in {path}'
            problems.append(f"{path}: no responses for subset {sub!r} (expected {where})")
            continue
        rows, file = found[sub]
        ids = [s.sample_ID for s in bench[sub]]
        known = set(ids)
        bench_file = f"{bench_dir}/{sub}.jsonl"
        missing = [sid for sid in ids if sid not in rows]
        if missing:
            shown = ", ".join(repr(s) for s in missing[:_MAX_LISTED])
            more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
            problems.append(f"{file}: {len(missing)} sample(s) of subset {sub!r} ({bench_file}) have no "
                            f"response: {shown}{more}")
        extra = [r for sid, r in rows.items() if sid not in known]
        for r in extra[:_MAX_LISTED]:
            problems.append(f"{file}, line {r.line}, sample {r.sample_id!r}: not a sample of subset {sub!r} "
                            f"({bench_file})")
        if len(extra) > _MAX_LISTED:
            problems.append(f"{file}: and {len(extra) - _MAX_LISTED} more sample(s) not in {bench_file}")
    if problems:
        raise CoverageError(str(path), bench_dir, problems)
    by_subset = {sub: Responses(sub, [found[sub][0][s.sample_ID].text for s in bench[sub]], found[sub][1])
                 for sub in wanted}
    return ResponseSet(str(path), by_subset, sorted(present - set(wanted)))


def write_responses(out_dir: Path, responses: ResponseSet, bench: dict[str, list[Sample]]) -> Path:
    """The checked responses as {subset}.jsonl (benchmark order), the layout `rpm bound` reads."""
    for sub, r in responses.by_subset.items():
        write_jsonl(out_dir / f"{sub}.jsonl", [{"sample_ID": s.sample_ID, "response": t}
                                              for s, t in zip(bench[sub], r.texts)])
    return out_dir


# ------------------------------------------------------------------ the estimator



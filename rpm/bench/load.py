"""The one benchmark loader. Every reader of benchmark data goes through here."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rpm.bench.schema import BenchRecordError, Sample, sample_from_dict
from rpm.bench.subsets import subset_for_tag
from rpm.core import strictjson
from rpm.core.names import BENCH_FILES, SPLITS, SUBSET_NAMES
from rpm.io import iter_jsonl


def read_jsonl(path: str | os.PathLike) -> list[Sample]:
    """Read and validate one JSONL file of RPGBench records; stop at the first bad line."""
    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such benchmark file")
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for lineno, obj in iter_jsonl(path, lambda msg, line: BenchRecordError(msg, file=name, line=line)):
        sample = sample_from_dict(obj, file=name, line=lineno)
        if sample.sample_ID in seen:
            raise BenchRecordError(f"duplicate sample ID (first seen on line {seen[sample.sample_ID]})",
                                   file=name, line=lineno, sample_id=sample.sample_ID, field="sample_ID")
        seen[sample.sample_ID] = lineno
        _check_tag(sample, path, lineno)
        samples.append(sample)
    if not samples:
        raise BenchRecordError("the file holds no records", file=name)
    return samples


# A file named after a split (fetch's per-split sources) or `train.jsonl` says which split its records are in.
_FILE_SPLIT = {"train": "IDTrain", **{split: split for split in SPLITS}}
_ID_SPLITS = ("IDTrain", "IDTest")


def _tag_problem(tag: str | None, *, split: str | None = None, subset: str | None = None) -> str | None:
    """Why a record's subset tag disagrees with where it is (its split, or the subset its file is named
    after), or None. A record whose tag says one subset while its place says another could be read two
    ways: that is refused, never resolved silently."""
    if tag is None:
        return None
    if split in _ID_SPLITS:
        return (f"an {split} record carries subset_tag {tag!r}, but ID records have none (RPGBench's IDTrain and "
                "IDTest records carry no tag): remove it, or move the record to its subset's file")
    try:
        name = subset_for_tag(tag, split)
    except ValueError as e:
        return str(e)
    if subset in SUBSET_NAMES and name != subset:
        return f"tag {tag!r} is subset {name}, but the file is {subset}.jsonl"
    return None


def _check_tag(sample: Sample, path: Path, lineno: int) -> None:
    """A subset tag must be a known one, in a normalised subset file ({subset}.jsonl) that subset's, in a
    split's file (IDTrain.jsonl, OOD1Test.jsonl, ...) or train.jsonl one of that split's (none for ID)."""
    problem = _tag_problem(sample.subset_tag, split=_FILE_SPLIT.get(path.stem), subset=path.stem)
    if problem:
        raise BenchRecordError(problem, file=str(path), line=lineno, sample_id=sample.sample_ID, field="subset_tag")


def read_authors_json(path: str | os.PathLike) -> dict[str, list[Sample]]:
    """Read the authors' single JSON file: {"IDTrain": [...], "IDTest": [...], "OOD1Test": [...], ...}.

    A JSON document has no record lines, so errors name the split and the record index instead.
    """
    path = Path(path)
    name = str(path)
    try:
        doc = strictjson.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise BenchRecordError(f"invalid UTF-8 at byte {e.start}", file=name) from None
    except json.JSONDecodeError as e:
        raise BenchRecordError(f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}",
                               file=name, line=e.lineno) from None
    except strictjson.StrictJSONError as e:  # a duplicate key (a split given twice, a field twice), ...
        raise BenchRecordError(e.reason, file=name, sample_id=e.sample_id, field=e.key) from None
    if not isinstance(doc, dict):
        raise BenchRecordError(f"expected an object whose keys are the splits {list(SPLITS)}", file=name)
    unknown = sorted(set(doc) - set(SPLITS))
    if unknown:
        raise BenchRecordError(f"unknown split(s) {unknown}; expected {list(SPLITS)}", file=name)
    out: dict[str, list[Sample]] = {}
    seen: dict[str, str] = {}
    for split, records in doc.items():
        if not isinstance(records, list):
            raise BenchRecordError(f"split {split} must be a list of records", file=name)
        out[split] = []
        for i, obj in enumerate(records):
            where = f"{name} [{split}][{i}]"
            sample = sample_from_dict(obj, file=where)
            if sample.sample_ID in seen:
                raise BenchRecordError(f"duplicate sample ID (first seen at {seen[sample.sample_ID]})",
                                       file=where, sample_id=sample.sample_ID, field="sample_ID")
            seen[sample.sample_ID] = f"[{split}][{i}]"
            problem = _tag_problem(sample.subset_tag, split=split)
            if problem:
                raise BenchRecordError(problem, file=where, sample_id=sample.sample_ID, field="subset_tag")
            out[split].append(sample)
    return out


def load_bench(bench_dir: str | os.PathLike, files: tuple[str, ...] = BENCH_FILES) -> dict[str, list[Sample]]:
    """Load a normalised benchmark directory (`train.jsonl` and one file per subset).

    A sample ID may appear in one file only: metrics and caches are keyed by it.
    """
    bench_dir = Path(bench_dir)
    out: dict[str, list[Sample]] = {}
    owner: dict[str, str] = {}
    for f in files:
        path = bench_dir / f"{f}.jsonl"
        out[f] = read_jsonl(path)
        for lineno, s in enumerate(out[f], start=1):  # one record per line, so index + 1 is the line
            if s.sample_ID in owner:
                raise BenchRecordError(f"duplicate sample ID: also in {owner[s.sample_ID]}", file=str(path),
                                       line=lineno, sample_id=s.sample_ID, field="sample_ID")
            owner[s.sample_ID] = f"{path}:{lineno}"
    return out

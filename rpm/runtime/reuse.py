"""Generations reused where their input did not change (the sweep's nested severities).

A generated row records `input_sha256`: the SHA-256 of the model's identity (its adapter weights and base),
the decoding settings and the exact chat messages. A later job given earlier rows (`--reuse FILE`) copies
the row of every sample whose key it already holds and generates only the others, so a sweep over nested
severities generates each distinct sample once: an unshifted sample is byte-identical at every severity and
so is its prompt. A reused row says where it came from (`reused_from`). Within one job, inputs that occur
more than once (the OOD subsets share their bases, so at severity 0 they hold the same texts) are generated
once and the result is copied to each position (`distinct`). Greedy decoding in a different batch
can differ in the last bits of its arithmetic; a reused row is the output of the same model, settings and
prompt, generated in another batch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from rpm.core.errors import RpmInputError
from rpm.io import iter_jsonl


def input_sha256(model_sha256: str, decoding, messages: list[dict]) -> str:
    canon = {"model": model_sha256, "decoding": asdict(decoding), "messages": messages}
    return hashlib.sha256(json.dumps(canon, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def read_reusable(files) -> dict[str, dict]:
    """{input_sha256: row, with `reused_from` naming its file} over earlier output files (rows without a key
    are not reusable and are left out)."""
    out = {}
    for f in map(Path, files or ()):
        if not f.is_file():
            raise RpmInputError(f"{f}: no such file to reuse generations from")
        for _, row in iter_jsonl(f, lambda msg, line, f=f: RpmInputError(f"{f}, line {line}: {msg}")):
            key = row.get("input_sha256") if isinstance(row, dict) else None
            if isinstance(key, str):
                out.setdefault(key, {**row, "reused_from": row.get("reused_from") or str(f)})
    return out


def split_reused(keys: list[str], reusable: dict[str, dict]) -> tuple[dict[int, dict], list[int]]:
    """({position: reused row}, positions to generate) for the inputs' keys."""
    hits = {k: reusable[key] for k, key in enumerate(keys) if key in reusable}
    return hits, [k for k in range(len(keys)) if k not in hits]


def distinct(keys: list[str], todo: list[int]) -> tuple[list[int], dict[int, int]]:
    """(the positions of `todo` to generate: the first of each key, {every position of todo: the position
    generated for it})."""
    first: dict[str, int] = {}
    source = {k: first.setdefault(keys[k], k) for k in todo}
    return list(first.values()), source

"""What the four build steps share: the asking policy, seed files, item files and step reports."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import yaml

from rpm.bench.schema import check_sample_id
from rpm.core.errors import RpmInputError
from rpm.io import iter_jsonl, write_json, write_jsonl
from rpm.llm.answers import Report
from rpm.llm.client import ChatClient, ledger_row

# The character domains of Step 1 (Table 4's "categories") are the character-shift subsets' tags.
DOMAINS = ("Literature", "Film & Television", "Theater", "Gaming")
DOMAIN_DESC = {
    "Literature": "characters from novels, poems, plays read as literature, and real writers or thinkers",
    "Film & Television": "characters from films and television series, and real actors or directors",
    "Theater": "characters from stage plays, operas and musicals, and real playwrights or performers",
    "Gaming": "characters from video games and tabletop games, and real game designers or players",
}
# Step 2's five non-English backgrounds, in the order of Table 5's user_persona_variant1..5.
LANGUAGES = ("de", "es", "zh", "ja", "ko")
LANGUAGE_NAMES = {"en": "English", "de": "German", "es": "Spanish", "zh": "Chinese", "ja": "Japanese",
                  "ko": "Korean"}

PACKAGED_SEEDS = Path(__file__).parent / "seeds"


class BuildInputError(RpmInputError):
    """A seed or intermediate file that cannot be used, naming the file, the item and the field."""


@dataclass
class AskPolicy:
    retries: int = 2               # new attempts (another seed) after a malformed answer
    retry_temperature: float = 0.7
    max_tokens: int = 512
    seed: int = 0


# ---------------------------------------------------------------- seeds


@dataclass(frozen=True)
class PersonaSeed:
    id: str
    persona: str                 # the seed persona, PersonaChat style
    chat_history: tuple[str, ...]


@dataclass(frozen=True)
class ContextSeed:
    id: str
    utterances: tuple[str, ...]

    def text(self) -> str:
        speakers = ("A", "B")
        return "\n".join(f"{speakers[i % 2]}: {u}" for i, u in enumerate(self.utterances))


def seed_entries(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such seed file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise BuildInputError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, list) or not data:
        raise BuildInputError(f"{path}: expected a non-empty YAML list of seed entries")
    seen = set()
    for n, entry in enumerate(data):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise BuildInputError(f"{path}: entry {n}: expected a mapping with a string `id`")
        try:
            check_sample_id(entry["id"])
        except ValueError as e:
            raise BuildInputError(f"{path}: entry {n}: field 'id': {e}") from None
        if entry["id"] in seen:
            raise BuildInputError(f"{path}: entry {n} ({entry['id']!r}): duplicate id")
        seen.add(entry["id"])
    return data


def _strings(path, entry, key, n) -> tuple[str, ...]:
    value = entry.get(key)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise BuildInputError(f"{path}: entry {n} ({entry['id']!r}): field {key!r} must be a non-empty list of "
                              "non-empty strings")
    return tuple(v.strip() for v in value)


def read_persona_seeds(path: str | os.PathLike) -> list[PersonaSeed]:
    """PersonaChat-style seeds: `id`, `persona` (sentences), `dialogue` (their chat history)."""
    path = Path(path)
    return [PersonaSeed(e["id"], " ".join(_strings(path, e, "persona", n)), _strings(path, e, "dialogue", n))
            for n, e in enumerate(seed_entries(path))]


@dataclass(frozen=True)
class CharacterSeed:
    id: str
    character_name: str
    category: str
    character_description: str
    persona_seeds: tuple[str, ...]   # the seed personas it is paired with (as if Step 1a had named it for them)


def read_character_seeds(path: str | os.PathLike) -> list[CharacterSeed]:
    """Hand-named characters: `id`, `character_name`, `category` (one of the four domains),
    `character_description`, `persona_seeds` (ids in the persona seed file)."""
    path = Path(path)
    out = []
    for n, e in enumerate(seed_entries(path)):
        name, cat = _strings(path, e, "character_name", n)[0], _strings(path, e, "category", n)[0]
        desc = e.get("character_description", "")
        if not isinstance(desc, str):
            raise BuildInputError(f"{path}: entry {n} ({e['id']!r}): field 'character_description' must be a string")
        out.append(CharacterSeed(e["id"], name, cat, desc.strip(), _strings(path, e, "persona_seeds", n)))
    return out


def read_context_seeds(paths) -> list[ContextSeed]:
    """Context seeds (Step 3): the `dialogue` of every entry of PersonaChat- or DailyDialog-style files."""
    out, owner = [], {}
    for p in map(Path, paths):
        for n, e in enumerate(seed_entries(p)):
            if e["id"] in owner:
                raise BuildInputError(f"{p}: entry {n} ({e['id']!r}): id also used in {owner[e['id']]}")
            owner[e["id"]] = p
            out.append(ContextSeed(e["id"], _strings(p, e, "dialogue", n)))
    return out


# ---------------------------------------------------------------- item files and reports


def read_items(path: str | os.PathLike, required: tuple[str, ...], id_key: str) -> list[dict]:
    """An intermediate JSONL file of a previous step, with the fields this step needs checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (run the previous `rpm bench build` step first)")
    rows, seen = [], {}
    for line, obj in iter_jsonl(path, lambda msg, line: BuildInputError(f"{path}, line {line}: {msg}")):
        if not isinstance(obj, dict):
            raise BuildInputError(f"{path}, line {line}: expected a JSON object, got {type(obj).__name__}")
        missing = [k for k in (id_key, *required) if k not in obj]
        if missing:
            raise BuildInputError(f"{path}, line {line}, item {obj.get(id_key)!r}: missing field(s) {missing}")
        item = obj[id_key]
        if not isinstance(item, str) or not item:
            raise BuildInputError(f"{path}, line {line}: field {id_key!r} must be a non-empty string, got {item!r}")
        if item in seen:  # the next steps key items by ID: a second one would silently replace the first
            raise BuildInputError(f"{path}, line {line}, item {item!r}: duplicate {id_key} "
                                  f"(first on line {seen[item]})")
        seen[item] = line
        rows.append(obj)
    return rows


def seeded(seed: int, task: str) -> random.Random:
    return random.Random(f"{seed}:{task}")


def write_step(out: str | os.PathLike, rows: list[dict], report_path: str | os.PathLike, step: str,
               reports: list[Report], client: ChatClient, extra: dict | None = None) -> dict:
    """Write a step's items and its report: per sub-task counts and per-item rows, and the ledger."""
    write_jsonl(out, rows)
    summary = {
        "step": step,
        "written": len(rows),
        "tasks": {r.task: {"asked": len(r.rows), **r.counts(), "details": r.rows} for r in reports},
        "ledger": ledger_row(client.endpoint, client.ledger, model=client.served_model),
        **(extra or {}),
    }
    write_json(report_path, summary)
    return summary


def counts_line(summary: dict) -> str:
    parts = [f"{t}: {c['accepted']} accepted, {c['repaired']} repaired, {c['rejected']} rejected of {c['asked']}"
             for t, c in summary["tasks"].items()]
    led = summary["ledger"]
    return (f"{summary['step']}: wrote {summary['written']} items; " + "; ".join(parts)
            + f"; {led['calls']} endpoint calls, {led['cached']} from cache")


# ---------------------------------------------------------------- the endpoint



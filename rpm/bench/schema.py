"""The RPGBench record, exactly as the benchmark publishes it (paper Tables 8, 10, 11).

Every record is validated on load; a bad one raises BenchRecordError naming the file, the line
(or record index), the sample ID and the field, so nothing is skipped silently.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from rpm.core.errors import RpmInputError

CHARACTER_FIELDS = (
    "character_name",
    "character_domain",
    "character_source",
    "basic_character_information",
    "character_background",
    "character_personality",
)
REQUIRED_FIELDS = ("sample_ID", "user_persona", "agent_character", "dialogue_context", "agent_golden_response")
OPTIONAL_FIELDS = ("subset_tag",)

# Sample IDs become parts of file names downstream (caches, per-sample logs): keep them plain. \Z, not $:
# `$` also matches before a final newline, which let "abc\n" through (tests/property_regressions/).
_SAFE_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}\Z")


class BenchRecordError(RpmInputError):
    """A benchmark record that cannot be used, with where it is and what is wrong."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 sample_id: str | None = None, field: str | None = None):
        self.file, self.line, self.sample_id, self.field = file, line, sample_id, field
        self.reason = message
        where = [f"{file}" if file else "<input>"]
        if line is not None:
            where.append(f"line {line}")
        where.append(f"sample {sample_id!r}" if sample_id else "sample ?")
        if field:
            where.append(f"field {field!r}")
        super().__init__(f"{': '.join([', '.join(where), message])}")


@dataclass(frozen=True)
class AgentCharacter:
    character_name: str
    character_domain: str
    character_source: str
    basic_character_information: str
    character_background: str
    character_personality: str


@dataclass(frozen=True)
class Turn:
    """One dialogue turn; serialised as {"user_query": text} or {"agent_response": text}."""

    role: str  # "user_query" | "agent_response"
    text: str


@dataclass(frozen=True)
class Sample:
    sample_ID: str
    user_persona: str
    agent_character: AgentCharacter
    dialogue_context: tuple[Turn, ...]
    agent_golden_response: str
    subset_tag: str | None = field(default=None)

    def prompt_fields(self, *, with_golden: bool = True) -> dict[str, str]:
        """The fields the paper's prompt templates (rpm/prompts/) are filled with."""
        c = self.agent_character
        fields = {
            "user_persona": self.user_persona.strip(),
            "agent_character": "\n".join([
                f"Name: {c.character_name}", f"Domain: {c.character_domain}", f"Source: {c.character_source}",
                f"Basic information: {c.basic_character_information}", f"Background: {c.character_background}",
                f"Personality: {c.character_personality}"]),
            "str_dialogue_context": "\n".join(
                f"{'User' if t.role == 'user_query' else 'Agent'}: {t.text}" for t in self.dialogue_context),
        }
        if with_golden:
            fields["agent_golden_response"] = self.agent_golden_response
        return fields

    def to_dict(self) -> dict:
        """The record in RPGBench's own JSON shape (what `from_dict` reads)."""
        d = {
            "sample_ID": self.sample_ID,
            "user_persona": self.user_persona,
            "agent_character": asdict(self.agent_character),
            "dialogue_context": [{t.role: t.text} for t in self.dialogue_context],
            "agent_golden_response": self.agent_golden_response,
        }
        if self.subset_tag is not None:
            d["subset_tag"] = self.subset_tag
        return d


def check_sample_id(sample_id: str) -> str:
    """Refuse IDs that could escape a directory or break a file name ('../x', 'a/b', spaces)."""
    if not _SAFE_ID.match(sample_id) or ".." in sample_id:
        raise RpmInputError(
            f"sample ID {sample_id!r} is not safe to use in file names: use letters, digits, '_', '-', '.' "
            "(no path separators, no '..', at most 128 characters)"
        )
    return sample_id


def _text(obj: dict, key: str, err, *, allow_empty: bool = False) -> str:
    if key not in obj:
        raise err("missing required field (expected a string)", key)
    value = obj[key]
    if not isinstance(value, str):
        raise err(f"expected a string, got {type(value).__name__}", key)
    if not allow_empty and not value.strip():
        raise err("is empty", key)
    return value


def sample_from_dict(obj, *, file: str | None = None, line: int | None = None) -> Sample:
    """Validate one decoded JSON record and return a Sample; raise BenchRecordError otherwise."""
    sample_id = obj.get("sample_ID") if isinstance(obj, dict) else None
    sid = sample_id if isinstance(sample_id, str) else None

    def err(message: str, fld: str | None = None) -> BenchRecordError:
        return BenchRecordError(message, file=file, line=line, sample_id=sid, field=fld)

    if not isinstance(obj, dict):
        raise err(f"a record must be a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise err(f"unknown field(s) {unknown}; RPGBench records have {list(REQUIRED_FIELDS + OPTIONAL_FIELDS)}",
                  unknown[0])

    _text(obj, "sample_ID", err)
    try:
        check_sample_id(sid)
    except ValueError as e:
        raise err(str(e), "sample_ID") from None
    persona = _text(obj, "user_persona", err)

    if "agent_character" not in obj:
        raise err("missing required field (expected an object)", "agent_character")
    ch = obj["agent_character"]
    if not isinstance(ch, dict):
        raise err(f"expected an object with {list(CHARACTER_FIELDS)}, got {type(ch).__name__}", "agent_character")
    unknown = sorted(set(ch) - set(CHARACTER_FIELDS))
    if unknown:
        raise err(f"unknown field(s) {unknown}", f"agent_character.{unknown[0]}")
    character = AgentCharacter(**{
        k: _text(ch, k, lambda m, f: err(m, f"agent_character.{f}"), allow_empty=(k != "character_name"))
        for k in CHARACTER_FIELDS
    })

    if "dialogue_context" not in obj:
        raise err("missing required field (expected a list of turns)", "dialogue_context")
    turns_raw = obj["dialogue_context"]
    if not isinstance(turns_raw, list):
        raise err(f"expected a list of turns, got {type(turns_raw).__name__}", "dialogue_context")
    if not turns_raw:
        raise err("is empty: a dialogue needs at least one user query", "dialogue_context")
    turns = []
    for i, t in enumerate(turns_raw):
        fld = f"dialogue_context[{i}]"
        expected = "user_query" if i % 2 == 0 else "agent_response"
        if not isinstance(t, dict) or len(t) != 1:
            raise err(f'each turn must be an object with one key, {{"{expected}": "..."}}', fld)
        (role, text), = t.items()
        if role not in ("user_query", "agent_response"):
            raise err(f"unknown turn key {role!r}; expected {expected!r}", fld)
        if role != expected:
            raise err("turns must alternate starting with a user query; "
                      f"found {role!r} where {expected!r} belongs", fld)
        if not isinstance(text, str):
            raise err(f"expected a string, got {type(text).__name__}", f"{fld}.{role}")
        if not text.strip():
            raise err("is empty", f"{fld}.{role}")
        turns.append(Turn(role, text))
    if turns[-1].role != "user_query":
        raise err("the dialogue must end on a user query (the turn the golden response answers)", "dialogue_context")

    golden = _text(obj, "agent_golden_response", err)
    tag = obj.get("subset_tag")
    if tag is not None and (not isinstance(tag, str) or not tag.strip()):
        raise err("expected a non-empty string", "subset_tag")
    return Sample(sid, persona, character, tuple(turns), golden, tag)

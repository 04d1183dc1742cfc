"""JSON decoding that refuses what `json.loads` resolves silently or fails on with a non-JSON error.

Every reader of a user-supplied JSON or JSONL file, and the parser of LLM answers (rpm.llm.answers), decodes
through `loads`. Beyond `json.loads`'s own syntax errors (`json.JSONDecodeError`, unchanged), it raises
`StrictJSONError` for:
- a duplicate key in one object: `json.loads` keeps the last value and drops the first without a word, so
  the text can be read two ways;
- a string holding a lone UTF-16 surrogate (`"\\ud800"`): Python decodes it, but no UTF-8 writer can write
  it back (the project's writers would fail on a record the reader accepted);
- nesting too deep for the decoder (`RecursionError`) and an integer too long to convert (`ValueError`
  beyond Python's 4,300-digit limit), which `json.loads` raises as other exceptions.
"""

from __future__ import annotations

import json
import re
import sys

# A surrogate can only come from a \\uD800-\\uDFFF escape: valid UTF-8 text never holds one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class StrictJSONError(ValueError):
    """A JSON text that decodes but cannot be used as it stands; `key` and `sample_id` say where, when known."""

    def __init__(self, message: str, *, key: str | None = None, sample_id: str | None = None):
        self.key, self.sample_id, self.reason = key, sample_id, message
        super().__init__(message)


def _pairs(pairs: list[tuple[str, object]]) -> dict:
    obj: dict = {}
    for key, value in pairs:
        if key in obj:
            sid = next((v for k, v in pairs if k == "sample_ID" and isinstance(v, str)), None)
            whose = f" of sample {sid!r}" if sid else ""
            raise StrictJSONError(f"duplicate key {key!r} in one object{whose} (JSON readers keep only one of the "
                                  "values: remove or rename the other)", key=key, sample_id=sid)
        obj[key] = value
    return obj


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _lone_surrogate(value, path: str = "") -> str | None:
    """Where the first string or key holding a lone surrogate is ("agent_character.character_name",
    "dialogue_context[0].user_query", "" for the value itself), else None."""
    if isinstance(value, str):
        return None if _encodable(value) else path
    if isinstance(value, dict):
        for k, v in value.items():
            where = f"{path}.{k}" if path else k
            if not _encodable(k):
                return where
            found = _lone_surrogate(v, where)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _lone_surrogate(v, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def loads(text: str):
    """`json.loads(text)`, refusing duplicate keys, lone surrogates, runaway nesting and huge integers."""
    try:
        value = json.loads(text, object_pairs_hook=_pairs)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise StrictJSONError("nested too deeply to decode") from None
    except StrictJSONError:
        raise
    except ValueError:  # int() beyond sys.get_int_max_str_digits()
        raise StrictJSONError(f"an integer longer than {sys.get_int_max_str_digits()} digits") from None
    if _SURROGATE_ESCAPE.search(text):
        try:
            where = _lone_surrogate(value)
        except RecursionError:
            raise StrictJSONError("nested too deeply to decode") from None
        if where is not None:
            what = f"field {where!r}" if where else "the value"
            raise StrictJSONError(f"{what} holds a lone UTF-16 surrogate escape (\\ud800-\\udfff without its "
                                  "pair): it is not text and cannot be written as UTF-8", key=where or None)
    return value

"""The prompt templates the paper publishes, kept as method data: one YAML file per template here.
Templates the paper does not print (the LLM judges') are ours and say so: their `source` starts with "ours".

Each file holds `source` (the paper table it transcribes), `description`, an optional `system` text,
the `user` template, an optional `expected_output` template, the declared `placeholders`, optional
`notes` (what was ambiguous in the paper and how it was read), and any other keys, exposed as `extras`.
Templates use str.format syntax: `{name}` is a placeholder and `{{`/`}}` a literal brace.

The files are read through importlib.resources so the registry also works from an installed wheel:
the package data must include `rpm/prompts/*.yaml`.
"""

from __future__ import annotations

import functools
import json
import string
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any, Mapping

import yaml

from rpm.core.errors import RpmInputError

__all__ = ["PromptTemplate", "names", "get", "RESPONSE_OPEN", "RESPONSE_CLOSE"]

# The tags around an RPM's answer in the Table 21 format; generation stops at the closing tag.
RESPONSE_OPEN, RESPONSE_CLOSE = "<Agent Response>", "</Agent Response>"

_SUFFIX = ".yaml"
_KNOWN_KEYS = ("source", "description", "system", "user", "expected_output", "placeholders", "notes")
_REQUIRED_KEYS = ("source", "description", "user", "placeholders")
_TEXT_KEYS = ("system", "user", "expected_output")


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    source: str
    description: str
    system: str | None
    user: str
    expected_output: str | None
    placeholders: tuple[str, ...]
    notes: str | None
    # Read-only view, so a cached template shared by all callers cannot be changed by one of them.
    extras: Mapping[str, Any]

    @property
    def response_schema(self) -> dict | None:
        """The JSON schema of the answer, for templates whose answer is JSON (`response_schema:` in the
        file); the chat client sends it as response_format to endpoints that take one."""
        schema = self.extras.get("response_schema")
        return json.loads(json.dumps(schema)) if schema is not None else None  # a copy, plain JSON types

    def render(self, **fields: Any) -> list[dict[str, str]]:
        """Chat messages: a system message (if the template has one), then the user message.

        Fields used only by `expected_output` are accepted and ignored, so one dict of a sample's
        fields can be passed to both `render` and `render_expected`.
        """
        self._check(fields, self.system, self.user)
        messages = []
        if self.system is not None:
            messages.append({"role": "system", "content": self.system.format(**fields)})
        messages.append({"role": "user", "content": self.user.format(**fields)})
        return messages

    def render_expected(self, **fields: Any) -> str:
        """The target output (e.g. "## Agent Response\\n..."), for SFT targets and scored continuations."""
        if self.expected_output is None:
            raise RpmInputError(f"prompt template {self.name!r} has no expected_output")
        self._check(fields, self.expected_output)
        return self.expected_output.format(**fields)

    def _check(self, fields: Mapping[str, Any], *texts: str | None) -> None:
        # Checked up front because str.format would name only the first missing field and would
        # silently ignore extra ones, which hides misspelt field names.
        unexpected = sorted(set(fields) - set(self.placeholders))
        if unexpected:
            raise TypeError(
                f"prompt template {self.name!r} got unexpected field(s): {', '.join(unexpected)} "
                f"(its placeholders: {', '.join(self.placeholders)})"
            )
        missing = sorted(_fields_of(*texts) - set(fields))
        if missing:
            raise KeyError(f"prompt template {self.name!r} is missing field(s) for placeholder(s): "
                           f"{', '.join(missing)}")


def _fields_of(*texts: str | None) -> set[str]:
    """Placeholder names used in str.format templates (literal `{{ }}` are not placeholders)."""
    found: set[str] = set()
    for text in texts:
        if text is not None:
            found.update(field for _, field, _, _ in string.Formatter().parse(text) if field is not None)
    return found


def _package_files():
    return resources.files(__name__)


def names() -> list[str]:
    """Names of all templates (their file names without `.yaml`), sorted."""
    return sorted(
        entry.name[: -len(_SUFFIX)] for entry in _package_files().iterdir() if entry.name.endswith(_SUFFIX)
    )


@functools.cache
def get(name: str) -> PromptTemplate:
    """The template `name`, loaded and validated once, then cached."""
    known = names()
    if name not in known:
        raise KeyError(f"unknown prompt template {name!r}; known: {', '.join(known)}")
    filename = name + _SUFFIX
    text = _package_files().joinpath(filename).read_text(encoding="utf-8")
    return _parse(name, filename, text)


def _parse(name: str, filename: str, text: str) -> PromptTemplate:
    """Build and validate one template from its YAML text; errors name the file."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise RpmInputError(f"{filename}: expected a YAML mapping at top level")
    absent = [key for key in _REQUIRED_KEYS if data.get(key) is None]
    if absent:
        raise RpmInputError(f"{filename}: missing required key(s): {', '.join(absent)}")
    for key in (*_TEXT_KEYS, "source", "description", "notes"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise RpmInputError(f"{filename}: {key!r} must be a string")
    declared = data["placeholders"]
    if not isinstance(declared, list) or not all(isinstance(p, str) for p in declared):
        raise RpmInputError(f"{filename}: 'placeholders' must be a list of names")

    try:
        used = _fields_of(*(data.get(key) for key in _TEXT_KEYS))
    except ValueError as exc:  # e.g. a single '{' or '}' that should have been doubled
        raise RpmInputError(f"{filename}: not a valid str.format template: {exc}") from None
    # Only plain names: positional `{}` or `{a.b}`/`{a[0]}` fields cannot be filled by keyword.
    bad = sorted(field for field in used if not field.isidentifier())
    if bad:
        raise RpmInputError(f"{filename}: placeholders must be plain names, got: {', '.join(map(repr, bad))}")
    # The declared list is the file's documented interface; it must match what the text uses.
    if set(declared) != used:
        undeclared = sorted(used - set(declared))
        unused = sorted(set(declared) - used)
        raise RpmInputError(
            f"{filename}: declared placeholders differ from those used: "
            f"used but not declared: {undeclared}; declared but not used: {unused}"
        )
    if declared != sorted(set(declared)):
        raise RpmInputError(f"{filename}: 'placeholders' must be sorted and without duplicates")

    return PromptTemplate(
        name=name,
        source=data["source"],
        description=data["description"],
        system=data.get("system"),
        user=data["user"],
        expected_output=data.get("expected_output"),
        placeholders=tuple(declared),
        notes=data.get("notes"),
        extras=MappingProxyType({k: v for k, v in data.items() if k not in _KNOWN_KEYS}),
    )

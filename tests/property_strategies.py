"""Hypothesis strategies for tests/test_properties.py: valid records of every user-supplied file, the
structured mutations applied to them, and a JSON writer that can express what `json.dumps` cannot (a key
given twice in one object, a lone surrogate escape).

Mutations of a value (`mutate`): a field dropped, retyped (any JSON value), renamed (to arbitrary text or
to another known field), duplicated (the same key twice, same or different value), an object's keys
reordered, a string replaced by arbitrary Unicode or by a lone surrogate escape. Mutations of a file's
lines (`mutate_lines`): a line cut, two lines joined, a line repeated, a blank, arbitrary or invalid-UTF-8
line inserted, CRLF line ends, a UTF-8 BOM, the final newline dropped.
"""

from __future__ import annotations

import contextlib
import json
import signal

from hypothesis import strategies as st

from rpm.bench.schema import CHARACTER_FIELDS
from rpm.core.names import SUBSETS

# ------------------------------------------------------------------ a JSON writer for the mutations


class Pairs(list):
    """A JSON object given as (key, value) pairs: a key may repeat, which a dict cannot hold."""


class Surrogate(str):
    """A string written as a lone UTF-16 surrogate escape (`"\\udXXX"`, with text around it)."""


def dump(value) -> str:
    """JSON text for `value`; Pairs may repeat keys, Surrogate strings carry a lone surrogate escape."""
    if isinstance(value, Surrogate):
        return json.dumps(str(value), ensure_ascii=False)[:-1] + "\\udc80" + '"'
    if isinstance(value, Pairs):
        return "{" + ", ".join(f"{dump(k)}: {dump(v)}" for k, v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{dump(k)}: {dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dump(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


# ------------------------------------------------------------------ values

IDS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,11}\Z")
TEXT = st.text(min_size=1, max_size=30).filter(lambda s: s.strip())
ANY_TEXT = st.text(max_size=30)
# Strings that readers have had trouble with: blank, line breaks, a trailing newline, NUL, U+2028, a BOM.
EDGE_TEXT = st.sampled_from(["", " ", "\n", "\t", "abc\n", "a\nb", "\x00", "\u2028", "\ufeff", "..", "../x", "a/b",
                             "null", "0", "x" * 200, "IDTest", "german", "Literature-Fictional"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=6)

# Every way of naming a subset: stable names, the authors' tags, labels, aliases, and the paper's spelling.
SUBSET_SPELLINGS = sorted({x for s in SUBSETS for x in (s.name, s.tag, s.label, *s.aliases)} | {"Literature-Fictional"})
OOD_TAGS = {s.name: [s.tag, s.label, *s.aliases] + (["Literature-Fictional"] if s.name == "char_literature" else [])
            for s in SUBSETS if s.shift != "id"}


@st.composite
def records(draw, tag: str | None = None, sample_id=None) -> dict:
    """A valid RPGBench record (paper Tables 8, 10, 11), optionally with a subset tag."""
    n_turns = draw(st.integers(0, 2)) * 2 + 1
    turns = [{("user_query" if i % 2 == 0 else "agent_response"): draw(TEXT)} for i in range(n_turns)]
    rec = {
        "sample_ID": sample_id if sample_id is not None else draw(IDS),
        "user_persona": draw(TEXT),
        "agent_character": {"character_name": draw(TEXT), **{k: draw(ANY_TEXT) for k in CHARACTER_FIELDS[1:]}},
        "dialogue_context": turns,
        "agent_golden_response": draw(TEXT),
    }
    if tag is not None:
        rec["subset_tag"] = tag
    return rec


def record_lists(tag=None, min_size=1, max_size=4):
    return st.lists(records(tag), min_size=min_size, max_size=max_size, unique_by=lambda r: r["sample_ID"])


# ------------------------------------------------------------------ structured mutations


def _paths(value, path=()):
    """Every path to a node under `value` (dict keys and list indices)."""
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*path, i))


def _get(value, path):
    for p in path:
        value = value[p]
    return value


def _set(root, path, new):
    if not path:
        return new
    _get(root, path[:-1])[path[-1]] = new
    return root


@st.composite
def mutate(draw, value, known_keys=(), max_ops=3):
    """`value` (a deep copy) after 1..max_ops structured mutations; returns (mutated, ops)."""
    value = json.loads(json.dumps(value))
    ops = []
    for _ in range(draw(st.integers(1, max_ops))):
        paths = list(_paths(value))
        path = draw(st.sampled_from(paths))
        node = _get(value, path)
        op = draw(st.sampled_from(["drop", "retype", "rename", "duplicate", "reorder", "unicode", "edge",
                                   "surrogate"]))
        ops.append((op, path))
        parent = _get(value, path[:-1]) if path else None
        if op == "drop" and path:
            del parent[path[-1]]
        elif op == "retype":
            value = _set(value, path, draw(JSON_VALUES))
        elif op == "rename" and path and isinstance(parent, dict) and not isinstance(parent, Pairs):
            new_key = draw(st.sampled_from(list(known_keys)) if known_keys and draw(st.booleans()) else ANY_TEXT)
            items = [(new_key if k == path[-1] else k, v) for k, v in parent.items()]
            parent.clear()
            parent.update(items)
        elif op == "duplicate" and isinstance(node, dict) and node:
            key = draw(st.sampled_from(list(node)))
            again = node[key] if draw(st.booleans()) else draw(JSON_VALUES)
            pairs = Pairs(list(node.items()))
            pairs.insert(draw(st.integers(0, len(pairs))), (key, again))
            value = _set(value, path, pairs)
            break  # a Pairs node is final: later paths would index it as a list
        elif op == "reorder" and isinstance(node, dict):
            items = draw(st.permutations(list(node.items())))
            node.clear()
            node.update(items)
        elif op == "unicode" and isinstance(node, str):
            value = _set(value, path, draw(st.text(max_size=20)))
        elif op == "edge" and isinstance(node, str):
            value = _set(value, path, draw(EDGE_TEXT))
        elif op == "surrogate" and isinstance(node, str):
            value = _set(value, path, Surrogate(node))
            break  # a Surrogate string is final
    return value, ops


@st.composite
def mutate_lines(draw, lines: list[str], max_ops=2) -> tuple[bytes, list]:
    """A JSONL file (bytes) from `lines`, after 0..max_ops line-level mutations; returns (data, ops)."""
    lines = list(lines)
    ops = []
    newline, bom, final = "\n", False, True
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(["cut", "join", "repeat", "blank", "arbitrary", "invalid_utf8", "crlf", "bom",
                                   "no_final_newline", "swap"]))
        ops.append(op)
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "cut" and lines:
            lines[i] = lines[i][:draw(st.integers(0, len(lines[i])))]
        elif op == "join" and len(lines) > 1 and i + 1 < len(lines):
            lines[i:i + 2] = [lines[i] + draw(st.sampled_from(["", " ", "\r"])) + lines[i + 1]]
        elif op == "repeat" and lines:
            lines.insert(i, lines[i])
        elif op == "blank":
            lines.insert(i, draw(st.sampled_from(["", " ", "\t", "\r"])))
        elif op == "arbitrary":
            lines.insert(i, draw(st.text(max_size=20)).replace("\n", ""))
        elif op == "invalid_utf8":
            lines.insert(i, "\udcff")  # encoded below with surrogateescape: the byte 0xff
        elif op == "crlf":
            newline = "\r\n"
        elif op == "bom":
            bom = True
        elif op == "no_final_newline":
            final = False
        elif op == "swap" and len(lines) > 1:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
    text = newline.join(lines) + (newline if final and lines else "")
    data = text.encode("utf-8", "surrogateescape")
    return (b"\xef\xbb\xbf" + data if bom else data), ops


# ------------------------------------------------------------------ bytes


def json_ish_bytes(max_size=60):
    """Byte strings made of JSON fragments, field names and troublemakers: deeper than random bytes."""
    parts = [b"{", b"}", b"[", b"]", b'"', b":", b",", b"\n", b" ", b"\r\n", b"null", b"1", b"-0.5e9", b"NaN",
             b'"sample_ID"', b'"response"', b'"subset"', b'"user_persona"', b'"dialogue_context"', b'"user_query"',
             b'"agent_character"', b'"x"', b"\\ud800", b"\\u0000", b"\xff", b"\xef\xbb\xbf", b"[" * 50,
             b"9" * 5000, b'"IDTrain"', b'"OOD1Test"']
    return st.lists(st.sampled_from(parts) | st.binary(max_size=4), max_size=max_size).map(b"".join)


# ------------------------------------------------------------------ no hangs


@contextlib.contextmanager
def within(seconds: float = 20.0):
    """Fail the example (TimeoutError) if the block runs longer than `seconds`: a reader never hangs."""
    def boom(*_):
        raise TimeoutError(f"took over {seconds} s: a hang")

    old = signal.signal(signal.SIGALRM, boom)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)

"""Property-based tests (hypothesis) of every reader of user-supplied files and every parser of LLM answers.

Readers: benchmark JSONL (read_jsonl), the authors' JSON keyed by split (read_authors_json), a benchmark
directory (load_bench), response files (read_text_rows, read_grouped_rows, rpm score's read_responses) and
config files and overlays (rpm.core.config, what workflow/rules/common.smk runs). For arbitrary bytes and
for structured mutations of valid inputs (tests/property_strategies.py), each reader
- returns valid records, nothing lost (one per line, in order), which the project's writer
  (rpm.io.write_jsonl / write_json) writes and the reader reads back equal; or
- raises the project's bad-input error (an RpmInputError), one printable line naming the file and, where
  there is one, the line (the first bad one), the sample ID and the field; never another exception, never
  a hang;
- refuses an input that could be read two ways (a duplicate key, a tag or a "subset" that disagrees with
  the file or split holding the record, a subset given under two names).
Parsers (teacher, benchmark builder, judge, rpm.llm.answers.extract_json) never raise on arbitrary text:
they return a parse or a "not parsed" result with a reason.

Failing examples hypothesis found are kept in tests/property_regressions/ (replayed by the plain tests at
the end) and as @example decorators. The hypothesis profile is tests/conftest.py's "rpm".
"""

import copy
import json
import shutil
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from hypothesis import event, example, given, strategies as st
from property_strategies import (
    ANY_TEXT,
    IDS,
    JSON_VALUES,
    OOD_TAGS,
    SUBSET_SPELLINGS,
    TEXT,
    Pairs,
    dump,
    json_ish_bytes,
    mutate,
    mutate_lines,
    record_lists,
    records,
    within,
)
from snakemake.common.configfile import _load_configfile
from snakemake.utils import update_config

from rpm.bench.load import load_bench, read_authors_json, read_jsonl
from rpm.bench.schema import OPTIONAL_FIELDS, REQUIRED_FIELDS, BenchRecordError, Sample, sample_from_dict
from rpm.bench.subsets import subset, subset_for_tag
from rpm.construct import characters, dialogues, personas
from rpm.construct.common import BuildInputError, read_items
from rpm.core import strictjson
from rpm.core.config import (
    ConfigError,
    check_model_names,
    fill_entry_defaults,
    models_used,
    read_config_file,
    validate_config,
)
from rpm.core.errors import RpmInputError
from rpm.core.names import BENCH_FILES, SPLITS, SUBSET_NAMES, SUBSETS
from rpm.estimator.formats import core_features as estimator_core_features, marker
from rpm.io import write_json, write_jsonl
from rpm.judge.parsers import pairwise_verdict, point_score
from rpm.llm.answers import extract_json
from rpm.metrics.inputs import InputFileError, read_grouped_rows, read_text_rows
from rpm.score.responses import ScoreInputError, read_responses, subset_name
from rpm.teacher import tasks
from rpm.teacher.tasks import TeacherPolicy
from rpm.train.formats import parse_generation
from rpm.train.methods import read_rows

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
BASE_CONFIG = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
REGRESSIONS = Path(__file__).parent / "property_regressions"
RECORD_KEYS = REQUIRED_FIELDS + OPTIONAL_FIELDS + ("user_query", "agent_response", "character_name")
ID_STEMS = ("train", "IDTrain", "IDTest")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("properties")


def fresh(scratch: Path) -> Path:
    """An empty directory for one example (hypothesis runs many examples in one test call)."""
    d = scratch / "case"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    return d


def file_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    return lines[:-1] if lines and lines[-1] == b"" else lines


def decoded(raw: bytes):
    """The line's value as the readers decode it, or None when it does not decode."""
    try:
        return strictjson.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def check_message(e: Exception, where: str, *, one_line: bool = True) -> str:
    """The error is the project's, names `where`, and prints (one line, encodable as UTF-8)."""
    assert isinstance(e, RpmInputError), f"not the project's bad-input error: {type(e).__name__}: {e}"
    msg = str(e)
    assert where in msg, f"the message does not name {where}: {msg}"
    msg.encode("utf-8")  # a lone surrogate would crash the CLI's one-line print
    if one_line:
        assert "\n" not in msg, msg
    return msg


def tag_agrees(tag: str | None, stem: str) -> bool:
    """The file-name rule, stated independently of rpm.bench.load."""
    if tag is None:
        return True
    try:
        name = subset_for_tag(tag)
    except ValueError:
        return False
    if stem in SUBSET_NAMES:
        return name == stem
    if stem in ID_STEMS:
        return False
    if stem in SPLITS:
        return subset(name).split == stem
    return True


def without_null_tag(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if not (k == "subset_tag" and v is None)}


# ------------------------------------------------------------------ benchmark JSONL

STEMS = ("bench", "train", "id_test", "user_de", "char_film", "dial_word", "IDTrain", "IDTest", "OOD1Test",
         "OOD2Test")


def check_bench_file(path: Path, data: bytes):
    """read_jsonl's contract on one file."""
    path.write_bytes(data)
    lines = file_lines(data)
    try:
        with within():
            samples = read_jsonl(path)
    except BenchRecordError as e:
        check_message(e, str(path))
        assert e.file == str(path)
        if e.line is None:
            assert not lines, f"a file-level error for a file with {len(lines)} line(s): {e}"
            return
        assert 1 <= e.line <= len(lines) and f"line {e.line}" in str(e)
        seen = set()
        for raw in lines[:e.line - 1]:  # the error is at the first bad line
            obj = decoded(raw)
            assert isinstance(obj, dict), f"line {raw!r} was bad but the error is at line {e.line}"
            s = sample_from_dict(obj)
            assert tag_agrees(s.subset_tag, path.stem) and s.sample_ID not in seen, (raw, str(e))
            seen.add(s.sample_ID)
        obj = decoded(lines[e.line - 1])
        if isinstance(obj, dict):
            assert e.field is not None, f"no field named: {e}"
            if isinstance(obj.get("sample_ID"), str) and obj["sample_ID"].strip():
                assert e.sample_id == obj["sample_ID"], f"the sample is not named: {e}"
        return
    assert len(samples) == len(lines), "records lost"
    for raw, s in zip(lines, samples):
        assert isinstance(s, Sample) and tag_agrees(s.subset_tag, path.stem)
        assert without_null_tag(json.loads(raw)) == s.to_dict()
    other = path.parent / "rt"  # the same file name: the name rules apply to the copy too
    other.mkdir(exist_ok=True)
    write_jsonl(other / path.name, [s.to_dict() for s in samples])
    assert read_jsonl(other / path.name) == samples, "round trip"


@st.composite
def bench_file(draw):
    stem = draw(st.sampled_from(STEMS))
    recs = draw(record_lists(max_size=3))
    for r in recs:
        tag = draw(st.none() | st.sampled_from(SUBSET_SPELLINGS))
        if tag is not None:
            r["subset_tag"] = tag
    value, _ = draw(mutate(recs, known_keys=RECORD_KEYS))
    lines = [dump(v) for v in value] if isinstance(value, list) else [dump(value)]
    data, _ = draw(mutate_lines(lines))
    return stem, data


@given(bench_file())
@example(("bench", b"[" * 100_000 + b"\n"))
@example(("bench", b'{"sample_ID": "a", "x": ' + b"1" * 5000 + b"}\n"))
@example(("train", json.dumps({**json.loads((REPO / "tests/fixtures/paper_records.jsonl").read_text().splitlines()[1]),
                               "sample_ID": "a"}).encode() + b"\n"))
def test_bench_jsonl_mutations(scratch, case):
    stem, data = case
    check_bench_file(fresh(scratch) / f"{stem}.jsonl", data)


@given(st.binary(max_size=200) | json_ish_bytes())
def test_bench_jsonl_arbitrary_bytes(scratch, data):
    check_bench_file(fresh(scratch) / "bench.jsonl", data)


@given(st.sampled_from(SUBSET_NAMES + ("train", "bench")).flatmap(
    lambda stem: st.tuples(st.just(stem), record_lists(tag=None) if stem in ("train", "id_test") else
                           st.sampled_from(OOD_TAGS.get(stem, [None])).flatmap(lambda t: record_lists(tag=t)))))
def test_valid_bench_files_are_read_whole_and_round_trip(scratch, case):
    """The positive side: valid records, in any key order, are all accepted, as written."""
    stem, recs = case
    path = fresh(scratch) / f"{stem}.jsonl"
    write_jsonl(path, recs)
    samples = read_jsonl(path)
    assert [s.to_dict() for s in samples] == recs


# ------------------------------------------------------------------ the authors' JSON keyed by split


def check_authors_json(path: Path, data: bytes):
    path.write_bytes(data)
    try:
        with within():
            splits = read_authors_json(path)
    except BenchRecordError as e:
        check_message(e, str(path))
        assert e.file.startswith(str(path))
        return
    doc = json.loads(data.decode("utf-8"))
    assert set(splits) == set(doc) <= set(SPLITS)
    for split, samples in splits.items():
        assert len(samples) == len(doc[split]), "records lost"
        for s in samples:  # (an OOD record without a tag is read; `rpm bench fetch` refuses it)
            assert s.subset_tag is None or (split not in ("IDTrain", "IDTest")
                                            and subset(subset_for_tag(s.subset_tag)).split == split), (split, s)
    write_json(path.parent / "rt.json", {k: [s.to_dict() for s in v] for k, v in splits.items()})
    assert read_authors_json(path.parent / "rt.json") == splits, "round trip"


@st.composite
def authors_doc(draw):
    doc = {}
    for split in draw(st.lists(st.sampled_from(SPLITS), min_size=1, max_size=3, unique=True)):
        subsets = [s for s in SUBSETS if s.split == split and s.shift != "id"]
        tag = draw(st.sampled_from([s.tag for s in subsets])) if subsets else None
        doc[split] = draw(record_lists(tag=tag, max_size=2))
    value, _ = draw(mutate(doc, known_keys=SPLITS + RECORD_KEYS))
    return dump(value).encode("utf-8")


@given(authors_doc())
@example(b'{"IDTest": [], "IDTest": []}')
def test_authors_json_mutations(scratch, data):
    check_authors_json(fresh(scratch) / "rpgbench.json", data)


@given(st.binary(max_size=200) | json_ish_bytes())
def test_authors_json_arbitrary_bytes(scratch, data):
    check_authors_json(fresh(scratch) / "rpgbench.json", data)


# ------------------------------------------------------------------ a benchmark directory


@st.composite
def bench_dir(draw):
    ids = draw(st.lists(IDS, min_size=len(BENCH_FILES), max_size=len(BENCH_FILES), unique=True))
    files = {}
    for f, sid in zip(BENCH_FILES, ids):
        tag = draw(st.none() | st.sampled_from(OOD_TAGS[f])) if f in OOD_TAGS else None
        files[f] = [dump(draw(records(tag, sample_id=sid)))]
    op = draw(st.sampled_from(["none", "copy_record", "swap_files", "delete_file", "mutate_file", "retag"]))
    a, b = draw(st.lists(st.sampled_from(BENCH_FILES), min_size=2, max_size=2, unique=True))
    if op == "copy_record":
        files[b].append(files[a][0])
    elif op == "swap_files":
        files[a], files[b] = files[b], files[a]
    elif op == "delete_file":
        del files[a]
    elif op == "retag":
        rec = json.loads(files[a][0])
        rec["subset_tag"] = draw(st.sampled_from(SUBSET_SPELLINGS))
        files[a] = [dump(rec)]
    data = {f: "".join(line + "\n" for line in lines).encode() for f, lines in files.items()}
    if op == "mutate_file":
        value, _ = draw(mutate(json.loads(files[a][0]), known_keys=RECORD_KEYS))
        data[a], _ = draw(mutate_lines([dump(value)]))
    return op, data


@given(bench_dir())
def test_bench_directory(scratch, case):
    op, data = case
    d = fresh(scratch)
    for f, content in data.items():
        (d / f"{f}.jsonl").write_bytes(content)
    try:
        with within():
            bench = load_bench(d)
    except FileNotFoundError as e:
        assert op == "delete_file" and str(d) in str(e)
        return
    except BenchRecordError as e:
        assert op != "none", f"a valid benchmark directory was refused: {e}"
        check_message(e, str(d))
        return
    assert list(bench) == list(BENCH_FILES)
    ids = [s.sample_ID for f in BENCH_FILES for s in bench[f]]
    assert len(ids) == len(set(ids)), "a sample ID in two files was accepted"
    for f in BENCH_FILES:
        assert len(bench[f]) == len(file_lines(data[f])), "records lost"
        assert all(tag_agrees(s.subset_tag, f) for s in bench[f])


# ------------------------------------------------------------------ response files


def check_rows(path: Path, data: bytes, group: str | None):
    """read_text_rows (group None) / read_grouped_rows' contract on one file."""
    path.write_bytes(data)
    lines = file_lines(data)
    try:
        with within():
            groups = read_grouped_rows(path, "response", group) if group else {None: read_text_rows(path, "response")}
    except InputFileError as e:
        check_message(e, str(path))
        assert e.file == str(path)
        if e.line is None:
            assert not lines
            return
        assert 1 <= e.line <= len(lines)
        seen = set()
        for raw in lines[:e.line - 1]:
            obj = decoded(raw)
            assert isinstance(obj, dict) and isinstance(obj.get("response"), str) and obj["response"].strip()
            key = (obj.get(group) if group else None, obj["sample_ID"])
            assert key not in seen
            seen.add(key)
        obj = decoded(lines[e.line - 1])
        if isinstance(obj, dict) and isinstance(obj.get("sample_ID"), str) and obj["sample_ID"]:
            assert e.sample_id == obj["sample_ID"], f"the sample is not named: {e}"
        assert any(w in str(e) for w in ('"response"', '"sample_ID"', "sample ID", f'"{group}"', "JSON", "UTF-8",
                                         "line", "key")), str(e)
        return
    rows = [r for g in groups.values() for r in g.values()]
    assert len(rows) == len(lines), "rows lost"
    for r in rows:
        obj = json.loads(lines[r.line - 1])
        assert (obj["sample_ID"], obj["response"]) == (r.sample_id, r.text)
        assert group is None or obj[group] in groups
    out = path.parent / "rt.jsonl"
    write_jsonl(out, [{"sample_ID": r.sample_id, "response": r.text, **({group: g} if group else {})}
                      for g, rs in groups.items() for r in rs.values()])
    back = read_grouped_rows(out, "response", group) if group else {None: read_text_rows(out, "response")}
    assert {g: {s: r.text for s, r in rs.items()} for g, rs in back.items()} == \
        {g: {s: r.text for s, r in rs.items()} for g, rs in groups.items()}, "round trip"


@st.composite
def response_file(draw, group: str | None):
    n = draw(st.integers(1, 4))
    rows = [{"sample_ID": draw(IDS), "response": draw(TEXT),
             **({group: draw(st.sampled_from(SUBSET_SPELLINGS))} if group else {}),
             **draw(st.dictionaries(st.sampled_from(["model", "seconds", "tokens"]), JSON_VALUES, max_size=2))}
            for _ in range(n)]
    value, _ = draw(mutate(rows, known_keys=("sample_ID", "response", "subset", "reasoning")))
    lines = [dump(v) for v in value] if isinstance(value, list) else [dump(value)]
    data, _ = draw(mutate_lines(lines))
    return data


@given(response_file(None) | st.binary(max_size=120) | json_ish_bytes())
@example(b'{"sample_ID": "a", "response": "x", "response": "y"}\n')
def test_response_file(scratch, data):
    check_rows(fresh(scratch) / "id_test.jsonl", data, None)


@given(response_file("subset") | json_ish_bytes())
def test_response_file_with_subset_column(scratch, data):
    check_rows(fresh(scratch) / "responses.jsonl", data, "subset")


# Mutations of a correct response set for rpm score (each may make it wrong or ambiguous, or not).
SCORE_OPS = ("drop_row", "extra_row", "dup_row", "bad_name", "alias_clash", "row_disagrees", "empty_response",
             "row_agrees", "extra_subset")


def responses_are_valid(bench, layout, groups) -> bool:
    """The rules of `rpm score`'s input, stated independently of rpm.score.responses."""
    if layout == "file":
        groups = {g: rows for g, rows in groups.items() if rows}
    by_subset = {}
    for g, rows in groups.items():
        name = subset_name(g)
        if name is None or name in by_subset or not rows:
            return False  # an unknown subset, one given twice (under two names), an empty file
        ids = [r["sample_ID"] for r in rows]
        if len(ids) != len(set(ids)) or any(not r["response"].strip() for r in rows):
            return False
        if layout == "dir" and any(subset_name(r.get("subset", g)) != name for r in rows):
            return False
        by_subset[name] = set(ids)
    return all(by_subset.get(sub) == {s.sample_ID for s in samples} for sub, samples in bench.items())


def spellings(name: str) -> list[str]:
    return sorted(x for x in SUBSET_SPELLINGS + ["IDTest", "id"] if subset_name(x) == name)


@st.composite
def score_case(draw):
    subs = draw(st.lists(st.sampled_from(SUBSET_NAMES), min_size=1, max_size=2, unique=True))
    ids = draw(st.lists(IDS, min_size=3 * len(subs) + 2, max_size=3 * len(subs) + 2, unique=True))
    bench, want, k = {}, {}, 0
    for sub in subs:
        n = draw(st.integers(1, 3))
        bench[sub] = [sample_from_dict(draw(records(sample_id=ids[k + i]))) for i in range(n)]
        k += n
        want[sub] = {s.sample_ID: draw(TEXT) for s in bench[sub]}
    layout = draw(st.sampled_from(["dir", "file"]))
    names = {sub: draw(st.sampled_from(spellings(sub))) for sub in subs}
    groups = {names[sub]: [{"sample_ID": sid, "response": t} for sid, t in want[sub].items()] for sub in subs}
    ops = draw(st.lists(st.sampled_from(SCORE_OPS), max_size=2))
    for op in ops:
        sub = draw(st.sampled_from(subs))
        rows = groups.get(names[sub])
        if rows is None:
            continue  # renamed away by bad_name: already refused
        if op == "drop_row" and rows:
            rows.pop(draw(st.integers(0, len(rows) - 1)))
        elif op == "extra_row":
            rows.append({"sample_ID": ids[-1], "response": "extra"})
        elif op == "dup_row" and rows:
            rows.append({**rows[0], "response": draw(TEXT)})
        elif op == "bad_name":
            groups[f"nonsense{len(ops)}"] = groups.pop(names[sub])
        elif op == "alias_clash":
            other = [x for x in spellings(sub) if x != names[sub]]
            groups.setdefault(draw(st.sampled_from(other)), []).append(dict(rows[0]) if rows else
                                                                       {"sample_ID": ids[-2], "response": "x"})
        elif op == "row_disagrees" and rows:
            if layout == "dir":
                rows[0]["subset"] = draw(st.sampled_from([x for x in SUBSET_SPELLINGS if subset_name(x) != sub]))
            else:  # a row moved to another subset's group: the sample is then missing from its own
                groups.setdefault(draw(st.sampled_from([x for x in SUBSET_SPELLINGS if subset_name(x) != sub])),
                                  []).append(rows.pop(0))
        elif op == "row_agrees" and rows and layout == "dir":
            rows[0]["subset"] = draw(st.sampled_from(spellings(sub)))
        elif op == "empty_response" and rows:
            rows[0]["response"] = draw(st.sampled_from(["", " ", "\n"]))
        elif op == "extra_subset":
            spare = [s for s in SUBSET_NAMES if s not in subs and all(subset_name(g) != s for g in groups)]
            if spare:
                groups[draw(st.sampled_from(spare))] = [{"sample_ID": ids[-1], "response": "ignored"}]
    return bench, layout, groups, not responses_are_valid(bench, layout, groups), ops


@given(score_case())
def test_score_responses(scratch, case):
    bench, layout, groups, refused, ops = case
    event(f"{layout}, {'refused' if refused else 'valid'}")
    for op in ops:
        event(f"{layout}: {op}")
    d = fresh(scratch)
    if layout == "dir":
        path = d / "responses"
        path.mkdir()
        for name, rows in groups.items():
            write_jsonl(path / f"{name}.jsonl", rows)
    else:
        path = d / "responses.jsonl"
        write_jsonl(path, [{**r, "subset": name} for name, rows in groups.items() for r in rows])
    try:
        with within():
            got = read_responses(path, bench, str(d / "bench"))
    except (ScoreInputError, InputFileError) as e:
        assert refused, f"valid responses were refused ({ops}): {e}"
        check_message(e, str(path), one_line=isinstance(e, InputFileError))
        return
    assert not refused, f"accepted although {ops} makes them wrong or ambiguous"
    assert list(got.by_subset) == list(bench)
    given = {subset_name(g): {r["sample_ID"]: r["response"] for r in rows} for g, rows in groups.items() if rows}
    for sub, samples in bench.items():  # each sample's own response, in benchmark order
        assert got.by_subset[sub].texts == [given[sub][s.sample_ID] for s in samples]


# ------------------------------------------------------------------ intermediate files: builder items, teacher rows


@st.composite
def item_file(draw, id_key: str, field: str, ids=IDS):
    rows = draw(st.lists(st.fixed_dictionaries({id_key: ids, field: TEXT}), min_size=1, max_size=3,
                         unique_by=lambda r: r[id_key]))
    value, _ = draw(mutate(rows, known_keys=(id_key, field, "sample_ID")))
    lines = [dump(v) for v in value] if isinstance(value, list) else [dump(value)]
    return draw(mutate_lines(lines))[0]


@given(item_file("character_id", "kind") | json_ish_bytes())
@example(b"[1]\n")
@example(b'{"character_id": "c1", "kind": "real"}\n{"character_id": "c1", "kind": "fictional"}\n')
def test_builder_item_file(scratch, data):
    """`rpm bench build`'s intermediate files (rpm.construct.common.read_items): objects with the fields the
    step needs and unique item IDs (the next steps key items by ID), or BuildInputError naming the file."""
    path = fresh(scratch) / "characters.jsonl"
    path.write_bytes(data)
    try:
        with within():
            rows = read_items(path, ("kind",), "character_id")
    except BuildInputError as e:
        check_message(e, str(path))
        return
    assert len(rows) == len(file_lines(data)), "items lost"
    ids = [r["character_id"] for r in rows]
    assert all(isinstance(r, dict) and "kind" in r for r in rows) and len(ids) == len(set(ids))


TRAINING = [sample_from_dict({**json.loads((REPO / "tests/fixtures/paper_records.jsonl").read_text().splitlines()[0]),
                             "sample_ID": sid}) for sid in ("s1", "s2", "s3")]


@given(item_file("sample_ID", "rejected", ids=st.sampled_from(["s1", "s2", "s3", "s4"])) | json_ish_bytes())
def test_teacher_file(scratch, data):
    """A teacher file `rpm train --teacher-file` reads (rpm.train.methods.read_rows): rows of the training
    samples (s1-s3; s4 is not one), or the project's bad-input error naming the file."""
    path = fresh(scratch) / "reject.jsonl"
    path.write_bytes(data)
    try:
        with within():
            rows = read_rows(path, "rejected", TRAINING)
    except RpmInputError as e:
        check_message(e, str(path))
        return
    assert len(rows) == len(file_lines(data)), "rows lost"
    assert set(rows) <= {"s1", "s2", "s3"} and all(is_text(r["rejected"]) for r in rows.values())


# ------------------------------------------------------------------ config files and overlays


def _config_paths(value, path=()):
    if path:
        yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _config_paths(v, (*path, k))


CONFIG_PATHS = list(_config_paths(BASE_CONFIG))
CONFIG_KEYS = sorted({p[-1] for p in CONFIG_PATHS})


@st.composite
def overlay(draw):
    """An overlay changing one key of config.yaml: (file text, the dotted path an error must name (the key's,
    or its parent's where the key itself changed), what was done)."""
    path = draw(st.sampled_from(CONFIG_PATHS))
    op = draw(st.sampled_from(["retype", "edge", "rename", "unknown", "non_string_key", "duplicate", "same",
                               "list_item"]))
    node = copy.deepcopy(BASE_CONFIG)
    for p in path[:-1]:
        node = node[p]
    key, value = path[-1], node[path[-1]]
    if op == "retype":
        entry = {key: draw(JSON_VALUES)}
    elif op == "edge":
        entry = {key: draw(st.sampled_from(["", "x", -1, 0, 10**9, 0.5, True, None, [], {}, "all", "1e3"]))}
    elif op == "rename":
        entry = {draw(st.sampled_from(CONFIG_KEYS) | ANY_TEXT): value}
    elif op == "unknown":
        entry = {key: value, draw(ANY_TEXT): draw(JSON_VALUES)}
    elif op == "non_string_key":
        entry = {draw(st.integers(0, 3) | st.booleans() | st.none()): value}
    elif op == "duplicate":
        entry = Pairs([(key, value), (key, draw(JSON_VALUES) if draw(st.booleans()) else value)])
    elif op == "list_item" and isinstance(value, list) and value:
        value = list(value)
        value[draw(st.integers(0, len(value) - 1))] = draw(JSON_VALUES | st.sampled_from(SUBSET_NAMES))
        entry = {key: value}
    else:
        entry = {key: value}
    where = path[:-1] if op in ("rename", "unknown", "non_string_key", "duplicate") else path
    for p in reversed(path[:-1]):
        entry = {p: entry}
    if op == "duplicate" or draw(st.booleans()):
        if op == "non_string_key":
            return yaml.safe_dump(entry, allow_unicode=True), ".".join(where), op
        return dump(entry), ".".join(where), op
    return yaml.safe_dump(entry, allow_unicode=True), ".".join(where), op


def same(a, b) -> bool:
    """Equal as values (NaN equal to NaN, an OrderedDict to a dict)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return type(a) is type(b) and a == b


def check_config(path: Path, text_or_bytes, where: str | None = None):
    """common.smk's checks in its order; returns the merged config, or None when refused."""
    data = text_or_bytes.encode("utf-8") if isinstance(text_or_bytes, str) else text_or_bytes
    path.write_bytes(data)
    try:
        with within():
            loaded = read_config_file(path)
    except ConfigError as e:
        check_message(e, str(path))
        return None
    try:  # what Snakemake itself reads from the file: the same value
        assert same(_load_configfile(str(path)), loaded)
    except Exception as e:  # noqa: BLE001 (Snakemake refuses it itself: nothing of ours runs)
        if isinstance(e, AssertionError):
            raise
        return None
    if not isinstance(loaded, dict):
        return None  # Snakemake: "Config file must be given as JSON or YAML with keys at top level."
    config = copy.deepcopy(BASE_CONFIG)
    update_config(config, loaded)
    try:
        with within():
            fill_entry_defaults(config)
            validate_config(config, SCHEMA)
            check_model_names(config)
    except ConfigError as e:
        msg = check_message(e, "config")
        if where is not None:  # the error names the changed key, a key above it or below it
            key = e.key or ""
            assert where.startswith(key) or key.startswith(where) or key == "models", \
                f"{where or 'the top level'} changed, the error names {key or 'no key'}: {msg}"
        return None
    "|".join(config["models"])  # what common.smk's wildcard constraints do with the names
    assert set(models_used(config)) <= set(config["models"])
    return config


@given(overlay())
@example(("seed: 1\nseed: 2\n", "seed", "duplicate"))
@example(("models: {1: {source: hub, id: x}}\n", "models", "non_string_key"))
def test_config_overlays(scratch, case):
    text, where, op = case
    config = check_config(fresh(scratch) / "overlay.yaml", text, where)
    if op == "same":
        assert config is not None, f"config.yaml's own value of {where} was refused"
    if op in ("non_string_key", "duplicate"):
        assert config is None, f"{op} at {where} was accepted:\n{text}"


@given(st.binary(max_size=200) | json_ish_bytes() | st.text(max_size=200))
def test_config_file_arbitrary_bytes(scratch, data):
    check_config(fresh(scratch) / "overlay.yaml", data)


def merged_config(path: Path) -> dict:
    """config.yaml with the file at `path` merged over it and checked, as common.smk does."""
    config = copy.deepcopy(BASE_CONFIG)
    update_config(config, read_config_file(path))
    fill_entry_defaults(config)
    validate_config(config, SCHEMA)
    check_model_names(config)
    return config


def test_the_shipped_configs_pass():
    for name in ("config.yaml", "workflow/configs/smoke.yaml", "workflow/configs/paper.yaml"):
        merged_config(REPO / name)


# ------------------------------------------------------------------ the regression corpus


def regression_cases(name: str):
    path = REGRESSIONS / name
    return [pytest.param(json.loads(line), id=json.loads(line)["name"])
            for line in path.read_text(encoding="utf-8").splitlines()]


def case_bytes(case) -> bytes:
    return case["content"].encode("utf-8", "surrogateescape")


@pytest.mark.parametrize("case", regression_cases("readers.jsonl"))
def test_reader_regressions(tmp_path, case):
    """Inputs the properties found: each now gives the error it names (or is read, when `error` is null)."""
    readers = {"read_jsonl": read_jsonl, "read_authors_json": read_authors_json,
               "read_text_rows": lambda p: read_text_rows(p, "response"),
               "read_config_file": read_config_file, "config_overlay": merged_config}
    path = tmp_path / case["file"]
    path.write_bytes(case_bytes(case))
    if case["error"] is None:
        readers[case["reader"]](path)
        return
    with pytest.raises(RpmInputError) as info:
        with within():
            readers[case["reader"]](path)
    # a merged config comes from several files: its errors name the key ("config: models ...")
    check_message(info.value, "config" if case["reader"] == "config_overlay" else str(path))
    assert case["error"] in str(info.value)


# ------------------------------------------------------------------ LLM answer parsers

PLAIN = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="{}[]`\\\"\x00",
                                       exclude_categories=("Cs", "Cc", "Zl", "Zp")),
                min_size=1, max_size=20).filter(lambda s: s.strip() and s == s.strip())
POLICIES = {"strict": TeacherPolicy(trace_policy="strict"), "lenient": TeacherPolicy(trace_policy="lenient")}
CANDIDATES = [{"user_query_variant": "where is the key", "golden_agent_response_variant": "under the mat"}]
_DOMAIN_TAGS = [s.tag for s in SUBSETS if s.shift == "character"]


def is_text(v) -> bool:
    return isinstance(v, str) and bool(v.strip())


# name: (parse(text) -> result, the value's shape when parsed, a valid answer (the value to dump))
PARSERS = {
    "teacher.topics": (tasks._topics_parse, lambda v: v and all(is_text(x) for x in v),
                       st.fixed_dictionaries({f"possibility_{i}": PLAIN for i in (1, 2, 3)})),
    "teacher.dialogue": (tasks._dialogue_parse, lambda v: all(is_text(v[k]) for k in dialogues.round_keys(4)),
                         st.fixed_dictionaries({k: PLAIN for k in dialogues.round_keys(4)})),
    "teacher.reject": (tasks._rejected_parse, is_text, PLAIN),
    "teacher.trace_strict": (lambda t: tasks.core_features(t, POLICIES["strict"]), is_text,
                             PLAIN.map(lambda s: f"thinking\n{estimator_marker()}\n{s}")),
    "teacher.trace_lenient": (lambda t: tasks.core_features(t, POLICIES["lenient"]), is_text, PLAIN),
    "construct.candidates": (characters.parse_candidates,
                             lambda v: v[0] and all(c["character_domain"] in _DOMAIN_TAGS for c in v[0]),
                             st.lists(st.fixed_dictionaries({"character_name": PLAIN,
                                                             "category": st.sampled_from(_DOMAIN_TAGS),
                                                             "character_description": PLAIN, "explanation": PLAIN}),
                                      min_size=1, max_size=3)),
    "construct.refined": (lambda t: characters.parse_refined(t, "Ada"),
                          lambda v: all(is_text(v[k]) for k in characters.ASPECTS),
                          st.fixed_dictionaries({"Ada": st.fixed_dictionaries(
                              {k: PLAIN for k in characters.ASPECTS})})),
    "construct.kind": (characters.parse_kind, lambda v: v in ("real", "fictional"),
                       st.fixed_dictionaries({"classification_result": st.sampled_from(["Real Life Role",
                                                                                         "Fictional Role"])})),
    # Each usable language is kept (the others are named in the reason): a non-empty subset of the five.
    "construct.persona_variants": (personas.parse_variants, lambda v: v and set(v) <= {"de", "es", "zh", "ja", "ko"},
                                   st.fixed_dictionaries({
                                       "user_persona_variant1": PLAIN, "user_persona_variant2": PLAIN,
                                       "user_persona_variant3": PLAIN.map(lambda s: "我喜欢" + s),
                                       "user_persona_variant4": PLAIN.map(lambda s: "わたし" + s),
                                       "user_persona_variant5": PLAIN.map(lambda s: "나는" + s)})),
    "construct.expansion": (lambda t: personas.parse_expansion("de", t),
                            lambda v: all(is_text(v[k]) for k in personas.EXPANSION_KEYS),
                            st.fixed_dictionaries({k: PLAIN for k in personas.EXPANSION_KEYS})),
    "construct.expansion_zh": (lambda t: personas.parse_expansion("zh", t),
                               lambda v: all(is_text(v[k]) for k in personas.EXPANSION_KEYS),
                               st.fixed_dictionaries({k: PLAIN.map(lambda s: "中" + s)
                                                      for k in personas.EXPANSION_KEYS})),
    "construct.rounds": (lambda t: dialogues.parse_rounds(t, 4), lambda v: len(v) == 8,
                         st.fixed_dictionaries({k: PLAIN for k in dialogues.round_keys(4)})),
    "construct.word_variants": (lambda t: dialogues.parse_variants(t, "where is the key"), lambda v: len(v) >= 1,
                                st.lists(st.fixed_dictionaries({"user_query_variant": PLAIN.map(lambda s: "why " + s),
                                                                "golden_agent_response_variant": PLAIN}),
                                         min_size=1, max_size=3, unique_by=lambda d: " ".join(
                                             d["user_query_variant"].lower().split()))),
    "construct.selection": (lambda t: dialogues.parse_selection(t, CANDIDATES), lambda v: v[0] == "where is the key",
                            st.fixed_dictionaries({"selected_user_query_variant": st.just("where is the key"),
                                                   "selected_golden_agent_response_variant": PLAIN})),
}


def estimator_marker() -> str:
    return marker()


def wrap(draw, body: str) -> str:
    how = draw(st.sampled_from(["bare", "fence", "fence_json", "prose", "fence_prose"]))
    return {"bare": body, "fence": f"```\n{body}\n```", "fence_json": f"```json\n{body}\n```",
            "prose": f"Here is the answer: {body} I hope it helps.",
            "fence_prose": f"Sure.\n```json\n{body}\n```\nDone."}[how]


def check_parse(name: str, text: str):
    parse, shape, _ = PARSERS[name]
    with within(5):
        value, repaired, reason = parse(text)
    assert isinstance(repaired, bool) and isinstance(reason, str)
    if value is None:
        assert reason, f"{name}: not parsed, without a reason"
    else:
        assert shape(value), f"{name}: parsed into {value!r}"
    return value


@st.composite
def answers(draw, mutated: bool):
    name = draw(st.sampled_from(sorted(PARSERS)))
    value = draw(PARSERS[name][2])
    if isinstance(value, str):
        body = value
    elif mutated:
        body = dump(draw(mutate(value, known_keys=tuple(value) if isinstance(value, dict) else ()))[0])
    else:
        body = json.dumps(value, ensure_ascii=False)
    text = wrap(draw, body)
    if mutated and draw(st.booleans()):
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.sampled_from(["", ",", ",}", "}", "]", "\n```", text[cut:] * 2]))
    return name, text


@given(answers(mutated=False))
def test_parsers_accept_valid_answers(case):
    name, text = case
    assert check_parse(name, text) is not None, f"{name} did not parse a valid answer:\n{text}"


@given(answers(mutated=True))
def test_parsers_never_raise_on_mutated_answers(case):
    check_parse(*case)


@given(st.sampled_from(sorted(PARSERS)), st.text(max_size=300) | json_ish_bytes().map(
    lambda b: b.decode("utf-8", "replace")))
@example("construct.rounds", "[" * 100_000)
@example("teacher.dialogue", '{"user_query_1": "a", "user_query_1": "b"}')
def test_parsers_never_raise_on_arbitrary_text(name, text):
    check_parse(name, text)


@given(st.text(max_size=300) | json_ish_bytes().map(lambda b: b.decode("utf-8", "replace")),
       st.sampled_from([dict, list]), st.booleans())
@example("[" * 100_000, list, False)
@example('{"a": ' + "1" * 5000 + "}", dict, True)
@example('{"a": "\\ud800"}', dict, False)
def test_extract_json_never_raises(text, want, repair):
    with within(5):
        value, repaired = extract_json(text, want, repair_commas=repair)
    assert isinstance(repaired, bool)
    assert value is None or isinstance(value, want)
    if value is not None:
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # the writers can write what was parsed


@given(st.dictionaries(PLAIN, PLAIN, min_size=1, max_size=3), st.sampled_from(["bare", "fence", "prose"]))
def test_extract_json_finds_the_one_object(obj, how):
    body = json.dumps(obj, ensure_ascii=False)
    text = {"bare": body, "fence": f"```json\n{body}\n```", "prose": f"Answer: {body} (end)"}[how]
    assert extract_json(text, dict)[0] == obj


VERDICT_TOKENS = ["Verdict", "verdict:", "Answer", "winner is", "Reply", "response", "A", "B", "tie", "draw", " ",
                  "  ", "\n", "\t", "**", '"', "'", "`", "is", "better", "[[", "]]", "[[A]]", "-", ":", " " * 40,
                  "A good", "Both", "equally good", "7", "/10", "10", "-3", "7.5", ".", "out of"]


@given(st.lists(st.sampled_from(VERDICT_TOKENS), max_size=80).map("".join) | st.text(max_size=300))
@example("Verdict" + " " * 300 + "x")
@example("answer: " + "\t" * 300 + "!")
def test_judge_parsers_never_raise_and_stay_fast(text):
    start = time.perf_counter()
    with within(5):
        verdict = pairwise_verdict(text)
        score = point_score(text, (1.0, 10.0))
    assert time.perf_counter() - start < 2.0, "a verdict parser is slow on this answer (backtracking)"
    assert verdict.value in ("A", "B", "tie") or (verdict.value is None and verdict.reason)
    assert (score.value is None and score.reason) or (isinstance(score.value, float) and 1 <= score.value <= 10)


@given(st.text(max_size=200))
def test_response_splitters_never_raise(text):
    thought, response = parse_generation(text)
    assert isinstance(thought, str) and isinstance(response, str)
    kept, found = estimator_core_features(text)
    assert isinstance(kept, str) and isinstance(found, bool)


def test_a_row_naming_another_subset_in_a_subset_file_is_refused(tmp_path):
    """A folder of {subset}.jsonl whose row says "subset": another one could be read two ways: refused with
    the file, line and sample (before: the row's "subset" was ignored and the file name won)."""
    bench = {"user_de": [sample_from_dict(r) for r in (json.loads(x) for x in (
        REPO / "tests/fixtures/paper_records.jsonl").read_text().splitlines()[:1])]}
    sid = bench["user_de"][0].sample_ID
    folder = tmp_path / "responses"
    write_jsonl(folder / "user_de.jsonl", [{"sample_ID": sid, "response": "Hallo", "subset": "user_es"}])
    with pytest.raises(ScoreInputError) as info:
        read_responses(folder, bench, "bench")
    assert f"user_de.jsonl, line 1, sample {sid!r}: the row says \"subset\": 'user_es'" in str(info.value)
    write_jsonl(folder / "user_de.jsonl", [{"sample_ID": sid, "response": "Hallo", "subset": "german"}])
    assert read_responses(folder, bench, "bench").by_subset["user_de"].texts == ["Hallo"]

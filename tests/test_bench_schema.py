"""The one loader on the paper's own records and on every kind of bad input."""

import copy
import json

import pytest
from conftest import FIXTURES, write_jsonl

from rpm.bench.load import load_bench, read_authors_json, read_jsonl
from rpm.bench.schema import BenchRecordError, check_sample_id


def test_paper_records_load_through_the_real_loader(paper_records):
    samples = read_jsonl(FIXTURES / "paper_records.jsonl")
    assert [s.sample_ID for s in samples] == ["IDTrain-142", "OOD2Test-3303", "OOD3Test-196", "OOD3Test-197"]
    ident, lit, turn, word = samples
    assert ident.agent_character.character_name == "Yiruma" and ident.subset_tag is None
    assert lit.subset_tag == "Literature-Fictional" and lit.agent_character.character_domain == "Literature"
    # turn-level composition: 8 user queries, 7 agent responses; word-level: 4 and 3
    assert sum(t.role == "user_query" for t in turn.dialogue_context) == 8
    assert sum(t.role == "user_query" for t in word.dialogue_context) == 4
    assert all(s.dialogue_context[-1].role == "user_query" for s in samples)
    assert "poetry" in word.dialogue_context[-1].text and "travel" in ident.dialogue_context[-1].text
    # the record round-trips to exactly the JSON the paper prints
    assert [s.to_dict() for s in samples] == paper_records


def test_table10_as_printed_is_rejected_with_its_position(tmp_path):
    with pytest.raises(BenchRecordError,
                       match=r"as_printed.json, line 1, sample \?: malformed JSON at column 3745: "
                             r"Expecting ',' delimiter"):
        read_jsonl(FIXTURES / "paper_table10_as_printed.json")


def _mutate(record, fn):
    r = copy.deepcopy(record)
    fn(r)
    return r


BAD_RECORDS = {
    "missing field": (lambda r: r.pop("user_persona"),
                      "IDTrain-142', field 'user_persona': missing required field"),
    "mistyped field": (lambda r: r.update(agent_golden_response=42),
                       "field 'agent_golden_response': expected a string, got int"),
    "mistyped character field": (lambda r: r["agent_character"].update(character_personality=["calm"]),
                                 "field 'agent_character.character_personality': expected a string, got list"),
    "character not an object": (lambda r: r.update(agent_character="Yiruma"),
                                "field 'agent_character': expected an object"),
    "empty dialogue": (lambda r: r.update(dialogue_context=[]),
                       "field 'dialogue_context': is empty: a dialogue needs at least one user query"),
    "dialogue ends on agent": (lambda r: r["dialogue_context"].append({"agent_response": "Indeed."}),
                               "field 'dialogue_context': the dialogue must end on a user query"),
    "turns do not alternate": (lambda r: r["dialogue_context"].insert(1, {"user_query": "Hello?"}),
                               "field 'dialogue_context[1]': turns must alternate"),
    "unknown turn key": (lambda r: r["dialogue_context"].__setitem__(0, {"user": "Hi"}),
                         "field 'dialogue_context[0]': unknown turn key 'user'"),
    "empty turn": (lambda r: r["dialogue_context"].__setitem__(2, {"user_query": "  "}),
                   "field 'dialogue_context[2].user_query': is empty"),
    "empty golden response": (lambda r: r.update(agent_golden_response=""),
                              "field 'agent_golden_response': is empty"),
    "unknown field": (lambda r: r.update(golden="x"), "field 'golden': unknown field(s) ['golden']"),
    "path separator in ID": (lambda r: r.update(sample_ID="../../etc/passwd"),
                             "field 'sample_ID': sample ID '../../etc/passwd' is not safe"),
    "slash in ID": (lambda r: r.update(sample_ID="IDTest/7"), "field 'sample_ID': sample ID 'IDTest/7' is not safe"),
    "empty subset tag": (lambda r: r.update(subset_tag=""), "field 'subset_tag': expected a non-empty string"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_bad_record_names_file_line_sample_and_field(case, paper_records, tmp_path):
    fn, message = BAD_RECORDS[case]
    path = write_jsonl(tmp_path / "bench.jsonl", [paper_records[2], _mutate(paper_records[0], fn)])
    with pytest.raises(BenchRecordError) as err:
        read_jsonl(path)
    text = str(err.value)
    assert text.startswith(f"{path}, line 2, sample "), text
    assert message in text, text


def test_malformed_line(paper_records, tmp_path):
    path = tmp_path / "bench.jsonl"
    path.write_text(json.dumps(paper_records[0]) + "\n" + json.dumps(paper_records[2])[:-40] + "\n")
    with pytest.raises(BenchRecordError, match=r"bench.jsonl, line 2, sample \?: malformed JSON at column \d+"):
        read_jsonl(path)


def test_invalid_utf8(paper_records, tmp_path):
    path = tmp_path / "bench.jsonl"
    good = json.dumps(paper_records[0], ensure_ascii=False).encode()
    path.write_bytes(good + b"\n" + good.replace(b"Yiruma", b"Yir\xff\xfema", 1) + b"\n")
    with pytest.raises(BenchRecordError, match=r"bench.jsonl, line 2, sample \?: invalid UTF-8 at byte \d+"):
        read_jsonl(path)


def test_duplicate_sample_id(paper_records, tmp_path):
    path = write_jsonl(tmp_path / "bench.jsonl", [paper_records[0], paper_records[1], paper_records[0]])
    with pytest.raises(BenchRecordError) as err:
        read_jsonl(path)
    assert str(err.value) == (f"{path}, line 3, sample 'IDTrain-142', field 'sample_ID': "
                              "duplicate sample ID (first seen on line 1)")


def test_blank_line_and_empty_file(paper_records, tmp_path):
    path = tmp_path / "bench.jsonl"
    path.write_text(json.dumps(paper_records[0]) + "\n\n" + json.dumps(paper_records[1]) + "\n")
    with pytest.raises(BenchRecordError, match="line 2, sample \\?: blank line"):
        read_jsonl(path)
    path.write_text("")
    with pytest.raises(BenchRecordError, match="the file holds no records"):
        read_jsonl(path)


def test_record_not_an_object(tmp_path):
    path = tmp_path / "bench.jsonl"
    path.write_text('["not", "a", "record"]\n')
    with pytest.raises(BenchRecordError, match="line 1, sample \\?: a record must be a JSON object, got list"):
        read_jsonl(path)


def test_authors_json_errors_name_split_and_index(paper_records, tmp_path):
    bad = _mutate(paper_records[1], lambda r: r.pop("agent_golden_response"))
    path = tmp_path / "RPGBench.json"
    path.write_text(json.dumps({"IDTrain": [paper_records[0]], "OOD2Test": [bad]}))
    with pytest.raises(BenchRecordError) as err:
        read_authors_json(path)
    assert f"{path} [OOD2Test][0], sample 'OOD2Test-3303', field 'agent_golden_response'" in str(err.value)
    path.write_text(json.dumps({"IDTrain": [paper_records[0]], "OODTest": []}))
    with pytest.raises(BenchRecordError, match=r"unknown split\(s\) \['OODTest'\]"):
        read_authors_json(path)


def test_duplicate_id_across_files_of_a_bench_dir(paper_records, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [paper_records[0]])
    write_jsonl(tmp_path / "b.jsonl", [paper_records[1], paper_records[0]])
    with pytest.raises(BenchRecordError) as err:
        load_bench(tmp_path, files=("a", "b"))
    assert str(err.value).startswith(f"{tmp_path / 'b.jsonl'}, line 2, sample 'IDTrain-142', field 'sample_ID': "
                                     f"duplicate sample ID: also in {tmp_path / 'a.jsonl'}:1")


@pytest.mark.parametrize("ok", ["IDTrain-142", "OOD3Test-196", "a.b_c-9"])
def test_safe_sample_ids_pass(ok):
    assert check_sample_id(ok) == ok


@pytest.mark.parametrize("bad", ["", "a b", "a\\b", "..", "a/../b", ".hidden", "x" * 129, "ID\n1"])
def test_unsafe_sample_ids_fail(bad):
    with pytest.raises(ValueError, match="not safe to use in file names"):
        check_sample_id(bad)

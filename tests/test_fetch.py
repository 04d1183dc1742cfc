"""`rpm bench fetch` from the local forms the authors' data comes in, and subset tag matching."""

import json

import pytest
from conftest import write_jsonl

from rpm.bench.fetch import fetch, read_source
from rpm.bench.load import load_bench
from rpm.bench.schema import BenchRecordError
from rpm.bench.subsets import subset_for_tag
from rpm.core.names import BENCH_FILES, SUBSETS


@pytest.mark.parametrize("tag,name", [
    ("Literature-Fictional", "char_literature"), ("Literature", "char_literature"),
    ("Film & Television", "char_film"), ("film_television", "char_film"), ("Theatre", "char_theater"),
    ("Gaming-Fictional", "char_gaming"), ("german", "user_de"), ("Korean", "user_ko"),
    ("TurnLevelComposition", "dial_turn"), ("word-level", "dial_word"), (" spanish ", "user_es"),
])
def test_subset_tags_match_robustly(tag, name):
    assert subset_for_tag(tag) == name


def test_every_authors_subset_name_maps_to_a_stable_name():
    # the names used by the authors' estimation script
    authors = ["german", "spanish", "chinese", "japanese", "korean", "Literature", "Film & Television", "Theater",
               "Gaming", "TurnLevelComposition", "WordLevelComposition"]
    assert [subset_for_tag(t) for t in authors] == [s.name for s in SUBSETS[1:]]


@pytest.mark.parametrize("tag", ["Poetry", "french", "", "Literature-Real-ish"])
def test_unknown_tag_fails_loudly(tag):
    with pytest.raises(ValueError, match="unknown subset tag"):
        subset_for_tag(tag)


def test_tag_in_the_wrong_split_fails():
    with pytest.raises(ValueError, match="belongs to split OOD2Test, not OOD1Test"):
        subset_for_tag("Gaming", "OOD1Test")


def _authors_doc(paper_records):
    """A small benchmark in the authors' one-JSON layout, built from the paper's records."""
    ident, lit, turn, word = paper_records
    doc = {"IDTrain": [dict(ident, sample_ID="IDTrain-1")], "IDTest": [dict(ident, sample_ID="IDTest-1")],
           "OOD1Test": [], "OOD2Test": [], "OOD3Test": [dict(turn), dict(word)]}
    for i, s in enumerate(SUBSETS[1:6]):
        doc["OOD1Test"].append(dict(ident, sample_ID=f"OOD1Test-{i}", subset_tag=s.tag))
    for i, tag in enumerate(["Literature-Fictional", "Film & Television-Fictional", "Theater", "Gaming"]):
        doc["OOD2Test"].append(dict(lit, sample_ID=f"OOD2Test-{i}", subset_tag=tag))
    return doc


def test_fetch_authors_json_and_split_dir_agree(paper_records, tmp_path):
    doc = _authors_doc(paper_records)
    (tmp_path / "RPGBench.json").write_text(json.dumps(doc))
    split_dir = tmp_path / "splits"
    split_dir.mkdir()
    for split, rows in doc.items():
        write_jsonl(split_dir / f"{split}.jsonl", rows)
    fetch(str(tmp_path / "RPGBench.json"), tmp_path / "a")
    fetch(str(split_dir), tmp_path / "b")
    a, b = load_bench(tmp_path / "a"), load_bench(tmp_path / "b")
    assert a == b and list(a) == list(BENCH_FILES)
    assert [s.sample_ID for s in a["char_film"]] == ["OOD2Test-1"]
    assert [s.sample_ID for s in a["dial_word"]] == ["OOD3Test-197"]
    stats = (tmp_path / "a" / "stats.tsv").read_text().splitlines()
    assert stats[0] == "file\tsplit\tshift\tsamples\tuser_personas\tagent_characters"
    assert stats[1] == "train\tIDTrain\tid\t1\t1\t1"


def test_fetch_refuses_unknown_tag_naming_the_sample(paper_records, tmp_path):
    doc = _authors_doc(paper_records)
    doc["OOD2Test"][2]["subset_tag"] = "Opera"
    (tmp_path / "RPGBench.json").write_text(json.dumps(doc))
    with pytest.raises(BenchRecordError) as err:
        fetch(str(tmp_path / "RPGBench.json"), tmp_path / "out")
    assert "[OOD2Test][2], sample 'OOD2Test-2', field 'subset_tag': unknown subset tag 'Opera'" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_fetch_refuses_missing_tag_and_missing_subset(paper_records, tmp_path):
    doc = _authors_doc(paper_records)
    del doc["OOD3Test"][0]["subset_tag"]
    (tmp_path / "RPGBench.json").write_text(json.dumps(doc))
    with pytest.raises(BenchRecordError, match="field 'subset_tag': OOD records need a subset_tag"):
        fetch(str(tmp_path / "RPGBench.json"), tmp_path / "out")
    doc = _authors_doc(paper_records)
    doc["OOD3Test"] = doc["OOD3Test"][:1]
    (tmp_path / "RPGBench.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"no records for subset\(s\) \['dial_word'\]"):
        fetch(str(tmp_path / "RPGBench.json"), tmp_path / "out")


def test_fetch_subsample_is_seeded(paper_records, tmp_path):
    doc = _authors_doc(paper_records)
    doc["IDTrain"] = [dict(paper_records[0], sample_ID=f"IDTrain-{i}") for i in range(20)]
    (tmp_path / "RPGBench.json").write_text(json.dumps(doc))
    runs = [fetch(str(tmp_path / "RPGBench.json"), tmp_path / f"o{i}", max_train=5, seed=s)
            for i, s in enumerate([1, 1, 2])]
    ids = [[s.sample_ID for s in r["train"]] for r in runs]
    assert len(ids[0]) == 5 and ids[0] == ids[1] and ids[0] != ids[2]


def test_missing_source_says_how_to_name_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="hub source is written 'hub:OWNER/NAME'"):
        read_source(str(tmp_path / "nope"))

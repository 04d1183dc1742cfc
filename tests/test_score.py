"""`rpm score`: the practitioner's path gives the workflow's numbers, and refuses bad responses clearly."""

import csv
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import REPO, write_jsonl

from rpm.bench.load import read_jsonl
from rpm.cli import main
from rpm.core.names import SUBSET_NAMES
from rpm.score.responses import CoverageError, ScoreInputError, read_responses, subset_name
from rpm.score.run import resolve_estimator


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from rpm.bench.synth import SynthConfig, synth

    out = tmp_path_factory.mktemp("bench")
    synth(out, SynthConfig(n_train=2, n_per_subset=2, seed=0))
    return out


def _bench_samples(bench, subsets=SUBSET_NAMES):
    return {s: read_jsonl(bench / f"{s}.jsonl") for s in subsets}


def _folder(tmp_path, bench, edit=None):
    """A complete responses folder (one file per subset); `edit(subset, rows)` may change a subset's rows."""
    folder = tmp_path / "responses"
    folder.mkdir()
    for sub, samples in _bench_samples(bench).items():
        rows = [{"sample_ID": s.sample_ID, "response": f"My answer to {s.sample_ID}."} for s in samples]
        if edit:
            rows = edit(sub, rows)
        if rows is not None:
            write_jsonl(folder / f"{sub}.jsonl", rows)
    return folder


def _problems(tmp_path, bench, edit):
    with pytest.raises(CoverageError) as e:
        read_responses(_folder(tmp_path, bench, edit), _bench_samples(bench), str(bench))
    return e.value


def test_complete_folder_is_read_in_benchmark_order(tmp_path, bench):
    samples = _bench_samples(bench)
    rs = read_responses(_folder(tmp_path, bench, lambda sub, rows: rows[::-1]), samples, str(bench))
    assert list(rs.by_subset) == list(SUBSET_NAMES)
    assert rs.by_subset["user_de"].texts == [f"My answer to {s.sample_ID}." for s in samples["user_de"]]


def test_missing_samples_are_listed_with_their_ids(tmp_path, bench):
    dropped = _bench_samples(bench)["user_de"][1].sample_ID
    e = _problems(tmp_path, bench, lambda sub, rows: rows[:1] if sub == "user_de" else rows)
    assert len(e.problems) == 1
    assert "user_de.jsonl: 1 sample(s) of subset 'user_de'" in str(e) and "have no response" in str(e)
    assert repr(dropped) in str(e) and "nothing was scored" in str(e)


def test_extra_samples_are_named_with_file_line_and_id(tmp_path, bench):
    def edit(sub, rows):
        return rows + [{"sample_ID": "NotInBench-1", "response": "hello"}] if sub == "char_film" else rows

    e = _problems(tmp_path, bench, edit)
    assert e.problems == [f"{tmp_path}/responses/char_film.jsonl, line 3, sample 'NotInBench-1': not a sample of "
                          f"subset 'char_film' ({bench}/char_film.jsonl)"]


def test_every_coverage_problem_is_reported_at_once(tmp_path, bench):
    def edit(sub, rows):
        if sub == "dial_word":
            return None                                     # a whole subset missing
        if sub == "user_es":
            return rows[:1] + [{"sample_ID": "X-9", "response": "hi"}]
        return rows

    e = _problems(tmp_path, bench, edit)
    text = str(e)
    assert len(e.problems) == 3 and "(3 problem(s))" in text
    assert "no responses for subset 'dial_word'" in text and "sample 'X-9'" in text and "have no response" in text


def test_empty_response_names_file_line_and_sample(tmp_path, bench):
    def edit(sub, rows):
        if sub == "id_test":
            rows[1]["response"] = "   "
        return rows

    with pytest.raises(ValueError) as e:
        read_responses(_folder(tmp_path, bench, edit), _bench_samples(bench), str(bench))
    sid = _bench_samples(bench)["id_test"][1].sample_ID
    assert str(e.value) == f'{tmp_path}/responses/id_test.jsonl, line 2, sample {sid!r}: field "response" is empty'


def test_wrong_subset_file_name(tmp_path, bench):
    def edit(sub, rows):
        return rows

    folder = _folder(tmp_path, bench, edit)
    write_jsonl(folder / "klingon.jsonl", [{"sample_ID": "K-1", "response": "Qapla'"}])
    with pytest.raises(CoverageError) as e:
        read_responses(folder, _bench_samples(bench), str(bench))
    assert e.value.problems == [f"{folder}/klingon.jsonl: unknown subset name 'klingon' (file names must be subset "
                                f"names: {', '.join(SUBSET_NAMES)})"]


def test_one_file_with_subset_field_accepts_the_authors_names_and_refuses_unknown_ones(tmp_path, bench):
    samples = _bench_samples(bench)
    authors = {"id_test": "IDTest", "user_de": "german", "char_film": "Film & Television",
               "dial_turn": "TurnLevelComposition"}
    rows = [{"sample_ID": s.sample_ID, "response": "ok " + s.sample_ID, "subset": authors.get(sub, sub)}
            for sub, ss in samples.items() for s in ss]
    good = write_jsonl(tmp_path / "all.jsonl", rows)
    rs = read_responses(good, samples, str(bench))
    assert list(rs.by_subset) == list(SUBSET_NAMES)
    assert rs.by_subset["char_film"].texts == ["ok " + s.sample_ID for s in samples["char_film"]]

    bad = write_jsonl(tmp_path / "bad.jsonl", rows + [{"sample_ID": "Z-1", "response": "x", "subset": "Klingon"},
                                                      {"sample_ID": "Z-2", "response": "y", "subset": "Klingon"}])
    with pytest.raises(CoverageError) as e:
        read_responses(bad, samples, str(bench))
    assert e.value.problems == [f"{bad}, line {len(rows) + 1}, sample 'Z-1': unknown subset 'Klingon' (2 row(s)); "
                                f"known subsets: {', '.join(SUBSET_NAMES)}"]

    no_subset = write_jsonl(tmp_path / "nosub.jsonl", [{"sample_ID": "A", "response": "x"}])
    with pytest.raises(ValueError, match=r'nosub.jsonl, line 1, sample \'A\': missing or non-string field "subset"'):
        read_responses(no_subset, samples, str(bench))


def test_malformed_line_and_subset_aliases(tmp_path, bench):
    folder = _folder(tmp_path, bench)
    path = folder / "user_ko.jsonl"
    path.write_text(path.read_text().splitlines()[0] + "\n{not json\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"user_ko.jsonl, line 2: malformed JSON at column 2"):
        read_responses(folder, _bench_samples(bench), str(bench))
    assert [subset_name(x) for x in ("IDTest", "german", "Literature-Fictional", "user_zh", "klingon")] == \
        ["id_test", "user_de", "char_literature", "user_zh", None]


def test_cli_reports_bad_input_as_one_error_before_loading_any_model(tmp_path, bench):
    folder = _folder(tmp_path, bench, lambda sub, rows: rows[:1] if sub == "user_ja" else rows)
    r = CliRunner().invoke(main, ["score", "--responses", str(folder), "--bench", str(bench),
                                  "--estimator", str(tmp_path / "no-such-estimator"), "--out", str(tmp_path / "out")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "Error: responses" in r.output and "subset 'user_ja'" in r.output
    assert not (tmp_path / "out" / "remi.csv").exists()
    (tmp_path / "good").mkdir()
    good = _folder(tmp_path / "good", bench)
    r = CliRunner().invoke(main, ["score", "--responses", str(good), "--bench", str(bench),
                                  "--estimator", str(tmp_path / "good"), "--out", str(tmp_path / "out")])
    assert r.exit_code == 1 and "expected a CoRL estimator directory" in r.output


def test_estimator_specs(tmp_path):
    with pytest.raises(ScoreInputError, match="not a directory and not 'published"):
        resolve_estimator(str(tmp_path / "nothing"), tmp_path)
    with pytest.raises(ScoreInputError, match="--estimator-base, --reasoner-subfolder, --policy-subfolder"):
        resolve_estimator("published", tmp_path)
    root = tmp_path / "est"
    (root / "coevolved" / "policy").mkdir(parents=True)
    (root / "reasoning" / "corl").mkdir(parents=True)
    est = resolve_estimator(str(root), tmp_path)
    assert (est.policy, est.reasoner, est.reasoning_dir, est.name) == (
        root / "coevolved" / "policy", root / "coevolved" / "reasoner", root / "reasoning" / "corl", "corl")


@pytest.mark.slow
def test_score_gives_the_dags_own_numbers(smoke_run):
    """The smoke DAG's `score` rule ran `rpm score` on its own tiny/sft responses folder: every R-EMI,
    R-EMID and bound number equals that RPM's row in results/metrics/remi.csv and bound.csv, digit for digit."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    smoke = yaml.safe_load((REPO / "workflow/configs/smoke.yaml").read_text())
    assert smoke["score"]["responses"] == "results/rpm/tiny/sft/responses"
    name = smoke["score"].get("name", config["score"]["name"])
    out = Path(smoke_run) / "results" / "score" / name
    metrics = Path(smoke_run) / "results" / "metrics"

    def table(path, key, rpm=None):
        rows = [r for r in csv.DictReader(open(path, newline="")) if rpm is None or r["rpm"] == rpm]
        return {key(r): {c: v for c, v in r.items() if c != "rpm"} for r in rows}

    remi_key = lambda r: (r["estimator"], r["quantity"], r["subset"])  # noqa: E731
    mine, dag = table(out / "remi.csv", remi_key), table(metrics / "remi.csv", remi_key, "tiny/sft")
    assert len(mine) == 12 * 3 + 11 and mine == dag
    bound_key = lambda r: (r["source"], r["target"], r["size"], r["seed"])  # noqa: E731
    mine, dag = table(out / "bound.csv", bound_key), table(metrics / "bound.csv", bound_key, "tiny/sft")
    assert len(mine) == 11 * 3 and mine == dag
    assert {r["rpm"] for r in csv.DictReader(open(out / "remi.csv"))} == {name}
    summary = (out / "summary.md").read_text()
    assert ("## R-EMI per subset" in summary
            and "cached (results/estimator/tiny/reasoning/corl/id_test.jsonl)" in summary)
    assert (out / "remi.png").read_bytes()[:4] == b"\x89PNG"


def test_score_end_to_end_on_the_tiny_model(tmp_path, bench, tiny_model_dir):
    """Two subsets, one JSONL with a subset column, and the authors' published layout from a local copy of
    the repository (two untrained LoRA adapters on the tiny model; the hub download is the same code path
    with a repository id), whose reasoner computes r."""
    from peft import LoraConfig, get_peft_model

    from rpm.runtime.load import load_model

    repo = tmp_path / "published"
    for sub in ("r", "p"):
        get_peft_model(load_model(tiny_model_dir),
                       LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(repo / sub)
    samples = _bench_samples(bench, ("id_test", "user_zh"))
    rows = [{"sample_ID": s.sample_ID, "subset": sub, "response": "Indeed. " + s.agent_golden_response[:60]}
            for sub, ss in samples.items() for s in ss]
    responses = write_jsonl(tmp_path / "mine.jsonl", rows)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, [
        "score", "--responses", str(responses), "--bench", str(bench), "--estimator", f"published:{repo}",
        "--estimator-base", str(tiny_model_dir), "--reasoner-subfolder", "r", "--policy-subfolder", "p",
        "--out", str(out), "--name", "mine", "--subset", "id_test", "--subset", "user_zh",
        "--reason-max-new-tokens", "4", "--n-boot", "20", "--sizes", "all", "--seeds", "0",
        "--embedder", f"lm:{tiny_model_dir}", "--quiet"])
    assert r.exit_code == 0, r.output
    remi = list(csv.DictReader(open(out / "remi.csv")))
    assert [(x["quantity"], x["subset"]) for x in remi] == [
        ("MI_model", "id_test"), ("MI_golden", "id_test"), ("R-EMI", "id_test"),
        ("MI_model", "user_zh"), ("MI_golden", "user_zh"), ("R-EMI", "user_zh"), ("R-EMID", "user_zh")]
    assert {x["estimator"] for x in remi} == {"published"} and {x["rpm"] for x in remi} == {"mine"}
    v = {(x["quantity"], x["subset"]): float(x["value"]) for x in remi}
    assert v[("R-EMID", "user_zh")] == pytest.approx(v[("R-EMI", "id_test")] - v[("R-EMI", "user_zh")], abs=1e-12)
    assert (out / "estimator" / "policy" / "adapter" / "adapter_config.json").is_file()
    bound = list(csv.DictReader(open(out / "bound.csv")))
    assert [(b["target"], b["size"]) for b in bound] == [("user_zh", "all")] and float(bound[0]["bound"]) > 0
    traces = [json.loads(x) for x in (out / "reasoning" / "user_zh.jsonl").read_text().splitlines()]
    assert [t["sample_ID"] for t in traces] == [s.sample_ID for s in samples["user_zh"]]
    summary = (out / "summary.md").read_text()
    assert "computed (" in summary and "| user_zh | user |" in summary
    assert (out / "remi.png").stat().st_size > 1000

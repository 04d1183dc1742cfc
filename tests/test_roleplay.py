"""The role-play checks (rpm/analysis/roleplay.py): gain over the base, the closing tag, identical methods."""

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from rpm.analysis.roleplay import close_row, distinct_rows, gain_row
from rpm.analysis.summary import roleplay_claims
from rpm.bench.load import read_jsonl
from rpm.bench.synth import SynthConfig, synth
from rpm.cli import main
from rpm.core.errors import RpmInputError


def test_gain_verdict_follows_its_interval():
    base = np.full(40, -3.0)
    assert gain_row(base, base + 1.0, "sft", n_boot=200, seed=0)["verdict"] == "met"
    assert gain_row(base, base + 0.1, "sft", n_boot=200, seed=0)["verdict"] == "not met"
    noisy = base + 0.5 + np.random.default_rng(0).normal(0, 1.0, size=40)
    r = gain_row(base, noisy, "sft", n_boot=500, seed=0)
    assert r["ci_low"] < 0.5 < r["ci_high"] and r["verdict"] == "undecided"
    assert r == gain_row(base, noisy, "sft", n_boot=500, seed=0)          # seeded


def test_close_share_uses_the_raw_generation_and_an_exact_interval():
    rows = [{"raw": "<Agent Response>\nhi\n</Agent Response>"}] * 19 + [{"raw": "<Agent Response>\nhi and on"}]
    r = close_row(rows, "sft")
    assert r["estimate"] == 0.95 and r["n"] == 20
    assert r["ci_low"] == pytest.approx(0.7513, abs=1e-3) and r["ci_high"] == pytest.approx(0.9987, abs=1e-3)
    assert r["verdict"] == "undecided"
    assert close_row([{"raw": "x </Agent Response>"}] * 60, "sft")["verdict"] == "met"
    assert close_row([{"raw": "cut"}] * 30, "sft")["verdict"] == "not met"
    with pytest.raises(RpmInputError):
        close_row([], "sft")


def test_one_generation_copied_to_several_subsets_counts_once_in_the_close_share():
    own = [{"raw": "a </Agent Response>", "input": f"k{i}"} for i in range(8)]
    sweep = [{"raw": "cut", "input": "s0"}] * 3 + [{"raw": "b </Agent Response>", "input": "s1"}] * 3
    r = close_row(own + sweep, "sft", extra=len(sweep))
    assert r["n"] == 10 and r["estimate"] == pytest.approx(9 / 10)
    assert "(2 of them the sweep's) after 4 copies of one input were counted once" in r["note"]
    assert close_row([{"raw": "cut"}] * 4, "sft")["n"] == 4          # rows without an input key stay distinct


def test_identical_methods_are_named():
    a = {"id/1": "x", "id/2": "y"}
    rows = distinct_rows({"sft": a, "da": dict(a), "dpo": {"id/1": "x", "id/2": "z"}})
    assert [(r["rpm"], r["verdict"]) for r in rows] == [("da = sft", "not met")]
    assert distinct_rows({"sft": a, "dpo": {"id/1": "x", "id/2": "z"}})[0]["verdict"] == "met"
    with pytest.raises(RpmInputError, match="different samples"):
        distinct_rows({"sft": a, "dpo": {"id/1": "x"}})


def test_roleplay_cli_on_a_model_against_itself(tmp_path, tiny_model_dir):
    """The tiny model as both base and 'SFT': the gain is exactly 0, so the check is not met."""
    synth(tmp_path / "bench", SynthConfig(n_train=4, n_per_subset=3, seed=2))
    ids = [s.sample_ID for s in read_jsonl(tmp_path / "bench" / "id_test.jsonl")]
    for method, raw in (("sft", "a </Agent Response>"), ("da", "a </Agent Response>"), ("icl", "cut off")):
        folder = tmp_path / method
        folder.mkdir()
        (folder / "id_test.jsonl").write_text("".join(json.dumps({"sample_ID": i, "response": "a", "raw": raw}) + "\n"
                                                      for i in ids))
    out = tmp_path / "roleplay.csv"
    r = CliRunner().invoke(main, ["analyze", "roleplay", "--base", str(tiny_model_dir), "--sft", str(tiny_model_dir),
                                  "--id-bench", str(tmp_path / "bench" / "id_test.jsonl"),
                                  *[f"--responses={m}={tmp_path / m}" for m in ("sft", "da", "icl")],
                                  "--out", str(out), "--figure", str(tmp_path / "r.png"), "--n-boot", "50"])
    assert r.exit_code == 0, r.output
    rows = {(x["check"], x["rpm"]): x for x in csv.DictReader(out.open())}
    assert float(rows["gain", "sft"]["estimate"]) == 0.0 and rows["gain", "sft"]["verdict"] == "not met"
    assert float(rows["close", "icl"]["estimate"]) == 0 and float(rows["close", "sft"]["estimate"]) == 1
    assert {k for k in rows if k[0] == "distinct"} == {("distinct", "da = icl"), ("distinct", "da = sft"),
                                                       ("distinct", "icl = sft")}
    claims = roleplay_claims(out)
    assert [c["verdict"] for c in claims if "close" in c["claim"]] == ["not shown (CI straddles the threshold)"]
    assert (tmp_path / "r.png").stat().st_size > 0
    # The sweep's responses on its own samples join SFT's close check, not the distinct check.
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    raws = ["a </Agent Response>", "cut", "b </Agent Response>"]
    (sweep / "user_de.jsonl").write_text("".join(json.dumps({"sample_ID": f"s{k}", "response": "a", "raw": raw}) + "\n"
                                                 for k, raw in enumerate(raws)))
    common = ["analyze", "roleplay", "--base", str(tiny_model_dir), "--sft", str(tiny_model_dir),
              "--id-bench", str(tmp_path / "bench" / "id_test.jsonl"),
              *[f"--responses={m}={tmp_path / m}" for m in ("sft", "da", "icl")],
              "--out", str(out), "--figure", str(tmp_path / "r.png"), "--n-boot", "50"]
    r = CliRunner().invoke(main, [*common, f"--close-extra=sft={sweep}"])
    assert r.exit_code == 0, r.output
    rows = {(x["check"], x["rpm"]): x for x in csv.DictReader(out.open())}
    assert rows["close", "sft"]["n"] == str(len(ids) + 3) and "3 of them the sweep's" in rows["close", "sft"]["note"]
    assert float(rows["close", "sft"]["estimate"]) == pytest.approx((len(ids) + 2) / (len(ids) + 3))
    assert rows["close", "da"]["n"] == str(len(ids)) and ("distinct", "da = sft") in rows
    r = CliRunner().invoke(main, [*common, f"--close-extra=rl={sweep}"])
    assert r.exit_code != 0 and "no --responses for 'rl'" in r.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "id_test.jsonl").write_text(json.dumps({"sample_ID": ids[0], "response": "a"}) + "\n")
    r = CliRunner().invoke(main, ["analyze", "roleplay", "--base", str(tiny_model_dir), "--sft", str(tiny_model_dir),
                                  "--id-bench", str(tmp_path / "bench" / "id_test.jsonl"), f"--responses=sft={bad}",
                                  "--out", str(out), "--figure", str(tmp_path / "r.png")])
    assert r.exit_code != 0 and "raw" in r.output and ids[0] in r.output

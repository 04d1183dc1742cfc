"""Scored rows reused between nested severities (rpm/metrics/row_reuse.py): a job given an earlier job's files
copies exactly the rows whose prompt and scored continuations are unchanged, and its files hold the numbers a
fresh job writes."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_jsonl

from rpm.bench.load import read_jsonl
from rpm.bench.synth import SynthConfig, synth
from rpm.cli import main
from rpm.metrics.matrices import load
from rpm.metrics.pairs import negative_plan

N, K, SEED = 8, 2, 3
CHANGED = {1, 6}   # the samples "shifted" at the second severity


def _severity(root, name, samples, changed):
    bench, resp = root / name / "bench", root / name / "responses"
    bench.mkdir(parents=True)
    resp.mkdir()
    rows = [json.loads(json.dumps(r)) for r in samples]
    for k in changed:
        rows[k]["agent_golden_response"] = "<Agent Response>\nA shifted reply, entirely new.\n</Agent Response>"
    write_jsonl(bench / "id_test.jsonl", rows)
    write_jsonl(resp / "id_test.jsonl", [{"sample_ID": r["sample_ID"], "response": f"answer {k}" + "!" * (k in changed)}
                                         for k, r in enumerate(rows)])
    return bench / "id_test.jsonl", resp


@pytest.fixture(scope="module")
def severities(tmp_path_factory):
    root = tmp_path_factory.mktemp("reuse")
    synth(root / "synth", SynthConfig(n_train=2, n_per_subset=N, seed=4))
    samples = [json.loads(line) for line in (root / "synth" / "id_test.jsonl").read_text().splitlines()]
    assert len(read_jsonl(root / "synth" / "id_test.jsonl")) == N
    return root, _severity(root, "s0", samples, set()), _severity(root, "s1", samples, CHANGED)


def _run(model_dir, bench, resp, out, *extra):
    r = CliRunner().invoke(main, ["logprobs", "--estimator", str(model_dir), "--bench-file", str(bench),
                                  "--rpm-responses", f"tiny/sft={resp}", "--out", str(out), "--quiet",
                                  "--batch-size", "2", "--seed", str(SEED), *extra])
    assert r.exit_code == 0, r.output
    return r.output


@pytest.mark.parametrize("negatives", [K, None])
def test_reused_rows_are_exactly_the_unchanged_ones_with_a_fresh_jobs_numbers(severities, tiny_model_dir, negatives):
    root, (b0, r0), (b1, r1) = severities
    tag = f"k{negatives}"
    neg = ["--negatives", str(negatives)] if negatives else []
    _run(tiny_model_dir, b0, r0, root / f"{tag}_a", *neg)
    out = _run(tiny_model_dir, b1, r1, root / f"{tag}_b", *neg, "--reuse", str(root / f"{tag}_a"))
    _run(tiny_model_dir, b1, r1, root / f"{tag}_fresh", *neg)
    plan = negative_plan(N, negatives, SEED, "id_test")
    expected = [a for a in range(N) if a not in CHANGED and not CHANGED & set(plan[a])]
    for part in ("golden", "tiny/sft"):
        reused = load(root / f"{tag}_b" / part / "id_test.npz")
        fresh = load(root / f"{tag}_fresh" / part / "id_test.npz")
        assert reused.meta["reused_rows"] == len(expected), out
        assert reused.meta["row_keys"] == fresh.meta["row_keys"]
        for side in ("golden", "model") if part != "golden" else ("golden",):
            a, b = getattr(reused, side), getattr(fresh, side)
            assert (np.isnan(a.lp) == np.isnan(b.lp)).all()
            np.testing.assert_allclose(np.nan_to_num(a.lp), np.nan_to_num(b.lp), atol=1e-3)
            np.testing.assert_allclose(a.ent, b.ent, atol=1e-3)
            assert (a.ntok == b.ntok).all()
    if negatives:
        assert 0 < len(expected) < N     # the case the sweep lives in: some rows copied, some scored
    else:
        assert expected == []            # all pairs: every row scores the changed columns


def test_nothing_is_reused_across_different_settings_and_reuse_is_refused_without_its_files(severities,
                                                                                            tiny_model_dir, tmp_path):
    root, (b0, r0), _ = severities
    _run(tiny_model_dir, b0, r0, tmp_path / "a", "--negatives", str(K))
    _run(tiny_model_dir, b0, r0, tmp_path / "same", "--negatives", str(K), "--reuse", str(tmp_path / "a"))
    assert load(tmp_path / "same" / "golden" / "id_test.npz").meta["reused_rows"] == N
    # Another pair seed is another plan: no row of the earlier job stands for this one.
    r = CliRunner().invoke(main, ["logprobs", "--estimator", str(tiny_model_dir), "--bench-file", str(b0),
                                  "--rpm-responses", f"tiny/sft={r0}", "--out", str(tmp_path / "other"), "--quiet",
                                  "--negatives", str(K), "--seed", str(SEED + 1), "--reuse", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    assert load(tmp_path / "other" / "golden" / "id_test.npz").meta["reused_rows"] == 0
    shutil.rmtree(tmp_path / "a" / "tiny")
    r = CliRunner().invoke(main, ["logprobs", "--estimator", str(tiny_model_dir), "--bench-file", str(b0),
                                  "--rpm-responses", f"tiny/sft={r0}", "--out", str(tmp_path / "x"),
                                  "--reuse", str(tmp_path / "a")])
    assert r.exit_code != 0 and "tiny/sft/id_test.npz" in r.output
    r = CliRunner().invoke(main, ["logprobs", "--estimator", str(tiny_model_dir), "--bench-file", str(b0),
                                  "--out", str(tmp_path / "y.npz"), "--reuse", str(tmp_path / "same")])
    assert r.exit_code != 0 and "--reuse needs --rpm-responses" in r.output


def test_row_keys_follow_the_weights_not_the_directory_they_sit_in(tiny_model_dir, tmp_path):
    # A results tree copied elsewhere (a resumed or relocated run) keeps its keys; other weights do not.
    from rpm.metrics.row_reuse import estimator_identity
    copy = tmp_path / "elsewhere" / tiny_model_dir.name
    shutil.copytree(tiny_model_dir, copy)
    assert estimator_identity(copy) == estimator_identity(tiny_model_dir)
    weights = sorted(copy.glob("*.safetensors"))[0]
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 1
    weights.write_bytes(bytes(raw))
    assert estimator_identity(copy) != estimator_identity(tiny_model_dir)


def test_a_subset_repeating_an_earlier_subsets_texts_is_copied_within_the_job(tiny_model_dir, tmp_path):
    # Severity 0 of the sweep: the OOD subsets share their bases, so they hold the same texts under other IDs.
    bench = tmp_path / "bench"
    synth(bench, SynthConfig(n_train=2, n_per_subset=N, seed=5, severity={"user": 0, "character": 0, "dialogue": 0}))
    resp = tmp_path / "responses"
    resp.mkdir()
    files = [bench / "user_de.jsonl", bench / "char_literature.jsonl"]
    for f in files:
        write_jsonl(resp / f.name, [{"sample_ID": s.sample_ID, "response": f"answer {k}"}
                                    for k, s in enumerate(read_jsonl(f))])
    both = ["--bench-file", str(files[0]), "--bench-file", str(files[1])]
    r = CliRunner().invoke(main, ["logprobs", "--estimator", str(tiny_model_dir), *both, "--rpm-responses",
                                  f"tiny/sft={resp}", "--out", str(tmp_path / "job"), "--quiet", "--negatives",
                                  str(K), "--seed", str(SEED)])
    assert r.exit_code == 0, r.output
    _run(tiny_model_dir, files[1], resp, tmp_path / "alone", "--negatives", str(K))
    first, second = (load(tmp_path / "job" / "tiny/sft" / f"{f.stem}.npz") for f in files)
    alone = load(tmp_path / "alone" / "tiny/sft" / "char_literature.npz")
    assert first.meta["reused_rows"] == 0 and second.meta["reused_rows"] == N, r.output
    assert second.meta["reused_from"][0].endswith("golden/user_de.npz")
    assert second.sample_ids == alone.sample_ids != first.sample_ids
    for side in ("golden", "model"):
        a, b = getattr(second, side), getattr(alone, side)
        assert (np.isnan(a.lp) == np.isnan(b.lp)).all()
        np.testing.assert_allclose(np.nan_to_num(a.lp), np.nan_to_num(b.lp), atol=1e-3)
        np.testing.assert_allclose(a.ent, b.ent, atol=1e-3)

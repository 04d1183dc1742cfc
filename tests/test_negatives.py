"""K sampled negatives per prompt row: only the planned pairs are scored, with the numbers of all pairs; MI
and its bootstrap use the scored pairs only; the positive control's planted pairs are always scored."""

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_jsonl

from rpm.analysis.control import control_curves, planted_columns
from rpm.bench.load import read_jsonl
from rpm.bench.synth import SynthConfig, synth
from rpm.cli import main
from rpm.core.errors import RpmInputError
from rpm.metrics import mi as M
from rpm.metrics.matrices import LogprobMatrices, MatrixFileError, Side, load, save
from rpm.metrics.pairs import control_cycle, negative_plan, plan_from_mask
from rpm.runtime.scorer import ScoringError, score_matrix_sets


def _prompts(n):
    return [[{"role": "user", "content": f"persona {k}: " + "likes lakes. " * (1 + k)}] for k in range(n)]


def _conts(n):
    return [f"Reply {k}: " + "calm water, " * (k % 3) + "bye." for k in range(n)]


@pytest.mark.parametrize("n,k", [(8, 1), (8, 3), (30, 5)])
def test_plan_has_the_diagonal_the_control_successor_and_k_distinct_negatives(n, k):
    plan = negative_plan(n, k, seed=3, subset="user_de")
    successor, _ = control_cycle(n, 3, "user_de")
    for i, row in enumerate(plan):
        assert row[0] == i and row[1] == successor[i] and len(row) == k + 1 == len(set(row))
        assert all(0 <= j < n for j in row)
    assert plan == negative_plan(n, k, seed=3, subset="user_de")
    assert plan != negative_plan(n, k, seed=4, subset="user_de") or k == n - 1
    assert plan_from_mask(_mask(plan, n)) == [[r[0], *sorted(r[1:])] for r in plan]
    # The planted control's response j answers with golden succ(j): its positive pair is always scored.
    for f in (0.25, 1.0):
        cols = planted_columns(n, f, 3, "user_de")
        assert all(cols[i] in plan[i] for i in range(n))
    assert negative_plan(n, n - 1, 3, "x") == [list(range(n))] * n   # K >= N - 1: every pair


def test_negatives_are_uniform_over_the_other_samples():
    n, k = 10, 3
    counts = np.zeros((n, n))
    for seed in range(400):
        for i, row in enumerate(negative_plan(n, k, seed, "s")):
            counts[i, row[1:]] += 1
    assert (np.diag(counts) == 0).all()
    off = counts[~np.eye(n, dtype=bool)] / (400 * k / (n - 1))
    assert np.abs(off - 1).max() < 0.35     # each other sample drawn at its 1/(n-1) share, within noise


def _mask(plan, n):
    m = np.zeros((n, n), dtype=bool)
    for i, row in enumerate(plan):
        m[i, row] = True
    return m


def test_scored_pairs_equal_the_all_pairs_matrix_and_the_rest_are_nan(tiny):
    model, tok = tiny
    n = 6
    plan = negative_plan(n, 2, 0, "id_test")
    full = score_matrix_sets(model, tok, _prompts(n), {"y": _conts(n)}, batch_size=2, entropy=True)["y"]
    part = score_matrix_sets(model, tok, _prompts(n), {"y": _conts(n)}, batch_size=2, entropy=True,
                             column_plan=lambda keep: negative_plan(len(keep), 2, 0, "id_test"))["y"]
    mask = _mask(plan, n)
    assert np.isnan(part.lp[~mask]).all() and np.isfinite(part.lp[mask]).all()
    assert np.allclose(part.lp[mask], full.lp[mask], atol=1e-3, rtol=0)
    assert np.allclose(part.entropy, full.entropy, atol=1e-3) and (part.ntok == full.ntok).all()
    with pytest.raises(ScoringError, match="own first"):
        score_matrix_sets(model, tok, _prompts(n), {"y": _conts(n)}, column_plan=lambda keep: [[1, 0]] * n)


def test_mi_and_its_bootstrap_use_the_scored_pairs_only():
    rng = np.random.default_rng(0)
    n = 9
    s = rng.normal(size=(n, n))
    mask = _mask(negative_plan(n, 3, 1, "s"), n)
    part = np.where(mask, s, np.nan)
    off = mask & ~np.eye(n, dtype=bool)
    assert M.club_mi(part, normalization="sum") == pytest.approx(np.diag(s).mean() - s[off].mean())
    cfg = M.MIConfig(normalization="sum", n_boot=6, seed=0)
    reps = M._replicates([part], cfg, np.random.default_rng(11))[:, 0]
    idx = np.random.default_rng(11).integers(0, n, size=(6, n))
    for b in range(6):
        r = idx[b]
        neg = [s[r[a], r[c]] for a in range(n) for c in range(n) if r[a] != r[c] and mask[r[a], r[c]]]
        want = s[r, r].mean() - np.mean(neg) if neg else np.nan
        assert reps[b] == pytest.approx(want, nan_ok=True)
    with pytest.raises(RpmInputError, match="scored K sampled negatives"):
        M.club_mi(part, normalization="sum", pairs="sampled")


def test_files_with_unscored_pairs_must_say_so(tmp_path):
    n = 4
    lp = np.where(_mask(negative_plan(n, 1, 0, "s"), n), -3.0, np.nan)
    side = Side(lp, np.full((n, n), 2), np.ones(n))
    save(tmp_path / "ok.npz", LogprobMatrices(list("abcd"), side, None, {"negatives": 1}))
    assert np.isnan(load(tmp_path / "ok.npz").golden.lp).sum() == n * n - 2 * n
    save(tmp_path / "bad.npz", LogprobMatrices(list("abcd"), side, None, {}))
    with pytest.raises(MatrixFileError, match="names no sampled negatives"):
        load(tmp_path / "bad.npz")
    diag = lp.copy()
    diag[0, 0] = np.nan
    save(tmp_path / "diag.npz", LogprobMatrices(list("abcd"), Side(diag, side.ntok), None, {"negatives": 1}))
    with pytest.raises(MatrixFileError, match="unscored diagonal"):
        load(tmp_path / "diag.npz")


def test_the_control_runs_on_sampled_negative_matrices():
    """The planted columns of a K-negatives golden matrix have their diagonal scored: every R-EMI is defined."""
    rng = np.random.default_rng(2)
    n = 12
    lp = rng.normal(-4, 0.3, size=(n, n)) + 3 * np.eye(n)
    lp = np.where(_mask(negative_plan(n, 3, 0, "user_de"), n), lp, np.nan)
    m = LogprobMatrices([f"s{i}" for i in range(n)], Side(lp, np.ones((n, n), dtype=int)), None, {"negatives": 3})
    rows, slopes = control_curves({"corl": {"user_de": m}}, cfg=M.MIConfig(n_boot=50, seed=0))
    values = [r["r_emi"] for r in rows if r["subset"] == "user_de"]
    assert np.isfinite(values).all() and values[0] == 0 and values[-1] < -1
    assert slopes[0]["slope"] < 0


def test_rpm_logprobs_negatives_cli_and_golden_reuse(tmp_path, tiny_model_dir):
    synth(tmp_path / "bench", SynthConfig(n_train=4, n_per_subset=6, seed=1))
    bench = tmp_path / "bench" / "id_test.jsonl"
    resp = write_jsonl(tmp_path / "resp.jsonl", [{"sample_ID": s.sample_ID, "response": s.agent_golden_response[::-1]}
                                                 for s in read_jsonl(bench)])
    base = ["logprobs", "--estimator", str(tiny_model_dir), "--bench-file", str(bench), "--quiet", "--batch-size", "2"]
    run = CliRunner().invoke
    r = run(main, [*base, "--negatives", "2", "--seed", "5", "--out", str(tmp_path / "g.npz")])
    assert r.exit_code == 0, r.output
    r = run(main, [*base, "--negatives", "2", "--seed", "5", "--responses", str(resp), "--golden-from",
                   str(tmp_path / "g.npz"), "--out", str(tmp_path / "both.npz")])
    assert r.exit_code == 0, r.output
    g, both = load(tmp_path / "g.npz"), load(tmp_path / "both.npz")
    assert g.meta["negatives"] == 2 and np.isfinite(g.golden.lp).sum() == 6 * 3
    assert (np.isfinite(both.model.lp) == np.isfinite(g.golden.lp)).all()
    r = run(main, [*base, "--responses", str(resp), "--golden-from", str(tmp_path / "g.npz"),
                   "--out", str(tmp_path / "x.npz")])
    assert r.exit_code != 0 and "its negatives is 2" in r.output
    r = run(main, ["remi", str(tmp_path / "both.npz"), "--out", str(tmp_path / "remi.csv"), "--n-boot", "20"])
    assert r.exit_code == 0, r.output

"""The positive control (rpm/analysis/control.py): a planted RPM of known R-EMI, from golden matrices alone."""

import csv

import numpy as np
import pytest
from click.testing import CliRunner

from rpm.analysis.control import control_curves, planted_columns
from rpm.cli import main
from rpm.metrics.matrices import LogprobMatrices, Side, save
from rpm.metrics.mi import MIConfig


def _golden(n: int, signal: float, seed: int, subset: str) -> LogprobMatrices:
    """A golden matrix whose diagonal is `signal` nats/token above the rest (0: no information)."""
    rng = np.random.default_rng(seed)
    ntok = np.tile(rng.integers(5, 20, size=n), (n, 1))
    lp = (-2.0 + 0.3 * rng.normal(size=(n, n)) + signal * np.eye(n)) * ntok
    return LogprobMatrices([f"{subset}-{k}" for k in range(n)], Side(lp, ntok, None), None,
                           {"subset": subset, "estimator": "e", "reasoning": True}, None)


def test_planted_columns_are_nested_and_never_a_samples_own_reply():
    n = 16
    prev = set()
    for f in (0.0, 0.25, 0.5, 0.75, 1.0):
        c = planted_columns(n, f, seed=0, subset="user_de")
        planted = {j for j in range(n) if c[j] != j}
        assert len(planted) == round(f * n) and prev <= planted
        assert sorted(c[list(planted)]) == sorted(set(c[list(planted)]))  # each other reply used at most once
        prev = planted
    assert (planted_columns(n, 1.0, 0, "user_de") != np.arange(n)).all()
    assert (planted_columns(n, 1.0, 1, "user_de") != planted_columns(n, 1.0, 0, "user_de")).any()   # seeded


def test_an_estimator_with_signal_sees_r_emi_fall_and_one_without_does_not():
    cfg = MIConfig(n_boot=300, seed=0)
    golden = {"sharp": {s: _golden(16, 1.0, k, s) for k, s in enumerate(("id_test", "user_de", "dial_turn"))},
              "blind": {s: _golden(16, 0.0, k, s) for k, s in enumerate(("id_test", "user_de", "dial_turn"))}}
    rows, slopes = control_curves(golden, (0.0, 0.5, 1.0), cfg)
    at = {(r["estimator"], r["subset"], r["fraction"]): r for r in rows}
    for est in golden:
        assert at[(est, "user_de", 0.0)]["r_emi"] == pytest.approx(0.0, abs=1e-12)   # the golden itself
        assert at[(est, "user_de", 0.0)]["planted"] == 0 and at[(est, "user_de", 1.0)]["planted"] == 16
    sharp = [at[("sharp", "mean", f)]["r_emi"] for f in (0.0, 0.5, 1.0)]
    assert sharp[0] > sharp[1] > sharp[2] and sharp[2] == pytest.approx(-1.0, abs=0.25)
    by = {s["estimator"]: s for s in slopes}
    assert by["sharp"]["shown"] and by["sharp"]["ci_high"] < 0 and by["sharp"]["slope"] == pytest.approx(-1, abs=0.25)
    assert not by["blind"]["shown"]
    assert by["sharp"]["undefined_replicates"] == 0


def test_a_blind_estimators_slope_interval_covers_zero_at_its_nominal_rate():
    # One blind draw's 95% CI excludes 0 one time in twenty; over 40 draws it may do so a few times, not often.
    outside = 0
    for draw in range(40):
        subsets = ("id_test", "user_de", "dial_turn")
        blind = {"blind": {s: _golden(16, 0.0, 3 * draw + k, s) for k, s in enumerate(subsets)}}
        _, (slope,) = control_curves(blind, (0.0, 0.5, 1.0), MIConfig(n_boot=200, seed=draw))
        outside += not slope["ci_low"] < 0 < slope["ci_high"]
    assert outside <= 6, outside     # P(>= 7 of 40 | 5%) < 0.01


def test_control_cli_writes_tables_and_refuses_a_bad_spec(tmp_path):
    folder = tmp_path / "golden"
    for k, s in enumerate(("id_test", "user_de")):
        save(folder / f"{s}.npz", _golden(6, 1.0, k, s))
    out = tmp_path / "control.csv"
    r = CliRunner().invoke(main, ["analyze", "control", "--golden", f"corl={folder}", "--out", str(out), "--slopes",
                                  str(tmp_path / "slope.csv"), "--figure", str(tmp_path / "control.png"),
                                  "--n-boot", "50"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 2 * 5 + 5 and (tmp_path / "control.png").stat().st_size > 0
    bad = CliRunner().invoke(main, ["analyze", "control", "--golden", str(folder), "--out", str(out), "--slopes",
                                    str(tmp_path / "s.csv"), "--figure", str(tmp_path / "c.png")])
    assert bad.exit_code != 0 and "expected ESTIMATOR=DIR" in bad.output


def test_summary_states_each_claim_with_its_uncertainty_and_verdict(tmp_path):
    from rpm.analysis.control import SLOPE_COLUMNS
    from rpm.analysis.summary import SUMMARY_COLUMNS, summary_rows
    from rpm.analysis.sweep import SPEARMAN_COLUMNS
    from rpm.judge.validity import VALIDITY_COLUMNS
    from rpm.metrics.tables import BOUND_COLUMNS, write_csv

    write_csv(tmp_path / "slope.csv", [
        {"estimator": "corl", "subsets": 12, "n_per_subset": "64", "fractions": "0,1", "slope": -0.8, "ci_low": -1.0,
         "ci_high": -0.6, "n_boot": 100, "undefined_replicates": 0, "shown": True},
        {"estimator": "wo_reasoning", "subsets": 12, "n_per_subset": "64", "fractions": "0,1", "slope": -0.1,
         "ci_low": -0.3, "ci_high": 0.1, "n_boot": 100, "undefined_replicates": 3, "shown": False}], SLOPE_COLUMNS)
    write_csv(tmp_path / "validity.csv", [{"judge": "smollm2", "n_samples": 48, "accuracy": 0.52, "ci_low": 0.47,
                                           "ci_high": 0.57, "chance": 0.5, "verdict": "not shown"}], VALIDITY_COLUMNS)
    write_csv(tmp_path / "spearman.csv", [
        {"shift": "user", "quantity": "d_component", "n_severities": 5, "n_points": "5", "spearman_rho": 1.0,
         "spearman_p": 1 / 60},
        {"shift": "dialogue", "quantity": "r_emid", "n_severities": 5, "n_points": "5", "spearman_rho": 0.3,
         "spearman_p": 0.68}], SPEARMAN_COLUMNS)
    write_csv(tmp_path / "bound.csv", [
        {"rpm": "b/sft", "estimator": "corl", "target": "user_de", "shift": "user", "size": "all", "n_target": 64,
         "d_user": 0.3, "d_user_null_mean": 0.1, "d_user_null_p": 0.005, "tightness": 25.0, "bound": 30.0,
         "bound_null_corrected": 9.0}], BOUND_COLUMNS)
    rows = summary_rows(control_slope=tmp_path / "slope.csv", validity=tmp_path / "validity.csv",
                        spearman=tmp_path / "spearman.csv", top_bound=tmp_path / "bound.csv")
    assert all(set(r) == set(SUMMARY_COLUMNS) for r in rows)
    verdict = {r["claim"].split(":")[0] + r["section"]: r["verdict"] for r in rows}
    assert verdict["user shiftsweep"] == "shown" and verdict["dialogue shiftsweep"] == "not shown"
    assert verdict["corlcontrol"] == "shown" and verdict["wo_reasoningcontrol"] == "not shown"
    assert verdict["judge smollm2judge"] == "not shown"
    div = [r for r in rows if r["section"] == "divergence"]
    assert [r["verdict"] for r in div] == ["shown", "reported (no test)"]   # beyond its null; tightness 25

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
    assert not by["blind"]["shown"] and by["blind"]["ci_low"] < 0 < by["blind"]["ci_high"]
    assert by["sharp"]["undefined_replicates"] == 0


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

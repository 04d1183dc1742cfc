"""The sweep's power calculation (rpm/analysis/power.py): the formula against simulation, and the verb."""

import numpy as np
import pytest
from click.testing import CliRunner

from rpm.analysis.power import per_sample_sd, power_at, samples_needed, simulated_power
from rpm.cli import main
from rpm.core.errors import RpmInputError
from rpm.metrics.matrices import LogprobMatrices, Side, save


@pytest.mark.parametrize("sigma,delta,severities", [(0.5, 0.25, [0, 0.5, 1]), (0.3, 0.1, [0, 0.25, 0.5, 0.75, 1]),
                                                    (1.0, 0.5, [0, 1])])
def test_the_needed_n_has_the_power_by_simulation_and_one_less_sample_does_not(sigma, delta, severities):
    n = samples_needed(sigma, delta, severities)
    assert power_at(n, sigma, delta, severities) >= 0.8 > power_at(n - 1, sigma, delta, severities) - 1e-3
    assert simulated_power(n, sigma, delta, severities, trials=4000) == pytest.approx(0.8, abs=0.03)
    assert simulated_power(max(2, n // 4), sigma, delta, severities, trials=4000) < 0.5


def test_the_issue_figures_need_64_samples_at_three_severities():
    """sigma 0.5 nats/token (the measured per-sample SD), a slope of 0.25 over severity 0 -> 1."""
    assert samples_needed(0.5, 0.25, [0, 0.5, 1]) == 63
    with pytest.raises(RpmInputError, match="two distinct severities"):
        samples_needed(0.5, 0.25, [1, 1])


def test_per_sample_sd_and_the_verb(tmp_path):
    rng = np.random.default_rng(0)
    n = 30
    golden = rng.normal(-3, 0.2, size=(n, n)) + np.eye(n)
    model = golden + np.diag(rng.normal(0, 0.5, size=n))     # only the positives move: SD 0.5 per sample
    sd = per_sample_sd(model, golden)
    assert sd == pytest.approx(0.5, abs=0.15)
    ntok = np.ones((n, n), dtype=int)
    save(tmp_path / "m.npz", LogprobMatrices([f"s{i}" for i in range(n)], Side(golden, ntok), Side(model, ntok), {}))
    r = CliRunner().invoke(main, ["analyze", "power", "--logprobs", str(tmp_path / "m.npz"), "--delta", "0.25"])
    assert r.exit_code == 0, r.output
    assert f"sigma {sd:.3f}" in r.output and "N = " in r.output and "(simulated)" in r.output
    r = CliRunner().invoke(main, ["analyze", "power", "--delta", "0.25"])
    assert r.exit_code != 0 and "--sigma or --logprobs" in r.output

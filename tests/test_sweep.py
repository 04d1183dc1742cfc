"""The controlled-shift validation: collation of per-severity bound tables and Spearman per shift type."""

import csv
import math

import pytest

from rpm.analysis.common import AnalysisInputError
from rpm.analysis.sweep import parse_runs, spearman_rows, sweep_rows, write_sweep
from rpm.metrics.tables import BOUND_COLUMNS, write_csv

TARGETS = {"user_de": "user", "char_literature": "character", "dial_turn": "dialogue"}


def bound_csv(path, severity, *, falling="", size="all"):
    rows = []
    for target, shift in TARGETS.items():
        grow = -severity if shift == falling else severity
        rows.append({"rpm": "tiny/sft", "estimator": "corl", "source": "id_test", "target": target, "shift": shift,
                     "size": size, "seed": 0, "n_source": 4, "n_target": 4,
                     "d_user": 0.1 + grow * (shift == "user"), "d_character": 0.1 + grow * (shift == "character"),
                     "d_dialogue": 0.1 + grow * (shift == "dialogue"), "d_joint": 0.2 + grow, "h_hat": 1.0,
                     "delta_p": 0.01, "delta_q": 0.01, "delta": 0.02, "sum_sqrt_d": 1.0, "shift_term": 1.0,
                     "output_term": 3.0, "bound": 4.0 + grow, "bound_scale_adjusted": 1.0, "r_emid": 0.01 * grow,
                     "r_emid_sub": 0.0, "normalization": "mean", "embedder": "minilm"})
    write_csv(path, rows, BOUND_COLUMNS)
    return path


def test_quantities_rising_with_severity_give_rho_one_and_a_falling_one_minus_one(tmp_path):
    runs = {s: bound_csv(tmp_path / f"b{s}.csv", s, falling="character") for s in (0.0, 0.25, 0.5, 1.0)}
    rows = sweep_rows(runs)
    assert len(rows) == 12 and {r["shift"] for r in rows} == set(TARGETS.values())
    # the component divergence is the one the shift type changes
    assert [r["d_component"] for r in rows if r["shift"] == "user"] == pytest.approx([0.1, 0.35, 0.6, 1.1])
    rho = {(r["shift"], r["quantity"]): r["spearman_rho"] for r in spearman_rows(rows)}
    assert rho[("user", "bound")] == pytest.approx(1.0) and rho[("dialogue", "r_emid")] == pytest.approx(1.0)
    assert rho[("character", "d_component")] == pytest.approx(-1.0)


def test_write_sweep_writes_tables_and_figures(tmp_path):
    runs = parse_runs([f"{s}={bound_csv(tmp_path / f'b{s}.csv', s)}" for s in (0, 0.5, 1)])
    write_sweep(runs, tmp_path / "out")
    with open(tmp_path / "out/sweep_spearman.csv") as f:
        spearman = list(csv.DictReader(f))
    assert len(spearman) == 3 * 4 and all(float(r["spearman_rho"]) == pytest.approx(1.0) for r in spearman)
    assert (tmp_path / "out/sweep.png").stat().st_size > 1000 and (tmp_path / "out/sweep.pdf").is_file()


@pytest.mark.parametrize("specs,message", [
    (["0.5"], "expected SEVERITY=BOUND_CSV"),
    (["1.5=x.csv"], "severity in [0, 1]"),
    (["0.5=a.csv", "0.50=b.csv"], "given twice"),
])
def test_bad_run_specs(specs, message):
    with pytest.raises(AnalysisInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_runs(specs)


def test_a_table_without_all_samples_rows_is_refused(tmp_path):
    runs = {0.0: bound_csv(tmp_path / "a.csv", 0.0, size="2"), 1.0: bound_csv(tmp_path / "b.csv", 1.0)}
    with pytest.raises(AnalysisInputError, match="no rows with size 'all'"):
        sweep_rows(runs)


def _replicates(path, severity, noise, *, flat="", undefined=0):
    """Replicates around bound_csv's values: every quantity rises with severity, except `flat`'s shift."""
    import numpy as np

    from rpm.metrics.bound import REPLICATE_QUANTITIES
    from rpm.metrics.tables import save_replicates

    rng = np.random.default_rng(int(severity * 100))
    reps = {}
    for target, shift in TARGETS.items():
        grow = 0.0 if shift == flat else severity
        base = {"d_user": 0.1 + grow * (shift == "user"), "d_character": 0.1 + grow * (shift == "character"),
                "d_dialogue": 0.1 + grow * (shift == "dialogue"), "d_joint": 0.2 + grow, "bound": 4.0 + grow,
                "r_emid": 0.01 * grow}
        reps[("tiny/sft", target)] = {q: base[q] + noise * rng.normal(size=200) for q in REPLICATE_QUANTITIES}
        reps[("tiny/sft", target)]["r_emid"][:undefined] = np.nan
    save_replicates(path, reps)
    return path


def test_slopes_come_with_paired_bootstrap_cis_and_undefined_replicates_are_counted(tmp_path):
    sev = (0.0, 0.5, 1.0)
    runs = parse_runs([f"{s}={bound_csv(tmp_path / f'b{s}.csv', s)}" for s in sev])
    reps = parse_runs([f"{s}={_replicates(tmp_path / f'r{s}.npz', s, 0.05, flat='character', undefined=3)}"
                       for s in sev])
    write_sweep(runs, tmp_path / "out", reps)
    with open(tmp_path / "out/sweep_slopes.csv") as f:
        slopes = {(r["shift"], r["quantity"]): r for r in csv.DictReader(f)}
    assert len(slopes) == 3 * 4
    user = slopes[("user", "d_component")]
    assert user["verdict"] == "rose" and float(user["slope"]) == pytest.approx(1.0)
    assert float(user["ci_low"]) > 0.8 and float(user["ci_high"]) < 1.2
    # The character shift's replicates do not move: its CI is around 0 even though the point values rise.
    assert slopes[("character", "d_component")]["verdict"] == "not shown"
    assert slopes[("user", "r_emid")]["undefined_replicates"] == "3" and slopes[("user", "bound")][
        "undefined_replicates"] == "0"
    with open(tmp_path / "out/sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(float(r["d_component_ci_low"]) < float(r["d_component"]) + 0.2 for r in rows)
    # Every number is written as a plain float (numpy 2's repr of np.float64 is "np.float64(x)").
    assert all(math.isfinite(float(r[q])) for r in rows for q in ("d_component", "d_joint", "bound", "r_emid"))
    assert all(math.isfinite(float(r["replicate_mean"])) for r in slopes.values())
    # The summary says when a slope lies outside its percentile interval (the character shift here), and only then.
    from rpm.analysis.summary import slope_claims
    flagged = {c["claim"].split(" (")[0] for c in slope_claims(tmp_path / "out/sweep_slopes.csv")
               if "outside its percentile CI" in c["claim"]}
    assert "character shift" in flagged and "user shift" not in flagged
    with pytest.raises(AnalysisInputError, match="replicates for severities"):
        write_sweep(runs, tmp_path / "x", {0.0: reps[0.0]})


def test_bound_replicates_draw_the_same_samples_for_a_subset_of_the_same_name_and_size():
    from test_metrics import _subset_data

    from rpm.metrics.bound import bound_replicates
    from rpm.metrics.mi import MIConfig

    p, q = _subset_data("id_test", 12, 0), _subset_data("user_de", 10, 1)
    a = bound_replicates(p, q, MIConfig(seed=0), 50)
    b = bound_replicates(p, q, MIConfig(seed=0), 50)
    assert all((a[k] == b[k])[~(a[k] != a[k])].all() for k in a)            # seeded: identical
    assert (a["d_user"] > a["d_character"]).mean() >= 0.8                    # the shifted component stays shifted
    c = bound_replicates(p, q, MIConfig(seed=1), 50)
    assert (a["d_user"] != c["d_user"]).any()

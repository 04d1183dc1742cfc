"""The analyses (rpm/analysis/) on small hand-made tables: values checked against scipy and by hand."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from rpm.analysis import bench_stats, bound_tightness, common, cost, judge_agreement, methods, pilot, runtime
from rpm.analysis.common import AnalysisInputError
from rpm.analysis.correlation import CORRELATION_COLUMNS, correlate, merge_correlation_files
from rpm.core.names import OOD_SUBSETS, SUBSET_NAMES
from rpm.metrics.tables import BOUND_COLUMNS, DIVERGENCE_COLUMNS, REMI_COLUMNS, write_csv

FIXTURES = Path(__file__).parent / "fixtures"
X = np.array([0.3, 1.1, 2.0, 2.2, 3.9, 4.1, 5.5, 6.0, 7.7, 9.0])
Y = np.array([1.0, 0.7, 2.5, 1.9, 3.0, 5.2, 4.4, 6.1, 6.0, 9.9])


# ------------------------------------------------------------------ builders of small input tables


def remi_csv(path: Path, values: dict[tuple[str, str], float], metric: str = "R-EMI", estimator: str = "corl") -> Path:
    """remi.csv rows: the metric per (rpm, subset) and its difference (metric + "D") = ID - OOD."""
    rows = []
    for (rpm, sub), v in values.items():
        rows.append({"estimator": estimator, "rpm": rpm, "metric": metric, "quantity": metric, "subset": sub,
                     "shift": common.shift_name(sub), "value": v, "n": 4})
        if sub != "id_test" and (rpm, "id_test") in values:
            rows.append({"estimator": estimator, "rpm": rpm, "metric": metric, "quantity": metric + "D",
                         "subset": sub, "reference": "id_test", "shift": common.shift_name(sub),
                         "value": values[(rpm, "id_test")] - v, "n": 4})
    write_csv(path, rows, REMI_COLUMNS)
    return path


def scores_csv(path: Path, winrates: dict[tuple[str, str], float], judge: str = "ensemble") -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(common.SCORES_COLUMNS)
        for (rpm, sub), v in winrates.items():
            w.writerow([rpm, sub, common.shift_name(sub), judge, "" if math.isnan(v) else v, 3.0, 4, 8, 0])
    return path


def bound_csv(path: Path, rows: list[dict]) -> Path:
    write_csv(path, [{"estimator": "corl", "source": "id_test", "normalization": "mean", "embedder": "minilm", **r}
                     for r in rows], BOUND_COLUMNS)
    return path


# ------------------------------------------------------------------ correlation


def test_correlate_matches_scipy_and_its_interval_holds_the_estimate():
    c = correlate(X, Y, n_boot=2000, seed=3)
    p, s = stats.pearsonr(X, Y), stats.spearmanr(X, Y)
    assert c.n == 10
    assert c.pearson_r == pytest.approx(p.statistic, abs=1e-12) and c.pearson_p == pytest.approx(p.pvalue, rel=1e-9)
    assert c.spearman_rho == pytest.approx(s.statistic, abs=1e-12)
    assert c.spearman_p == pytest.approx(s.pvalue, rel=1e-9)
    assert c.pearson_ci_low < c.pearson_r < c.pearson_ci_high <= 1.0
    assert c.spearman_ci_low < c.spearman_rho <= c.spearman_ci_high <= 1.0
    assert correlate(X, Y, n_boot=2000, seed=3) == c  # seeded
    assert correlate(X, Y, n_boot=2000, seed=4).pearson_ci_low != c.pearson_ci_low
    # A bootstrap of a reversed relation is a mirror image: the interval flips sign with the estimate.
    m = correlate(X, -Y, n_boot=2000, seed=3)
    assert m.pearson_r == pytest.approx(-c.pearson_r) and m.pearson_ci_high == pytest.approx(-c.pearson_ci_low)


def test_spearman_p_is_exact_for_small_n():
    # rho = 1 over five severities: 2 of the 120 orderings are as extreme (rho = +1 and -1).
    c = correlate([0, 0.25, 0.5, 0.75, 1.0], [0.1, 0.2, 0.3, 0.4, 0.5], n_boot=0)
    assert c.spearman_rho == pytest.approx(1.0) and c.spearman_p == pytest.approx(2 / 120)
    # Brute force over every ordering, ties included (mid-ranks), agrees.
    from itertools import permutations

    x, y = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2.0, 1.0, 3.0, 3.0, 6.0, 5.0]
    obs = abs(stats.spearmanr(x, y).statistic)
    brute = np.mean([abs(stats.spearmanr(x, p).statistic) >= obs - 1e-12 for p in permutations(y)])
    assert correlate(x, y, n_boot=0).spearman_p == pytest.approx(brute)
    # Above the exact limit (X has 10 points), scipy's approximation, as in the test above.


def test_correlate_degenerate_and_nan_inputs():
    two = correlate([1.0, 2.0], [2.0, 1.0])
    assert two.n == 2 and math.isnan(two.pearson_r) and math.isnan(two.spearman_p)
    assert math.isnan(correlate([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]).pearson_r)
    with pytest.raises(ValueError, match="NaN"):
        correlate([1.0, math.nan, 3.0], [1.0, 2.0, 3.0])


# ------------------------------------------------------------------ Figure 4


def _fig4_inputs(tmp_path: Path):
    rpms = ["b/sft", "b/rl"]
    rng = np.random.default_rng(0)
    remi = {(r, s): float(rng.normal()) for r in rpms for s in SUBSET_NAMES}
    emi = {(r, s): float(rng.normal()) for r in rpms for s in SUBSET_NAMES}
    wr = {(r, s): float(rng.uniform()) for r in rpms for s in SUBSET_NAMES}
    wr[("b/rl", "dial_word")] = math.nan  # a NaN verdict: excluded and counted, never dropped silently
    del wr[("b/sft", "char_film")]  # a point the judge did not score
    return remi, emi, wr, (remi_csv(tmp_path / "remi.csv", remi), remi_csv(tmp_path / "emi.csv", emi, "EMI", "wo"),
                           scores_csv(tmp_path / "scores.csv", wr))


def test_fig4_points_values_and_sign_of_the_winrate_difference(tmp_path):
    remi, emi, wr, files = _fig4_inputs(tmp_path)
    pts = judge_agreement.fig4_points(*files)
    d = {(r["rpm"], r["subset"]): r for r in pts["fig4d"].rows}
    row = d[("b/rl", "user_de")]
    # R-EMID = R-EMI(ID) - R-EMI(OOD); WinRate difference = WinRate(ID) - WinRate(OOD): the same convention.
    assert row["x"] == pytest.approx(remi[("b/rl", "id_test")] - remi[("b/rl", "user_de")])
    assert row["y"] == pytest.approx(wr[("b/rl", "id_test")] - wr[("b/rl", "user_de")])
    assert not d[("b/rl", "dial_word")]["included"] and "NaN" in d[("b/rl", "dial_word")]["note"]
    assert d[("b/sft", "char_film")]["note"] == "no WinRate difference"
    assert pts["fig4d"].n_excluded == 2 and len(pts["fig4d"].rows) == 22
    a = pts["fig4a"]
    assert len(a.rows) == 24 and a.n_excluded == 2
    point_rows, corr_rows, fig = judge_agreement.fig4(pts, n_boot=50, seed=0)
    keep = [k for k in emi if k in wr and not math.isnan(wr[k])]
    want = stats.pearsonr([emi[k] for k in keep], [wr[k] for k in keep]).statistic
    got = next(r for r in corr_rows if r["figure"] == "fig4a" and r["scope"] == "all")
    assert got["pearson_r"] == pytest.approx(want) and got["n"] == 22
    assert {r["figure"] for r in corr_rows} == {"fig4a", "fig4b", "fig4c", "fig4d"}
    assert {r["scope"] for r in corr_rows if r["figure"] == "fig4d"} == {"all", "user", "character", "dialogue"}
    assert sum(not r["included"] for r in point_rows) == 8


def test_fig4_cli_writes_csvs_and_both_figure_formats(tmp_path):
    from rpm.cli import main

    _, _, _, (remi, emi, scores) = _fig4_inputs(tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["analyze", "fig4", "--remi", str(remi), "--emi", str(emi), "--scores", str(scores),
                                    "--out", str(out / "fig4.csv"), "--correlations", str(out / "c.csv"),
                                    "--figure", str(out / "fig4.png"), "--figure", str(out / "fig4.pdf"),
                                    "--n-boot", "20"])
    assert res.exit_code == 0, res.output
    assert (out / "fig4.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "fig4.pdf").read_bytes()[:5] == b"%PDF-"
    rows = list(csv.DictReader(open(out / "fig4.csv")))
    assert len(rows) == 24 + 22 + 24 + 22 and "np.float64" not in (out / "fig4.csv").read_text()
    merged = merge_correlation_files([out / "c.csv"])
    assert list(merged[0]) == CORRELATION_COLUMNS and len(merged) == 4 * 4 + 2  # a and c also have scope "id"


# ------------------------------------------------------------------ Figure 2


def test_fig2_uses_the_sft_rpms_and_the_joint_divergence(tmp_path):
    div = [{"source": "id_test", "target": s, "shift": common.shift_name(s), "component": comp,
            "jsd": 0.1 * k + (0.5 if comp == "joint" else 0.0), "n_source": 4, "n_target": 4, "embedder": "m"}
           for k, s in enumerate(OOD_SUBSETS)
           for comp in ("user_persona", "agent_character", "dialogue_context", "joint")]
    write_csv(tmp_path / "div.csv", div, DIVERGENCE_COLUMNS)
    wr = {(r, s): 0.9 - 0.05 * k for r in ("a/sft", "a/rl") for k, s in enumerate(SUBSET_NAMES)}
    scores_csv(tmp_path / "scores.csv", wr)
    pts = pilot.pilot_points(tmp_path / "scores.csv", tmp_path / "div.csv")
    assert {r["rpm"] for r in pts.rows} == {"a/sft"} and len(pts.rows) == 11
    r = next(r for r in pts.rows if r["subset"] == "user_es")
    assert r["d_js"] == pytest.approx(0.6) and r["winrate"] == pytest.approx(0.8) and r["winrate_id"] == 0.9
    rows, corr, fig = pilot.fig2(pts, n_boot=20)
    overall = next(c for c in corr if c["scope"] == "all")
    assert overall["pearson_r"] == pytest.approx(-1.0) and overall["n"] == 11  # WinRate falls as D_JS grows
    with pytest.raises(AnalysisInputError, match="no RPM of method 'dpo'"):
        pilot.pilot_points(tmp_path / "scores.csv", tmp_path / "div.csv", method="dpo")


# ------------------------------------------------------------------ Figure 5, Table 13


def _bound_rows():
    rows = []
    for k, target in enumerate(["user_de", "user_es", "char_film", "char_gaming", "dial_turn", "dial_word"]):
        for rpm in ("b/sft", "b/rl"):
            r_emid = 0.01 * k + (0.002 if rpm == "b/rl" else 0.0)
            for size, seeds in (("2", (0, 1)), ("10", (0, 1)), ("all", ("",))):
                for seed in seeds:
                    noise = 0.0 if size == "all" else (seed - 0.5) * 0.4
                    rows.append({"rpm": rpm, "target": target, "shift": common.shift_name(target), "size": size,
                                 "seed": seed, "n_source": 4 if size == "all" else int(size),
                                 "n_target": 4 if size == "all" else int(size), "bound": 1 + 10 * r_emid + noise,
                                 "r_emid": r_emid})
    return rows


def test_fig5a_orders_sizes_and_averages_seeds(tmp_path):
    df = bound_tightness.read_bound(bound_csv(tmp_path / "bound.csv", _bound_rows()))
    rows, corr, fig = bound_tightness.fig5a(df, n_boot=30)
    assert [r["size"] for r in rows] == ["2", "10", "all"]
    assert [r["n_seeds"] for r in rows] == [2, 2, 1] and all(r["n_points"] == 12 for r in rows)
    # Seeds' noise (-0.2, +0.2) cancels in the mean: at every size the bound is 1 + 10 * R-EMID exactly.
    assert all(r["pearson_r"] == pytest.approx(1.0) for r in rows)
    assert rows[0]["mean_bound"] == pytest.approx(1 + 10 * rows[0]["mean_r_emid"])
    assert [c["scope"] for c in corr] == ["size=2", "size=10", "size=all"]


def test_fig5b_and_table13_at_one_size(tmp_path):
    rows = _bound_rows()
    for r in rows:  # break the perfect line for the character shift only
        if r["shift"] == "character" and r["rpm"] == "b/rl":
            r["bound"] = 0.0
    df = bound_tightness.read_bound(bound_csv(tmp_path / "bound.csv", rows))
    pts_rows, c, _ = bound_tightness.fig5b(df, "all", n_boot=10)
    assert len(pts_rows) == 12 and c.n == 12
    t13, corr, _ = bound_tightness.table13(df, "all", n_boot=10)
    by = {r["shift"]: r for r in t13}
    assert set(by) == {"user", "character", "dialogue"} and by["user"]["n"] == 4
    assert by["user"]["pearson_r"] == pytest.approx(1.0)
    sel = [r for r in rows if r["shift"] == "character" and r["size"] == "all"]
    assert by["character"]["pearson_r"] == pytest.approx(
        stats.pearsonr([r["bound"] for r in sel], [r["r_emid"] for r in sel]).statistic)
    assert all(r["figure"] == "table13" for r in corr)
    with pytest.raises(AnalysisInputError, match="no rows of size '100'"):
        bound_tightness.fig5b(df, "100")


def test_a_nan_bound_is_excluded_and_counted(tmp_path):
    rows = _bound_rows()
    rows[0]["bound"] = math.nan  # b/sft -> user_de, size 2, seed 0
    df = bound_tightness.read_bound(bound_csv(tmp_path / "bound.csv", rows))
    out, _, _ = bound_tightness.fig5a(df, n_boot=0)
    assert out[0]["n_excluded"] == 1 and out[0]["n_points"] == 11 and out[1]["n_excluded"] == 0


# ------------------------------------------------------------------ Table 20, Figures 6 and 7, Table 12


def test_table20_avg_is_the_row_mean_and_a_missing_cell_is_counted(tmp_path):
    values = {("q/sft", s): 0.01 * k for k, s in enumerate(SUBSET_NAMES)}
    values.update({("q/rl", s): -0.02 * k for k, s in enumerate(SUBSET_NAMES) if s != "dial_word"})
    rows = methods.table20(remi_csv(tmp_path / "remi.csv", values))
    sft, rl = rows
    assert (sft["base"], sft["method"]) == ("q", "sft")
    assert sft["avg"] == pytest.approx(np.mean([sft[s] for s in SUBSET_NAMES])) and sft["n_missing"] == 0
    assert sft["avg"] == pytest.approx(0.055)
    assert math.isnan(rl["dial_word"]) and math.isnan(rl["avg"]) and rl["n_missing"] == 1
    methods.fig6(rows)
    methods.table20_figure(rows)


def test_fig7_and_table12_take_the_all_samples_bound(tmp_path):
    rows = _bound_rows()
    for r in rows:
        r.update(d_user=0.5, d_character=0.2, d_dialogue=0.3, shift_term=0.8 * r["bound"], output_term=0.2 * r["bound"])
    path = bound_csv(tmp_path / "bound.csv", rows)
    f7 = methods.fig7_rows(path)
    assert len(f7) == 12 and f7[0]["label"] == "ID→DE"
    want = next(r["bound"] for r in rows if r["rpm"] == "b/rl" and r["target"] == "dial_word" and r["size"] == "all")
    assert next(r["bound"] for r in f7 if r["rpm"] == "b/rl" and r["target"] == "dial_word") == want
    methods.fig7(f7)
    from rpm.analysis import divergence_terms

    t12 = divergence_terms.table12(path)
    assert len(t12) == 12 and {r["shift_type"] for r in t12} == {"User shift", "Character shift",
                                                                 "Dialogue compositional shift"}
    assert divergence_terms.default_rpm(t12) == "b/sft"
    divergence_terms.table12_figure(t12, "b/sft")


# ------------------------------------------------------------------ Table 14, run time, Table 2


BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _benchmark(path: Path, *lines: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCH_HEADER + "".join(line + "\n" for line in lines))
    return path


def test_table14_sums_benchmarks_and_the_ledger(tmp_path):
    rv = _benchmark(tmp_path / "b/reason.tsv", "10.0\t0:00:10\t500\t1\t1\t1\t0\t0\t90\t9.0")
    lp = _benchmark(tmp_path / "b/logprobs.tsv", "20.0\t0:00:20\t600\t1\t1\t1\t0\t0\t90\t18.0",
                    "22.0\t0:00:22\t610\t1\t1\t1\t0\t0\t90\t20.0")  # two repeats: their mean counts
    jb = _benchmark(tmp_path / "b/judge.tsv", "100.0\t0:01:40\t700\t1\t1\t1\t0\t0\t50\t40.0")
    (tmp_path / "ledger.csv").write_text("judge,model,calls,cached,prompt_tokens,completion_tokens,seconds\n"
                                         "a,m1,10,2,5000,10,30\nb,m2,12,0,6000,12,40\n")
    remi = remi_csv(tmp_path / "remi.csv", {("b/sft", s): 0.0 for s in SUBSET_NAMES})
    scores = scores_csv(tmp_path / "scores.csv", {("b/sft", s): 0.5 for s in SUBSET_NAMES[:3]})
    r, j = cost.table14([rv, lp], [jb], tmp_path / "ledger.csv", remi, scores)
    nan = pytest.approx(math.nan, nan_ok=True)  # a local estimator meters no tokens or calls
    assert r == {"method": "R-EMID", "n_samples": 48, "wall_seconds": 31.0, "cpu_seconds": 28.0,
                 "prompt_tokens": nan, "completion_tokens": nan, "calls": nan}
    assert (j["n_samples"], j["wall_seconds"], j["cpu_seconds"]) == (12, 100.0, 40.0)
    assert (j["prompt_tokens"], j["completion_tokens"], j["calls"]) == (11000, 22, 22)
    cost.table14_figure([r, j])


def test_runtime_reads_every_benchmark_file(tmp_path):
    _benchmark(tmp_path / "rpm_train/b/sft.tsv", "5.5\t0:00:05\t300.0\t1\t1\t1\t0\t0\t90\t5.0")
    _benchmark(tmp_path / "bench_synth.tsv", "0.2\t0:00:00\tNA\tNA\tNA\tNA\t0\t0\t0\t0.1")
    rows = {r["job"]: r for r in runtime.runtime_table(tmp_path)}
    assert rows["rpm_train/b/sft"]["rule"] == "rpm_train" and rows["rpm_train/b/sft"]["max_rss_mb"] == 300.0
    assert math.isnan(rows["bench_synth"]["max_rss_mb"]) and rows["bench_synth"]["wall_seconds"] == 0.2
    runtime.runtime_figure(list(rows.values()))
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnalysisInputError, match="holds no benchmark files"):
        runtime.runtime_table(tmp_path / "empty")
    with pytest.raises(AnalysisInputError, match="no such benchmarks directory"):
        runtime.runtime_table(tmp_path / "absent")


def test_table2_counts_unique_personas_and_characters_per_split(tmp_path):
    records = [json.loads(line) for line in (FIXTURES / "paper_records.jsonl").read_text().splitlines()]
    train, lit, turn, word = records

    def write(name, recs):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
        return tmp_path / f"{name}.jsonl"

    files = [write("train", [train]), write("char_literature", [lit]), write("dial_turn", [turn]),
             write("dial_word", [word])]
    rows = {r["split"]: r for r in bench_stats.table2(files)}
    assert list(rows) == ["IDTrain", "OOD2Test", "OOD3Test"]
    d = rows["OOD3Test"]
    assert (d["name"], d["total_samples"], d["files"]) == ("Dialogue Compositional Shift", 2, "dial_turn dial_word")
    names = {turn["agent_character"]["character_name"], word["agent_character"]["character_name"]}
    assert d["agent_characters"] == len(names)
    assert d["user_personas"] == len({turn["user_persona"], word["user_persona"]})
    with pytest.raises(AnalysisInputError, match="not a benchmark file name"):
        bench_stats.table2([write("stuff", [train])])


# ------------------------------------------------------------------ bad input


def test_bad_inputs_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(AnalysisInputError, match=r"nope\.csv: no such file"):
        common.judge_winrates(tmp_path / "nope.csv")
    (tmp_path / "s.csv").write_text("rpm,subset,judge,winrate\nb/sft,id_test,ensemble,0.5\n")
    with pytest.raises(AnalysisInputError, match=r"s\.csv: missing column\(s\) \['shift', 'pointscore'"):
        common.judge_winrates(tmp_path / "s.csv")
    (tmp_path / "e.csv").write_text(",".join(common.SCORES_COLUMNS) + "\n")
    with pytest.raises(AnalysisInputError, match="header but no rows"):
        common.judge_winrates(tmp_path / "e.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(AnalysisInputError, match="empty"):
        common.judge_winrates(tmp_path / "empty.csv")
    scores_csv(tmp_path / "w.csv", {("b/sft", "id_test"): 1.5})
    with pytest.raises(AnalysisInputError, match="outside"):
        common.judge_winrates(tmp_path / "w.csv")
    scores_csv(tmp_path / "j.csv", {("b/sft", "id_test"): 0.5}, judge="gpt")
    with pytest.raises(AnalysisInputError, match="no rows with judge = 'ensemble'; present: \\['gpt'\\]"):
        common.judge_winrates(tmp_path / "j.csv")
    (tmp_path / "t.csv").write_text(",".join(common.SCORES_COLUMNS) + "\nb/sft,id_test,id,ensemble,high,1,1,1,0\n")
    with pytest.raises(AnalysisInputError, match=r"t\.csv, line 2: column 'winrate' holds 'high'"):
        common.judge_winrates(tmp_path / "t.csv")


def test_cli_reports_a_missing_input_in_one_line(tmp_path):
    from rpm.cli import main

    res = CliRunner().invoke(main, ["analyze", "table20", "--remi", str(tmp_path / "remi.csv"),
                                    "--out", str(tmp_path / "t.csv"), "--figure", str(tmp_path / "t.png")])
    assert res.exit_code == 1 and "remi.csv: no such file" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "t.csv").exists()

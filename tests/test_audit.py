"""The audit against the paper: the transcription, the checks of the paper against itself (on the real
published.csv and on planted inconsistencies), the join with our CSVs, and `rpm audit` end to end."""

import csv
import math
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from rpm.audit import published as published_module
from rpm.audit.consistency import (
    _p_two_sided,
    check_remid_vs_bound,
    check_table2_text,
    check_table12_formula,
    check_table13,
    check_table14,
    check_table20_avg,
    check_text_claims,
    implied_remid,
)
from rpm.audit.join import VERDICTS, run_audit
from rpm.audit.labels import (
    BASE,
    METHOD,
    T1_COLUMN,
    T1_ROW,
    T2_ROW,
    T12_BOUND,
    T12_COLUMN,
    T12_D_COLUMNS,
    T12_ROW,
    T13_ROW,
    T20_AVG,
    T20_COLUMN,
)
from rpm.audit.ours import CORRELATION_REQUIRED, COST_COLUMNS, AuditInputError
from rpm.audit.published import MissingCellError, PublishedError, cells, load
from rpm.audit.report import AUDIT_COLUMNS
from rpm.cli import main
from rpm.core.errors import RpmInputError
from rpm.core.names import ESTIMATORS, METHODS, OOD_SUBSETS, SHIFTS, SPLITS, SUBSET_NAMES

PUBLISHED = load()


def planted(tmp_path: Path, changes: dict) -> list:
    """A copy of published.csv with some cells changed ({(table, row, column): value}), loaded."""
    src = Path(published_module.__file__).parent / "published.csv"
    with open(src, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    hit = set()
    for r in rows:
        key = (r["table"], r["row"], r["column"])
        if key in changes:
            r["value"] = changes[key]
            hit.add(key)
    assert hit == set(changes), f"no such cells: {set(changes) - hit}"
    path = tmp_path / "published.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["table", "row", "column", "value", "source"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return load(path)


def bad(findings, check_prefix):
    return [f for f in findings if f.check.startswith(check_prefix) and f.consistent is False]


# ------------------------------------------------------------------ the transcription


def test_transcription_row_counts():
    per_table = Counter(p.table for p in PUBLISHED)
    assert per_table == {"Table 1": 12, "Table 2": 15, "Table 12": 44, "Table 13": 6, "Table 14": 10,
                         "Table 20": 234, "Figure 4": 3, "Figure 5": 2, "Text": 11}
    t20 = cells(PUBLISHED, "Table 20")
    rows = {r for r, _ in t20}
    assert len(rows) == 18 and {r.split("/")[0] for r in rows} == {"Qwen3-4B", "Meta-Llama3-8B"}
    assert all(sum(1 for r2, _ in t20 if r2 == r) == 13 for r in rows)
    assert len({r for r, _ in cells(PUBLISHED, "Table 12")}) == 11
    # Spot checks against the printed paper.
    assert t20[("Meta-Llama3-8B/DPO", "Avg.")].value == -0.489
    assert t20[("Qwen3-4B/RFT", "Dialogue W.")].value == -0.583
    assert cells(PUBLISHED, "Table 12")[("ID->ZH", "R-EMID Upper Bound")].value == 0.1148
    assert cells(PUBLISHED, "Table 2")[("Character Shift", "Agent Characters")].value == 4541
    p = cells(PUBLISHED, "Table 13")[("User Shift", "p")]
    assert (p.relation, p.value) == ("<", 0.001)
    assert cells(PUBLISHED, "Text")[("Sec. 2.3", "total samples")].value == 17000


def test_every_mapped_label_exists_in_the_transcription():
    t20 = cells(PUBLISHED, "Table 20")
    assert {c for _, c in t20} == set(T20_COLUMN.values()) | {T20_AVG}
    assert {r.split("/")[1] for r, _ in t20} == set(METHOD.values())
    assert set(BASE.values()) == {r.split("/")[0] for r, _ in t20}
    t12 = cells(PUBLISHED, "Table 12")
    assert {r for r, _ in t12} == set(T12_ROW.values()) and {c for _, c in t12} == set(T12_COLUMN.values())
    assert {r for r, _ in cells(PUBLISHED, "Table 1")} == set(T1_ROW.values())
    assert {r for r, _ in cells(PUBLISHED, "Table 2")} == set(T2_ROW.values())
    assert {r for r, _ in cells(PUBLISHED, "Table 13")} == set(T13_ROW.values())


def test_mapped_names_are_the_project_names():
    assert tuple(T20_COLUMN) == SUBSET_NAMES and tuple(T12_ROW) == OOD_SUBSETS
    assert tuple(METHOD) == METHODS and tuple(T1_ROW) == ESTIMATORS
    assert tuple(T1_COLUMN) == ("id", *SHIFTS) and tuple(T13_ROW) == SHIFTS and tuple(T2_ROW) == SPLITS


def test_load_refuses_a_bad_cell(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("table,row,column,value,source\nTable 1,Ours,ID,four,x\n", encoding="utf-8")
    with pytest.raises(PublishedError, match=r"line 2: column 'value'"):
        load(path)
    # The audit's errors are RpmInputErrors (one clean CLI line), and still ValueErrors.
    assert issubclass(PublishedError, RpmInputError) and issubclass(AuditInputError, RpmInputError)
    assert issubclass(PublishedError, ValueError) and issubclass(AuditInputError, ValueError)
    with pytest.raises(MissingCellError) as err:
        cells(PUBLISHED, "Table 1")[("Ours", "no such column")]
    assert isinstance(err.value, KeyError) and str(err.value) == str(KeyError(("Ours", "no such column")))


# ------------------------------------------------------------------ the paper against itself


def test_table20_avg_is_the_row_mean_and_a_planted_error_is_found(tmp_path):
    real = check_table20_avg(PUBLISHED)
    assert len(real) == 18 and all(f.consistent for f in real)
    mutated = planted(tmp_path, {("Table 20", "Qwen3-4B/DA", "Avg."): "-0.052"})
    found = [f for f in check_table20_avg(mutated) if not f.consistent]
    assert [f.subject for f in found] == ["Qwen3-4B/DA"]
    assert found[0].difference == pytest.approx(-0.052 - (-0.0623), abs=1e-3)


def test_implied_remid_and_the_bound(tmp_path):
    remid = implied_remid(PUBLISHED)
    assert len(remid) == 18 * 11
    assert remid[("Qwen3-4B/SFT", "User C.")] == pytest.approx(-0.067 - (-0.118))
    checks = [f for f in check_remid_vs_bound(PUBLISHED) if f.consistent is not None]
    assert len(checks) == 11 and all(f.consistent for f in checks)
    # Planted: an ID R-EMI so high that ID -> OOD drops exceed the printed bounds.
    mutated = planted(tmp_path, {("Table 20", "Qwen3-4B/SFT", "ID"): "0.300"})
    found = [f for f in check_remid_vs_bound(mutated) if f.consistent is False]
    assert len(found) == 11  # even ID -> W: 0.300 - 0.143 = 0.157 > its bound 0.1006


def test_table12_bounds_imply_h_hat_and_delta():
    findings, fit = check_table12_formula(PUBLISHED)
    # Per row with Delta = 0: H_hat = bound / (sqrt(2/3) * sum sqrt(D)); ID -> DE: 0.1128 / (0.8165 * 1.7793).
    de = fit.rows.index("ID->DE")
    assert fit.h_hat_if_delta_zero[de] == pytest.approx(0.1128 / (math.sqrt(2 / 3) * 1.77932), rel=1e-4)
    assert fit.h_hat == pytest.approx(0.0385, abs=5e-4) and fit.delta < 1e-8
    assert fit.delta_if_h_zero.max() == pytest.approx((0.1148 / 8) ** 4)
    summary = [f for f in findings if f.subject == "all rows"]
    assert len(summary) == 1 and summary[0].consistent is False  # no single (H_hat, Delta) reproduces them


def test_table12_check_passes_when_the_bounds_follow_the_formula(tmp_path):
    """Planted consistency: bounds recomputed from the printed D terms with H_hat = 0.05, Delta = 1e-9."""
    t12 = cells(PUBLISHED, "Table 12")
    h, delta = 0.05, 1e-9
    changes = {}
    for row in T12_ROW.values():
        s = sum(math.sqrt(t12[(row, c)].value) for c in T12_D_COLUMNS)
        changes[("Table 12", row, T12_BOUND)] = f"{math.sqrt(2 / 3) * h * s + 8 * delta ** 0.25:.4f}"
    findings, fit = check_table12_formula(planted(tmp_path, changes))
    summary = [f for f in findings if f.subject == "all rows"][0]
    assert summary.consistent is True
    assert fit.h_hat == pytest.approx(h, rel=0.02)
    assert fit.delta == pytest.approx(delta, rel=0.3)


def test_p_value_is_scipys():
    from scipy import stats

    x = [0.1, 0.4, 0.35, 0.8, 0.9, 0.2, 0.55, 0.7]
    y = [0.2, 0.3, 0.5, 0.6, 1.0, 0.1, 0.4, 0.9]
    res = stats.pearsonr(x, y)
    assert _p_two_sided(res.statistic, len(x)) == pytest.approx(res.pvalue, rel=1e-9)


def test_table13_implied_n(tmp_path):
    real = {f.subject: f for f in check_table13(PUBLISHED) if f.check.startswith("Table 13: n implied")}
    assert real["Character Shift"].derived == "n = 32" and real["Character Shift"].consistent is False
    assert real["Dialogue Compositional Shift"].derived == "n = 16"
    assert real["User Shift"].consistent is True
    # Planted: p-values as a t-test gives them for 11 LLMs x subsets points -> consistent.
    p44, p22 = _p_two_sided(0.449, 44), _p_two_sided(0.453, 22)
    mutated = planted(tmp_path, {("Table 13", "Character Shift", "p"): f"{p44:.3f}",
                                 ("Table 13", "Dialogue Compositional Shift", "p"): f"{p22:.3f}"})
    assert not bad(check_table13(mutated), "Table 13: n implied")


def test_table2_against_the_text(tmp_path):
    real = {f.subject: f for f in check_table2_text(PUBLISHED) if f.check.startswith("Benchmark sizes")}
    assert real["total samples"].consistent is False and real["total samples"].difference == 20045 - 17000
    assert real["user shift samples"].consistent is True
    mutated = planted(tmp_path, {("Text", "Sec. 2.3", "total samples"): "20k"})
    again = {f.subject: f for f in check_table2_text(mutated)}
    assert again["total samples"].consistent is True


def test_table14_footnotes(tmp_path):
    assert all(f.consistent for f in check_table14(PUBLISHED))
    mutated = planted(tmp_path, {("Table 14", "R-EMID (Ours)", "Cost (USD)"): "~0.64"})
    assert [f.subject for f in check_table14(mutated) if not f.consistent] == ["R-EMID (Ours)"]


def test_text_claims_hold_on_the_real_tables(tmp_path):
    assert all(f.consistent for f in check_text_claims(PUBLISHED))
    mutated = planted(tmp_path, {("Table 1", "Ours", "ID"): "5.500"})
    assert [f.subject for f in check_text_claims(mutated) if not f.consistent] == ["ID"]


# ------------------------------------------------------------------ the join with our numbers


REMI_HEADER = ["estimator", "rpm", "metric", "quantity", "subset", "reference", "shift", "value", "ci_low", "ci_high",
               "n", "n_reference", "normalization", "pairs", "k", "n_boot", "confidence", "seed"]


def write_csv(path: Path, header, rows, sep=","):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=sep, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def remi_row(rpm, quantity, subset, value, half=0.001):
    return ["corl", rpm, "R-EMI", quantity, subset, "id_test" if quantity == "R-EMID" else "", "", value,
            value - half, value + half, 4, "", "mean", "all", "", 10, 0.95, 0]


@pytest.fixture()
def ours(tmp_path):
    """Small synthetic outputs of a run in our real column layouts."""
    remi = write_csv(tmp_path / "remi.csv", REMI_HEADER, [
        remi_row("qwen3_4b_base/sft", "R-EMI", "id_test", -0.067),      # = paper
        remi_row("qwen3_4b_base/sft", "R-EMI", "user_de", 0.300),       # far from -0.047
        remi_row("qwen3_4b_base/sft", "R-EMID", "user_de", -0.020),     # = implied
        remi_row("mini/sft", "R-EMI", "id_test", 0.1),                  # no paper counterpart
    ])
    ppl = write_csv(tmp_path / "perplexity.csv", ["estimator", "scope", "name", "n_samples", "n_tokens",
                                                  "nll_per_token", "perplexity", "average"],
                    [["corl", "shift", "id", 4, 40, 1.58, 4.9, "token"],
                     ["wo_corl", "shift", "id", 4, 40, 2.2, 9.0, "token"],
                     ["corl", "subset", "id_test", 4, 40, 1.5, 4.4, "token"]])
    stats = write_csv(tmp_path / "stats.tsv", ["file", "split", "shift", "samples", "user_personas",
                                               "agent_characters"],
                      [["train", "IDTrain", "id", 5274, 937, 2140], ["user_de", "OOD1Test", "user", 4, 4, 4]], sep="\t")
    corr = write_csv(tmp_path / "correlations.csv", CORRELATION_REQUIRED + ["spearman_ci_low", "spearman_ci_high"], [
        ["table13", "bound", "R-EMID", "user", 55, 0.60, 0.0001, 0.5, 0.7, 0.5, 0.001, "", ""],
        ["table13", "bound", "R-EMID", "character", 44, 0.10, 0.5, 0.0, 0.2, 0.1, 0.5, "", ""],
        ["fig4d", "R-EMID", "WinRate difference", "all", 121, 0.8, 0.001, 0.7, 0.9, 0.8, 0.001, "", ""],
        ["fig5a", "bound", "R-EMID", "size=30", 121, 0.7, 0.001, 0.6, 0.8, 0.7, 0.001, "", ""],
    ])
    cost = write_csv(tmp_path / "cost.csv", COST_COLUMNS, [
        ["R-EMID", 150, 132.0, 130.0, 0, 0, 0],          # 132 s / 150 samples -> 22 min per 1,500
        ["judge", 150, 1440.0, 10.0, 225000, 1000, 300],  # 240 min per 1,500; 1,500 tokens per sample
    ])
    return {"remi": remi, "perplexity": ppl, "stats": stats, "correlations": corr, "cost": cost}


def by_cell(audit):
    return {(r.table, r.row, r.column): r for r in audit.rows}


def test_join_verdicts_at_paper_scale(ours):
    audit = run_audit(scale="paper", **ours)
    rows = by_cell(audit)
    assert rows[("Table 20", "Qwen3-4B/SFT", "ID")].verdict == "match"
    r = rows[("Table 20", "Qwen3-4B/SFT", "User G.")]
    assert r.verdict == "differs" and r.difference == pytest.approx(0.347) and r.tolerance == "±0.0105"
    assert rows[("Table 20 (implied R-EMID)", "Qwen3-4B/SFT", "User G.")].verdict == "match"
    assert rows[("Table 20", "Qwen3-4B/SFT", "User S.")].verdict == "not reproduced"
    assert rows[("Table 20", "Meta-Llama3-8B/RL", "ID")].verdict == "not reproduced"
    assert rows[("Table 20", "mini/sft", "ID")].verdict == "not printed"
    assert rows[("Table 1", "Ours", "ID")].verdict == "match"            # 4.9 vs 4.852: within 5%
    assert rows[("Table 1", "Ours w/o CoRL", "ID")].verdict == "differs"  # 9.0 vs 5.457
    assert rows[("Table 1", "Ours", "U. Shift")].verdict == "not reproduced"
    assert rows[("Table 2", "IDTrain", "Total Samples")].verdict == "match"
    assert rows[("Table 2", "IDTest", "Total Samples")].verdict == "not reproduced"
    # A split with several files needs --bench-dir for unique counts: reported, not guessed.
    assert rows[("Table 2", "User Shift", "User Personas")].verdict == "not reproduced"
    assert rows[("Table 2", "User Shift", "Total Samples")].ours == 4
    assert rows[("Table 13", "User Shift", "Pearson r")].verdict == "match"
    assert rows[("Table 13", "User Shift", "p")].verdict == "match"
    assert rows[("Table 13", "Character Shift", "Pearson r")].verdict == "differs"
    assert rows[("Table 13", "Character Shift", "p")].verdict == "differs"
    assert rows[("Figure 4", "fig4d", "pairs")].verdict == "match"
    assert rows[("Figure 4", "fig4a", "pairs")].verdict == "not reproduced"
    assert rows[("Figure 5", "(a)", "samples at which both correlations reach high levels")].verdict == "match"
    assert rows[("Figure 5", "(b)", "samples for bound estimation")].verdict == "not reproduced"
    assert rows[("Table 14", "R-EMID (Ours)", "Time (min)")].ours == pytest.approx(22.0)
    assert rows[("Table 14", "LLM-as-a-Judge (Claude-3.7-Sonnet)", "Cost (USD)")].verdict == "match"
    assert rows[("Table 14", "judge / R-EMID", "time ratio")].verdict == "match"
    # No bound input: Table 12 is all "not reproduced", with the reason.
    t12 = [r for r in audit.rows if r.table == "Table 12"]
    assert len(t12) == 44 and {r.verdict for r in t12} == {"not reproduced"}
    assert "no bound.csv input given" in t12[0].note


def test_two_runs_for_one_paper_row_are_refused(ours):
    with pytest.raises(AuditInputError, match="a second R-EMI row"):
        run_audit(scale="small", base_map={"mini": "Qwen3-4B"}, remi=ours["remi"])


def test_scale_differs_and_missing_inputs(ours):
    audit = run_audit(scale="small", remi=ours["remi"])
    rows = by_cell(audit)
    assert rows[("Table 20", "Qwen3-4B/SFT", "ID")].verdict == "scale differs"
    assert rows[("Table 20", "Qwen3-4B/SFT", "ID")].difference == pytest.approx(0.0)
    assert {r.verdict for r in audit.rows if r.table == "Table 1"} == {"not reproduced"}
    assert len([r for r in audit.rows if r.table == "Table 20"]) == 234 + 1  # every cell, plus mini/sft


def test_bad_inputs_name_file_line_and_column(tmp_path, ours):
    broken = write_csv(tmp_path / "broken.csv", REMI_HEADER, [remi_row("qwen3_4b_base/sft", "R-EMI", "id_test", 0.1)])
    text = broken.read_text().replace(",0.1,", ",abc,", 1)
    broken.write_text(text)
    with pytest.raises(AuditInputError, match=r"broken.csv, line 2: column 'value' holds 'abc'"):
        run_audit(scale="paper", remi=broken)
    unknown = write_csv(tmp_path / "unknown.csv", REMI_HEADER, [remi_row("qwen3_4b_base/sft", "R-EMI", "mars", 0.1)])
    with pytest.raises(AuditInputError, match=r"line 2: unknown subset 'mars'"):
        run_audit(scale="paper", remi=unknown)
    nocol = write_csv(tmp_path / "nocol.csv", ["rpm", "value"], [["a/sft", 1]])
    with pytest.raises(AuditInputError, match=r"nocol.csv: missing column"):
        run_audit(scale="paper", remi=nocol)


def test_cli_end_to_end(tmp_path, ours):
    md, out = tmp_path / "audit.md", tmp_path / "audit.csv"
    args = ["audit", "--scale", "paper", "--remi", str(ours["remi"]), "--perplexity", str(ours["perplexity"]),
            "--stats", str(ours["stats"]), "--correlations", str(ours["correlations"]), "--cost", str(ours["cost"]),
            "--out-md", str(md), "--out-csv", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "self-consistency checks" in res.output
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == AUDIT_COLUMNS
    assert {r["table"] for r in rows} >= {"Table 1", "Table 2", "Table 12", "Table 13", "Table 14", "Table 20",
                                          "Figure 4", "Figure 5"}
    assert {r["verdict"] for r in rows} <= set(VERDICTS)
    text = md.read_text(encoding="utf-8")
    assert "## The paper against itself" in text and "### Table 20" in text
    assert "Table 12: one non-negative (H_hat, Delta) reproduces every printed bound" in text
    # A user-fixable error is one line, not a traceback.
    res = CliRunner().invoke(main, ["audit", "--scale", "paper", "--base-map", "x", "--out-md", str(md),
                                    "--out-csv", str(out)])
    assert res.exit_code == 2 and "OURS=PAPER" in res.output
    res = CliRunner().invoke(main, ["audit", "--scale", "paper", "--base-map", "x=GPT-5", "--out-md", str(md),
                                    "--out-csv", str(out)])
    assert res.exit_code == 1 and "Table 20 does not have" in res.output and "Traceback" not in res.output
    # A transcription copy that lacks a cell the checks need: one line too.
    lacking = tmp_path / "lacking.csv"
    src = Path(published_module.__file__).parent / "published.csv"
    lacking.write_text("".join(line for line in src.read_text(encoding="utf-8").splitlines(keepends=True)
                               if not line.startswith("Table 1,Ours,ID,")), encoding="utf-8")
    res = CliRunner().invoke(main, ["audit", "--scale", "paper", "--published", str(lacking), "--out-md", str(md),
                                    "--out-csv", str(out)])
    assert res.exit_code == 1 and "('Ours', 'ID')" in res.output and res.exception.__class__ is SystemExit


@pytest.mark.slow
def test_audit_of_the_smoke_run(smoke_run):
    results = Path(smoke_run) / "results"
    md, out = results / "audit.md", results / "audit.csv"
    assert md.is_file() and out.is_file()
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    tables = Counter(r["table"] for r in rows)
    for table in ("Table 1", "Table 2", "Table 12", "Table 13", "Table 14", "Table 20", "Figure 4", "Figure 5"):
        assert tables[table] > 0, table
    # The smoke run is small: whatever it reproduced is "scale differs", never "match".
    assert "match" not in {r["verdict"] for r in rows}
    reproduced = [r for r in rows
                  if r["table"] in ("Table 1", "Table 12", "Table 20") and r["verdict"] == "scale differs"]
    assert reproduced
    assert "## The paper against itself" in md.read_text(encoding="utf-8")

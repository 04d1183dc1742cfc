"""The Snakemake DAG: config validation, the paper plan, and the smoke run of the stages built so far."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO

from rpm.bench.load import load_bench
from rpm.core.names import BENCH_FILES

BIN = Path(sys.executable).parent
SMOKE = REPO / "workflow/configs/smoke.yaml"
PAPER = REPO / "workflow/configs/paper.yaml"


def snakemake(*args, workdir: Path, check=True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args],
                          capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_paper_config_plans_offline(tmp_path):
    proc = snakemake("-n", "--cores", "8", "--configfile", str(PAPER), workdir=tmp_path)
    out = proc.stdout + proc.stderr
    assert "bench_fetch" in out and "bench_synth" not in out
    for model in ("qwen3_4b_base", "llama3_8b", "qwen3_8b"):
        assert f"results/models/{model}" in out


def test_paper_plan_puts_the_heavy_rules_on_gpus(tmp_path):
    proc = snakemake("-n", "--cores", "8", "--configfile", str(PAPER), workdir=tmp_path)
    jobs = (proc.stdout + proc.stderr).split("\n\n")
    heavy = ("rule rpm_train:", "rule rpm_generate:", "rule teacher:", "rule estimator_coldstart:",
             "rule estimator_coevolve:", "rule estimator_reason:", "rule logprobs:", "rule logprobs_golden:")
    seen = set()
    for job in jobs:
        for name in heavy:
            if name in job:
                seen.add(name)
                assert "gpu=1" in job, job
    assert seen == set(heavy)


@pytest.mark.parametrize("overlay,message", [
    ("bogus: 1", "'bogus' was unexpected"),
    ("seed: abc", "'abc' is not of type 'integer'"),
    ("benchmark: {source: web}", "'web' is not one of ['synth', 'fetch']"),
    ("benchmark: {synth: {severity: {user: 2}}}", "2 is greater than the maximum of 1"),
    ("benchmark: {synth: {n_train: 0}}", "0 is less than the minimum of 1"),
    ("models: {m: {source: hub}}", "None is not of type 'string'"),
    ("rpm: {bases: [nope]}", "name model(s) ['nope'] that are not defined under models"),
])
def test_bad_config_fails_naming_the_key(tmp_path, overlay, message):
    (tmp_path / "overlay.yaml").write_text(overlay + "\n")
    proc = snakemake("-n", "--cores", "1", "--configfile", str(tmp_path / "overlay.yaml"), workdir=tmp_path,
                     check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


def test_sampled_negatives_reach_every_logprobs_job(tmp_path):
    """metrics.negatives K reaches each estimator's `rpm logprobs` job, sweep.negatives each sweep job's."""
    def commands(overlay):
        (tmp_path / "overlay.yaml").write_text(overlay + "\n")
        proc = snakemake("-n", "-p", "--cores", "1", "--configfile", str(tmp_path / "overlay.yaml"),
                         workdir=tmp_path)
        lines = (proc.stdout + proc.stderr).splitlines()
        return [line for line in lines if line.startswith("Shell command: rpm logprobs")]

    sampled = commands("metrics: {negatives: 3}\nsweep: {negatives: 5}")
    sweep = [c for c in sampled if "results/sweep/" in c]
    main = [c for c in sampled if c not in sweep]
    assert len(sweep) == 3 and all("--negatives 5 --seed 0" in c for c in sweep)  # one per severity
    assert len(main) == 3 and all("--negatives 3 --seed 0" in c for c in main)  # golden's with each estimator
    # Each severity's rows reuse the previous severity's files; the estimators' jobs have nothing to reuse.
    reuse = {c.split("--out results/sweep/severity_")[1].split("/")[0]: c for c in sweep}
    assert "--reuse" not in reuse["0"] and not any("--reuse" in c for c in main)
    assert "--reuse results/sweep/severity_0/logprobs " in reuse["0.5"]
    assert "--reuse results/sweep/severity_0.5/logprobs " in reuse["1"]
    assert not any("--negatives" in c for c in commands("sweep: {negatives: null}"))


@pytest.mark.slow
def test_smoke_dag_runs_every_stage(smoke_run):
    """The whole smoke DAG on the tiny model: nine RPMs, the estimator branch and every metric table."""
    import csv
    import json

    results = smoke_run / "results"
    bench = load_bench(results / "data/bench")
    assert list(bench) == list(BENCH_FILES)
    assert len(bench["train"]) == 16 and all(len(bench[f]) == 4 for f in BENCH_FILES[1:])
    methods = ["icl", "sft", "da", "dpo", "rft", "rl", "thinking_sft", "thinking_rl", "corl"]
    for method in methods:  # every method trained, and its responses cover every sample of every subset
        assert (results / f"rpm/tiny/{method}/model/rpm_method.json").is_file()
        for subset in BENCH_FILES[1:]:
            rows = [json.loads(x) for x in (results / f"rpm/tiny/{method}/responses/{subset}.jsonl").read_text()
                    .splitlines()]
            assert [r["sample_ID"] for r in rows] == [s.sample_ID for s in bench[subset]]
    for variant in ("corl", "wo_corl"):  # one reasoning trace per evaluation sample
        for subset in BENCH_FILES[1:]:
            rows = [json.loads(x) for x in (results / f"estimator/tiny/reasoning/{variant}/{subset}.jsonl")
                    .read_text().splitlines()]
            assert [r["sample_ID"] for r in rows] == [s.sample_ID for s in bench[subset]]
    log = (results / "estimator/tiny/coevolved/coevolution_log.jsonl").read_text().splitlines()
    assert {json.loads(x)["module"] for x in log} == {"reasoner", "policy"}

    def table(name):
        with open(results / f"metrics/{name}.csv") as f:
            return list(csv.DictReader(f))

    remi = table("remi")
    got = {(r["rpm"], r["subset"]) for r in remi if r["quantity"] == "R-EMI"}
    assert got == {(f"tiny/{m}", s) for m in methods for s in BENCH_FILES[1:]}
    assert {(r["rpm"], r["subset"]) for r in remi if r["quantity"] == "R-EMID"} == \
        {(f"tiny/{m}", s) for m in methods for s in BENCH_FILES[2:]}
    assert {r["subset"] for r in table("emi") if r["quantity"] == "EMI"} == set(BENCH_FILES[1:])
    assert {r["estimator"] for r in table("perplexity")} == {"corl", "wo_corl", "wo_reasoning"}
    divergences = table("divergences")
    assert {r["target"] for r in divergences} == set(BENCH_FILES[2:])
    assert {r["component"] for r in divergences} == {"user_persona", "agent_character", "dialogue_context", "joint"}
    assert table("bound")
    for name in ("remi", "emi", "perplexity", "divergences", "bound"):
        assert all(v not in ("nan", "") for r in table(name) for k, v in r.items()
                   if k in ("value", "bound", "perplexity", "jsd"))
    assert (results / "logs/bench_synth.log").is_file() and (results / "benchmarks/model_prepare/tiny.tsv").is_file()
    again = snakemake("--cores", "2", "--configfile", str(SMOKE), workdir=smoke_run)
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_a_second_run_with_the_same_seed_gives_identical_metric_tables(tmp_path):
    """Determinism: a second smoke run from scratch (for one RPM, to keep the suite short) writes the rows of
    the smoke run's metric tables: same benchmark, model, training, generation, estimator, scores. It is
    compared with the stored reference run (tests/fixtures/smoke_metrics/, within float32 rounding), which the
    session's smoke run must equal too (the next test), so the two runs agree with each other; not with the
    session's run directly, so that this run needs no smoke run of its own and can go to the other
    pytest-xdist worker (tests/conftest.py)."""
    import csv

    overlay = tmp_path / "one_rpm.yaml"
    overlay.write_text("rpm: {methods: [sft]}\nsweep: {enabled: false}\n")
    tables = ["remi", "emi", "perplexity", "divergences", "bound"]
    snakemake("--cores", "2", *[f"results/metrics/{t}.csv" for t in tables], "--configfile", str(SMOKE),
              str(overlay), workdir=tmp_path)

    def rows(path):
        with open(path, newline="") as f:
            return [r for r in csv.DictReader(f) if r.get("rpm", "tiny/sft") in ("tiny/sft", "")]

    for table in tables:
        expected = rows(FIXTURES / "smoke_metrics" / f"{table}.csv")
        second = rows(tmp_path / f"results/metrics/{table}.csv")
        assert second and expected, table
        assert len(second) == len(expected) and all(_same_row(g, e) for g, e in zip(second, expected)), (
            f"{table}.csv of a second run with the same seed differs from the stored reference run")


@pytest.mark.slow
def test_smoke_metric_tables_equal_the_stored_reference_run(smoke_run):
    """The smoke DAG's metric tables equal tests/fixtures/smoke_metrics/ (within float32 rounding), the tables of the
    smoke run of the synthetic benchmark whose OOD subsets share their bases (0dd02a0: every sample of an OOD
    subset moved, so every number did; before: session 5's nested, leak-free benchmark with the divergence nulls
    and the boot_undefined column, and before that commit 4642b29's). A change that
    is meant to move a number (a new estimator setting, a new sampler) replaces these files in the same
    commit and says why; any other difference is a regression."""
    import csv

    for table in ("remi", "emi", "perplexity", "divergences", "bound"):
        with open(FIXTURES / "smoke_metrics" / f"{table}.csv", newline="") as f:
            expected = list(csv.DictReader(f))
        with open(smoke_run / f"results/metrics/{table}.csv", newline="") as f:
            got = list(csv.DictReader(f))
        assert expected, table
        assert len(got) == len(expected) and all(_same_row(g, e) for g, e in zip(got, expected)), (
            f"{table}.csv: rows differ from the stored reference run")


def _same_row(got: dict, expected: dict) -> bool:
    """Equal fields, numbers within float32 kernel rounding: the same float32 arithmetic on an AVX2 CPU and on
    one with AVX-512 differs in the 7th significant digit (measured: at most 4.6e-7 absolute over remi.csv's
    423 rows), while anything meant to move a number moves it far more. bound.csv's tightness (bound /
    |R-EMID|) divides by an R-EMID near 0 on the tiny model, so it gets R-EMID's absolute rounding relative to
    R-EMID on top (measured: 1.6e-3 relative)."""
    if list(got) != list(expected):
        return False
    for key, value in got.items():
        if value == expected[key]:
            continue
        try:
            rel_tol = 1e-5 + (1e-6 / abs(float(expected["r_emid"])) if key == "tightness" else 0.0)
            if not math.isclose(float(value), float(expected[key]), rel_tol=rel_tol, abs_tol=1e-6):
                return False
        except (ValueError, ZeroDivisionError):
            return False
    return True

"""The Snakemake DAG: config validation, the paper plan, and the smoke run of the stages built so far."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from rpm.bench.load import load_bench
from rpm.bench.subsets import BENCH_FILES

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


@pytest.mark.slow
def test_smoke_dag_runs_data_and_model_stages(tmp_path):
    snakemake("--cores", "2", "--configfile", str(SMOKE), workdir=tmp_path)
    results = tmp_path / "results"
    bench = load_bench(results / "data/bench")
    assert list(bench) == list(BENCH_FILES)
    assert len(bench["train"]) == 16 and all(len(bench[f]) == 4 for f in BENCH_FILES[1:])
    assert (results / "models/tiny/model.safetensors").is_file()
    assert (results / "logs/bench_synth.log").is_file() and (results / "logs/model_prepare/tiny.log").is_file()
    assert (results / "benchmarks/model_prepare/tiny.tsv").is_file()
    again = snakemake("--cores", "2", "--configfile", str(SMOKE), workdir=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr

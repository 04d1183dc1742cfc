"""Faults under Snakemake: a training job and a scoring job SIGKILLed mid-way (Snakemake with them), then
the workflow re-run with --rerun-incomplete. Training resumes from its last checkpoint (not from step 0)
and ends where an uninterrupted run ends; scoring is redone and gives the numbers of an uninterrupted run. And a
second Snakemake started on a working directory while one runs there is refused by Snakemake's lock."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from safetensors.numpy import load_file

BIN = Path(sys.executable).parent
SMOKE = REPO / "workflow/configs/smoke.yaml"
pytestmark = pytest.mark.slow


def _cmd(workdir: Path, *args: str) -> list[str]:
    return [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2", *args]


def _env() -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}


def run(workdir: Path, *args: str) -> str:
    proc = subprocess.run(_cmd(workdir, *args), capture_output=True, text=True, env=_env())
    assert proc.returncode == 0, f"snakemake {' '.join(args)} failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout + proc.stderr


def run_and_kill(workdir: Path, *args: str, when, timeout: float = 300.0) -> None:
    """Start Snakemake in its own process group; SIGKILL the whole group (Snakemake and the job) once
    `when()` is true."""
    proc = subprocess.Popen(_cmd(workdir, *args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not when():
            assert proc.poll() is None, "the job finished before it could be killed: make it longer"
            assert time.monotonic() < deadline, "the kill condition never came true"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    run(workdir, *args, "--unlock")  # a killed Snakemake leaves its lock: what a user does first


def seeded_workdir(smoke_run: Path, dest: Path, *parts: str) -> Path:
    """A new working directory holding copies of some of the smoke run's results (mtimes kept)."""
    for part in parts:
        shutil.copytree(smoke_run / "results" / part, dest / "results" / part, symlinks=True)
    return dest


def test_killed_training_job_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_run(smoke_run, tmp_path):
    overlay = tmp_path / "longer_sft.yaml"
    overlay.write_text("rpm: {sft: {max_steps: 10, save_steps: 2}}\n")  # kill at step 4 of 10
    target = "results/rpm/tiny/sft/model"
    args = (target, "--configfile", str(SMOKE), str(overlay))

    straight = seeded_workdir(smoke_run, tmp_path / "straight", "data", "models")
    run(straight, *args)

    killed = seeded_workdir(smoke_run, tmp_path / "killed", "data", "models")
    ckpts = killed / "results/rpm/tiny/sft/checkpoints"
    run_and_kill(killed, *args, when=lambda: (ckpts / "checkpoint-4" / "trainer_state.json").is_file())
    assert not (killed / target / "rpm_method.json").is_file()  # nothing that looks complete
    run(killed, *args, "--rerun-incomplete")

    manifest = json.loads((killed / target / "rpm_method.json").read_text())
    assert Path(manifest["resumed_from"]).name in ("checkpoint-4", "checkpoint-6", "checkpoint-8")
    assert manifest["steps"] == 10
    a = load_file(straight / target / "adapter/adapter_model.safetensors")
    b = load_file(killed / target / "adapter/adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=0, atol=1e-6, err_msg=k)


def test_killed_scoring_job_is_redone_and_gives_the_uninterrupted_numbers(smoke_run, tmp_path):
    parts = ("data", "models", "rpm", "estimator", "metrics")
    work = seeded_workdir(smoke_run, tmp_path / "work", *parts)
    target = "results/metrics/emi.csv"
    out_dir = work / "results/metrics/logprobs/wo_reasoning"
    log = work / "results/logs/logprobs/wo_reasoning.log"
    # Force the EMI estimator's scoring job to run again, and kill it ~10 s after it starts (it takes ~30 s).
    shutil.rmtree(out_dir)
    (work / target).unlink()
    log.unlink(missing_ok=True)
    first_seen = []

    def scoring_for_a_while():
        if log.is_file() and not first_seen:
            first_seen.append(time.monotonic())
        return bool(first_seen) and time.monotonic() - first_seen[0] > 10

    run_and_kill(work, target, "--configfile", str(SMOKE), when=scoring_for_a_while)
    n_outputs = len(list((smoke_run / "results/metrics/logprobs/wo_reasoning").rglob("*.npz")))
    assert len(list(out_dir.rglob("*.npz"))) < n_outputs  # killed mid-way, not after the job
    run(work, target, "--configfile", str(SMOKE), "--rerun-incomplete")
    for npz in sorted((smoke_run / "results/metrics/logprobs/wo_reasoning").rglob("*.npz")):
        rel = npz.relative_to(smoke_run)
        with np.load(npz) as x, np.load(work / rel) as y:
            assert x.files == y.files
            for f in x.files:
                assert np.array_equal(x[f], y[f]), f"{rel}: {f} differs from the uninterrupted run"
    assert (work / target).read_bytes() == (smoke_run / target).read_bytes()



def test_a_second_snakemake_on_a_running_working_directory_is_refused_by_the_lock(tmp_path):
    """Two Snakemake runs on one working directory: the second stops at Snakemake's lock, naming --unlock."""
    target = ("results/models/tiny", "--configfile", str(SMOKE))
    locks = tmp_path / ".snakemake" / "locks"
    first = subprocess.Popen(_cmd(tmp_path, *target), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not any(locks.glob("*.lock")):
            assert first.poll() is None, "the first run ended before it held the lock"
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.1)
        # Frozen (Snakemake and its job) while it holds the lock, so its end cannot race the second run.
        os.killpg(first.pid, signal.SIGSTOP)
        second = subprocess.run(_cmd(tmp_path, *target), capture_output=True, text=True, env=_env(), timeout=300)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    said = second.stdout + second.stderr
    assert second.returncode == 1, said
    assert "Directory cannot be locked" in said and "--unlock" in said, said
    assert not (tmp_path / "results/models/tiny/rpm_model.json").exists()  # the killed job left nothing complete
    run(tmp_path, *target, "--unlock")  # the clean-up a user does after a kill
    assert not any(locks.glob("*.lock"))

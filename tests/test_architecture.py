"""The layout the code promises (docs/architecture.md): stage packages, imports at the top, small modules,
and a repository that explains itself. The import layers and cycles are checked by `lint-imports`
(pyproject.toml), ruff and snakefmt by the test command (Makefile `check`)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "rpm"
MODULES = sorted(PACKAGE.rglob("*.py"))
# The only modules at the top of rpm/: the root CLI, the CLI helpers every stage CLI shares, and I/O.
TOP_LEVEL = {"__init__.py", "__main__.py", "cli.py", "cli_shared.py", "io.py"}
MAX_LINES = 420  # "no module over ~400 lines"


def test_every_module_but_the_root_cli_and_io_lives_in_a_stage_package():
    loose = {p.name for p in PACKAGE.glob("*.py")} - TOP_LEVEL
    assert not loose, f"modules loose at the top of rpm/: {sorted(loose)}"
    for folder in (p for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"):
        if any(folder.glob("*.py")):
            assert (folder / "__init__.py").is_file(), f"{folder} is not a package"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_module_is_small(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(REPO)}: {n} lines; split it by what it does"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_rpm_imports_are_at_the_top_of_the_module(path):
    """Lazy imports hide the dependency graph; only heavy third-party libraries (torch, transformers, vLLM,
    ...) may be imported inside the functions that need them."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inner = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == "rpm"):
                    inner.append(f"line {node.lineno}: from {node.module} import ...")
                if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "rpm" for a in node.names):
                    inner.append(f"line {node.lineno}: import {node.names[0].name}")
    assert not inner, f"{path.relative_to(REPO)} imports rpm modules inside functions: {inner}"


def test_stage_clis_never_import_the_root_cli():
    for path in PACKAGE.rglob("cli.py"):
        if path.parent == PACKAGE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "rpm.cli", f"{path.relative_to(REPO)} imports the root CLI"


def test_the_repository_refers_only_to_files_inside_it():
    """The design notes this project started from are not part of the repository: nothing may cite them."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    names = ["ARCHITECTURE" + ".md", "REFERENCE_FACTS" + ".md", "../" + "shared/"]
    hits = []
    for rel in tracked:
        path = REPO / rel
        if path.suffix in {".png", ".npz", ".gguf", ".safetensors"} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        hits += [f"{rel}: {name}" for name in names if name in text]
    assert not hits, hits
    assert (REPO / "docs" / "architecture.md").is_file()


def test_lint_imports_keeps_the_layers_and_finds_no_cycle():
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 kept, 0 broken" in proc.stdout

"""One source per configuration value: config.yaml holds every key's default, the schema holds none and
describes exactly config.yaml's keys, and the names of rpm.core.names are not restated in the schema."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from rpm.core.config import JUDGE_DEFAULTS, MODEL_SPEC_DEFAULTS
from rpm.core.names import METHODS, OOD_SUBSETS, PRECISIONS, SHIFTS

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
COMMON = (REPO / "workflow/rules/common.smk").read_text()
BIN = Path(sys.executable).parent


def keys_with_properties(schema, path=""):
    """(dotted path, schema node) of every object node that lists its keys (`properties`), recursively."""
    yield path, schema
    for key, sub in schema.get("properties", {}).items():
        if "properties" in sub:
            yield from keys_with_properties(sub, f"{path}.{key}" if path else key)


def at(config, path):
    for key in path.split(".") if path else []:
        config = config[key]
    return config


def test_the_schema_has_no_defaults():
    found = []

    def walk(node, path):
        if isinstance(node, dict):
            if "default" in node:
                found.append(path or "/")
            for k, v in node.items():
                walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}")

    walk(SCHEMA, "")
    assert not found, f"defaults belong in config.yaml, the schema has them at {found}"


@pytest.mark.parametrize("path,node", list(keys_with_properties(SCHEMA)), ids=lambda x: x if isinstance(x, str) else "")
def test_config_yaml_has_exactly_the_schema_keys(path, node):
    """Every key the schema describes has its default in config.yaml, and config.yaml has no other key."""
    config = at(CONFIG, path)
    assert isinstance(config, dict), f"config.yaml: {path or 'the top level'} is not a mapping"
    schema_keys, config_keys = set(node["properties"]), set(config)
    assert not schema_keys - config_keys, f"config.yaml lacks {sorted(schema_keys - config_keys)} under {path or '/'}"
    assert not config_keys - schema_keys, f"the schema lacks {sorted(config_keys - schema_keys)} under {path or '/'}"


def test_entry_defaults_cover_every_field_of_a_model_spec_and_a_judge():
    """Entries of `models:` and `judge.judges` are named by the user: rpm/core/config.py fills their fields."""
    assert set(MODEL_SPEC_DEFAULTS) == set(SCHEMA["$defs"]["model_spec"]["properties"])
    judge_fields = SCHEMA["properties"]["judge"]["properties"]["judges"]["items"]["properties"]
    assert set(JUDGE_DEFAULTS) == set(judge_fields)


def test_names_come_from_rpm_core_names():
    methods = SCHEMA["properties"]["rpm"]["properties"]["methods"]["items"]
    # rpm/core/config.py adds the enum (config_schema; the snakemake test below sees it), common.smk the
    # wildcard constraint.
    assert "enum" not in methods, "the method enum is added from rpm.core.names by rpm/core/config.py (config_schema)"
    assert 'method="|".join(METHODS)' in COMMON
    severity = SCHEMA["properties"]["benchmark"]["properties"]["synth"]["properties"]["severity"]
    assert tuple(severity["properties"]) == SHIFTS
    assert tuple(CONFIG["benchmark"]["synth"]["severity"]) == SHIFTS
    assert set(CONFIG["rpm"]["methods"]) <= set(METHODS)
    assert set(CONFIG["sweep"]["subsets"]) <= set(OOD_SUBSETS)


def _refused(tmp_path, overlay: str) -> str:
    """Plan the workflow with `overlay` merged over config.yaml; it must be refused; returns its output."""
    (tmp_path / "overlay.yaml").write_text(overlay)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-n",
                           "--cores", "1", "--configfile", str(tmp_path / "overlay.yaml")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


def test_an_unknown_method_is_rejected_with_the_names_of_rpm_core_names(tmp_path):
    assert f"'bogus' is not one of {list(METHODS)}" in _refused(tmp_path, "rpm: {methods: [sft, bogus]}\n")


def test_an_unknown_precision_is_rejected_with_the_dtypes_of_rpm_core_names(tmp_path):
    out = _refused(tmp_path, "precision: {generation: float16, training: bfloat16, scoring: float32}\n")
    assert f"'float16' is not one of {list(PRECISIONS)}" in out

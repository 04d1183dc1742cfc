"""What the package never does: trust remote code, unpickle weights, or let a sample ID become a path."""

import json
import re

import pytest
from conftest import REPO

from rpm.bench.schema import check_sample_id
from rpm.models.prepare import ModelSpecError, prepare
from rpm.runtime.load import ModelFileError, load_chain, load_model

SOURCES = [p for d in ("rpm", "workflow", "containers") for p in (REPO / d).rglob("*")
           if p.is_file() and p.suffix in (".py", ".smk", ".yaml", ".def", ".sh")] + [REPO / "Snakefile"]


def test_no_remote_code_is_trusted_anywhere():
    pattern = re.compile(r"trust_remote_code\s*=\s*True|--trust-remote-code(?!\s*/)")
    hits = [f"{p.relative_to(REPO)}:{i}" for p in SOURCES
            for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
            if pattern.search(line)]
    assert SOURCES and not hits, hits


def test_pickled_weights_are_refused(tmp_path, tiny_model_dir):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelSpecError, match="no .safetensors weights"):
        prepare({"source": "local", "path": str(pickled)}, tmp_path / "out")
    with pytest.raises(OSError):  # from_pretrained(use_safetensors=True) never falls back to the .bin
        load_model(pickled)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (adapter / "adapter_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelFileError, match="pickled adapters are never loaded"):
        load_chain(tiny_model_dir, [str(adapter)])


@pytest.mark.parametrize("sample_id", ["../etc/passwd", "a/b", "a\\b", "..", ".", ""])
def test_sample_ids_that_would_be_paths_are_refused(sample_id):
    with pytest.raises(ValueError, match="not safe to use in file names"):
        check_sample_id(sample_id)

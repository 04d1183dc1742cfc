"""TRL trainers behind the RPM methods: SFT, DPO and GRPO, each training one LoRA adapter.

A method that continues from another (DPO, RFT and RL from SFT; ThinkingRL and the E.2 method from
ThinkingSFT) merges the earlier adapters into the base weights first and trains a fresh adapter on
top. The earlier model then is exactly the LoRA-disabled model, which is what TRL's DPO uses as its
reference. A finished model directory holds `adapter/` and `rpm_method.json`, whose `chain` lists
every adapter to merge, in order, to rebuild the RPM.

Training writes checkpoints to a directory that is not a Snakemake output (so a killed job keeps
them) and resumes from the last one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rpm.core.errors import RpmInputError
from rpm.io import atomic_dir
from rpm.runtime.load import load_chain, read_manifest, write_adapter_manifest
from rpm.runtime.precision import trainer_precision_args


def lora_config(cfg: dict):
    from peft import LoraConfig

    return LoraConfig(r=cfg.get("r", 16), lora_alpha=cfg.get("alpha", 32), lora_dropout=cfg.get("dropout", 0.05),
                      target_modules=cfg.get("target_modules", "all-linear"), task_type="CAUSAL_LM")


def _last_checkpoint(ckpt_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None


def make_config(cls, args: dict, ckpt_dir: Path, seed: int, dtype: str = "float32"):
    """TRL's own config dataclass from the config's settings; a wrong key is named, not a traceback.
    Precision comes from the config's `precision.training` only (`dtype`), never from the trainer settings."""
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(args) - known)
    if unknown:
        raise RpmInputError(f"{cls.__name__} has no field(s) {unknown} (check the trainer settings in the config)")
    mixed = sorted({"bf16", "fp16", "tf32"} & set(args))
    if mixed:
        raise RpmInputError(f"the trainer settings set {mixed}: set the training precision with the config's "
                            "precision.training (float32 or bfloat16) instead")
    return cls(**_common_args(args, ckpt_dir, seed, dtype))


def _common_args(args: dict, ckpt_dir: Path, seed: int, dtype: str = "float32") -> dict:
    gpu = _has_gpu()
    out = {"output_dir": str(ckpt_dir), "seed": seed, "data_seed": seed, "report_to": [],
           "save_strategy": "steps", "logging_steps": 1, "use_cpu": not gpu, "disable_tqdm": False,
           **trainer_precision_args(dtype, gpu)}
    out.update(args)
    return out


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def check_lengths(tok, rows: list[dict], max_length: int, keys_completion=("completion",)) -> None:
    """TRL would truncate over-long sequences silently; refuse them instead, naming the samples."""
    too_long = []
    for r in rows:
        prompt = tok.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False)
        for k in keys_completion:
            n = len(tok(prompt + r[k][0]["content"], add_special_tokens=False)["input_ids"])
            if n > max_length:
                too_long.append(f"{r.get('sample_ID', '?')} ({k}: {n} tokens > max_length {max_length})")
    if too_long:
        raise RpmInputError(f"{len(too_long)} training sample(s) exceed max_length and would be truncated: "
                         f"{', '.join(too_long[:10])}; raise max_length in the config or shorten the data")


def _finish(trainer, ckpt_dir: Path, out_dir: Path, manifest: dict) -> Path:
    resume = _last_checkpoint(ckpt_dir)
    if resume:
        print(f"resuming from {resume}", flush=True)
    trainer.train(resume_from_checkpoint=resume)
    history = trainer.state.log_history
    with atomic_dir(out_dir) as tmp:
        trainer.save_model(str(tmp / "adapter"))
        manifest = {**manifest, "chain": manifest["chain"] + [str(out_dir / "adapter")],
                    "steps": trainer.state.global_step, "resumed_from": resume}
        write_adapter_manifest(tmp, manifest, out_dir)
        with open(tmp / "train_log.jsonl", "w", encoding="utf-8") as f:
            for row in history:
                f.write(json.dumps(row) + "\n")
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # the finished adapter supersedes the checkpoints
    return out_dir


def _dataset(rows: list[dict]):
    from datasets import Dataset

    return Dataset.from_list(rows)


def sft(base_dir, chain, tok, rows, args: dict, lora: dict, out_dir, ckpt_dir, seed: int, manifest: dict,
        dtype: str = "float32") -> Path:
    from trl import SFTConfig, SFTTrainer

    cfg = make_config(SFTConfig, args, Path(ckpt_dir), seed, dtype)
    check_lengths(tok, rows, cfg.max_length)
    model = load_chain(base_dir, chain, dtype)
    train = _dataset([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=train, processing_class=tok,
                         peft_config=lora_config(lora))
    return _finish(trainer, Path(ckpt_dir), Path(out_dir), {**manifest, "training_precision": dtype})


def dpo(base_dir, chain, tok, rows, args: dict, lora: dict, out_dir, ckpt_dir, seed: int, manifest: dict,
        dtype: str = "float32") -> Path:
    from trl import DPOConfig, DPOTrainer

    cfg = make_config(DPOConfig, args, Path(ckpt_dir), seed, dtype)
    check_lengths(tok, rows, cfg.max_length, keys_completion=("chosen", "rejected"))
    model = load_chain(base_dir, chain, dtype)
    train = _dataset([{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows])
    trainer = DPOTrainer(model=model, args=cfg, train_dataset=train, processing_class=tok,
                         peft_config=lora_config(lora))
    return _finish(trainer, Path(ckpt_dir), Path(out_dir), {**manifest, "training_precision": dtype})


def grpo(base_dir, chain, tok, rows, reward_funcs, args: dict, lora: dict, out_dir, ckpt_dir, seed: int,
         manifest: dict, dtype: str = "float32") -> Path:
    from trl import GRPOConfig, GRPOTrainer

    cfg = make_config(GRPOConfig, args, Path(ckpt_dir), seed, dtype)
    model = load_chain(base_dir, chain, dtype)
    trainer = GRPOTrainer(model=model, reward_funcs=reward_funcs, args=cfg, train_dataset=_dataset(rows),
                          processing_class=tok, peft_config=lora_config(lora))
    return _finish(trainer, Path(ckpt_dir), Path(out_dir), {**manifest, "training_precision": dtype})


def pack_stages(stages: list[Path], tmp: Path, out: Path, subdir: str = "") -> dict[str, str]:
    """Copy finished stage directories (kept beside an output so a killed job resumes) into the output
    being written at `tmp` (renamed to `out` afterwards), rewriting every manifest's adapter chain to the
    copies. Returns {old stage dir: new stage dir} as absolute paths."""
    moved_dirs = {str(Path(st).resolve()): (out / subdir / Path(st).name.lstrip(".")).resolve() for st in stages}
    moved_adapters = {str(Path(old) / "adapter"): str(new / "adapter") for old, new in moved_dirs.items()}
    for st in stages:
        dest = tmp / subdir / Path(st).name.lstrip(".")
        shutil.copytree(st, dest)
        m = read_manifest(st)
        m["chain"] = [moved_adapters.get(c, c) for c in m["chain"]]
        write_adapter_manifest(dest, m, moved_dirs[str(Path(st).resolve())])
    return {k: str(v) for k, v in moved_dirs.items()}


def relink(manifest_dir: Path, manifest: dict, moved: dict[str, str], tmp_dir: Path) -> None:
    """Write `manifest` (chain through stages listed in `moved`) into tmp_dir, to live at manifest_dir."""
    adapters = {str(Path(old) / "adapter"): str(Path(new) / "adapter") for old, new in moved.items()}
    write_adapter_manifest(tmp_dir, {**manifest, "chain": [adapters.get(c, c) for c in manifest["chain"]]},
                           manifest_dir)

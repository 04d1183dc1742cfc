"""`rpm generate`: an RPM's responses to every sample of an evaluation subset.

The RPM (any of the nine methods) loads once; every subset's prompts go through one generation pass.
The thinking methods' thought is kept in the record; only the response is evaluated. ICL retrieves
its k nearest training samples with the embedder recorded in its manifest.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from rpm.bench.load import read_jsonl
from rpm.runtime.embed import load_embedder
from rpm.runtime.generate import Decoding, generate_texts, generate_texts_vllm
from rpm.runtime.load import load_rpm, read_manifest
from rpm.runtime.reuse import distinct, input_sha256, read_reusable, split_reused
from rpm.train.formats import parse_generation, rpm_messages
from rpm.train.icl import icl_messages, input_texts, neighbours


def adapter_hash(chain: list[str]) -> str:
    """SHA-256 over the adapter weights of the chain: which model wrote a response file."""
    h = hashlib.sha256()
    for adapter in chain:
        for f in sorted(Path(adapter).glob("*.safetensors")):
            h.update(f.read_bytes())
    return h.hexdigest()


def response_rows(samples, raws: list[str], method: str, dec: Decoding, chain_hash: str,
                  keys: list[str] | None = None) -> list[dict]:
    rows = []
    for k, (s, raw) in enumerate(zip(samples, raws)):
        thought, response = parse_generation(raw)
        rows.append({"sample_ID": s.sample_ID, "response": response, "thought": thought, "raw": raw,
                     "method": method, "decoding": asdict(dec), "adapter_sha256": chain_hash,
                     **({"input_sha256": keys[k]} if keys else {})})
    return rows


def _messages(samples, manifest: dict, model_dir: str) -> list[list[dict]]:
    if manifest["method"] != "icl":
        return [rpm_messages(s, thinking=manifest["thinking"]) for s in samples]
    index = np.load(Path(model_dir) / "icl_index.npz")
    train = {s.sample_ID: s for s in read_jsonl((Path(model_dir) / manifest["train_file"]).resolve())}
    ids = [str(i) for i in index["sample_ids"]]
    query = load_embedder(manifest["embedder"]).encode(input_texts(samples))
    nearest = neighbours(index["embeddings"], query, manifest["k"])
    return [icl_messages(s, [train[ids[j]] for j in row]) for s, row in zip(samples, nearest)]


def generate_for_subsets(model_dir: str, bench_files, dec: Decoding, backend: str = "transformers",
                         dtype: str = "float32", reuse=()):
    """Yield (bench_file, response rows) for each subset; the RPM (any of the nine methods) loads once. Rows of
    the `reuse` files whose input is unchanged are copied, not generated again (rpm/runtime/reuse.py)."""
    manifest = read_manifest(model_dir)
    subsets = [(f, read_jsonl(f)) for f in bench_files]  # validate every input before the long work
    model, tok, _ = load_rpm(model_dir, dtype)
    chain_hash = adapter_hash(manifest["chain"])
    merged = None
    if backend == "vllm":  # vLLM reads a plain directory: write the merged RPM once
        merged = tempfile.mkdtemp(prefix="rpm-merged-")
        model.save_pretrained(merged)
        tok.save_pretrained(merged)
    # Every subset's prompts in one pass: the subsets are small, batches across them are full.
    messages = [m for _, samples in subsets for m in _messages(samples, manifest, model_dir)]
    keys = [input_sha256(f"{chain_hash}:{manifest['base']}", dec, m) for m in messages]
    hits, todo = split_reused(keys, read_reusable(reuse))
    unique, source = distinct(keys, todo)
    todo_messages = [messages[k] for k in unique]
    if not todo_messages:
        fresh = []
    elif merged:
        fresh = [o[0] for o in generate_texts_vllm(merged, tok, todo_messages, dec)]
    else:
        fresh = [o[0] for o in generate_texts(model, tok, todo_messages, dec, desc=f"generate {manifest['method']}")]
    generated = dict(zip(unique, fresh))
    raws = {k: generated[source[k]] for k in todo}
    start = 0
    for bench_file, samples in subsets:
        span = range(start, start + len(samples))
        rows = response_rows(samples, [raws.get(k, "") for k in span], manifest["method"], dec, chain_hash,
                             [keys[k] for k in span])
        for r, k in zip(rows, span):
            if k in hits:
                r.update({f: hits[k][f] for f in ("response", "thought", "raw")}, reused_from=hits[k]["reused_from"])
        yield bench_file, rows
        start += len(samples)

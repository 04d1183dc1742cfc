"""`rpm generate`: an RPM's responses to every sample of an evaluation subset.

Decoding as the authors ran it (REFERENCE_FACTS.md): greedy, repetition penalty 1.05, at most 256 new
tokens (512 for the thinking methods), stop at "</Agent Response>". Backends: transformers (CPU or
GPU, batched, left-padded, with a progress bar) and vLLM (GPU machines; imported only on that path).
The thinking methods' thought is kept in the record; only the response is evaluated.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

from rpm.train.formats import CLOSE, parse_generation


@dataclass(frozen=True)
class Decoding:
    max_new_tokens: int = 256
    repetition_penalty: float = 1.05
    stop: str | None = CLOSE  # None: generate up to max_new_tokens (reasoning traces)
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 8
    seed: int = 0


def generate_texts(model, tok, message_lists: list[list[dict]], dec: Decoding, *, num_return_sequences: int = 1,
                   progress: bool = True, desc: str = "generate") -> list[list[str]]:
    """Completions (text after the prompt, cut at the stop string) for each prompt."""
    import torch
    from tqdm.auto import tqdm

    tok.padding_side = "left"  # decoder-only generation continues from the right end
    texts = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in message_lists]
    torch.manual_seed(dec.seed)
    kwargs = dict(max_new_tokens=dec.max_new_tokens, repetition_penalty=dec.repetition_penalty,
                  do_sample=dec.do_sample, num_return_sequences=num_return_sequences,
                  pad_token_id=tok.pad_token_id)
    if dec.stop:
        kwargs.update(stop_strings=[dec.stop], tokenizer=tok)
    if dec.do_sample:
        kwargs.update(temperature=dec.temperature, top_p=dec.top_p)
    # Batches of similar prompt length waste little on padding; results go back in the callers' order.
    order = sorted(range(len(texts)), key=lambda i: (len(tok(texts[i], add_special_tokens=False)["input_ids"]), i))
    done: dict[int, list[str]] = {}
    bar = tqdm(range(0, len(texts), dec.batch_size), desc=desc, unit="batch", disable=not progress)
    with torch.inference_mode():
        for start in bar:
            idx = order[start:start + dec.batch_size]
            batch = tok([texts[i] for i in idx], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(model.device)
            ids = model.generate(**batch, **kwargs)[:, batch["input_ids"].shape[1]:]
            decoded = tok.batch_decode(ids, skip_special_tokens=True)
            for k, i in enumerate(idx):
                done[i] = [cut_at_stop(t, dec.stop)
                           for t in decoded[k * num_return_sequences:(k + 1) * num_return_sequences]]
    return [done[i] for i in range(len(texts))]


def cut_at_stop(text: str, stop: str) -> str:
    """Keep the stop string itself (it closes the response tag) and drop what follows."""
    if not stop:
        return text
    i = text.find(stop)
    return text if i < 0 else text[:i + len(stop)]


def vllm_sampling_kwargs(dec: Decoding) -> dict:
    """The vLLM SamplingParams equivalent of `dec` (greedy is temperature 0 there)."""
    return {"max_tokens": dec.max_new_tokens, "repetition_penalty": dec.repetition_penalty,
            "temperature": dec.temperature if dec.do_sample else 0.0, "top_p": dec.top_p if dec.do_sample else 1.0,
            "stop": [dec.stop] if dec.stop else [], "include_stop_str_in_output": True, "seed": dec.seed}


def generate_texts_vllm(model_dir: str, tok, message_lists: list[list[dict]], dec: Decoding) -> list[list[str]]:
    """GPU path: vLLM on a merged model directory. Cannot run on this project's CPU machines."""
    from vllm import LLM, SamplingParams  # noqa: PLC0415 - GPU machines only

    llm = LLM(model=model_dir, seed=dec.seed)
    texts = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in message_lists]
    results = llm.generate(texts, SamplingParams(**vllm_sampling_kwargs(dec)))
    return [[o.text for o in r.outputs] for r in results]


def adapter_hash(chain: list[str]) -> str:
    """SHA-256 over the adapter weights of the chain: which model wrote a response file."""
    h = hashlib.sha256()
    for adapter in chain:
        for f in sorted(Path(adapter).glob("*.safetensors")):
            h.update(f.read_bytes())
    return h.hexdigest()


def response_rows(samples, raws: list[str], method: str, dec: Decoding, chain_hash: str) -> list[dict]:
    rows = []
    for s, raw in zip(samples, raws):
        thought, response = parse_generation(raw)
        rows.append({"sample_ID": s.sample_ID, "response": response, "thought": thought, "raw": raw,
                     "method": method, "decoding": asdict(dec), "adapter_sha256": chain_hash})
    return rows


def _messages(samples, manifest: dict, model_dir: str) -> list[list[dict]]:
    from rpm.train.formats import rpm_messages

    if manifest["method"] != "icl":
        return [rpm_messages(s, thinking=manifest["thinking"]) for s in samples]
    import numpy as np

    from rpm.bench.load import read_jsonl
    from rpm.metrics.divergence import load_embedder
    from rpm.train.icl import icl_messages, input_texts, neighbours

    index = np.load(Path(model_dir) / "icl_index.npz")
    train = {s.sample_ID: s for s in read_jsonl((Path(model_dir) / manifest["train_file"]).resolve())}
    ids = [str(i) for i in index["sample_ids"]]
    query = load_embedder(manifest["embedder"]).encode(input_texts(samples))
    nearest = neighbours(index["embeddings"], query, manifest["k"])
    return [icl_messages(s, [train[ids[j]] for j in row]) for s, row in zip(samples, nearest)]


def generate_for_subsets(model_dir: str, bench_files, dec: Decoding, backend: str = "transformers"):
    """Yield (bench_file, response rows) for each subset; the RPM (any of the nine methods) loads once."""
    from rpm.bench.load import read_jsonl
    from rpm.train.trainers import load_rpm, read_manifest

    manifest = read_manifest(model_dir)
    subsets = [(f, read_jsonl(f)) for f in bench_files]  # validate every input before the long work
    model, tok, _ = load_rpm(model_dir)
    chain_hash = adapter_hash(manifest["chain"])
    merged = None
    if backend == "vllm":  # vLLM reads a plain directory: write the merged RPM once
        import tempfile

        merged = tempfile.mkdtemp(prefix="rpm-merged-")
        model.save_pretrained(merged)
        tok.save_pretrained(merged)
    # Every subset's prompts in one pass: the subsets are small, batches across them are full.
    messages = [m for _, samples in subsets for m in _messages(samples, manifest, model_dir)]
    if merged:
        raws = [o[0] for o in generate_texts_vllm(merged, tok, messages, dec)]
    else:
        raws = [o[0] for o in generate_texts(model, tok, messages, dec, desc=f"generate {manifest['method']}")]
    start = 0
    for bench_file, samples in subsets:
        yield bench_file, response_rows(samples, raws[start:start + len(samples)], manifest["method"], dec, chain_hash)
        start += len(samples)

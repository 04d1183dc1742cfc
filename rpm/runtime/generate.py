"""Generation: completions of chat prompts, batched by prompt length, cut at a stop string.

Decoding as the authors ran it: greedy, repetition penalty 1.05, at most 256 new tokens (512 for the
thinking methods), stop at "</Agent Response>". Backends: transformers (CPU or GPU, batched,
left-padded, with a progress bar) and vLLM (GPU machines only; imported only on that path, not
exercised by the tests here).
"""

from __future__ import annotations

from dataclasses import dataclass

from rpm.prompts import RESPONSE_CLOSE


@dataclass(frozen=True)
class Decoding:
    max_new_tokens: int = 256
    repetition_penalty: float = 1.05
    stop: str | None = RESPONSE_CLOSE  # None: generate up to max_new_tokens (reasoning traces)
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

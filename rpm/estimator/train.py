"""Training the estimator: cold start (SFT on teacher traces) and co-evolution (alternating GRPO).

Modules, each a trained model directory (rpm_method.json: base + LoRA chain):
  reasoner  q_phi1: Table 15 prompt, golden withheld -> the teacher's whole thought
  policy    q_phi2: Table 17 prompt with the teacher's core features -> "## Agent Response\\n" + golden
  pxy       the "w/o Reasoning" model of p(y|x): Table 18 prompt -> the same target (also EMI's estimator)
The cold-start reasoner + policy are the "w/o CoRL" estimator of Table 1; after K co-evolution
iterations they are the CoRL estimator.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rpm.bench.load import read_jsonl
from rpm.core.errors import RpmInputError
from rpm.estimator.formats import core_features, reasoning_messages
from rpm.estimator.rewards import policy_rewards, reasoner_rewards
from rpm.io import atomic_dir, write_jsonl
from rpm.metrics.inputs import scored_continuation, scorer_messages
from rpm.runtime.generate import Decoding, generate_texts
from rpm.runtime.load import ADAPTER_MANIFEST, load_model, load_rpm, load_tokenizer, read_manifest
from rpm.runtime.precision import dtype_of
from rpm.runtime.reuse import distinct, input_sha256, read_reusable, split_reused
from rpm.train import trainers
from rpm.train.methods import read_rows
from rpm.train.respond import adapter_hash

MODULES = ("reasoner", "policy", "pxy")


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def cold_start(module: str, *, base: str, train_file: str, traces_file: str | None, settings: dict, out: str,
               ckpt: str, seed: int) -> Path:
    if module not in MODULES:
        raise RpmInputError(f"unknown estimator module {module!r}; choose one of {MODULES}")

    samples = read_jsonl(train_file)
    tok = load_tokenizer(base)
    if module == "pxy":
        rows = [{"sample_ID": s.sample_ID, "prompt": scorer_messages(s, None),
                 "completion": _assistant(scored_continuation(s.agent_golden_response, with_reasoning=False))}
                for s in samples]
    else:
        if not traces_file:
            raise RpmInputError(f"estimator module {module} needs the teacher's traces (--traces)")
        traces = read_rows(traces_file, "trace", samples)
        kept = [s for s in samples if s.sample_ID in traces]
        if not kept:
            raise RpmInputError(f"{traces_file}: no trace for any training sample; see the teacher's report")
        if module == "reasoner":
            rows = [{"sample_ID": s.sample_ID, "prompt": reasoning_messages(s),
                     "completion": _assistant(traces[s.sample_ID].get("thought") or traces[s.sample_ID]["trace"])}
                    for s in kept]
        else:
            rows = [{"sample_ID": s.sample_ID, "prompt": scorer_messages(s, traces[s.sample_ID]["trace"]),
                     "completion": _assistant(scored_continuation(s.agent_golden_response))} for s in kept]
    manifest = {"method": f"estimator_{module}", "module": module, "base": base, "chain": [], "thinking": False,
                "seed": seed, "trained_samples": len(rows)}
    return trainers.sft(base, [], tok, rows, settings["sft"], settings.get("lora", {}), Path(out), Path(ckpt), seed,
                        manifest, dtype_of(settings.get("precision"), "training"))


def reason_texts(model_dir: str | Path, samples, dec: Decoding, *, model=None, tok=None, desc="reason",
                 progress: bool = True, dtype: str = "float32"):
    """Greedy thoughts of a reasoner for each sample (golden withheld) -> [(r, thought, marker_found)]."""

    if model is None:
        model, tok, _ = load_rpm(model_dir, dtype)
    outs = generate_texts(model, tok, [reasoning_messages(s) for s in samples], dec, desc=desc, progress=progress)
    result = []
    for o in outs:
        r, found = core_features(o[0])
        result.append((r, o[0], found))
    return result


def reason_files(reasoner: str | Path, bench_files, out_dir: str | Path, dec: Decoding, *, model=None, tok=None,
                 progress: bool = True, dtype: str = "float32", reuse=()) -> list[tuple[Path, list[dict]]]:
    """`rpm reason`: r = q_phi1(x) for every sample of each benchmark file, written to out_dir/{subset}.jsonl
    as {"sample_ID", "reasoning", "thought", "marker_found", "input_sha256"}. Every subset goes in one pass
    (full batches); rows of the `reuse` files whose input is unchanged are copied (rpm/runtime/reuse.py)."""

    subsets = [(Path(f), read_jsonl(f)) for f in bench_files]
    manifest = read_manifest(reasoner)
    everyone = [s for _, samples in subsets for s in samples]
    keys = [input_sha256(f"{adapter_hash(manifest['chain'])}:{manifest['base']}", dec, reasoning_messages(s))
            for s in everyone]
    hits, todo = split_reused(keys, read_reusable(reuse))
    unique, source = distinct(keys, todo)
    fresh = {}
    if unique:
        if model is None:
            model, tok, _ = load_rpm(reasoner, dtype)
        traces = dict(zip(unique, reason_texts(reasoner, [everyone[k] for k in unique], dec, model=model, tok=tok,
                                               progress=progress)))
        fresh = {k: traces[source[k]] for k in todo}
    written, k = [], 0
    for f, samples in subsets:
        rows = []
        for s in samples:
            if k in hits:
                h = hits[k]
                rows.append({"sample_ID": s.sample_ID, "reasoning": h["reasoning"], "thought": h["thought"],
                             "marker_found": h["marker_found"], "input_sha256": keys[k],
                             "reused_from": h["reused_from"]})
            else:
                r, t, found = fresh[k]
                rows.append({"sample_ID": s.sample_ID, "reasoning": r or "(empty)", "thought": t,
                             "marker_found": found, "input_sha256": keys[k]})
            k += 1
        out = Path(out_dir) / f"{f.stem}.jsonl"
        write_jsonl(out, rows)
        written.append((out, rows))
    return written


def coevolve(*, base: str, reasoner: str, policy: str, pool_file: str | list[str], settings: dict, out: str,
             ckpt: str, seed: int) -> Path:
    """K iterations: q_phi1 by GRPO against q_phi2 of the previous iteration, then q_phi2 by GRPO on the
    new q_phi1's (greedy) reasoning, rewarded against pi_ref = q_phi2 of the previous iteration."""

    files = [pool_file] if isinstance(pool_file, str) else list(pool_file)
    pool = [s for f in files for s in read_jsonl(f)]
    by_id = {s.sample_ID: s for s in pool}
    tok = load_tokenizer(base)
    out, ckpt = Path(out), Path(ckpt)
    k_iters = int(settings.get("iterations", 2))
    batch = int(settings.get("reward_batch_size", 4))
    rdec = Decoding(max_new_tokens=int(settings.get("reason_max_new_tokens", 256)),
                    batch_size=int(settings.get("reason_batch_size", 8)), seed=seed, stop=None)
    lora = settings.get("lora", {})
    dt, gen_dt = dtype_of(settings.get("precision"), "training"), dtype_of(settings.get("precision"), "generation")
    q1, q2 = Path(reasoner), Path(policy)
    stages, log = [], []
    for it in range(1, k_iters + 1):
        stage = out.parent / f".{out.name}.iter{it}-reasoner"
        if not (stage / ADAPTER_MANIFEST).is_file():
            rewards = reasoner_rewards(load_model(q2, dt), tok, by_id, batch)
            rows = [{"prompt": reasoning_messages(s), "sample_ID": s.sample_ID} for s in pool]
            m = read_manifest(q1)
            trainers.grpo(base, m["chain"], tok, rows, rewards, settings["grpo_reasoner"], lora, stage,
                          ckpt / f"iter{it}-reasoner", seed + it, {**m, "iteration": it}, dt)
        q1 = stage
        stages.append(stage)
        stage = out.parent / f".{out.name}.iter{it}-policy"
        if not (stage / ADAPTER_MANIFEST).is_file():
            rs = [r for r, _, _ in reason_texts(q1, pool, rdec, desc=f"iteration {it} reasoning", dtype=gen_dt)]
            rewards = policy_rewards(load_model(q2, dt), tok, by_id, batch)  # pi_ref: q_phi2 of iteration it-1
            rows = [{"prompt": scorer_messages(s, r), "sample_ID": s.sample_ID, "reasoning": r}
                    for s, r in zip(pool, rs)]
            m = read_manifest(q2)
            trainers.grpo(base, m["chain"], tok, rows, rewards, settings["grpo_policy"], lora, stage,
                          ckpt / f"iter{it}-policy", seed + it, {**m, "iteration": it}, dt)
        q2 = stage
        stages.append(stage)
    for st in stages:
        module = "reasoner" if st.name.endswith("reasoner") else "policy"
        it = int(st.name.rsplit(".iter", 1)[1].split("-")[0])
        for row in (json.loads(line) for line in (st / "train_log.jsonl").read_text().splitlines()):
            rewards = {k: v for k, v in row.items() if k.startswith("reward")}
            if rewards:
                log.append({"iteration": it, "module": module, "step": row.get("step"), **rewards})
    with atomic_dir(out) as tmp:
        moved = trainers.pack_stages(stages, tmp, out, subdir="stages")
        for name, last in (("reasoner", q1), ("policy", q2)):
            (tmp / name).mkdir()
            m = read_manifest(last)
            trainers.relink(out / name, {**m, "method": f"estimator_{name}", "iterations": k_iters}, moved, tmp / name)
        with open(tmp / "coevolution_log.jsonl", "w", encoding="utf-8") as f:
            for row in log:
                f.write(json.dumps(row) + "\n")
    for st in stages:
        shutil.rmtree(st, ignore_errors=True)
    return out

"""The nine RPM training methods of Appendix E.1-E.2 (`rpm train --method M`).

method        starts from      trainer         data
icl           base             none            5 nearest ID training samples in the prompt
sft           base             SFTTrainer      Table 21 prompt -> golden response
da            base             SFTTrainer      ID samples + teacher-augmented dialogues (Table 22)
dpo           sft              DPOTrainer      chosen = golden, rejected = teacher without persona/character (Table 23)
rft           sft              SFTTrainer      best of `samples` SFT rollouts by the Table 24 reward
rl            sft              GRPOTrainer     Table 24 reward, `num_generations` rollouts per prompt
thinking_sft  base             SFTTrainer      teacher thought (Table 15 core features) then golden response
thinking_rl   thinking_sft     GRPOTrainer     Table 24 reward on the response after the thought
corl          thinking_sft     GRPOTrainer x2K co-evolving thought (likelihood reward) and response (ratio reward)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rpm.bench.load import read_jsonl
from rpm.bench.schema import Sample
from rpm.core.errors import RpmInputError
from rpm.core.names import METHODS, PARENT, THINKING_METHODS
from rpm.io import atomic_dir, iter_jsonl
from rpm.runtime.embed import load_embedder
from rpm.runtime.generate import Decoding, generate_texts
from rpm.runtime.load import (
    ADAPTER_MANIFEST,
    load_chain,
    load_model,
    load_tokenizer,
    read_manifest,
    write_adapter_manifest,
)
from rpm.runtime.precision import dtype_of
from rpm.train import trainers
from rpm.train.formats import parse_generation, response_block, rpm_messages, thinking_target
from rpm.train.icl import input_texts
from rpm.train.rewards import RatioReward, Table24Reward, ThoughtLikelihoodReward, judge_logprob

TEACHER_TASK = {"da": "augment", "dpo": "reject", "thinking_sft": "trace"}


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def sft_rows(samples: list[Sample]) -> list[dict]:
    return [{"sample_ID": s.sample_ID, "prompt": rpm_messages(s),
             "completion": _assistant(response_block(s.agent_golden_response))} for s in samples]


def grpo_rows(samples: list[Sample], thinking: bool) -> list[dict]:
    rows = []
    for s in samples:
        f = s.prompt_fields(with_golden=False)
        rows.append({"prompt": rpm_messages(s, thinking=thinking), "sample_ID": s.sample_ID,
                     "user_persona": f["user_persona"], "agent_character": f["agent_character"],
                     "str_dialogue_context": f["str_dialogue_context"], "golden": s.agent_golden_response})
    return rows


def read_rows(path: str | Path, field: str, samples: list[Sample]) -> dict[str, dict]:
    """A teacher file (JSONL rows keyed by sample_ID) checked against the training samples."""
    def error(msg, line=None, sid=None):
        where = ", ".join([str(path)] + ([f"line {line}"] if line else []) + ([f"sample {sid!r}"] if sid else []))
        return RpmInputError(f"{where}: {msg}")

    rows = {}
    for lineno, r in iter_jsonl(path, error):
        sid = r.get("sample_ID") if isinstance(r, dict) else None
        if not isinstance(sid, str) or not sid:
            raise error('missing or non-string "sample_ID"', lineno)
        if not isinstance(r.get(field), str) or not r[field].strip():
            raise error(f"field {field!r} is missing or empty", lineno, sid)
        if sid in rows:
            raise error("duplicate sample ID", lineno, sid)
        rows[sid] = r
    extra = sorted(set(rows) - {s.sample_ID for s in samples})
    if extra:
        raise error(f"sample IDs not in the training split: {extra[:10]}")
    return rows


def train(method: str, *, base: str, train_file: str, out: str, ckpt: str, settings: dict, seed: int,
          parent: str | None = None, teacher_file: str | None = None) -> Path:
    """Train one method; `settings` holds the LoRA settings and TRL config fields per trainer, and `precision`
    ({training, generation}: float32 or bfloat16; float32 when absent)."""
    if method not in METHODS:
        raise RpmInputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method in PARENT and not parent:
        raise RpmInputError(f"method {method} starts from the {PARENT[method]} model: pass --parent")
    if method in TEACHER_TASK and not teacher_file:
        raise RpmInputError(f"method {method} needs the teacher's {TEACHER_TASK[method]} file: pass --teacher-file")

    samples = read_jsonl(train_file)
    tok = load_tokenizer(base)
    chain = read_manifest(parent)["chain"] if parent else []
    manifest = {"method": method, "base": base, "chain": chain, "thinking": method in THINKING_METHODS, "seed": seed,
                "parent": parent, "teacher_file": teacher_file}
    lora = settings.get("lora", {})
    out, ckpt = Path(out), Path(ckpt)
    dt = dtype_of(settings.get("precision"), "training")

    if method == "icl":
        return _icl(samples, train_file, settings.get("icl", {}), out, manifest)
    if method == "sft":
        return trainers.sft(base, chain, tok, sft_rows(samples), settings["sft"], lora, out, ckpt, seed, manifest, dt)
    if method == "da":
        augmented = read_jsonl(teacher_file) if Path(teacher_file).stat().st_size else []
        manifest["augmented_samples"] = len(augmented)
        return trainers.sft(base, chain, tok, sft_rows(samples + augmented), settings["sft"], lora, out, ckpt, seed,
                            manifest, dt)
    if method == "thinking_sft":
        traces = read_rows(teacher_file, "trace", samples)
        rows = [{"sample_ID": s.sample_ID, "prompt": rpm_messages(s, thinking=True),
                 "completion": _assistant(thinking_target(traces[s.sample_ID]["trace"], s.agent_golden_response))}
                for s in samples if s.sample_ID in traces]
        _require(rows, method, teacher_file)
        manifest["trained_samples"] = len(rows)
        return trainers.sft(base, chain, tok, rows, settings["sft"], lora, out, ckpt, seed, manifest, dt)
    if method == "dpo":
        rejected = read_rows(teacher_file, "rejected", samples)
        rows = [{"sample_ID": s.sample_ID, "prompt": rpm_messages(s),
                 "chosen": _assistant(response_block(s.agent_golden_response)),
                 "rejected": _assistant(response_block(rejected[s.sample_ID]["rejected"]))}
                for s in samples if s.sample_ID in rejected]
        _require(rows, method, teacher_file)
        manifest["trained_samples"] = len(rows)
        return trainers.dpo(base, chain, tok, rows, settings["dpo"], lora, out, ckpt, seed, manifest, dt)
    if method == "rft":
        rows, picked = _rft_rows(samples, base, chain, tok, settings, seed)
        manifest["rft_selection"] = picked
        return trainers.sft(base, chain, tok, rows, settings["sft"], lora, out, ckpt, seed, manifest, dt)
    if method in ("rl", "thinking_rl"):
        reward = Table24Reward(load_model(base, dt), tok, settings.get("reward", {}).get("batch_size", 4))
        return trainers.grpo(base, chain, tok, grpo_rows(samples, method == "thinking_rl"), [reward],
                             settings["grpo"], lora, out, ckpt, seed, manifest, dt)
    return _corl(samples, base, chain, tok, settings, out, ckpt, seed, manifest)


def _require(rows, method, teacher_file):
    if not rows:
        raise RpmInputError(f"method {method}: the teacher file {teacher_file} holds no usable sample "
                            "(see its report); use a stronger teacher or the lenient trace policy")


def _rft_rows(samples, base, chain, tok, settings, seed):
    """Sample `samples` responses per prompt from the SFT model; keep the best by the Table 24 reward."""
    cfg = settings.get("rft", {})
    k = int(cfg.get("samples", 5))
    if cfg.get("max_prompts") and cfg["max_prompts"] < len(samples):  # small configs: a seeded share
        import random

        keep = sorted(random.Random(f"{seed}:rft").sample(range(len(samples)), int(cfg["max_prompts"])))
        samples = [samples[i] for i in keep]
    dec = Decoding(max_new_tokens=int(cfg.get("max_new_tokens", 256)), do_sample=True,
                   temperature=float(cfg.get("temperature", 1.0)), top_p=float(cfg.get("top_p", 1.0)),
                   batch_size=int(cfg.get("batch_size", 4)), seed=seed)
    policy = load_chain(base, chain, dtype_of(settings.get("precision"), "generation"))
    outs = generate_texts(policy, tok, [rpm_messages(s) for s in samples], dec, num_return_sequences=k,
                          desc="rft rollouts")
    del policy
    ref = load_model(base, dtype_of(settings.get("precision"), "training"))  # the base model before SFT (E.1)
    rows, picked = [], []
    for s, cands in zip(samples, outs):
        responses = [parse_generation(c)[1] or "(empty)" for c in cands]
        f = s.prompt_fields(with_golden=False)
        fields = [dict(f, golden=s.agent_golden_response)] * len(responses)
        lp = judge_logprob(ref, tok, fields, responses, settings.get("reward", {}).get("batch_size", 4))
        best = int(np.argmax(lp))
        rows.append({"sample_ID": s.sample_ID, "prompt": rpm_messages(s),
                     "completion": _assistant(response_block(responses[best]))})
        picked.append({"sample_ID": s.sample_ID, "rewards": np.exp(lp).round(6).tolist(), "best": best})
    return rows, picked


def _corl(samples, base, chain, tok, settings, out: Path, ckpt: Path, seed, manifest):
    """E.2: K iterations; each trains the thought with the likelihood reward (policy frozen at the
    iteration's start as the scorer), then the response with the ratio reward (base as reference)."""
    k_iters = int(settings.get("corl", {}).get("iterations", 2))
    rows = grpo_rows(samples, thinking=True)
    batch = settings.get("reward", {}).get("batch_size", 4)
    dt = dtype_of(settings.get("precision"), "training")
    ref = load_model(base, dt)
    stages = []
    for it in range(1, k_iters + 1):
        for part in ("thought", "response"):
            stage_out = out.parent / f".stage-{it}-{part}"  # beside the output: survives a kill
            if not (stage_out / ADAPTER_MANIFEST).is_file():  # finished stages are kept: a rerun resumes
                if part == "thought":
                    reward = ThoughtLikelihoodReward(load_chain(base, chain, dt), tok, batch)
                else:
                    reward = RatioReward(ref, tok, batch)
                trainers.grpo(base, chain, tok, rows, [reward], settings["grpo"], settings.get("lora", {}),
                              stage_out, ckpt / f"{it}-{part}", seed + it, {**manifest, "chain": chain}, dt)
            chain = read_manifest(stage_out)["chain"]
            stages.append(str(stage_out))
    # The final model directory: every stage (adapter and training log) and the chain through them.
    import shutil

    with atomic_dir(out) as tmp:
        moved = trainers.pack_stages([Path(st) for st in stages], tmp, out)
        trainers.relink(out, {**manifest, "chain": chain, "stages": [Path(st).name.lstrip(".") for st in stages]},
                        moved, tmp)
    for st in stages:
        shutil.rmtree(st, ignore_errors=True)
    return out


def _icl(samples, train_file, cfg: dict, out: Path, manifest: dict) -> Path:
    """No training: embed every ID training input once; generation retrieves the k nearest."""
    embedder = load_embedder(cfg.get("embedder", "minilm"))
    emb = embedder.encode(input_texts(samples))
    with atomic_dir(out) as tmp:
        np.savez(tmp / "icl_index.npz", embeddings=emb.astype(np.float32),
                 sample_ids=np.array([s.sample_ID for s in samples]))
        write_adapter_manifest(tmp, {**manifest, "k": int(cfg.get("k", 5)), "embedder": embedder.name,
                                      "train_file": os.path.relpath(Path(train_file).resolve(), out.resolve())},
                                out)
    return out

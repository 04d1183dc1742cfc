"""`rpm train` and `rpm generate`: the nine RPM methods and their responses."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rpm.cli_shared import CONTEXT_SETTINGS, dtype_option, parse_mapping
from rpm.core.names import METHODS
from rpm.io import write_jsonl
from rpm.runtime.generate import Decoding
from rpm.runtime.load import set_threads
from rpm.train.methods import train
from rpm.train.respond import generate_for_subsets


@click.command("train", context_settings=CONTEXT_SETTINGS)
@click.option("--method", required=True, type=click.Choice(METHODS),
    help="One of the nine RPM methods of Appendix E.1-E.2.")
@click.option("--base", required=True, type=click.Path(exists=True, file_okay=False),
              help="Base model directory (from `rpm model prepare`).")
@click.option("--train-file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="ID training split (results/data/bench/train.jsonl).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Model directory to write: adapter/, rpm_method.json, train_log.jsonl.")
@click.option("--checkpoints", required=True, type=click.Path(file_okay=False),
              help="Checkpoint directory (kept when a job dies; training resumes from its last checkpoint).")
@click.option("--settings", required=True, metavar="YAML",
              help="Inline YAML or a file: lora {r, alpha, dropout, target_modules}; sft / dpo / grpo: fields of "
                   "TRL's SFTConfig / DPOConfig / GRPOConfig; rft {samples, temperature, max_new_tokens}; "
                   "icl {k, embedder}; corl {iterations}; reward {batch_size}; precision {training, generation}: "
                   "float32 or bfloat16 (TRL's bf16/fp16 flags are refused here: precision sets them).")
@click.option("--parent", type=click.Path(exists=True, file_okay=False), default=None,
              help="Model directory the method starts from (sft for dpo/rft/rl; thinking_sft for thinking_rl/corl).")
@click.option("--teacher-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Teacher output: augmented samples (da), rejected responses (dpo) or traces (thinking_sft).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads (the job's cores).")
def train_cmd(method, base, train_file, out, checkpoints, settings, parent, teacher_file, seed, threads):
    """Train one role-playing model (a LoRA adapter on the base model) with the method's TRL trainer."""
    set_threads(threads)
    train(method, base=base, train_file=train_file, out=out, ckpt=checkpoints,
          settings=parse_mapping(settings, "--settings"), seed=seed, parent=parent, teacher_file=teacher_file)
    click.echo(f"trained {method}: {out}")


def _vllm_interpreter(backend: str) -> None:
    """vLLM cannot share an environment with this package's pins (containers/vllm-constraints.txt): when it
    is not importable here, run the same command under the interpreter RPM_VLLM_PYTHON names."""
    import importlib.util
    import os

    if backend != "vllm" or importlib.util.find_spec("vllm") is not None:
        return
    python = os.environ.get("RPM_VLLM_PYTHON")
    if not python:
        raise click.ClickException("the vllm backend needs vLLM: install the [gpu] extra, or set RPM_VLLM_PYTHON "
                                   "to an interpreter that has it (the GPU container sets it)")
    os.execv(python, [python, "-m", "rpm", *sys.argv[1:]])


@click.command("generate", context_settings=CONTEXT_SETTINGS)
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="A trained RPM directory (from `rpm train`).")
@click.option("--bench-file", "bench_files", required=True, multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="An evaluation subset (results/data/bench/{subset}.jsonl); repeat for several subsets, so the "
                   "model is loaded once.")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False),
              help="Writes {subset}.jsonl per bench file: sample_ID, response, thought, raw, method, decoding, "
                   "adapter_sha256.")
@click.option("--backend", type=click.Choice(["transformers", "vllm"]), default="transformers", show_default=True,
              help="vllm needs a GPU machine with the [gpu] extra installed.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True,
              help="The paper: 256 (512 for the thinking methods).")
@click.option("--repetition-penalty", type=float, default=1.05, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--reuse", "reuse_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Earlier response files (e.g. the sweep's previous severity): a sample whose prompt, model and "
                   "decoding are unchanged gets that row (with `reused_from`) instead of a new generation. Repeatable.")
@dtype_option("generation")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads (the job's cores).")
def generate_cmd(model_dir, bench_files, out_dir, backend, max_new_tokens, repetition_penalty, batch_size, seed,
                 reuse_files, dtype, threads):
    """Greedy responses of an RPM to every sample of each subset (stop at </Agent Response>)."""
    set_threads(threads)
    _vllm_interpreter(backend)
    dec = Decoding(max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty, batch_size=batch_size,
                   seed=seed)
    for bench_file, rows in generate_for_subsets(model_dir, bench_files, dec, backend, dtype, reuse_files):
        out = Path(out_dir) / f"{Path(bench_file).stem}.jsonl"
        write_jsonl(out, rows)
        empty, reused = sum(not r["response"] for r in rows), sum("reused_from" in r for r in rows)
        click.echo(f"wrote {len(rows)} responses to {out} ({reused} reused, {len(rows) - reused} generated"
                   + (f", {empty} empty)" if empty else ")"))

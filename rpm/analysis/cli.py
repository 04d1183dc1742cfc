"""`rpm analyze <name>`: one verb per figure or table of the paper, each writing a CSV and a figure
(PNG/PDF by the suffix of each --figure), and, where the figure correlates, its rows of
correlations.csv (merged by `rpm analyze correlations`)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from rpm.analysis import bound_tightness, judge_agreement, pilot
from rpm.analysis.bench_stats import TABLE2_COLUMNS, table2, table2_figure
from rpm.analysis.bound_tightness import (
    FIG5A_COLUMNS,
    TABLE13_COLUMNS,
    fig5a,
    fig5b,
    read_bound,
    table13,
)
from rpm.analysis.cli_checks import power_cmd, roleplay_cmd
from rpm.analysis.common import judge_validity, save_figure, shift_name
from rpm.analysis.control import CONTROL_COLUMNS, FRACTIONS, SLOPE_COLUMNS, control_curves, control_figure
from rpm.analysis.correlation import CORRELATION_COLUMNS, merge_correlation_files
from rpm.analysis.cost import TABLE14_COLUMNS, table14, table14_figure
from rpm.analysis.divergence_terms import TABLE12_COLUMNS, default_rpm, table12, table12_figure
from rpm.analysis.judge_agreement import fig4, fig4_points
from rpm.analysis.methods import FIG7_COLUMNS, fig6, fig7, fig7_rows, table20, table20_columns, table20_figure
from rpm.analysis.pilot import fig2, pilot_points
from rpm.analysis.runtime import RUNTIME_COLUMNS, runtime_figure, runtime_table
from rpm.analysis.summary import SUMMARY_COLUMNS, summary_figure, summary_rows
from rpm.analysis.sweep import parse_runs, write_sweep
from rpm.cli_shared import CONTEXT_SETTINGS, RpmGroup
from rpm.core.names import SUBSET_NAMES
from rpm.metrics.matrices import load
from rpm.metrics.mi import MIConfig
from rpm.metrics.tables import write_csv


def _figures(f):
    return click.option("--figure", "figures", multiple=True, required=True, type=click.Path(dir_okay=False),
                        help="Figure output; repeat for each format (.png, .pdf or .svg by suffix).")(f)


def _out(help_text):
    return click.option("--out", required=True, type=click.Path(dir_okay=False), help=help_text)


def _boot(f):
    f = click.option("--n-boot", type=click.IntRange(min=0), default=1000, show_default=True,
                     help="Bootstrap resamples of the points for the correlation intervals (0: none).")(f)
    f = click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True,
                     help="Level of the bootstrap intervals.")(f)
    return click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")(f)


def _correlations_out(f):
    return click.option("--correlations", required=True, type=click.Path(dir_okay=False),
                        help="Output: this figure's rows of correlations.csv.")(f)


def _judge(f):
    return click.option("--judge", default="ensemble", show_default=True,
                        help="Judge whose WinRate is used (a judge name of scores.csv, or 'ensemble').")(f)


def _estimator(f):
    return click.option("--estimator", default=None,
                        help="Estimator rows to use (default: the table must hold exactly one).")(f)


def _id_subset(f):
    return click.option("--id-subset", default="id_test", show_default=True, type=click.Choice(SUBSET_NAMES),
                        help="The in-distribution subset (the reference of every difference).")(f)


def _write(path, rows, columns):
    # numpy scalars as plain Python numbers, so the CSV holds 0.5, not np.float64(0.5).
    write_csv(path, [{k: v.item() if isinstance(v, np.generic) else v for k, v in r.items()} for r in rows], columns)


def _bound_column(f):
    return click.option("--column", default="bound", show_default=True,
                        type=click.Choice(["bound", "bound_scale_adjusted"]),
                        help="Which bound of bound.csv: Theorem 3.4's, or the EMID release's scale-adjusted one.")(f)


@click.group("analyze", cls=RpmGroup, context_settings=CONTEXT_SETTINGS)
def analyze():
    """The paper's figures and tables from the metric, judge and benchmark files."""


analyze.add_command(roleplay_cmd)
analyze.add_command(power_cmd)


@analyze.command("correlations")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@_out("Output correlations.csv: the rows of every given per-figure correlation file.")
def correlations_cmd(files, out):
    """Merge the per-figure correlation CSVs (fig2, fig4, fig5a, table13) into one correlations.csv."""
    rows = (merge_correlation_files(files))
    _write(out, rows, CORRELATION_COLUMNS)
    click.echo(f"wrote {len(rows)} correlation rows to {out}")


@analyze.command("fig2")
@click.option("--scores", required=True, type=click.Path(dir_okay=False), help="The judge's scores.csv.")
@click.option("--divergences", required=True, type=click.Path(dir_okay=False), help="divergences.csv (rpm divergence).")
@click.option("--method", default="sft", show_default=True, help="Training method of the pilot's RPMs.")
@click.option("--embedder", default=None, help="Embedder rows of divergences.csv (default: the only one).")
@_judge
@_id_subset
@_out("Output CSV: one row per (rpm, OOD subset) with D_JS, WinRate, WinRate on ID, included/note.")
@_correlations_out
@_figures
@_boot
def fig2_cmd(scores, divergences, method, embedder, judge, id_subset, out, correlations, figures, n_boot,
             confidence, seed):
    """Figure 2 (pilot study): WinRate of the SFT RPMs against D_JS(P_X||Q_X) per OOD subset."""
    def go():
        pts = pilot_points(scores, divergences, method=method, judge=judge, id_subset=id_subset, embedder=embedder)
        return pts, fig2(pts, n_boot=n_boot, seed=seed, confidence=confidence,
                         judge_validity=judge_validity(scores, judge))

    pts, (rows, corr, fig) = go()
    _write(out, rows, pilot.POINT_COLUMNS)
    _write(correlations, corr, CORRELATION_COLUMNS)
    (save_figure(fig, figures))
    click.echo(f"wrote {out} ({len(rows)} points, {pts.n_excluded} excluded), {correlations}, {', '.join(figures)}")


@analyze.command("fig4")
@click.option("--remi", "remi_csv", required=True, type=click.Path(dir_okay=False), help="remi.csv (R-EMI, R-EMID).")
@click.option("--emi", "emi_csv", required=True, type=click.Path(dir_okay=False), help="emi.csv (EMI, EMID).")
@click.option("--scores", required=True, type=click.Path(dir_okay=False), help="The judge's scores.csv.")
@click.option("--remi-estimator", default=None, help="Estimator rows of remi.csv (default: the only one).")
@click.option("--emi-estimator", default=None, help="Estimator rows of emi.csv (default: the only one).")
@_judge
@_id_subset
@_out("Output CSV: the points of the four panels (panel, rpm, subset, shift, x, y, included, note).")
@_correlations_out
@_figures
@_boot
def fig4_cmd(remi_csv, emi_csv, scores, remi_estimator, emi_estimator, judge, id_subset, out, correlations, figures,
             n_boot, confidence, seed):
    """Figure 4 a-d: EMI / R-EMI vs WinRate and EMID / R-EMID vs WinRate difference (ID - OOD)."""
    def go():
        pts = fig4_points(remi_csv, emi_csv, scores, judge=judge, remi_estimator=remi_estimator,
                          emi_estimator=emi_estimator, id_subset=id_subset)
        return pts, fig4(pts, n_boot=n_boot, seed=seed, confidence=confidence,
                         judge_validity=judge_validity(scores, judge))

    pts, (rows, corr, fig) = go()
    _write(out, rows, judge_agreement.POINT_COLUMNS)
    _write(correlations, corr, CORRELATION_COLUMNS)
    (save_figure(fig, figures))
    excluded = ", ".join(f"{p}: {v.n_excluded}" for p, v in pts.items())
    click.echo(f"wrote {out} (excluded points {excluded}), {correlations}, {', '.join(figures)}")


def _bound_options(f):
    f = click.option("--bound", "bound_csv", required=True, type=click.Path(dir_okay=False),
                     help="bound.csv (rpm bound).")(f)
    return _estimator(_bound_column(f))


@analyze.command("fig5a")
@_bound_options
@_out("Output CSV: one row per sample count: mean bound, mean R-EMID, Pearson and Spearman with intervals.")
@_correlations_out
@_figures
@_boot
def fig5a_cmd(bound_csv, estimator, column, out, correlations, figures, n_boot, confidence, seed):
    """Figure 5a: correlation of the bound with R-EMID as the samples used for the bound grow."""
    rows, corr, fig = (fig5a(read_bound(bound_csv, estimator), column=column, n_boot=n_boot, seed=seed,
                                         confidence=confidence))
    _write(out, rows, FIG5A_COLUMNS)
    _write(correlations, corr, CORRELATION_COLUMNS)
    (save_figure(fig, figures))
    click.echo(f"wrote {out} (sizes {[r['size'] for r in rows]}), {correlations}, {', '.join(figures)}")


@analyze.command("fig5b")
@_bound_options
@click.option("--size", required=True, help="Sample count of the scatter (a size of bound.csv, or 'all'; paper: 100).")
@_out("Output CSV: the points (rpm, target subset): bound at that size and R-EMID.")
@_figures
@_boot
def fig5b_cmd(bound_csv, estimator, column, size, out, figures, n_boot, confidence, seed):
    """Figure 5b: scatter of the bound against R-EMID at one sample count (its correlation is the
    fig5a row of that size)."""
    rows, c, fig = (fig5b(read_bound(bound_csv, estimator), size, column=column, n_boot=n_boot,
                                      seed=seed, confidence=confidence))
    _write(out, rows, bound_tightness.POINT_COLUMNS)
    (save_figure(fig, figures))
    click.echo(f"wrote {out} ({c.n} points, Pearson r = {c.pearson_r:.3f}), {', '.join(figures)}")


@analyze.command("table13")
@_bound_options
@click.option("--size", required=True, help="Sample count whose bound is correlated (as Figure 5b).")
@_out("Output CSV: per shift type, Pearson and Spearman of bound and R-EMID with p-values and intervals.")
@_correlations_out
@_figures
@_boot
def table13_cmd(bound_csv, estimator, column, size, out, correlations, figures, n_boot, confidence, seed):
    """Table 13: correlation of the bound with R-EMID per shift type."""
    rows, corr, fig = (table13(read_bound(bound_csv, estimator), size, column=column, n_boot=n_boot,
                                           seed=seed, confidence=confidence))
    _write(out, rows, TABLE13_COLUMNS)
    _write(correlations, corr, CORRELATION_COLUMNS)
    (save_figure(fig, figures))
    click.echo(f"wrote {out} ({len(rows)} shift types), {correlations}, {', '.join(figures)}")


@analyze.command("table20")
@click.option("--remi", "remi_csv", required=True, type=click.Path(dir_okay=False), help="remi.csv.")
@_estimator
@_out("Output CSV: base, method, one column per subset, avg (mean of the 12 subsets), n_missing.")
@_figures
def table20_cmd(remi_csv, estimator, out, figures):
    """Table 20: R-EMI per method (rows) and subset (columns) with Avg."""
    rows = (table20(remi_csv, estimator=estimator))
    _write(out, rows, table20_columns())
    (save_figure(table20_figure(rows), figures))
    click.echo(f"wrote {out} ({len(rows)} RPMs), {', '.join(figures)}")


@analyze.command("fig6")
@click.option("--remi", "remi_csv", required=True, type=click.Path(dir_okay=False), help="remi.csv.")
@_estimator
@_out("Output CSV: base, method, subset, shift, r_emi (the bars of the figure).")
@_figures
def fig6_cmd(remi_csv, estimator, out, figures):
    """Figure 6: R-EMI per method and subset, one panel per base model."""
    rows = (table20(remi_csv, estimator=estimator))
    long = [{"base": r["base"], "method": r["method"], "subset": s, "shift": shift_name(s), "r_emi": r[s]}
            for r in rows for s in SUBSET_NAMES]
    _write(out, long, ["base", "method", "subset", "shift", "r_emi"])
    (save_figure(fig6(rows), figures))
    click.echo(f"wrote {out} ({len(long)} bars), {', '.join(figures)}")


@analyze.command("fig7")
@_bound_options
@_out("Output CSV: base, method, target, shift, the bound on all samples and its two terms, R-EMID.")
@_figures
def fig7_cmd(bound_csv, estimator, column, out, figures):
    """Figure 7: the R-EMID upper bound (maximum performance-drop risk) per method and shift."""
    rows = (fig7_rows(bound_csv, estimator=estimator, column=column))
    _write(out, rows, FIG7_COLUMNS)
    (save_figure(fig7(rows), figures))
    click.echo(f"wrote {out} ({len(rows)} bars), {', '.join(figures)}")


@analyze.command("table12")
@click.option("--bound", "bound_csv", required=True, type=click.Path(dir_okay=False), help="bound.csv.")
@_estimator
@click.option("--rpm", "rpm_name", default=None,
              help="RPM drawn in the figure (default: the first SFT RPM, as the paper's Table 12).")
@_out("Output CSV: per RPM and ID -> OOD shift, every term of Theorem 3.4 and the bound.")
@_figures
def table12_cmd(bound_csv, estimator, rpm_name, out, figures):
    """Table 12: divergence terms and the R-EMID upper bound per shift."""
    rows = (table12(bound_csv, estimator=estimator))
    _write(out, rows, TABLE12_COLUMNS)
    chosen = rpm_name or default_rpm(rows)
    (save_figure(table12_figure(rows, chosen), figures))
    click.echo(f"wrote {out} ({len(rows)} rows; figure of {chosen}), {', '.join(figures)}")


@analyze.command("table14")
@click.option("--remid-benchmark", "remid_benchmarks", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="Benchmark TSV of a job computing R-EMID (reasoning, log-probs, remi); repeat.")
@click.option("--judge-benchmark", "judge_benchmarks", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="Benchmark TSV of a judge job; repeat.")
@click.option("--ledger", required=True, type=click.Path(dir_okay=False), help="The judge's ledger.csv.")
@click.option("--remi", "remi_csv", required=True, type=click.Path(dir_okay=False),
              help="remi.csv (the responses scored for R-EMID).")
@click.option("--scores", required=True, type=click.Path(dir_okay=False), help="The judge's scores.csv.")
@_judge
@_estimator
@_out("Output table14_cost.csv: method (R-EMID|judge), n_samples, wall/CPU seconds, tokens, calls.")
@_figures
def table14_cmd(remid_benchmarks, judge_benchmarks, ledger, remi_csv, scores, judge, estimator, out, figures):
    """Table 14: measured time and cost of R-EMID against the LLM judge."""
    rows = (table14(remid_benchmarks, judge_benchmarks, ledger, remi_csv, scores, judge=judge,
                                estimator=estimator))
    _write(out, rows, TABLE14_COLUMNS)
    (save_figure(table14_figure(rows), figures))
    click.echo(f"wrote {out}, {', '.join(figures)}")


@analyze.command("table2")
@click.argument("bench_files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@_out("Output CSV: per split (IDTrain, IDTest, the three shifts): samples, unique personas and characters.")
@_figures
def table2_cmd(bench_files, out, figures):
    """Table 2: statistics of the benchmark splits, from the benchmark files (train.jsonl and the subsets)."""
    rows = (table2(bench_files))
    _write(out, rows, TABLE2_COLUMNS)
    (save_figure(table2_figure(rows), figures))
    click.echo(f"wrote {out} ({len(rows)} splits), {', '.join(figures)}")


@analyze.command("runtime")
@click.option("--benchmarks-dir", required=True, type=click.Path(file_okay=False),
              help="Directory of Snakemake benchmark files (results/benchmarks); every **/*.tsv is read.")
@_out("Output runtime.csv: job, rule, wall seconds, CPU seconds, max RSS (MB), repeats.")
@_figures
def runtime_cmd(benchmarks_dir, out, figures):
    """Per-job run time and peak memory from the benchmark files present now."""
    rows = (runtime_table(benchmarks_dir))
    _write(out, rows, RUNTIME_COLUMNS)
    (save_figure(runtime_figure(rows), figures))
    click.echo(f"wrote {out} ({len(rows)} jobs), {', '.join(figures)}")


@analyze.command("sweep")
@click.option("--run", "runs", multiple=True, required=True, metavar="SEVERITY=BOUND_CSV",
              help="One severity of the controlled-shift sweep and its `rpm bound` table; repeat per severity.")
@click.option("--replicates", "replicates", multiple=True, metavar="SEVERITY=NPZ",
              help="That severity's bootstrap replicates (`rpm bound --replicates`); with one per severity, "
                   "sweep_slopes.csv gives each quantity's slope over severity with its CI, and the figure error bars.")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False),
              help="Output directory: sweep.csv, sweep_spearman.csv, sweep.png, sweep.pdf (and sweep_slopes.csv).")
def sweep_cmd(runs, replicates, out_dir):
    """Controlled-shift validation: divergence, bound and R-EMID against the known severity of each shift
    type, with Spearman's rho (exact p) per shift type, and with replicates the slope's bootstrap CI
    (samples resampled, paired across the nested severities) (beyond the paper)."""
    rows, spearman = (write_sweep(parse_runs(runs), out_dir, parse_runs(replicates) if replicates else None))
    click.echo(f"wrote {out_dir}/sweep.csv ({len(rows)} rows), sweep_spearman.csv ({len(spearman)} rows), sweep.png")


@analyze.command("control")
@click.option("--golden", "golden_dirs", multiple=True, required=True, metavar="ESTIMATOR=DIR",
              help="An estimator's golden log-prob files ({subset}.npz, as `rpm logprobs` writes them); repeat per "
                   "estimator (corl, wo_corl, wo_reasoning).")
@click.option("--fractions", default=",".join(f"{x:g}" for x in FRACTIONS), show_default=True,
              help="Comma-separated fractions f of planted responses (another sample's golden reply).")
@_out("Output control.csv: R-EMI of the planted RPM per estimator, subset and f, with its bootstrap CI.")
@click.option("--slopes", required=True, type=click.Path(dir_okay=False),
              help="Output control_slope.csv: per estimator, the slope of mean R-EMI over f and its CI.")
@_figures
@_boot
def control_cmd(golden_dirs, fractions, out, slopes, figures, n_boot, confidence, seed):
    """The positive control: R-EMI of a planted RPM that answers a fraction f of the samples with another
    sample's golden reply (f = 0: the golden itself, R-EMI 0). An estimator with resolution sees R-EMI fall
    as f grows; the slope's CI says whether it does at this N. Computed from the golden matrices alone."""
    golden = {}
    for spec in golden_dirs:
        name, sep, folder = spec.partition("=")
        files = sorted(Path(folder).glob("*.npz")) if sep else []
        if not name or not files:
            raise click.BadParameter(f"{spec!r}: expected ESTIMATOR=DIR with {{subset}}.npz files",
                                     param_hint="--golden")
        golden[name] = {f.stem: load(f) for f in files}
    try:
        fr = [float(x) for x in fractions.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{fractions!r}: expected comma-separated numbers", param_hint="--fractions") from None
    if any(not 0 <= x <= 1 for x in fr):
        raise click.BadParameter(f"{fractions!r}: fractions lie in [0, 1]", param_hint="--fractions")
    rows, slope_rows = control_curves(golden, fr, MIConfig(n_boot=n_boot, confidence=confidence, seed=seed))
    _write(out, rows, CONTROL_COLUMNS)
    _write(slopes, slope_rows, SLOPE_COLUMNS)
    save_figure(control_figure(rows, slope_rows), figures)
    for r in slope_rows:
        click.echo(f"{r['estimator']}: slope {r['slope']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] "
                   f"({'shown' if r['shown'] else 'not shown'} to fall)")
    click.echo(f"wrote {out}, {slopes}, {', '.join(figures)}")


@analyze.command("summary")
@click.option("--control-slope", required=True, type=click.Path(exists=True, dir_okay=False),
              help="control_slope.csv of `rpm analyze control`.")
@click.option("--validity", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The judge validity table (results/judge/validity/validity.csv).")
@click.option("--sweep-spearman", type=click.Path(exists=True, dir_okay=False), default=None,
              help="sweep_spearman.csv of `rpm analyze sweep` (when the sweep ran).")
@click.option("--top-bound", type=click.Path(exists=True, dir_okay=False), default=None,
              help="bound.csv of the sweep's highest severity (its nulls and tightness).")
@click.option("--top-severity", default="1", show_default=True, help="The severity --top-bound belongs to.")
@click.option("--sweep-slopes", type=click.Path(exists=True, dir_okay=False), default=None,
              help="sweep_slopes.csv of `rpm analyze sweep --replicates` (the slopes' CIs).")
@click.option("--roleplay", type=click.Path(exists=True, dir_okay=False), default=None,
              help="roleplay.csv of `rpm analyze roleplay` (do the RPMs role-play?).")
@_out("Output summary.csv: one claim per row, its estimate, interval or p, and 'shown' / 'not shown'.")
@_figures
def summary_cmd(control_slope, validity, sweep_spearman, top_bound, top_severity, sweep_slopes, roleplay, out,
                figures):
    """What the run shows and how sure it is: the report's first table (every claim with its uncertainty)."""
    rows = summary_rows(control_slope=control_slope, validity=validity, spearman=sweep_spearman, top_bound=top_bound,
                        top_severity=top_severity, sweep_slopes=sweep_slopes, roleplay=roleplay)
    _write(out, rows, SUMMARY_COLUMNS)
    save_figure(summary_figure(rows), figures)
    shown = sum(r["verdict"] == "shown" for r in rows)
    click.echo(f"wrote {out}: {len(rows)} claims, {shown} shown; {', '.join(figures)}")

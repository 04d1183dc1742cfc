"""`rpm audit`: the paper's published numbers against themselves and against this run's."""

from __future__ import annotations

import click

from rpm.audit.join import run_audit
from rpm.audit.published import PACKAGED, load
from rpm.audit.report import write_csv, write_markdown

_FILE = click.Path(exists=True, dir_okay=False)


def _base_map(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        ours, sep, paper = v.partition("=")
        if not sep or not ours or not paper:
            raise click.BadParameter(f"{v!r}: expected OURS=PAPER, e.g. smollm2=Qwen3-4B", param_hint="--base-map")
        out[ours] = paper
    return out


@click.command("audit")
@click.option("--scale", type=click.Choice(["paper", "small"]), required=True,
              help="'paper' when the run used the paper's configuration (workflow/configs/paper.yaml): verdicts "
                   "are match/differs within each quantity's tolerance; 'small' for any scaled-down run: every "
                   "reproduced value's verdict is 'scale differs'.")
@click.option("--remi", type=_FILE, default=None, help="results/metrics/remi.csv (Table 20 and its R-EMID).")
@click.option("--perplexity", type=_FILE, default=None, help="results/metrics/perplexity.csv (Table 1).")
@click.option("--bound", type=_FILE, default=None, help="results/metrics/bound.csv (Table 12).")
@click.option("--stats", type=_FILE, default=None, help="results/data/bench/stats.tsv (Table 2).")
@click.option("--bench-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="The benchmark directory beside stats.tsv: Table 2 counts unique personas and characters over "
                   "a split's subset files, which stats.tsv counts per file.")
@click.option("--correlations", type=_FILE, default=None,
              help="results/analysis/correlations.csv (Table 13; Figure 4 and 5 correlations).")
@click.option("--cost", type=_FILE, default=None, help="results/analysis/table14_cost.csv (Table 14).")
@click.option("--base-map", "base_map", multiple=True, metavar="OURS=PAPER",
              help="Compare our base model OURS with the paper's base PAPER (Qwen3-4B or Meta-Llama3-8B) in "
                   "Tables 12 and 20; repeatable. qwen3_4b_base and llama3_8b are mapped already.")
@click.option("--published", type=_FILE, default=None,
              help=f"Another copy of the transcription (default: the packaged {PACKAGED}).")
@click.option("--out-md", required=True, type=click.Path(dir_okay=False), help="The readable report (audit.md).")
@click.option("--out-csv", required=True, type=click.Path(dir_okay=False),
              help="One row per compared cell: table, row, column, ours, paper, difference, verdict, tolerance, note.")
@click.option("--judge-validity", type=_FILE, default=None,
              help="results/judge/validity/validity.csv (the judges' validity check, reported beside Figures 2, 4).")
def audit_cmd(scale, remi, perplexity, bound, stats, bench_dir, correlations, cost, base_map, published, out_md,
              out_csv, judge_validity):
    """Check the paper's tables against each other, and put this run's numbers beside the published ones.

    Every input is optional: a table whose input is not given is reported as "not reproduced", and the
    self-consistency checks of the published tables need no input (and no model) at all.
    """
    pub = load(published) if published else None
    result = run_audit(scale=scale, published=pub, remi=remi, perplexity=perplexity, bound=bound, stats=stats,
                       bench_dir=bench_dir, correlations=correlations, cost=cost, base_map=_base_map(base_map),
                       judge_validity=judge_validity)
    write_csv(out_csv, result)
    write_markdown(out_md, result)
    bad = sum(f.consistent is False for f in result.findings)
    verdicts = {}
    for r in result.rows:
        verdicts[r.verdict] = verdicts.get(r.verdict, 0) + 1
    click.echo(f"{len(result.findings)} self-consistency checks ({bad} inconsistent); {len(result.rows)} cells: "
               + ", ".join(f"{n} {v}" for v, n in verdicts.items()) + f"; wrote {out_md} and {out_csv}")

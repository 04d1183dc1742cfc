"""`rpm judge run` (one RPM's responses, every subset, every judge), `rpm judge validity` (can each judge
tell a sample's golden reply from another sample's?) and `rpm judge summarize`."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import click

from rpm.cli_shared import CONTEXT_SETTINGS, RpmGroup, bootstrap_options, parse_mapping
from rpm.core.errors import RpmInputError
from rpm.judge.core import (
    LEDGER_COLUMNS,
    SCORE_COLUMNS,
    VERDICT_COLUMNS,
    JudgeConfig,
    judge_rpm,
    load_items,
    summarize,
)
from rpm.judge.validity import VALIDITY_COLUMNS, VALIDITY_RPM, validity_items, validity_rows
from rpm.metrics.tables import write_csv


@click.group("judge", cls=RpmGroup, context_settings=CONTEXT_SETTINGS)
def judge_cmd():
    """LLM-as-a-judge: WinRate (vs the golden reference, both orders) and PointScore over an ensemble."""


@judge_cmd.command("run")
@click.option("--bench-dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The benchmark directory (results/data/bench): one {subset}.jsonl per evaluation subset.")
@click.option("--responses-dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The RPM's responses (results/rpm/{base}/{method}/responses): one {subset}.jsonl per subset.")
@click.option("--rpm", "rpm_name", required=True, metavar="NAME", help="The RPM's name in the rows, e.g. smollm2/sft.")
@click.option("--judge", "judge_specs", required=True, multiple=True, metavar="YAML",
              help="One judge as inline YAML/JSON or a file; repeat for an ensemble. Keys: name, backend "
                   "(serve_local: model is a model directory served on loopback; openai: base_url + model), "
                   "api_key_env (the NAME of the variable holding the key), temperature, max_tokens, timeout, "
                   "max_retries (transport retries with backoff), retries / retry_temperature (after an unparsed "
                   "verdict), seed, winrate_prompt / winrate_parser, pointscore_prompt / pointscore_parser.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="verdicts.csv to write.")
@click.option("--ledger-out", required=True, type=click.Path(dir_okay=False),
              help="ledger.csv to write: calls, cache hits, tokens in/out and seconds per judge.")
@click.option("--cache-dir", required=True, type=click.Path(file_okay=False),
              help="Content-addressed answer cache (request hash -> answer), kept across runs: a re-run asks "
                   "nothing it asked before.")
@click.option("--max-per-subset", type=click.IntRange(min=1), default=None,
              help="Judge a seeded choice of this many samples per subset (the same for every RPM). [default: all]")
@click.option("--context-turns", type=click.IntRange(min=0), default=None,
              help="Show the judge the last N dialogue turns. [default: all]")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Dry check: judge only the first N chosen samples in all (the outputs then cover only them).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample choice.")
@click.option("--server-log", type=click.Path(dir_okay=False), default=None,
              help="Append the output of serve_local judges' `transformers serve` here (its access log counts "
                   "the HTTP calls). [default: discarded]")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads of a serve_local judge's server (OMP_NUM_THREADS).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def judge_run(bench_dir, responses_dir, rpm_name, judge_specs, out, ledger_out, cache_dir, max_per_subset,
              context_turns, limit, seed, server_log, threads, quiet):
    """Judge one RPM's responses on every subset by every judge; writes verdicts.csv and ledger.csv."""
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    judges = [JudgeConfig.from_dict(parse_mapping(s, "--judge")) for s in judge_specs]
    names = [j.name for j in judges]
    if len(set(names)) != len(names):
        raise RpmInputError(f"--judge: judge names must be unique, got {names}")
    items = load_items(bench_dir, responses_dir, max_per_subset=max_per_subset, seed=seed, limit=limit)
    if server_log:  # this run's servers only, so its access log counts this run's HTTP calls
        Path(server_log).parent.mkdir(parents=True, exist_ok=True)
        Path(server_log).write_text("", encoding="utf-8")
    verdicts, ledger = judge_rpm(judges, items, rpm_name, cache_dir=cache_dir, context_turns=context_turns,
                                 server_log=server_log, progress=not quiet)
    write_csv(out, verdicts, VERDICT_COLUMNS)
    write_csv(ledger_out, ledger, LEDGER_COLUMNS)
    dry = f" (dry check: --limit {limit})" if limit else ""
    click.echo(f"{rpm_name}: {len(items)} samples{dry}, {len(verdicts)} verdicts by {len(judges)} judge(s) -> {out}")
    for row in ledger:
        unparsed = sum(1 for v in verdicts if v["judge"] == row["judge"] and not v["parsed"])
        click.echo(f"  {row['judge']}: {row['calls']} calls, {row['cached']} from cache, {unparsed} unparsed, "
                   f"{row['prompt_tokens']} + {row['completion_tokens']} tokens, {row['seconds']:.1f} s")


@judge_cmd.command("validity")
@click.option("--bench-dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The benchmark directory (results/data/bench): one {subset}.jsonl per evaluation subset.")
@click.option("--judge", "judge_specs", required=True, multiple=True, metavar="YAML",
              help="One judge as inline YAML/JSON or a file, as for `rpm judge run`; repeat for an ensemble.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="validity.csv to write: accuracy, its bootstrap interval and the verdict, per judge.")
@click.option("--verdicts-out", required=True, type=click.Path(dir_okay=False), help="The check's verdicts.csv.")
@click.option("--ledger-out", required=True, type=click.Path(dir_okay=False), help="The check's ledger.csv.")
@click.option("--cache-dir", required=True, type=click.Path(file_okay=False), help="The judges' answer cache.")
@click.option("--max-per-subset", type=click.IntRange(min=2), default=None,
              help="Check a seeded choice of this many samples per subset. [default: all]")
@click.option("--context-turns", type=click.IntRange(min=0), default=None,
              help="Show the judge the last N dialogue turns. [default: all]")
@bootstrap_options
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the samples, the pairing, the bootstrap.")
@click.option("--server-log", type=click.Path(dir_okay=False), default=None, help="Log of serve_local judges.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads of a served judge.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def judge_validity(bench_dir, judge_specs, out, verdicts_out, ledger_out, cache_dir, max_per_subset, context_turns,
                   n_boot, confidence, seed, server_log, threads, quiet):
    """The judges' validity check: each sample's golden reply against another sample's golden reply of the
    same subset, both orders (chance 0.5). An accuracy whose interval includes 0.5 is 'not shown'."""
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    judges = [JudgeConfig.from_dict(parse_mapping(s, "--judge")) for s in judge_specs]
    items = validity_items(load_items(bench_dir, None, max_per_subset=max_per_subset, seed=seed), seed)
    if server_log:
        Path(server_log).parent.mkdir(parents=True, exist_ok=True)
        Path(server_log).write_text("", encoding="utf-8")
    verdicts, ledger = judge_rpm(judges, items, VALIDITY_RPM, cache_dir=cache_dir, context_turns=context_turns,
                                 server_log=server_log, progress=not quiet)
    rows = validity_rows(verdicts, n_boot=n_boot, seed=seed, confidence=confidence)
    write_csv(verdicts_out, verdicts, VERDICT_COLUMNS)
    write_csv(ledger_out, ledger, LEDGER_COLUMNS)
    write_csv(out, rows, VALIDITY_COLUMNS)
    for r in rows:
        click.echo(f"{r['judge']}: accuracy {r['accuracy']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] over "
                   f"{r['n_samples']} samples ({r['n_unparsed']} of {r['n_verdicts']} verdicts unparsed): "
                   f"{r['verdict']}")


def read_validity(path: str | os.PathLike) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != VALIDITY_COLUMNS:
            raise RpmInputError(f"{path}: expected the columns {VALIDITY_COLUMNS}, got {reader.fieldnames}")
        return list(reader)


@judge_cmd.command("summarize")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--scores-out", required=True, type=click.Path(dir_okay=False), help="scores.csv to write.")
@click.option("--ledger-out", required=True, type=click.Path(dir_okay=False), help="ledger.csv to write.")
@click.option("--validity", "validity_csv", type=click.Path(exists=True, dir_okay=False), default=None,
              help="validity.csv of `rpm judge validity`: each judge's check, added to its rows.")
def judge_summarize(run_dirs, scores_out, ledger_out, validity_csv):
    """Every RPM's verdicts (RUN_DIRS: results/judge/{base}/{method}, each with verdicts.csv and ledger.csv)
    -> WinRate and PointScore per RPM, subset and judge plus the ensemble (scores.csv), and the cost per
    judge (ledger.csv)."""
    validity = read_validity(validity_csv) if validity_csv else []
    scores, ledger = summarize([Path(d) / "verdicts.csv" for d in run_dirs], [Path(d) / "ledger.csv" for d in run_dirs],
                               validity)
    write_csv(scores_out, scores, SCORE_COLUMNS)
    write_csv(ledger_out, ledger, LEDGER_COLUMNS)
    unparsed = {}
    for r in scores:
        if r["judge"] != "ensemble":
            unparsed[r["judge"]] = unparsed.get(r["judge"], 0) + r["n_unparsed"]
    click.echo(f"{len(scores)} score rows -> {scores_out}; unparsed verdicts per judge: {unparsed}")

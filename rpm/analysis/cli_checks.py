"""`rpm analyze roleplay` (rpm/analysis/roleplay.py) and `rpm analyze power` (rpm/analysis/power.py), registered
by rpm/analysis/cli.py."""

from __future__ import annotations

import math
from pathlib import Path

import click

from rpm.analysis.common import save_figure
from rpm.analysis.power import per_sample_sd, power_at, samples_needed, simulated_power
from rpm.analysis.roleplay import (
    ROLEPLAY_COLUMNS,
    close_row,
    distinct_rows,
    gain_row,
    golden_token_logprobs,
    roleplay_figure,
)
from rpm.bench.load import read_jsonl
from rpm.cli_shared import CONTEXT_SETTINGS, dtype_option
from rpm.metrics.inputs import read_text_rows
from rpm.metrics.matrices import load
from rpm.metrics.tables import write_csv
from rpm.runtime.load import load_model, load_tokenizer, set_threads


def _responses(spec: str, option: str = "--responses") -> tuple[str, list[dict]]:
    """LABEL=DIR -> (label, rows {key: subset/sample_ID, response, raw, input}) from every {subset}.jsonl in DIR
    (`input`: the row's input_sha256, None where the file has none)."""
    label, sep, folder = spec.partition("=")
    files = sorted(Path(folder).glob("*.jsonl")) if sep else []
    if not label or not files:
        raise click.BadParameter(f"{spec!r}: expected LABEL=DIR with {{subset}}.jsonl response files",
                                 param_hint=option)
    rows = []
    for f in files:
        raws = read_text_rows(f, "raw", tag="input_sha256")
        rows += [{"key": f"{f.stem}/{sid}", "response": r.text, "raw": raws[sid].text, "input": raws[sid].tag}
                 for sid, r in read_text_rows(f, "response").items()]
    return label, rows


@click.command("roleplay", context_settings=CONTEXT_SETTINGS)
@click.option("--base", "base_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The base model directory the SFT RPM was trained from.")
@click.option("--sft", "sft_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The SFT RPM's model directory (results/rpm/{base}/sft/model).")
@click.option("--sft-label", default="sft", show_default=True, help="The SFT RPM's label among --responses.")
@click.option("--id-bench", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The ID-test subset (results/data/bench/id_test.jsonl): its golden targets are scored.")
@click.option("--responses", "response_specs", multiple=True, required=True, metavar="LABEL=DIR",
              help="An RPM's responses folder ({subset}.jsonl, as `rpm generate` writes it); repeat per method.")
@click.option("--close-extra", "extra_specs", multiple=True, metavar="LABEL=DIR",
              help="More responses of RPM LABEL on other samples (the sweep's, on its own benchmark), counted in "
                   "LABEL's close check only; the distinct check compares the --responses folders alone.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output roleplay.csv: one row per check and RPM with its estimate, CI and verdict.")
@click.option("--figure", "figures", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="Figure output; repeat for each format (.png, .pdf or .svg by suffix).")
@click.option("--n-boot", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Bootstrap resamples of the samples for the gain's CI.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@dtype_option("scoring")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads.")
def roleplay_cmd(base_dir, sft_dir, sft_label, id_bench, response_specs, extra_specs, out, figures, n_boot, seed,
                 dtype, threads):
    """Do the RPMs role-play? The SFT RPM's log-prob gain on the ID-test golden targets over its base
    (>= 0.5 nats/token), the share of each RPM's responses closing the response tag (>= 90% for SFT), and
    whether any two methods answered identically. Each with its CI and a met / not met / undecided verdict."""
    set_threads(threads)
    samples = read_jsonl(id_bench)
    per_model = {}
    for name, folder in (("base", base_dir), ("sft", sft_dir)):
        model = load_model(folder, dtype=dtype)
        model.eval()
        per_model[name] = golden_token_logprobs(model, load_tokenizer(folder), samples)
        del model
    responses = dict(_responses(spec) for spec in response_specs)
    if sft_label not in responses:
        raise click.BadParameter(f"no --responses for the SFT RPM label {sft_label!r}", param_hint="--sft-label")
    extra = {}
    for spec in extra_specs:
        label, rs = _responses(spec, "--close-extra")
        if label not in responses:
            raise click.BadParameter(f"{spec!r}: no --responses for {label!r} to add them to",
                                     param_hint="--close-extra")
        extra.setdefault(label, []).extend(rs)
    rows = [gain_row(per_model["base"], per_model["sft"], sft_label, n_boot=n_boot, seed=seed)]
    rows += [close_row(r + extra.get(label, []), label, extra=len(extra.get(label, [])))
             for label, r in responses.items()]
    rows += distinct_rows({label: {r["key"]: r["response"] for r in rs} for label, rs in responses.items()})
    write_csv(out, rows, ROLEPLAY_COLUMNS)
    save_figure(roleplay_figure(rows), figures)
    for r in rows:
        click.echo(f"{r['check']:8s} {r['rpm']:24s} {r['estimate']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] "
                   f"{r['verdict']}")
    click.echo(f"wrote {out}, {', '.join(figures)}")


@click.command("power", context_settings=CONTEXT_SETTINGS)
@click.option("--sigma", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Per-sample SD of the quantity (nats/token). [default: measured from --logprobs]")
@click.option("--logprobs", "npz_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Model + golden .npz files of a finished run (rpm logprobs): sigma is the pooled per-sample SD "
                   "of R-EMI's contributions over them.")
@click.option("--delta", type=click.FloatRange(min=0, min_open=True), required=True,
              help="The smallest slope over severity worth seeing, stated before the run (per unit severity).")
@click.option("--severities", default="0,0.5,1", show_default=True, help="Comma-separated severities of the sweep.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True)
@click.option("--power", "target", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.8,
              show_default=True, help="The power wanted.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the simulation check.")
def power_cmd(sigma, npz_files, delta, severities, alpha, target, seed):
    """Samples per (shift, severity) the sweep needs to see a slope delta with the wanted power (the formula
    of rpm/analysis/power.py, checked by simulation), and the power of nearby N."""
    sev = [float(x) for x in severities.split(",") if x.strip()]
    if sigma is None:
        if not npz_files:
            raise click.UsageError("give --sigma or --logprobs files to measure it from")
        sds, ns = [], []
        for f in npz_files:
            m = load(f)
            if m.model is None:
                raise click.BadParameter(f"{f}: a golden-only file; give files with model responses",
                                         param_hint="--logprobs")
            sds.append(per_sample_sd(m.model.lp / m.model.ntok, m.golden.lp / m.golden.ntok))
            ns.append(m.n)
        sigma = math.sqrt(sum((n - 1) * sd ** 2 for sd, n in zip(sds, ns)) / sum(n - 1 for n in ns))
        click.echo(f"sigma {sigma:.3f} nats/token: pooled per-sample SD over {len(npz_files)} files, "
                   f"{sum(ns)} samples")
    n = samples_needed(sigma, delta, sev, alpha, target)
    click.echo(f"N = {n} per severity (severities {sev}, delta {delta:g}, alpha {alpha:g}, power {target:g})")
    for k in sorted({max(2, n // 4), max(2, n // 2), n, 2 * n}):
        click.echo(f"  N = {k:5d}: power {power_at(k, sigma, delta, sev, alpha):.3f} (formula), "
                   f"{simulated_power(k, sigma, delta, sev, alpha, seed=seed):.3f} (simulated)")

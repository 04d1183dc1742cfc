"""`rpm bench`: fetch RPGBench, make the shipped mini benchmark, validate benchmark files."""

from __future__ import annotations

from pathlib import Path

import click

from rpm.bench.fetch import fetch
from rpm.bench.load import load_bench, read_authors_json, read_jsonl
from rpm.bench.synth import SynthConfig, synth
from rpm.cli_shared import CONTEXT_SETTINGS, RpmGroup


@click.group(cls=RpmGroup, context_settings=CONTEXT_SETTINGS)
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
    files = fetch(source, out_dir, max_train=max_train, max_per_subset=max_per_subset, seed=seed)
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
    sev = {}
    for item in severity:
        key, sep, value = item.partition("=")
        try:
            sev[key.strip()] = float(value)
        except ValueError:
            raise click.BadParameter(f"{item!r}: expected SHIFT=FRACTION, e.g. user=0.5", param_hint="--severity")
        if not sep:
            raise click.BadParameter(f"{item!r}: expected SHIFT=FRACTION", param_hint="--severity")
    cfg = SynthConfig(n_train=n_train, n_per_subset=n_per_subset, seed=seed,
                      severity={**SynthConfig().severity, **sev})
    files = synth(out_dir, cfg, seeds_dir)
    click.echo(f"wrote {sum(map(len, files.values()))} samples in {len(files)} files to {out_dir}")


@bench.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
def bench_validate(paths):
    """Check benchmark files (JSONL, a JSON keyed by split, or a normalised directory)."""
    for p in paths:
        path = Path(p)
        if path.is_dir():
            n = sum(map(len, load_bench(path).values()))
        elif path.suffix == ".json":
            n = sum(map(len, read_authors_json(path).values()))
        else:
            n = len(read_jsonl(path))
        click.echo(f"{p}: {n} valid records")

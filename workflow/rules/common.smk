import json
import os
import shlex

from snakemake.utils import validate

from rpm.bench.subsets import BENCH_FILES


validate(config, schema="../schemas/config.schema.yaml")


BENCH_DIR = "results/data/bench"
LOGS = "results/logs"
BENCHMARKS = "results/benchmarks"


wildcard_constraints:
    model="|".join(config["models"]),


def bench_files():
    return expand(f"{BENCH_DIR}/{{file}}.jsonl", file=BENCH_FILES)


def models_used():
    """The RPM base models and the estimator's base model, each prepared once."""
    return sorted(set(config["rpm"]["bases"]) | {config["estimator"]["base"]})


def model_spec(wildcards):
    """A model's spec from the config, quoted for the shell."""
    return shlex.quote(json.dumps(config["models"][wildcards.model]))


def check_model_names():
    unknown = sorted(set(models_used()) - set(config["models"]))
    if unknown:
        raise ValueError(
            f"config: rpm.bases / estimator.base name model(s) {unknown} that are not defined under models: "
            f"(defined: {sorted(config['models'])})"
        )


check_model_names()

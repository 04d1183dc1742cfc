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
    """The RPM base models, the estimator's base model and a local teacher, each prepared once."""
    used = set(config["rpm"]["bases"]) | {config["estimator"]["base"]}
    if config["teacher"]["backend"] == "local":
        used.add(config["teacher"]["model"])
    return sorted(used)


def model_spec(wildcards):
    """A model's spec from the config, quoted for the shell."""
    return shlex.quote(json.dumps(config["models"][wildcards.model]))


def check_model_names():
    unknown = sorted(set(models_used()) - set(config["models"]))
    if unknown:
        raise ValueError(
            f"config: rpm.bases / estimator.base / teacher.model name model(s) {unknown} that are not defined under models: "
            f"(defined: {sorted(config['models'])})"
        )


check_model_names()


# ---------------------------------------------------------------- RPM methods

from rpm.bench.subsets import SUBSET_NAMES
from rpm.train.methods import PARENT, TEACHER_TASK, THINKING

RPM_DIR = "results/rpm"
TEACHER_DIR = "results/teacher"


wildcard_constraints:
    base="|".join(config["models"]),
    method="|".join(["icl", "sft", "da", "dpo", "rft", "rl", "thinking_sft", "thinking_rl", "corl"]),
    task="augment|reject|trace",


def methods_used():
    """The configured methods plus the parents they start from (dpo needs sft, ...)."""
    wanted = list(config["rpm"]["methods"])
    for m in list(wanted):
        if m in PARENT and PARENT[m] not in wanted:
            wanted.append(PARENT[m])
    return wanted


def teacher_model_input(wildcards):
    t = config["teacher"]
    return [f"results/models/{t['model']}"] if t["backend"] == "local" else []


def teacher_endpoint(wildcards, input):
    """The teacher endpoint as `rpm teacher` reads it (the local backend gets the prepared directory)."""
    t = config["teacher"]
    ep = {k: t[k] for k in ("backend", "temperature", "max_tokens", "base_url", "api_key_env")}
    ep["model"] = input.model[0] if t["backend"] == "local" else t["model"]
    return shlex.quote(json.dumps(ep))


def train_inputs(wildcards):
    m = wildcards.method
    inputs = {"base": f"results/models/{wildcards.base}", "train": f"{BENCH_DIR}/train.jsonl"}
    if m in PARENT:
        inputs["parent"] = f"{RPM_DIR}/{wildcards.base}/{PARENT[m]}/model"
    if m in TEACHER_TASK:
        inputs["teacher"] = f"{TEACHER_DIR}/{TEACHER_TASK[m]}.jsonl"
    return inputs


def train_options(wildcards, input):
    opts = []
    if "parent" in input.keys():
        opts.append(f"--parent {input.parent}")
    if "teacher" in input.keys():
        opts.append(f"--teacher-file {input.teacher}")
    return " ".join(opts)


def train_settings(wildcards):
    keys = ("lora", "sft", "dpo", "grpo", "rft", "icl", "corl", "reward")
    return shlex.quote(json.dumps({k: config["rpm"][k] for k in keys}))


def max_new_tokens(wildcards):
    g = config["rpm"]["generate"]
    return g["thinking_max_new_tokens"] if wildcards.method in THINKING else g["max_new_tokens"]


def responses(base, method):
    return expand(f"{RPM_DIR}/{base}/{method}/responses/{{subset}}.jsonl", subset=SUBSET_NAMES)

import json
import os
import shlex

from snakemake.utils import validate

from rpm.bench.subsets import BENCH_FILES


validate(config, schema="../schemas/config.schema.yaml")


BENCH_DIR = "results/data/bench"
LOGS = "results/logs"
# Final outputs of the later stages: each stage's .smk appends to it, `rule all` asks for all of them.
FINAL_TARGETS = []
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


# ---------------------------------------------------------------- estimator and metrics

EST_DIR = f"results/estimator/{config['estimator']['base']}"
METRICS = "results/metrics"
EST_BASE = f"results/models/{config['estimator']['base']}"
# Table 1's estimators: the full CoRL one, the cold start only ("w/o CoRL"), and p(y|x) ("w/o Reasoning",
# which is also the EMI estimator).
SCORER = {"corl": f"{EST_DIR}/coevolved/policy", "wo_corl": f"{EST_DIR}/coldstart/policy",
          "wo_reasoning": f"{EST_DIR}/coldstart/pxy"}
REASONER = {"corl": f"{EST_DIR}/coevolved/reasoner", "wo_corl": f"{EST_DIR}/coldstart/reasoner"}


wildcard_constraints:
    module="reasoner|policy|pxy",
    variant="corl|wo_corl|wo_reasoning",


def estimator_settings(wildcards=None):
    e = config["estimator"]
    keys = ("lora", "sft", "iterations", "grpo_reasoner", "grpo_policy", "reward_batch_size",
            "reason_max_new_tokens", "reason_batch_size")
    return shlex.quote(json.dumps({k: e[k] for k in keys}))


def scorer_input(wildcards):
    """The scorer directory; for corl the whole co-evolution output (a directory output of its rule)."""
    return f"{EST_DIR}/coevolved" if wildcards.variant == "corl" else SCORER[wildcards.variant]


def reasoning_files(variant):
    if variant == "wo_reasoning":
        return []
    return expand(f"{EST_DIR}/reasoning/{variant}/{{subset}}.jsonl", subset=SUBSET_NAMES)


def rpm_pairs():
    return [(b, m) for b in config["rpm"]["bases"] for m in config["rpm"]["methods"]]


def logprobs_files(variant):
    return [f"{METRICS}/logprobs/{variant}/{b}/{m}/{s}.npz" for b, m in rpm_pairs() for s in SUBSET_NAMES]


def repeat(option, files):
    return " ".join(f"{option} {f}" for f in files)

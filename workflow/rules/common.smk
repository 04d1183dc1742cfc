# Included first by the Snakefile: the validated config, the names every stage shares (rpm.core.names), the
# paths one stage hands to another, and the helpers the rules call. Stage files read these and nothing of
# each other, so their include order is free, except that a rule reused with `use rule` comes first.

import json
import os
import shlex

from snakemake.exceptions import WorkflowError

from rpm.core import config as config_checks
from rpm.core.names import (
    BENCH_FILES,
    ESTIMATORS,
    METHODS,
    OOD_SUBSETS,
    PARENT,
    SHIFTS,
    SUBSET_NAMES,
    THINKING_METHODS,
)
from rpm.train.methods import TEACHER_TASK

# ---------------------------------------------------------------- the config

# The checks live in rpm/core/config.py (tests/test_properties.py fuzzes them): every config file loaded
# (config.yaml and each --configfile overlay) is refused if it gives a key twice in one mapping; then the
# fields an entry of `models:` or `judge.judges` leaves out are filled (MODEL_SPEC_DEFAULTS, JUDGE_DEFAULTS)
# and the merged config is validated against workflow/schemas/config.schema.yaml with rpm.core.names' enums.


def validate_config(config):
    """snakemake.utils.validate's check, on the schema with its enums (the schema holds no defaults)."""
    # Skipped in a module imported with skip_validation, as snakemake.utils.validate does.
    if workflow.modifier.skip_validation:
        return
    try:
        for path in workflow.configfiles:
            config_checks.check_config_file(path)
        config_checks.validate_config(
            config, workflow.source_path("../schemas/config.schema.yaml")
        )
    except config_checks.ConfigError as e:
        raise WorkflowError("Error validating config file.", e.validation_error or e)


config_checks.fill_entry_defaults(config)
validate_config(config)


# ---------------------------------------------------------------- scheduling

# Job priorities (Snakemake runs the ready job of highest priority first). The longest chain of the run is
# teacher -> estimator cold start -> co-evolution -> the sweep's reasoning -> log-probs (each severity reuses
# the one before) -> bounds -> summary; its jobs go first, so it never waits behind a job off that chain while
# the other core works through everything else. The SFT RPM and the sweep's generations feed the same chain.
CRITICAL_PATH = 20
FEEDS_CRITICAL_PATH = 10

# ---------------------------------------------------------------- paths between stages

BENCH_DIR = "results/data/bench"
LOGS = "results/logs"
BENCHMARKS = "results/benchmarks"
RPM_DIR = "results/rpm"
TEACHER_DIR = "results/teacher"
EST_DIR = f"results/estimator/{config['estimator']['base']}"
EST_BASE = f"results/models/{config['estimator']['base']}"
METRICS = "results/metrics"
METRIC_TABLES = ["remi", "emi", "perplexity", "divergences", "bound"]
JUDGE_DIR = "results/judge"
JUDGE_SCORES = f"{JUDGE_DIR}/scores.csv"
JUDGE_LEDGER = f"{JUDGE_DIR}/ledger.csv"
JUDGE_VALIDITY = f"{JUDGE_DIR}/validity/validity.csv"
# One Snakemake benchmark file per judge job: the measured judge time of Table 14.
JUDGE_BENCHMARK = f"{BENCHMARKS}/judge/{{base}}/{{method}}.tsv"
ANALYSIS = "results/analysis"
# Every table of the analysis stage (the audit reads two of them); figures sit beside, .png and .pdf.
ANALYSIS_OUTPUTS = {
    "correlations": f"{ANALYSIS}/correlations.csv",
    "fig2": f"{ANALYSIS}/fig2_pilot.csv",
    "fig4": f"{ANALYSIS}/fig4_points.csv",
    "fig5a": f"{ANALYSIS}/fig5a_convergence.csv",
    "fig5b": f"{ANALYSIS}/fig5b_points.csv",
    "table13": f"{ANALYSIS}/table13_shift_correlations.csv",
    "fig6": f"{ANALYSIS}/fig6_remi.csv",
    "fig7": f"{ANALYSIS}/fig7_bound.csv",
    "table20": f"{ANALYSIS}/table20_remi.csv",
    "table12": f"{ANALYSIS}/table12_divergence_terms.csv",
    "table14_cost": f"{ANALYSIS}/table14_cost.csv",
    "table2": f"{ANALYSIS}/table2_splits.csv",
    "runtime": f"{ANALYSIS}/runtime.csv",
    "control": f"{ANALYSIS}/control.csv",
    "summary": f"{ANALYSIS}/summary.csv",
}
# The role-play checks need the SFT RPM (of the first base): a run without it has none.
ROLEPLAY_BASE = config["rpm"]["bases"][0]
if "sft" in config["rpm"]["methods"]:
    ANALYSIS_OUTPUTS["roleplay"] = f"{ANALYSIS}/roleplay.csv"
AUDIT_MD = "results/audit.md"
AUDIT_CSV = "results/audit.csv"
SCORE_DIR = f"results/score/{config['score']['name']}"
SWEEP_DIR = "results/sweep"
# The subsets the sweep scores at each severity (sweep.smk): ID test and the chosen OOD subsets.
SWEEP_SUBSETS = ["id_test", *config["sweep"]["subsets"]]


def final_outputs():
    """The inputs of the Snakefile's target `all`, from the config alone. The benchmark, the models, every
    RPM's responses, the metric tables, the judge's scores, the analyses, the audit, and where configured the
    score of your own RPM (score.responses) and the controlled-shift sweep (sweep.enabled, synth benchmark).
    """
    outputs = [
        *bench_files(),
        *expand("results/models/{model}", model=models_used()),
        *[f for base, method in rpm_pairs() for f in responses(base, method)],
        *expand(f"{METRICS}/{{table}}.csv", table=METRIC_TABLES),
        JUDGE_SCORES,
        JUDGE_LEDGER,
        *ANALYSIS_OUTPUTS.values(),
        AUDIT_CSV,
        AUDIT_MD,
    ]
    if config["score"]["responses"]:
        outputs.append(f"{SCORE_DIR}/summary.md")
    if config["sweep"]["enabled"] and config["benchmark"]["source"] == "synth":
        outputs.append(f"{SWEEP_DIR}/sweep.csv")
    return outputs


def judge_benchmarks():
    """The benchmark file of every judge job (JUDGE_BENCHMARK per RPM)."""
    return [JUDGE_BENCHMARK.format(base=b, method=m) for b, m in rpm_pairs()]


def compute_resources(gpus=None):
    """What a heavy job (teacher, training, generation, scoring) asks for: compute.mem_mb and compute.runtime,
    both times the attempt, and compute.gpus GPUs (or `gpus`)."""
    compute = config["compute"]
    return {
        "mem_mb": lambda wildcards, attempt: compute["mem_mb"] * attempt,
        "runtime": lambda wildcards, attempt: compute["runtime"] * attempt,
        "gpu": compute["gpus"] if gpus is None else gpus,
    }


def repeat(option, files):
    return " ".join(f"{option} {f}" for f in files)


# ---------------------------------------------------------------- benchmark and models


wildcard_constraints:
    model="|".join(config["models"]),
    severity=r"[0-9.]+",


def bench_files():
    return expand(f"{BENCH_DIR}/{{file}}.jsonl", file=BENCH_FILES)


def severity_options(severity):
    """`rpm bench synth --severity SHIFT=FRACTION` per shift type."""
    return " ".join(
        f"--severity {shift}={fraction}" for shift, fraction in severity.items()
    )


def models_used():
    """The RPM base models, the estimator's base model and a local teacher, each prepared once."""
    return config_checks.models_used(config)


def model_spec(wildcards):
    """A model's spec from the config, quoted for the shell."""
    return shlex.quote(json.dumps(config["models"][wildcards.model]))


config_checks.check_model_names(config)


# ---------------------------------------------------------------- RPM methods


wildcard_constraints:
    base="|".join(config["models"]),
    method="|".join(METHODS),
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
    return (
        [f"results/models/{t['model']}"]
        if t["backend"] in ("local", "serve_local")
        else []
    )


def teacher_endpoint(wildcards, input):
    """The teacher endpoint as `rpm teacher` reads it (the local backend gets the prepared directory)."""
    t = config["teacher"]
    ep = {
        k: t[k]
        for k in ("backend", "temperature", "max_tokens", "base_url", "api_key_env")
    }
    ep["model"] = (
        input.model[0] if t["backend"] in ("local", "serve_local") else t["model"]
    )
    return shlex.quote(json.dumps(ep))


def train_inputs(wildcards):
    m = wildcards.method
    inputs = {
        "base": f"results/models/{wildcards.base}",
        "train": f"{BENCH_DIR}/train.jsonl",
    }
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
    precision = {u: config["precision"][u] for u in ("training", "generation")}
    return shlex.quote(
        json.dumps({**{k: config["rpm"][k] for k in keys}, "precision": precision})
    )


def max_new_tokens(method):
    """The longest generation of a method's RPM (thought and response for the thinking methods)."""
    g = config["rpm"]["generate"]
    return (
        g["thinking_max_new_tokens"]
        if method in THINKING_METHODS
        else g["max_new_tokens"]
    )


def responses(base, method):
    return expand(
        f"{RPM_DIR}/{base}/{method}/responses/{{subset}}.jsonl", subset=SUBSET_NAMES
    )


def rpm_pairs():
    return [(b, m) for b in config["rpm"]["bases"] for m in config["rpm"]["methods"]]


# ---------------------------------------------------------------- estimator and metrics

# Table 1's estimators: the full CoRL one, the cold start only ("w/o CoRL"), and p(y|x) ("w/o Reasoning",
# which is also the EMI estimator).
SCORER = {
    "corl": f"{EST_DIR}/coevolved/policy",
    "wo_corl": f"{EST_DIR}/coldstart/policy",
    "wo_reasoning": f"{EST_DIR}/coldstart/pxy",
}
REASONER = {
    "corl": f"{EST_DIR}/coevolved/reasoner",
    "wo_corl": f"{EST_DIR}/coldstart/reasoner",
}


wildcard_constraints:
    module="reasoner|policy|pxy",
    variant="|".join(ESTIMATORS),


def estimator_settings(wildcards=None):
    e = config["estimator"]
    keys = (
        "lora",
        "sft",
        "iterations",
        "grpo_reasoner",
        "grpo_policy",
        "reward_batch_size",
        "reason_max_new_tokens",
        "reason_batch_size",
    )
    precision = {u: config["precision"][u] for u in ("training", "generation")}
    return shlex.quote(json.dumps({**{k: e[k] for k in keys}, "precision": precision}))


def scorer_input(wildcards):
    """The scorer directory; for corl the whole co-evolution output (a directory output of its rule)."""
    return (
        f"{EST_DIR}/coevolved"
        if wildcards.variant == "corl"
        else SCORER[wildcards.variant]
    )


def reasoning_files(variant):
    if variant == "wo_reasoning":
        return []
    return expand(
        f"{EST_DIR}/reasoning/{variant}/{{subset}}.jsonl", subset=SUBSET_NAMES
    )


def logprobs_files(variant):
    return [
        f"{METRICS}/logprobs/{variant}/{b}/{m}/{s}.npz"
        for b, m in rpm_pairs()
        for s in SUBSET_NAMES
    ]


def negatives_option(k):
    """`--negatives K` when K sampled negatives per row are scored (metrics.negatives, or the sweep's own
    sweep.negatives); nothing for all pairs."""
    return f"--negatives {k}" if k else ""


def logprobs_inputs(input, rpms=()):
    """`rpm logprobs` inputs: --bench-file and --reasoning per input file, then --rpm-responses LABEL=DIR per
    (label, responses folder) in `rpms` (none: the golden responses only)."""
    parts = [
        repeat("--bench-file", input.bench),
        repeat("--reasoning", input.reasoning),
    ]
    if rpms:
        parts.append(
            " ".join(f"--rpm-responses {label}={folder}" for label, folder in rpms)
        )
    return " ".join(parts)


def remi_options(metric=None):
    """The metric settings of `rpm remi` and `rpm score` (--metric: EMI instead of R-EMI)."""
    m = config["metrics"]
    options = [f"--metric {metric}"] if metric else []
    options += [
        f"--normalization {m['normalization']}",
        f"--pairs {m['pairs']}",
        f"-k {m['k']}",
        f"--n-boot {m['n_boot']}",
        f"--seed {config['seed']}",
    ]
    return " ".join(options)


def previous_severity_files(kind, ext="jsonl"):
    """The previous severity's `kind` files (none for the first): the nested severities reuse its rows."""
    order = [f"{float(s):g}" for s in sorted(config["sweep"]["severities"])]

    def files(wildcards):
        k = order.index(wildcards.severity)
        if k == 0:
            return []
        return [
            f"{SWEEP_DIR}/severity_{order[k - 1]}/{kind}/{s}.{ext}"
            for s in SWEEP_SUBSETS
        ]

    return files


def reuse_dir_option(files):
    """`--reuse DIR` for `rpm logprobs`: the folder above the previous severity's golden files (none: "")."""
    return f"--reuse {os.path.dirname(os.path.dirname(files[0]))}" if files else ""


def sweep_files(kind, ext="jsonl"):
    """One file per scored subset in a sweep severity's folder `kind` (bench, responses, reasoning, ...)."""
    return [
        f"{SWEEP_DIR}/severity_{{severity}}/{kind}/{s}.{ext}" for s in SWEEP_SUBSETS
    ]

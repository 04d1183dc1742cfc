# Controlled-shift validation (beyond the paper): the mini benchmark's severity knob sets the fraction of
# each OOD subset that is really shifted, so the true order of shift magnitudes is known. For each
# severity, one RPM is scored on one subset per shift type with the CoRL estimator; the divergence, the
# bound and R-EMID should rise with the severity. The ID split and ID test are drawn before the knob
# acts (rpm/bench/synth.py), so they are the same samples at every severity and the RPM's training set.

SWEEP = config["sweep"]
SWEEP_DIR = "results/sweep"
SWEEP_SEVERITIES = [f"{float(s):g}" for s in SWEEP["severities"]]
SWEEP_SUBSETS = ["id_test", *SWEEP["subsets"]]
SWEEP_BASE = config["rpm"]["bases"][0]
SWEEP_RPM = f"{SWEEP_BASE}/{SWEEP['method']}"
if SWEEP["enabled"] and SWEEP["method"] not in methods_used():
    raise ValueError(f"config: sweep.method {SWEEP['method']!r} is not trained (rpm.methods: {config['rpm']['methods']})")
unknown_subsets = sorted(set(SWEEP["subsets"]) - set(SUBSET_NAMES[1:]))
if unknown_subsets:
    raise ValueError(f"config: sweep.subsets {unknown_subsets} are not OOD subsets; choose from {SUBSET_NAMES[1:]}")


wildcard_constraints:
    severity=r"[0-9.]+",


rule sweep_bench:
    output:
        [f"{SWEEP_DIR}/severity_{{severity}}/bench/{f}.jsonl" for f in BENCH_FILES],
        stats=f"{SWEEP_DIR}/severity_{{severity}}/bench/stats.tsv",
    log:
        f"{LOGS}/sweep/bench_{{severity}}.log",
    params:
        n_train=config["benchmark"]["synth"]["n_train"],
        n_per_subset=config["benchmark"]["synth"]["n_per_subset"],
        seed=config["seed"],
        out=lambda wildcards, output: os.path.dirname(output.stats),
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 15 * attempt,
    shell:
        "rpm bench synth --out {params.out} --n-train {params.n_train} --n-per-subset {params.n_per_subset} "
        "--severity user={wildcards.severity} --severity character={wildcards.severity} "
        "--severity dialogue={wildcards.severity} --seed {params.seed} > {log} 2>&1"


rule sweep_generate:
    input:
        model=f"{RPM_DIR}/{SWEEP_RPM}/model",
        bench=[f"{SWEEP_DIR}/severity_{{severity}}/bench/{s}.jsonl" for s in SWEEP_SUBSETS],
    output:
        [f"{SWEEP_DIR}/severity_{{severity}}/responses/{s}.jsonl" for s in SWEEP_SUBSETS],
    log:
        f"{LOGS}/sweep/generate_{{severity}}.log",
    benchmark:
        f"{BENCHMARKS}/sweep/generate_{{severity}}.tsv"
    params:
        bench=lambda wildcards, input: repeat("--bench-file", input.bench),
        out_dir=lambda wildcards, output: os.path.dirname(output[0]),
        max_new_tokens=config["rpm"]["generate"][
            "thinking_max_new_tokens" if SWEEP["method"] in THINKING else "max_new_tokens"
        ],
        repetition_penalty=config["rpm"]["generate"]["repetition_penalty"],
        batch_size=config["rpm"]["generate"]["batch_size"],
        seed=config["seed"],
    threads: config["compute"]["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: config["compute"]["mem_mb"] * attempt,
        runtime=lambda wildcards, attempt: config["compute"]["runtime"] * attempt,
        gpu=config["compute"]["gpus"],
    shell:
        "rpm generate --model {input.model} {params.bench} --out-dir {params.out_dir} --backend transformers "
        "--max-new-tokens {params.max_new_tokens} --repetition-penalty {params.repetition_penalty} "
        "--batch-size {params.batch_size} --seed {params.seed} --threads {threads} > {log} 2>&1"


rule sweep_reason:
    input:
        reasoner=f"{EST_DIR}/coevolved",
        bench=[f"{SWEEP_DIR}/severity_{{severity}}/bench/{s}.jsonl" for s in SWEEP_SUBSETS],
    output:
        [f"{SWEEP_DIR}/severity_{{severity}}/reasoning/{s}.jsonl" for s in SWEEP_SUBSETS],
    log:
        f"{LOGS}/sweep/reason_{{severity}}.log",
    benchmark:
        f"{BENCHMARKS}/sweep/reason_{{severity}}.tsv"
    params:
        reasoner=REASONER["corl"],
        bench=lambda wildcards, input: repeat("--bench-file", input.bench),
        out_dir=lambda wildcards, output: os.path.dirname(output[0]),
        max_new_tokens=config["estimator"]["reason_max_new_tokens"],
        batch_size=config["estimator"]["reason_batch_size"],
        seed=config["seed"],
    threads: config["compute"]["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: config["compute"]["mem_mb"] * attempt,
        runtime=lambda wildcards, attempt: config["compute"]["runtime"] * attempt,
        gpu=config["compute"]["gpus"],
    shell:
        "rpm reason --reasoner {params.reasoner} {params.bench} --out-dir {params.out_dir} "
        "--max-new-tokens {params.max_new_tokens} --batch-size {params.batch_size} --seed {params.seed} "
        "--threads {threads} > {log} 2>&1"


rule sweep_logprobs:
    input:
        scorer=f"{EST_DIR}/coevolved",
        bench=[f"{SWEEP_DIR}/severity_{{severity}}/bench/{s}.jsonl" for s in SWEEP_SUBSETS],
        reasoning=[f"{SWEEP_DIR}/severity_{{severity}}/reasoning/{s}.jsonl" for s in SWEEP_SUBSETS],
        responses=[f"{SWEEP_DIR}/severity_{{severity}}/responses/{s}.jsonl" for s in SWEEP_SUBSETS],
    output:
        golden=[f"{SWEEP_DIR}/severity_{{severity}}/logprobs/golden/{s}.npz" for s in SWEEP_SUBSETS],
        rpm=[f"{SWEEP_DIR}/severity_{{severity}}/logprobs/{SWEEP_RPM}/{s}.npz" for s in SWEEP_SUBSETS],
    log:
        f"{LOGS}/sweep/logprobs_{{severity}}.log",
    benchmark:
        f"{BENCHMARKS}/sweep/logprobs_{{severity}}.tsv"
    params:
        scorer=SCORER["corl"],
        bench=lambda wildcards, input: repeat("--bench-file", input.bench),
        reasoning=lambda wildcards, input: repeat("--reasoning", input.reasoning),
        responses_dir=lambda wildcards, input: os.path.dirname(input.responses[0]),
        label=SWEEP_RPM,
        out_dir=lambda wildcards, output: os.path.dirname(os.path.dirname(output.golden[0])),
        batch_size=config["metrics"]["batch_size"],
        overlong=config["metrics"]["overlong"],
    threads: config["compute"]["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: config["compute"]["mem_mb"] * attempt,
        runtime=lambda wildcards, attempt: config["compute"]["runtime"] * attempt,
        gpu=config["compute"]["gpus"],
    shell:
        "rpm logprobs --estimator {params.scorer} {params.bench} {params.reasoning} "
        "--rpm-responses {params.label}={params.responses_dir} --out {params.out_dir} --estimator-name corl "
        "--batch-size {params.batch_size} --overlong {params.overlong} --threads {threads} --quiet > {log} 2>&1"


rule sweep_bound:
    input:
        bench=[f"{SWEEP_DIR}/severity_{{severity}}/bench/{s}.jsonl" for s in SWEEP_SUBSETS],
        responses=[f"{SWEEP_DIR}/severity_{{severity}}/responses/{s}.jsonl" for s in SWEEP_SUBSETS],
        logprobs=[f"{SWEEP_DIR}/severity_{{severity}}/logprobs/{SWEEP_RPM}/{s}.npz" for s in SWEEP_SUBSETS],
    output:
        f"{SWEEP_DIR}/severity_{{severity}}/bound.csv",
    log:
        f"{LOGS}/sweep/bound_{{severity}}.log",
    params:
        bench_dir=lambda wildcards, input: os.path.dirname(input.bench[0]),
        responses_dir=lambda wildcards, input: os.path.dirname(input.responses[0]),
        logprobs_dir=lambda wildcards, input: os.path.dirname(input.logprobs[0]),
        subsets=repeat("--subset", SWEEP["subsets"]),
        embedder=config["metrics"]["embedder"],
        normalization=config["metrics"]["normalization"],
        seed=config["seed"],
    threads: config["compute"]["threads"]
    shell:
        "rpm bound --bench-dir {params.bench_dir} --responses-dir {params.responses_dir} "
        "--logprobs-dir {params.logprobs_dir} {params.subsets} --out {output} --sizes all --seeds {params.seed} "
        "--embedder {params.embedder} --normalization {params.normalization} --seed {params.seed} > {log} 2>&1"


rule sweep_summary:
    input:
        expand(f"{SWEEP_DIR}/severity_{{severity}}/bound.csv", severity=SWEEP_SEVERITIES),
    output:
        table=report(f"{SWEEP_DIR}/sweep.csv", caption="../report/sweep.rst", category="5. Controlled shifts"),
        spearman=report(f"{SWEEP_DIR}/sweep_spearman.csv", caption="../report/sweep.rst",
                        category="5. Controlled shifts"),
        png=report(f"{SWEEP_DIR}/sweep.png", caption="../report/sweep.rst", category="5. Controlled shifts"),
        pdf=f"{SWEEP_DIR}/sweep.pdf",
    log:
        f"{LOGS}/sweep/summary.log",
    params:
        runs=lambda wildcards, input: " ".join(
            f"--run {sev}={path}" for sev, path in zip(SWEEP_SEVERITIES, input)
        ),
        out_dir=lambda wildcards, output: os.path.dirname(output.table),
    shell:
        "rpm analyze sweep {params.runs} --out-dir {params.out_dir} > {log} 2>&1"


if SWEEP["enabled"] and config["benchmark"]["source"] == "synth":
    FINAL_TARGETS += [f"{SWEEP_DIR}/sweep.csv"]

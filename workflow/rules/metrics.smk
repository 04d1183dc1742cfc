# Stage 5, metrics: log-prob matrices, R-EMI / R-EMID, EMI / EMID, divergences, the bound, perplexity.


rule logprobs:
    input:
        scorer=scorer_input,
        bench=expand(f"{BENCH_DIR}/{{subset}}.jsonl", subset=SUBSET_NAMES),
        reasoning=lambda wildcards: reasoning_files(wildcards.variant),
        responses=[r for b, m in rpm_pairs() for r in responses(b, m)],
    output:
        golden=[
            f"{METRICS}/logprobs/{{variant}}/golden/{subset}.npz"
            for subset in SUBSET_NAMES
        ],
        rpms=[
            f"{METRICS}/logprobs/{{variant}}/{b}/{m}/{subset}.npz"
            for b, m in rpm_pairs()
            for subset in SUBSET_NAMES
        ],
    log:
        f"{LOGS}/logprobs/{{variant}}.log",
    benchmark:
        f"{BENCHMARKS}/logprobs/{{variant}}.tsv"
    wildcard_constraints:
        variant="corl|wo_reasoning",
    threads: config["compute"]["threads"]
    resources:
        **compute_resources(),
    params:
        scorer=lambda wildcards: SCORER[wildcards.variant],
        inputs=lambda wildcards, input: logprobs_inputs(
            input,
            [(f"{b}/{m}", f"{RPM_DIR}/{b}/{m}/responses") for b, m in rpm_pairs()],
        ),
        out_dir=lambda wildcards, output: os.path.dirname(
            os.path.dirname(output.golden[0])
        ),
        name=lambda wildcards: wildcards.variant,
        batch_size=config["metrics"]["batch_size"],
        overlong=config["metrics"]["overlong"],
        dtype=config["precision"]["scoring"],
        negatives=negatives_option(config["metrics"]["negatives"]),
        seed=config["seed"],
        reuse="",
    shell:
        "rpm logprobs --estimator {params.scorer} {params.inputs} --out {params.out_dir} "
        "--estimator-name {params.name} --batch-size {params.batch_size} --overlong {params.overlong} "
        "{params.negatives} --seed {params.seed} {params.reuse} --dtype {params.dtype} --threads {threads} "
        "--quiet > {log} 2>&1"


# The cold-start estimator ("w/o CoRL") scores the golden responses only (Table 1's perplexity): no RPM, and
# --out is the golden folder itself.
use rule logprobs as logprobs_golden with:
    input:
        scorer=scorer_input,
        bench=expand(f"{BENCH_DIR}/{{subset}}.jsonl", subset=SUBSET_NAMES),
        reasoning=lambda wildcards: reasoning_files(wildcards.variant),
    output:
        golden=[
            f"{METRICS}/logprobs/{{variant}}/golden/{subset}.npz"
            for subset in SUBSET_NAMES
        ],
    wildcard_constraints:
        variant="wo_corl",
    params:
        inputs=lambda wildcards, input: logprobs_inputs(input),
        out_dir=lambda wildcards, output: os.path.dirname(output.golden[0]),


# EMI / EMID: `rpm remi` on the matrices of the estimator without reasoning. It has no benchmark file; remi
# below is this rule made for R-EMI (`use rule` can add a benchmark file, not drop one).
rule emi:
    input:
        logprobs_files("wo_reasoning"),
    output:
        report(f"{METRICS}/emi.csv", caption="../report/emi.rst", category="2. Metrics"),
    log:
        f"{LOGS}/emi.log",
    params:
        options=remi_options(metric="EMI"),
    shell:
        "rpm remi {input} --out {output} {params.options} > {log} 2>&1"


# R-EMI / R-EMID with the CoRL estimator; its run time is part of Table 14's cost of R-EMID (benchmark file).
use rule emi as remi with:
    input:
        logprobs_files("corl"),
    output:
        report(
            f"{METRICS}/remi.csv", caption="../report/remi.rst", category="2. Metrics"
        ),
    log:
        f"{LOGS}/remi.log",
    benchmark:
        f"{BENCHMARKS}/remi.tsv"
    params:
        options=remi_options(),


rule perplexity:
    input:
        [f"{METRICS}/logprobs/{v}/golden/{s}.npz" for v in SCORER for s in SUBSET_NAMES],
    output:
        report(
            f"{METRICS}/perplexity.csv",
            caption="../report/perplexity.rst",
            category="2. Metrics",
        ),
    log:
        f"{LOGS}/perplexity.log",
    shell:
        "rpm perplexity {input} --out {output} > {log} 2>&1"


rule divergence:
    input:
        id=f"{BENCH_DIR}/id_test.jsonl",
        ood=expand(f"{BENCH_DIR}/{{subset}}.jsonl", subset=SUBSET_NAMES[1:]),
    output:
        csv=report(
            f"{METRICS}/divergences.csv",
            caption="../report/divergences.rst",
            category="2. Metrics",
        ),
        embeddings=f"{METRICS}/embeddings.npz",
    log:
        f"{LOGS}/divergence.log",
    threads: config["compute"]["threads"]
    params:
        ood=lambda wildcards, input: repeat("--ood", input.ood),
        embedder=config["metrics"]["embedder"],
        permutations=config["metrics"]["null_permutations"],
        seed=config["seed"],
    shell:
        "rpm divergence --id {input.id} {params.ood} --out {output.csv} --embedder {params.embedder} "
        "--embeddings-out {output.embeddings} --permutations {params.permutations} --seed {params.seed} "
        "> {log} 2>&1"


rule bound:
    input:
        bench=expand(f"{BENCH_DIR}/{{subset}}.jsonl", subset=SUBSET_NAMES),
        responses=[r for b, m in rpm_pairs() for r in responses(b, m)],
        logprobs=logprobs_files("corl"),
        embeddings=f"{METRICS}/embeddings.npz",
    output:
        report(
            f"{METRICS}/bound.csv",
            caption="../report/bound.rst",
            category="2. Metrics",
        ),
    log:
        f"{LOGS}/bound.log",
    threads: config["compute"]["threads"]
    params:
        bench_dir=lambda wildcards, input: os.path.dirname(input.bench[0]),
        rpms=" ".join(
            f"--responses-dir {RPM_DIR}/{b}/{m}/responses --logprobs-dir {METRICS}/logprobs/corl/{b}/{m}"
            for b, m in rpm_pairs()
        ),
        sizes=config["metrics"]["bound_sizes"],
        seeds=config["metrics"]["bound_seeds"],
        embedder=config["metrics"]["embedder"],
        normalization=config["metrics"]["normalization"],
        pairs=config["metrics"]["pairs"],
        k=config["metrics"]["k"],
        seed=config["seed"],
        null_permutations=config["metrics"]["null_permutations"],
    shell:
        "rpm bound --bench-dir {params.bench_dir} {params.rpms} --out {output} --sizes {params.sizes} "
        "--seeds {params.seeds} --embedder {params.embedder} --embeddings {input.embeddings} "
        "--normalization {params.normalization} --pairs {params.pairs} -k {params.k} --seed {params.seed} "
        "--null-permutations {params.null_permutations} > {log} 2>&1"

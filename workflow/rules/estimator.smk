# Stage 4, the CoRL estimator (Section 3.3, Appendix D) and its Table 1 ablations.


rule estimator_coldstart:
    input:
        base=EST_BASE,
        train=f"{BENCH_DIR}/train.jsonl",
        traces=f"{TEACHER_DIR}/trace.jsonl",
    output:
        directory(f"{EST_DIR}/coldstart/{{module}}"),
    log:
        f"{LOGS}/estimator_coldstart/{{module}}.log",
    benchmark:
        f"{BENCHMARKS}/estimator_coldstart/{{module}}.tsv"
    priority: CRITICAL_PATH
    threads: config["compute"]["threads"]
    resources:
        **compute_resources(),
    params:
        settings=estimator_settings,
        checkpoints=lambda wildcards: f"{EST_DIR}/checkpoints/coldstart-{wildcards.module}",
        seed=config["seed"],
    shell:
        "rpm estimator coldstart --module {wildcards.module} --base {input.base} --train-file {input.train} "
        "--traces {input.traces} --settings {params.settings} --out {output} "
        "--checkpoints {params.checkpoints} --seed {params.seed} --threads {threads} > {log} 2>&1"


if config["estimator"]["source"] == "coevolve":

    rule estimator_coevolve:
        input:
            base=EST_BASE,
            reasoner=f"{EST_DIR}/coldstart/reasoner",
            policy=f"{EST_DIR}/coldstart/policy",
            pool=(
                [f"{BENCH_DIR}/train.jsonl"]
                if config["estimator"]["pool"] == "train"
                else expand(f"{BENCH_DIR}/{{subset}}.jsonl", subset=SUBSET_NAMES)
            ),
        output:
            directory(f"{EST_DIR}/coevolved"),
        log:
            f"{LOGS}/estimator_coevolve.log",
        benchmark:
            f"{BENCHMARKS}/estimator_coevolve.tsv"
        priority: CRITICAL_PATH
        threads: config["compute"]["threads"]
        resources:
            **compute_resources(),
        params:
            pool=lambda wildcards, input: repeat("--pool", input.pool),
            settings=estimator_settings,
            checkpoints=f"{EST_DIR}/checkpoints/coevolve",
            seed=config["seed"],
        shell:
            "rpm estimator coevolve --base {input.base} --reasoner {input.reasoner} --policy {input.policy} "
            "{params.pool} --settings {params.settings} --out {output} --checkpoints {params.checkpoints} "
            "--seed {params.seed} --threads {threads} > {log} 2>&1"

else:

    rule estimator_published:
        input:
            base=EST_BASE,
        output:
            directory(f"{EST_DIR}/coevolved"),
        log:
            f"{LOGS}/estimator_published.log",
        params:
            source=shlex.quote(config["estimator"]["published"]["source"]),
            revision=(
                f"--revision {config['estimator']['published']['revision']}"
                if config["estimator"]["published"]["revision"]
                else ""
            ),
            reasoner=config["estimator"]["published"]["reasoner_subfolder"],
            policy=config["estimator"]["published"]["policy_subfolder"],
        shell:
            "rpm estimator published --source {params.source} {params.revision} --base {input.base} "
            "--reasoner-subfolder {params.reasoner} --policy-subfolder {params.policy} --out {output} > {log} 2>&1"


rule estimator_reason:
    input:
        reasoner=lambda wildcards: (
            f"{EST_DIR}/coevolved"
            if wildcards.variant == "corl"
            else REASONER[wildcards.variant]
        ),
        bench=expand(f"{BENCH_DIR}/{{subset}}.jsonl", subset=SUBSET_NAMES),
    output:
        [f"{EST_DIR}/reasoning/{{variant}}/{subset}.jsonl" for subset in SUBSET_NAMES],
    log:
        f"{LOGS}/estimator_reason/{{variant}}.log",
    benchmark:
        f"{BENCHMARKS}/estimator_reason/{{variant}}.tsv"
    threads: config["compute"]["threads"]
    resources:
        **compute_resources(),
    params:
        reasoner=lambda wildcards: REASONER[wildcards.variant],
        bench=lambda wildcards, input: repeat("--bench-file", input.bench),
        out_dir=lambda wildcards, output: os.path.dirname(output[0]),
        max_new_tokens=config["estimator"]["reason_max_new_tokens"],
        batch_size=config["estimator"]["reason_batch_size"],
        seed=config["seed"],
        dtype=config["precision"]["generation"],
        reuse="",
    shell:
        "rpm reason --reasoner {params.reasoner} {params.bench} --out-dir {params.out_dir} "
        "--max-new-tokens {params.max_new_tokens} --batch-size {params.batch_size} --seed {params.seed} "
        "{params.reuse} --dtype {params.dtype} --threads {threads} > {log} 2>&1"

# Stage 3, RPMs: the teacher's outputs, the nine training methods (Appendix E.1-E.2), responses.


rule teacher:
    input:
        train=f"{BENCH_DIR}/train.jsonl",
        model=teacher_model_input,
    output:
        out=f"{TEACHER_DIR}/{{task}}.jsonl",
        report=f"{TEACHER_DIR}/{{task}}.report.json",
    log:
        main=f"{LOGS}/teacher/{{task}}.log",
        server=f"{LOGS}/teacher/{{task}}.server.log",
    benchmark:
        f"{BENCHMARKS}/teacher/{{task}}.tsv"
    priority: CRITICAL_PATH
    threads: config["compute"]["threads"]
    resources:
        **compute_resources(),
    params:
        endpoint=teacher_endpoint,
        cache=f"{TEACHER_DIR}/cache",
        retries=config["teacher"]["retries"],
        retry_temperature=config["teacher"]["retry_temperature"],
        trace_policy=config["teacher"]["trace_policy"],
        augment_fraction=config["teacher"]["augment_fraction"],
        max_samples=(
            f"--max-samples {config['teacher']['max_samples']}"
            if config["teacher"]["max_samples"]
            else ""
        ),
        max_tokens=config["teacher"]["max_tokens"],
        seed=config["seed"],
    shell:
        "rpm teacher {wildcards.task} --bench-file {input.train} --teacher {params.endpoint} "
        "--out {output.out} --report {output.report} --cache-dir {params.cache} --retries {params.retries} "
        "--retry-temperature {params.retry_temperature} --trace-policy {params.trace_policy} "
        "--augment-fraction {params.augment_fraction} {params.max_samples} --max-tokens {params.max_tokens} --seed {params.seed} "
        "--server-log {log.server} --threads {threads} > {log.main} 2>&1"


rule rpm_train:
    input:
        unpack(train_inputs),
    output:
        directory(f"{RPM_DIR}/{{base}}/{{method}}/model"),
    log:
        f"{LOGS}/rpm_train/{{base}}/{{method}}.log",
    benchmark:
        f"{BENCHMARKS}/rpm_train/{{base}}/{{method}}.tsv"
    priority: FEEDS_CRITICAL_PATH
    threads: config["compute"]["threads"]
    resources:
        **compute_resources(),
    params:
        options=train_options,
        settings=train_settings,
        checkpoints=lambda wildcards: f"{RPM_DIR}/{wildcards.base}/{wildcards.method}/checkpoints",
        seed=config["seed"],
    shell:
        "rpm train --method {wildcards.method} --base {input.base} --train-file {input.train} "
        "{params.options} --settings {params.settings} --out {output} --checkpoints {params.checkpoints} "
        "--seed {params.seed} --threads {threads} > {log} 2>&1"


rule rpm_generate:
    input:
        model=f"{RPM_DIR}/{{base}}/{{method}}/model",
        bench=expand(f"{BENCH_DIR}/{{subset}}.jsonl", subset=SUBSET_NAMES),
    output:
        [
            f"{RPM_DIR}/{{base}}/{{method}}/responses/{subset}.jsonl"
            for subset in SUBSET_NAMES
        ],
    log:
        f"{LOGS}/rpm_generate/{{base}}/{{method}}.log",
    benchmark:
        f"{BENCHMARKS}/rpm_generate/{{base}}/{{method}}.tsv"
    threads: config["compute"]["threads"]
    resources:
        **compute_resources(),
    params:
        bench=lambda wildcards, input: repeat("--bench-file", input.bench),
        out_dir=lambda wildcards, output: os.path.dirname(output[0]),
        backend=config["rpm"]["generate"]["backend"],
        max_new_tokens=lambda wildcards: max_new_tokens(wildcards.method),
        repetition_penalty=config["rpm"]["generate"]["repetition_penalty"],
        batch_size=config["rpm"]["generate"]["batch_size"],
        seed=config["seed"],
        dtype=config["precision"]["generation"],
        reuse="",
    shell:
        "rpm generate --model {input.model} {params.bench} --out-dir {params.out_dir} "
        "--backend {params.backend} --max-new-tokens {params.max_new_tokens} "
        "--repetition-penalty {params.repetition_penalty} --batch-size {params.batch_size} "
        "--seed {params.seed} {params.reuse} --dtype {params.dtype} --threads {threads} > {log} 2>&1"

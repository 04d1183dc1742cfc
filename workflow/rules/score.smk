# Score your own RPM: R-EMI, R-EMID and the bound for a responses folder named in the config (score.responses),
# with this workflow's CoRL estimator and metric settings. `rpm score` is the same path by hand (README,
# "Score your own model"); the rule exists only when score.responses is set.

if config["score"]["responses"]:
    SCORE_RESPONSES = config["score"]["responses"].rstrip("/")
    # SCORE_DIR (results/score/{name}) is in common.smk: rule all asks for its summary.md.

    rule score:
        input:
            # The response files themselves, so a folder made by this DAG (results/rpm/...) is generated first.
            responses=(
                [SCORE_RESPONSES]
                if SCORE_RESPONSES.endswith(".jsonl")
                else expand(f"{SCORE_RESPONSES}/{{subset}}.jsonl", subset=SUBSET_NAMES)
            ),
            bench=expand(f"{BENCH_DIR}/{{subset}}.jsonl", subset=SUBSET_NAMES),
            estimator=f"{EST_DIR}/coevolved",
            reasoning=reasoning_files("corl"),
        output:
            remi=report(
                f"{SCORE_DIR}/remi.csv",
                caption="../report/score_remi.rst",
                category="7. Your model",
            ),
            bound=report(
                f"{SCORE_DIR}/bound.csv",
                caption="../report/score_bound.rst",
                category="7. Your model",
            ),
            figure=report(
                f"{SCORE_DIR}/remi.png",
                caption="../report/score_figure.rst",
                category="7. Your model",
            ),
            summary=f"{SCORE_DIR}/summary.md",
        log:
            f"{LOGS}/score/{config['score']['name']}.log",
        benchmark:
            f"{BENCHMARKS}/score/{config['score']['name']}.tsv"
        threads: config["compute"]["threads"]
        resources:
            **compute_resources(),
        params:
            responses=lambda wildcards, input: (
                input.responses[0]
                if len(input.responses) == 1
                else os.path.dirname(input.responses[0])
            ),
            bench_dir=lambda wildcards, input: os.path.dirname(input.bench[0]),
            estimator=lambda wildcards, input: os.path.dirname(input.estimator),
            out_dir=lambda wildcards, output: os.path.dirname(output.summary),
            name=config["score"]["name"],
            metrics=remi_options(),
            batch_size=config["metrics"]["batch_size"],
            overlong=config["metrics"]["overlong"],
            embedder=config["metrics"]["embedder"],
            sizes=config["metrics"]["bound_sizes"],
            seeds=config["metrics"]["bound_seeds"],
            null_permutations=config["metrics"]["null_permutations"],
            reason_max_new_tokens=config["estimator"]["reason_max_new_tokens"],
            reason_batch_size=config["estimator"]["reason_batch_size"],
            dtype=config["precision"]["scoring"],
        shell:
            "rpm score --responses {params.responses:q} --bench {params.bench_dir} --estimator {params.estimator} "
            "--out {params.out_dir} --name {params.name} {params.metrics} "
            "--batch-size {params.batch_size} --overlong {params.overlong} --embedder {params.embedder} "
            "--sizes {params.sizes} --seeds {params.seeds} --null-permutations {params.null_permutations} --reason-max-new-tokens {params.reason_max_new_tokens} "
            "--reason-batch-size {params.reason_batch_size} --dtype {params.dtype} --threads {threads} --quiet > {log} 2>&1"

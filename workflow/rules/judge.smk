# Stage 6, judge: LLM-as-a-judge WinRate and PointScore over an ensemble of endpoints (rpm judge).
#
# The answer cache (results/judge/cache, request hash -> answer, shared by every judge job) is deliberately
# NOT a declared output: Snakemake deletes a job's outputs before it runs the job again, so a cache declared
# as output (even a directory()) would be emptied exactly when a re-run needs it (new responses, a changed
# parameter, a metric change), and protected() would make the re-run fail. Like the teacher's cache, it is a
# persistent directory the verb reads and extends; its files are written atomically and named by content,
# so parallel judge jobs cannot corrupt it. Delete it to make the judges answer again.

# JUDGE_DIR, JUDGE_SCORES, JUDGE_LEDGER and JUDGE_BENCHMARK (judge_benchmarks(): Table 14) are in common.smk.
JUDGE_CACHE = f"{JUDGE_DIR}/cache"


import rpm.judge.workflow as judge_workflow

judge_workflow.check(config)


rule judge:
    input:
        bench=expand(f"{BENCH_DIR}/{{subset}}.jsonl", subset=SUBSET_NAMES),
        responses=lambda wildcards: responses(wildcards.base, wildcards.method),
        models=judge_workflow.model_inputs(config),
    output:
        verdicts=f"{JUDGE_DIR}/{{base}}/{{method}}/verdicts.csv",
        ledger=f"{JUDGE_DIR}/{{base}}/{{method}}/ledger.csv",
    log:
        main=f"{LOGS}/judge/{{base}}/{{method}}.log",
        server=f"{LOGS}/judge/{{base}}/{{method}}.server.log",
    benchmark:
        JUDGE_BENCHMARK
    # One thread: a served SmolLM2 call costs ~0.9 CPU-s with 1 thread but ~3.3 CPU-s with 2 on a busy 2-core
    # machine (measured; OpenMP threads spin), so two single-threaded judge jobs share 2 cores best.
    # A remote endpoint needs no more.
    threads: 1
    resources:
        **compute_resources(gpus=0),
    params:
        bench_dir=lambda wildcards, input: os.path.dirname(input.bench[0]),
        responses_dir=lambda wildcards: f"{RPM_DIR}/{wildcards.base}/{wildcards.method}/responses",
        options=judge_workflow.options(config),
        cache=JUDGE_CACHE,
        seed=config["seed"],
    shell:
        "rpm judge run --bench-dir {params.bench_dir} --responses-dir {params.responses_dir} "
        "--rpm {wildcards.base}/{wildcards.method} {params.options} --out {output.verdicts} "
        "--ledger-out {output.ledger} --cache-dir {params.cache} --seed {params.seed} "
        "--server-log {log.server} --threads {threads} --quiet > {log.main} 2>&1"


# The judges' validity check (rpm.judge.validity): each sample's golden reply against another sample's,
# both orders; its accuracy and interval go into scores.csv, the report and the audit.
rule judge_validity:
    input:
        bench=expand(f"{BENCH_DIR}/{{subset}}.jsonl", subset=SUBSET_NAMES),
        models=judge_workflow.model_inputs(config),
    output:
        validity=report(
            JUDGE_VALIDITY,
            caption="../report/judge_validity.rst",
            category="3. LLM-as-a-judge",
        ),
        verdicts=f"{JUDGE_DIR}/validity/verdicts.csv",
        ledger=f"{JUDGE_DIR}/validity/ledger.csv",
    log:
        main=f"{LOGS}/judge/validity.log",
        server=f"{LOGS}/judge/validity.server.log",
    benchmark:
        f"{BENCHMARKS}/judge/validity.tsv"
    threads: 1
    resources:
        **compute_resources(gpus=0),
    params:
        bench_dir=lambda wildcards, input: os.path.dirname(input.bench[0]),
        options=judge_workflow.options(config, validity=True),
        cache=JUDGE_CACHE,
        n_boot=config["judge"]["validity"]["n_boot"],
        seed=config["seed"],
    shell:
        "rpm judge validity --bench-dir {params.bench_dir} {params.options} --out {output.validity} "
        "--verdicts-out {output.verdicts} --ledger-out {output.ledger} --cache-dir {params.cache} "
        "--n-boot {params.n_boot} --seed {params.seed} --server-log {log.server} --threads {threads} --quiet "
        "> {log.main} 2>&1"


rule judge_summarize:
    input:
        verdicts=[f"{JUDGE_DIR}/{b}/{m}/verdicts.csv" for b, m in rpm_pairs()],
        ledgers=[f"{JUDGE_DIR}/{b}/{m}/ledger.csv" for b, m in rpm_pairs()],
        validity=JUDGE_VALIDITY,
    output:
        scores=report(
            JUDGE_SCORES,
            caption="../report/judge_scores.rst",
            category="3. LLM-as-a-judge",
        ),
        ledger=report(
            JUDGE_LEDGER,
            caption="../report/judge_ledger.rst",
            category="3. LLM-as-a-judge",
        ),
    log:
        f"{LOGS}/judge/summarize.log",
    params:
        dirs=lambda wildcards, input: " ".join(
            os.path.dirname(v) for v in input.verdicts
        ),
    shell:
        "rpm judge summarize {params.dirs} --scores-out {output.scores} --ledger-out {output.ledger} "
        "--validity {input.validity} > {log} 2>&1"

# Stage 1, data: the benchmark normalised to results/data/bench/{train,<12 subsets>}.jsonl.


# The mini benchmark with every shift type at one severity, for the controlled-shift sweep (sweep.smk). It is
# the rule bench_synth below is made from (`use rule` can add a benchmark file, not drop one), so it is
# defined here, whatever benchmark.source is.
rule sweep_bench:
    output:
        [f"{SWEEP_DIR}/severity_{{severity}}/bench/{f}.jsonl" for f in BENCH_FILES],
        stats=f"{SWEEP_DIR}/severity_{{severity}}/bench/stats.tsv",
    log:
        f"{LOGS}/sweep/bench_{{severity}}.log",
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 15 * attempt,
    params:
        n_train=config["benchmark"]["synth"]["n_train"],
        n_per_subset=config["sweep"]["n_per_subset"],
        severity=lambda wildcards: severity_options(
            {shift: wildcards.severity for shift in SHIFTS}
        ),
        seed=config["seed"],
        out=lambda wildcards, output: os.path.dirname(output.stats),
    shell:
        "rpm bench synth --out {params.out} --n-train {params.n_train} "
        "--n-per-subset {params.n_per_subset} {params.severity} --seed {params.seed} > {log} 2>&1"


if config["benchmark"]["source"] == "synth":

    # The run's benchmark: the severities of benchmark.synth.severity.
    use rule sweep_bench as bench_synth with:
        output:
            bench_files(),
            stats=report(
                f"{BENCH_DIR}/stats.tsv",
                caption="../report/bench_stats.rst",
                category="1. Benchmark",
            ),
        log:
            f"{LOGS}/bench_synth.log",
        benchmark:
            f"{BENCHMARKS}/bench_synth.tsv"
        params:
            n_per_subset=config["benchmark"]["synth"]["n_per_subset"],
            severity=severity_options(config["benchmark"]["synth"]["severity"]),

else:

    rule bench_fetch:
        output:
            bench_files(),
            stats=report(
                f"{BENCH_DIR}/stats.tsv",
                caption="../report/bench_stats.rst",
                category="1. Benchmark",
            ),
        log:
            f"{LOGS}/bench_fetch.log",
        benchmark:
            f"{BENCHMARKS}/bench_fetch.tsv"
        threads: 1
        resources:
            mem_mb=lambda wildcards, attempt: 4000 * attempt,
            runtime=lambda wildcards, attempt: 60 * attempt,
        params:
            source=shlex.quote(config["benchmark"]["fetch"]["source"]),
            limits=" ".join(
                f"--{k.replace('_', '-')} {v}"
                for k, v in config["benchmark"]["fetch"].items()
                if k in ("max_train", "max_per_subset") and v is not None
            ),
            seed=config["seed"],
            out=lambda wildcards, output: os.path.dirname(output.stats),
        shell:
            "rpm bench fetch --source {params.source} --out {params.out} {params.limits} "
            "--seed {params.seed} > {log} 2>&1"

# Stage 1, data: the benchmark normalised to results/data/bench/{train,<12 subsets>}.jsonl.


if config["benchmark"]["source"] == "synth":

    rule bench_synth:
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
            n_train=config["benchmark"]["synth"]["n_train"],
            n_per_subset=config["benchmark"]["synth"]["n_per_subset"],
            severity=" ".join(
                f"--severity {k}={v}"
                for k, v in config["benchmark"]["synth"]["severity"].items()
            ),
            seed=config["seed"],
            out=lambda wildcards, output: os.path.dirname(output.stats),
        threads: 1
        resources:
            mem_mb=lambda wildcards, attempt: 2000 * attempt,
            runtime=lambda wildcards, attempt: 15 * attempt,
        shell:
            "rpm bench synth --out {params.out} --n-train {params.n_train} "
            "--n-per-subset {params.n_per_subset} {params.severity} --seed {params.seed} > {log} 2>&1"

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
        params:
            source=shlex.quote(config["benchmark"]["fetch"]["source"]),
            limits=" ".join(
                f"--{k.replace('_', '-')} {v}"
                for k, v in config["benchmark"]["fetch"].items()
                if k in ("max_train", "max_per_subset") and v is not None
            ),
            seed=config["seed"],
            out=lambda wildcards, output: os.path.dirname(output.stats),
        threads: 1
        resources:
            mem_mb=lambda wildcards, attempt: 4000 * attempt,
            runtime=lambda wildcards, attempt: 60 * attempt,
        shell:
            "rpm bench fetch --source {params.source} --out {params.out} {params.limits} "
            "--seed {params.seed} > {log} 2>&1"

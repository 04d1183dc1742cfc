# The audit against the paper (rpm audit): the published tables (rpm/audit/published.csv) checked against
# themselves, and this run's numbers beside them, in results/audit.md and results/audit.csv.

# AUDIT_MD and AUDIT_CSV are in common.smk (rule all asks for them). The analysis stage's correlation and
# cost tables (ANALYSIS_OUTPUTS, common.smk): Tables 13, 14 and Figures 4, 5 are audited from them.
AUDIT_ANALYSIS_INPUTS = {
    name: ANALYSIS_OUTPUTS[name] for name in ("correlations", "table14_cost")
}
AUDIT_OPTIONS = {"correlations": "--correlations", "table14_cost": "--cost"}


rule audit:
    input:
        **AUDIT_ANALYSIS_INPUTS,
        remi=f"{METRICS}/remi.csv",
        perplexity=f"{METRICS}/perplexity.csv",
        bound=f"{METRICS}/bound.csv",
        stats=f"{BENCH_DIR}/stats.tsv",
        bench=bench_files(),
        judge_validity=JUDGE_VALIDITY,
    output:
        csv=report(
            AUDIT_CSV,
            caption="../report/audit.rst",
            category="6. Audit against the paper",
        ),
        md=AUDIT_MD,
    log:
        f"{LOGS}/audit.log",
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        bench_dir=lambda wildcards, input: os.path.dirname(input.stats),
        analysis=lambda wildcards, input: " ".join(
            f"{AUDIT_OPTIONS[name]} {input[name]}" for name in AUDIT_ANALYSIS_INPUTS
        ),
        base_map=" ".join(
            f"--base-map {shlex.quote(f'{ours}={paper}')}"
            for ours, paper in config["audit"]["base_map"].items()
        ),
        scale=config["audit"]["scale"],
    shell:
        "rpm audit --scale {params.scale} --remi {input.remi} --perplexity {input.perplexity} --bound {input.bound} "
        "--stats {input.stats} --bench-dir {params.bench_dir} {params.analysis} {params.base_map} "
        "--judge-validity {input.judge_validity} --out-md {output.md} --out-csv {output.csv} > {log} 2>&1"

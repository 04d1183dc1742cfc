# Stage 7, analysis: the paper's figures and tables (rpm analyze), each a CSV plus a PNG/PDF figure under
# results/analysis/ (ANALYSIS_OUTPUTS, common.smk), declared for the report
# (`snakemake --report results/report.html`).

# The jobs whose time is the cost of R-EMID: the reasoning traces and the log-prob matrices of CoRL.
REMID_BENCHMARKS = [
    f"{BENCHMARKS}/estimator_reason/corl.tsv",
    f"{BENCHMARKS}/logprobs/corl.tsv",
    f"{BENCHMARKS}/remi.tsv",
]
# Correlation intervals: as many replicates as the metrics' intervals, the workflow's seed.
ANALYSIS_BOOT = f"--n-boot {config['metrics']['n_boot']} --seed {config['seed']}"
# Where each figure's correlations go before `rpm analyze correlations` merges them.
ANALYSIS_PARTS = f"{ANALYSIS}/correlations"


include: "analysis_common.smk"


rule analysis_fig2:
    input:
        scores=JUDGE_SCORES,
        divergences=f"{METRICS}/divergences.csv",
    output:
        **analysis_outputs("fig2", "Figure 2: pilot study", correlations=True),
    log:
        f"{LOGS}/analysis/fig2.log",
    params:
        figures=figure_options,
        boot=ANALYSIS_BOOT,
    shell:
        "rpm analyze fig2 --scores {input.scores} --divergences {input.divergences} --out {output.csv} "
        "--correlations {output.correlations} {params.figures} {params.boot} > {log} 2>&1"


rule analysis_fig4:
    input:
        remi=f"{METRICS}/remi.csv",
        emi=f"{METRICS}/emi.csv",
        scores=JUDGE_SCORES,
    output:
        **analysis_outputs("fig4", "Figure 4: metrics vs the judge", correlations=True),
    log:
        f"{LOGS}/analysis/fig4.log",
    params:
        figures=figure_options,
        boot=ANALYSIS_BOOT,
    shell:
        "rpm analyze fig4 --remi {input.remi} --emi {input.emi} --scores {input.scores} --out {output.csv} "
        "--correlations {output.correlations} {params.figures} {params.boot} > {log} 2>&1"


rule analysis_fig5a:
    input:
        f"{METRICS}/bound.csv",
    output:
        **analysis_outputs(
            "fig5a", "Figure 5 and Table 13: bound tightness", correlations=True
        ),
    log:
        f"{LOGS}/analysis/fig5a.log",
    params:
        figures=figure_options,
        boot=ANALYSIS_BOOT,
    shell:
        "rpm analyze fig5a --bound {input} --out {output.csv} --correlations {output.correlations} "
        "{params.figures} {params.boot} > {log} 2>&1"


rule analysis_fig5b:
    input:
        f"{METRICS}/bound.csv",
    output:
        **analysis_outputs("fig5b", "Figure 5 and Table 13: bound tightness"),
    log:
        f"{LOGS}/analysis/fig5b.log",
    params:
        figures=figure_options,
        boot=ANALYSIS_BOOT,
        size=config["analysis"]["bound_size"],
    shell:
        "rpm analyze fig5b --bound {input} --size {params.size} --out {output.csv} {params.figures} "
        "{params.boot} > {log} 2>&1"


rule analysis_table13:
    input:
        f"{METRICS}/bound.csv",
    output:
        **analysis_outputs(
            "table13", "Figure 5 and Table 13: bound tightness", correlations=True
        ),
    log:
        f"{LOGS}/analysis/table13.log",
    params:
        figures=figure_options,
        boot=ANALYSIS_BOOT,
        size=config["analysis"]["bound_size"],
    shell:
        "rpm analyze table13 --bound {input} --size {params.size} --out {output.csv} "
        "--correlations {output.correlations} {params.figures} {params.boot} > {log} 2>&1"


rule analysis_correlations:
    input:
        [
            f"{ANALYSIS_PARTS}/{name}.csv"
            for name in ("fig2", "fig4", "fig5a", "table13")
        ],
    output:
        analysis_report("correlations", subcategory="Correlations (all figures)"),
    log:
        f"{LOGS}/analysis/correlations.log",
    shell:
        "rpm analyze correlations {input} --out {output} > {log} 2>&1"


rule analysis_table20:
    input:
        f"{METRICS}/remi.csv",
    output:
        **analysis_outputs("table20", "Figures 6, 7 and Table 20: training methods"),
    log:
        f"{LOGS}/analysis/table20.log",
    params:
        figures=figure_options,
    shell:
        "rpm analyze table20 --remi {input} --out {output.csv} {params.figures} > {log} 2>&1"


rule analysis_fig6:
    input:
        f"{METRICS}/remi.csv",
    output:
        **analysis_outputs("fig6", "Figures 6, 7 and Table 20: training methods"),
    log:
        f"{LOGS}/analysis/fig6.log",
    params:
        figures=figure_options,
    shell:
        "rpm analyze fig6 --remi {input} --out {output.csv} {params.figures} > {log} 2>&1"


rule analysis_fig7:
    input:
        f"{METRICS}/bound.csv",
    output:
        **analysis_outputs("fig7", "Figures 6, 7 and Table 20: training methods"),
    log:
        f"{LOGS}/analysis/fig7.log",
    params:
        figures=figure_options,
    shell:
        "rpm analyze fig7 --bound {input} --out {output.csv} {params.figures} > {log} 2>&1"


rule analysis_table12:
    input:
        f"{METRICS}/bound.csv",
    output:
        **analysis_outputs("table12", "Table 12: divergence terms and bound"),
    log:
        f"{LOGS}/analysis/table12.log",
    params:
        figures=figure_options,
    shell:
        "rpm analyze table12 --bound {input} --out {output.csv} {params.figures} > {log} 2>&1"


# The positive control: a planted RPM of known R-EMI (another sample's golden reply for a fraction f), from
# each estimator's golden matrices alone (nothing is scored again).
rule analysis_control:
    input:
        [
            f"{METRICS}/logprobs/{variant}/golden/{subset}.npz"
            for variant in ("corl", "wo_corl", "wo_reasoning")
            for subset in SUBSET_NAMES
        ],
    output:
        **analysis_outputs("control", "Positive control: a planted RPM"),
        slopes=report(
            f"{ANALYSIS}/control_slope.csv",
            caption="../report/analysis_control.rst",
            category="4. Analysis",
            subcategory="Positive control: a planted RPM",
            labels={"result": "control_slope", "format": "csv"},
        ),
    log:
        f"{LOGS}/analysis/control.log",
    params:
        golden=" ".join(
            f"--golden {variant}={METRICS}/logprobs/{variant}/golden"
            for variant in ("corl", "wo_corl", "wo_reasoning")
        ),
        figures=figure_options,
        boot=ANALYSIS_BOOT,
    shell:
        "rpm analyze control {params.golden} --out {output.csv} --slopes {output.slopes} {params.figures} "
        "{params.boot} > {log} 2>&1"


# Do the RPMs role-play? The SFT RPM's gain over its base on the ID-test golden targets, the closing tag, and
# no two methods answering alike (rpm/analysis/roleplay.py).
rule analysis_roleplay:
    input:
        unpack(roleplay_inputs),
        base=f"results/models/{ROLEPLAY_BASE}",
        sft=f"{RPM_DIR}/{ROLEPLAY_BASE}/sft/model",
        responses=[
            f
            for method in config["rpm"]["methods"]
            for f in responses(ROLEPLAY_BASE, method)
        ],
    output:
        **analysis_outputs(
            "roleplay", "Do the RPMs role-play?", category="0. What this run shows"
        ),
    log:
        f"{LOGS}/analysis/roleplay.log",
    threads: config["compute"]["threads"]
    params:
        responses=" ".join(
            f"--responses {method}={RPM_DIR}/{ROLEPLAY_BASE}/{method}/responses"
            for method in config["rpm"]["methods"]
        ),
        extra=roleplay_extra,
        figures=figure_options,
        boot=ANALYSIS_BOOT,
        dtype=config["precision"]["scoring"],
    shell:
        "rpm analyze roleplay --base {input.base} --sft {input.sft} --id-bench {input.id_bench} "
        "{params.responses} {params.extra} --out {output.csv} {params.figures} {params.boot} --dtype {params.dtype} "
        "--threads {threads} > {log} 2>&1"


# What the run shows and how sure it is: the report's first table.
rule analysis_summary:
    input:
        unpack(summary_inputs),
    output:
        **analysis_outputs(
            "summary",
            "Every claim with its uncertainty",
            category="0. What this run shows",
        ),
    log:
        f"{LOGS}/analysis/summary.log",
    params:
        sweep=summary_options,
        roleplay=lambda wildcards, input: (
            f"--roleplay {input.roleplay}" if "roleplay" in input.keys() else ""
        ),
        figures=figure_options,
    shell:
        "rpm analyze summary --control-slope {input.control} --validity {input.validity} {params.sweep} "
        "{params.roleplay} "
        "--out {output.csv} {params.figures} > {log} 2>&1"


rule analysis_table14:
    input:
        remid_benchmarks=REMID_BENCHMARKS,
        judge_benchmarks=judge_benchmarks(),
        ledger=JUDGE_LEDGER,
        remi=f"{METRICS}/remi.csv",
        scores=JUDGE_SCORES,
    output:
        **analysis_outputs("table14_cost", "Table 14: cost of R-EMID vs the judge"),
    log:
        f"{LOGS}/analysis/table14.log",
    params:
        figures=figure_options,
        remid=lambda wildcards, input: repeat(
            "--remid-benchmark", input.remid_benchmarks
        ),
        judge=lambda wildcards, input: repeat(
            "--judge-benchmark", input.judge_benchmarks
        ),
    shell:
        "rpm analyze table14 {params.remid} {params.judge} --ledger {input.ledger} --remi {input.remi} "
        "--scores {input.scores} --out {output.csv} {params.figures} > {log} 2>&1"


rule analysis_table2:
    input:
        bench_files(),
    output:
        **analysis_outputs("table2", "Table 2: benchmark splits"),
    log:
        f"{LOGS}/analysis/table2.log",
    params:
        figures=figure_options,
    shell:
        "rpm analyze table2 {input} --out {output.csv} {params.figures} > {log} 2>&1"


# Summarises the benchmark files present when it runs. Its inputs (the metric tables and the judge's
# scores) are only there to order it after nearly every other job; jobs that finish later (the other
# analyses, the audit) are not in it.
rule analysis_runtime:
    input:
        expand(
            f"{METRICS}/{{table}}.csv",
            table=["remi", "emi", "perplexity", "divergences", "bound"],
        ),
        JUDGE_SCORES,
    output:
        **analysis_outputs(
            "runtime", "Per-job run time and memory", category="8. Run time"
        ),
    log:
        f"{LOGS}/analysis/runtime.log",
    params:
        figures=figure_options,
        benchmarks=BENCHMARKS,
    shell:
        "rpm analyze runtime --benchmarks-dir {params.benchmarks} --out {output.csv} {params.figures} > {log} 2>&1"

# Stage 7, analysis: the paper's figures and tables (rpm analyze), each a CSV plus a PNG/PDF figure under
# results/analysis/, declared for the report (`snakemake --report results/report.html`).

ANALYSIS = "results/analysis"
# The judge stage's outputs (workflow/rules/judge.smk defines them; these are the contract's paths).
globals().setdefault("JUDGE_SCORES", "results/judge/scores.csv")
globals().setdefault("JUDGE_LEDGER", "results/judge/ledger.csv")
# Benchmark files of the judge job(s), for Table 14's measured judge time.
globals().setdefault("JUDGE_BENCHMARKS", [f"{BENCHMARKS}/judge.tsv"])
# The jobs whose time is the cost of R-EMID: the reasoning traces and the log-prob matrices of CoRL.
REMID_BENCHMARKS = [f"{BENCHMARKS}/estimator_reason/corl.tsv", f"{BENCHMARKS}/logprobs/corl.tsv", f"{BENCHMARKS}/remi.tsv"]
# Correlation intervals: as many replicates as the metrics' intervals, the workflow's seed.
ANALYSIS_BOOT = f"--n-boot {config['metrics']['n_boot']} --seed {config['seed']}"

# Every table of this stage (the audit's rules read them from here); figures sit beside, .png and .pdf.
ANALYSIS_OUTPUTS = {
    "correlations": f"{ANALYSIS}/correlations.csv",
    "fig2": f"{ANALYSIS}/fig2_pilot.csv",
    "fig4": f"{ANALYSIS}/fig4_points.csv",
    "fig5a": f"{ANALYSIS}/fig5a_convergence.csv",
    "fig5b": f"{ANALYSIS}/fig5b_points.csv",
    "table13": f"{ANALYSIS}/table13_shift_correlations.csv",
    "fig6": f"{ANALYSIS}/fig6_remi.csv",
    "fig7": f"{ANALYSIS}/fig7_bound.csv",
    "table20": f"{ANALYSIS}/table20_remi.csv",
    "table12": f"{ANALYSIS}/table12_divergence_terms.csv",
    "table14_cost": f"{ANALYSIS}/table14_cost.csv",
    "table2": f"{ANALYSIS}/table2_splits.csv",
    "runtime": f"{ANALYSIS}/runtime.csv",
}
# Where each figure's correlations go before `rpm analyze correlations` merges them.
ANALYSIS_PARTS = f"{ANALYSIS}/correlations"


include: "analysis_common.smk"


rule analysis_fig2:
    input:
        scores=JUDGE_SCORES,
        divergences=f"{METRICS}/divergences.csv",
    output:
        csv=analysis_report("fig2", subcategory="Figure 2: pilot study"),
        correlations=f"{ANALYSIS_PARTS}/fig2.csv",
        png=analysis_figure("fig2", "png", "Figure 2: pilot study"),
        pdf=analysis_figure("fig2", "pdf", "Figure 2: pilot study"),
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
        csv=analysis_report("fig4", subcategory="Figure 4: metrics vs the judge"),
        correlations=f"{ANALYSIS_PARTS}/fig4.csv",
        png=analysis_figure("fig4", "png", "Figure 4: metrics vs the judge"),
        pdf=analysis_figure("fig4", "pdf", "Figure 4: metrics vs the judge"),
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
        csv=analysis_report("fig5a", subcategory="Figure 5 and Table 13: bound tightness"),
        correlations=f"{ANALYSIS_PARTS}/fig5a.csv",
        png=analysis_figure("fig5a", "png", "Figure 5 and Table 13: bound tightness"),
        pdf=analysis_figure("fig5a", "pdf", "Figure 5 and Table 13: bound tightness"),
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
        csv=analysis_report("fig5b", subcategory="Figure 5 and Table 13: bound tightness"),
        png=analysis_figure("fig5b", "png", "Figure 5 and Table 13: bound tightness"),
        pdf=analysis_figure("fig5b", "pdf", "Figure 5 and Table 13: bound tightness"),
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
        csv=analysis_report("table13", subcategory="Figure 5 and Table 13: bound tightness"),
        correlations=f"{ANALYSIS_PARTS}/table13.csv",
        png=analysis_figure("table13", "png", "Figure 5 and Table 13: bound tightness"),
        pdf=analysis_figure("table13", "pdf", "Figure 5 and Table 13: bound tightness"),
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
        [f"{ANALYSIS_PARTS}/{name}.csv" for name in ("fig2", "fig4", "fig5a", "table13")],
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
        csv=analysis_report("table20", subcategory="Figures 6, 7 and Table 20: training methods"),
        png=analysis_figure("table20", "png", "Figures 6, 7 and Table 20: training methods"),
        pdf=analysis_figure("table20", "pdf", "Figures 6, 7 and Table 20: training methods"),
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
        csv=analysis_report("fig6", subcategory="Figures 6, 7 and Table 20: training methods"),
        png=analysis_figure("fig6", "png", "Figures 6, 7 and Table 20: training methods"),
        pdf=analysis_figure("fig6", "pdf", "Figures 6, 7 and Table 20: training methods"),
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
        csv=analysis_report("fig7", subcategory="Figures 6, 7 and Table 20: training methods"),
        png=analysis_figure("fig7", "png", "Figures 6, 7 and Table 20: training methods"),
        pdf=analysis_figure("fig7", "pdf", "Figures 6, 7 and Table 20: training methods"),
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
        csv=analysis_report("table12", subcategory="Table 12: divergence terms and bound"),
        png=analysis_figure("table12", "png", "Table 12: divergence terms and bound"),
        pdf=analysis_figure("table12", "pdf", "Table 12: divergence terms and bound"),
    log:
        f"{LOGS}/analysis/table12.log",
    params:
        figures=figure_options,
    shell:
        "rpm analyze table12 --bound {input} --out {output.csv} {params.figures} > {log} 2>&1"


rule analysis_table14:
    input:
        remid_benchmarks=REMID_BENCHMARKS,
        judge_benchmarks=JUDGE_BENCHMARKS,
        ledger=JUDGE_LEDGER,
        remi=f"{METRICS}/remi.csv",
        scores=JUDGE_SCORES,
    output:
        csv=analysis_report("table14_cost", subcategory="Table 14: cost of R-EMID vs the judge"),
        png=analysis_figure("table14_cost", "png", "Table 14: cost of R-EMID vs the judge"),
        pdf=analysis_figure("table14_cost", "pdf", "Table 14: cost of R-EMID vs the judge"),
    log:
        f"{LOGS}/analysis/table14.log",
    params:
        figures=figure_options,
        remid=lambda wildcards, input: repeat("--remid-benchmark", input.remid_benchmarks),
        judge=lambda wildcards, input: repeat("--judge-benchmark", input.judge_benchmarks),
    shell:
        "rpm analyze table14 {params.remid} {params.judge} --ledger {input.ledger} --remi {input.remi} "
        "--scores {input.scores} --out {output.csv} {params.figures} > {log} 2>&1"


rule analysis_table2:
    input:
        bench_files(),
    output:
        csv=analysis_report("table2", subcategory="Table 2: benchmark splits"),
        png=analysis_figure("table2", "png", "Table 2: benchmark splits"),
        pdf=analysis_figure("table2", "pdf", "Table 2: benchmark splits"),
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
        expand(f"{METRICS}/{{table}}.csv", table=["remi", "emi", "perplexity", "divergences", "bound"]),
        JUDGE_SCORES,
    output:
        csv=analysis_report("runtime", category="8. Run time", subcategory="Per-job run time and memory"),
        png=analysis_figure("runtime", "png", "Per-job run time and memory", category="8. Run time"),
        pdf=analysis_figure("runtime", "pdf", "Per-job run time and memory", category="8. Run time"),
    log:
        f"{LOGS}/analysis/runtime.log",
    params:
        figures=figure_options,
        benchmarks=BENCHMARKS,
    shell:
        "rpm analyze runtime --benchmarks-dir {params.benchmarks} --out {output.csv} {params.figures} > {log} 2>&1"


FINAL_TARGETS += list(ANALYSIS_OUTPUTS.values())

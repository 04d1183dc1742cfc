# Helpers of workflow/rules/analysis.smk (which includes this file): the outputs of its rules, each declared
# for the report with its caption (workflow/report/analysis_{name}.rst).


def analysis_report(name, category="4. Analysis", subcategory=None):
    """A table of this stage, declared for the report with its caption."""
    return report(
        ANALYSIS_OUTPUTS[name],
        caption=f"../report/analysis_{name}.rst",
        category=category,
        subcategory=subcategory,
        labels={"result": name, "format": "csv"},
    )


def analysis_figure(name, ext, subcategory, category="4. Analysis"):
    """The figure beside a table: same stem, .png or .pdf (both are in the report)."""
    stem = os.path.splitext(ANALYSIS_OUTPUTS[name])[0]
    return report(
        f"{stem}.{ext}",
        caption=f"../report/analysis_{name}.rst",
        category=category,
        subcategory=subcategory,
        labels={"result": name, "format": ext},
    )


def analysis_outputs(name, subcategory, category="4. Analysis", correlations=False):
    """The outputs of one figure's rule: csv (its table), correlations (its part of correlations.csv, when the
    figure has correlations), png and pdf (the figure), all but the part in the report.
    """
    outputs = {"csv": analysis_report(name, category=category, subcategory=subcategory)}
    if correlations:
        outputs["correlations"] = f"{ANALYSIS_PARTS}/{name}.csv"
    outputs["png"] = analysis_figure(name, "png", subcategory, category=category)
    outputs["pdf"] = analysis_figure(name, "pdf", subcategory, category=category)
    return outputs


def figure_options(wildcards, output):
    return f"--figure {output.png} --figure {output.pdf}"


def summary_inputs(wildcards):
    """The claims' sources: the control, the judge's validity and, when the sweep runs, its statistics."""
    inputs = {
        "control": f"{ANALYSIS}/control_slope.csv",
        "validity": JUDGE_VALIDITY,
    }
    if "roleplay" in ANALYSIS_OUTPUTS:
        inputs["roleplay"] = ANALYSIS_OUTPUTS["roleplay"]
    if config["sweep"]["enabled"] and config["benchmark"]["source"] == "synth":
        top = f"{float(max(config['sweep']['severities'])):g}"
        inputs["spearman"] = f"{SWEEP_DIR}/sweep_spearman.csv"
        inputs["slopes"] = f"{SWEEP_DIR}/sweep_slopes.csv"
        inputs["top_bound"] = f"{SWEEP_DIR}/severity_{top}/bound.csv"
    return inputs


def roleplay_inputs(wildcards):
    """The role-play checks' samples. With the sweep, its lowest severity's ID test (sweep.n_per_subset samples,
    the run's ID test among them; the same training split) is scored for the gain, and the sweep RPM's responses there
    join that RPM's close check: the run's few ID-test samples cannot decide either threshold.
    """
    inputs = {"id_bench": f"{BENCH_DIR}/id_test.jsonl"}
    if config["sweep"]["enabled"] and config["benchmark"]["source"] == "synth":
        low = f"{float(min(config['sweep']['severities'])):g}"
        inputs["id_bench"] = f"{SWEEP_DIR}/severity_{low}/bench/id_test.jsonl"
        inputs["sweep_responses"] = [
            f"{SWEEP_DIR}/severity_{low}/responses/{s}.jsonl" for s in SWEEP_SUBSETS
        ]
    return inputs


def roleplay_extra(wildcards, input):
    if "sweep_responses" not in input.keys():
        return ""
    folder = os.path.dirname(input.sweep_responses[0])
    return f"--close-extra {config['sweep']['method']}={folder}"


def summary_options(wildcards, input):
    if "spearman" not in input.keys():
        return ""
    top = f"{float(max(config['sweep']['severities'])):g}"
    return (
        f"--sweep-spearman {input.spearman} --top-bound {input.top_bound} --top-severity {top} "
        f"--sweep-slopes {input.slopes}"
    )

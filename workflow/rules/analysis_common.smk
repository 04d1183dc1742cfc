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


def summary_options(wildcards, input):
    if "spearman" not in input.keys():
        return ""
    top = f"{float(max(config['sweep']['severities'])):g}"
    return (
        f"--sweep-spearman {input.spearman} --top-bound {input.top_bound} --top-severity {top} "
        f"--sweep-slopes {input.slopes}"
    )

# Helpers of workflow/rules/analysis.smk (which includes this file): report declarations of its outputs.


def analysis_report(name, category="4. Analysis", subcategory=None):
    """A table of this stage, declared for the report with its caption."""
    return report(ANALYSIS_OUTPUTS[name], caption=f"../report/analysis_{name}.rst", category=category,
                  subcategory=subcategory, labels={"result": name, "format": "csv"})


def analysis_figure(name, ext, subcategory, category="4. Analysis"):
    """The figure beside a table: same stem, .png or .pdf (both are in the report)."""
    stem = os.path.splitext(ANALYSIS_OUTPUTS[name])[0]
    return report(f"{stem}.{ext}", caption=f"../report/analysis_{name}.rst", category=category,
                  subcategory=subcategory, labels={"result": name, "format": ext})


def figure_options(wildcards, output):
    return f"--figure {output.png} --figure {output.pdf}"

# rpm-generalization: the paper "Understanding Generalization in Role-Playing Models via
# Information Theory" as a DAG of files. Each rule calls one `rpm` verb; rules hold no logic.
#
#   snakemake --cores 2                                         # embedded default (config.yaml)
#   snakemake --cores 2 --configfile workflow/configs/smoke.yaml  # tests: tiny random model
#   snakemake --cores all --configfile workflow/configs/paper.yaml --sdm apptainer   # full scale, GPUs

import os

from snakemake.utils import min_version

min_version("9.0")


# The embedded default, always loaded (also when the working directory is elsewhere); configs given
# with --configfile are overlays merged over it.
configfile: os.path.join(workflow.basedir, "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


# The software every rule runs in with `--sdm apptainer` (config key `container`, default in config.yaml,
# validated by common.smk above; containers/*.def build the images). Before any rule is defined.
container: config["container"]


include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/rpm.smk"
include: "workflow/rules/estimator.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/judge.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/audit.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/sweep.smk"
include: "workflow/rules/bench_build.smk"


# The final outputs, computed from the config by common.smk (final_outputs); every other job is upstream.
rule all:
    default_target: True
    input:
        final_outputs(),

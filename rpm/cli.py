"""The `rpm` command: one click group, one verb per workflow rule. Every verb is usable by hand.

Each stage package defines its verbs in its own `cli.py`; this module only registers them. Errors a
user can fix are turned into one clean line by `rpm.cli_shared.RpmGroup`.
"""

from __future__ import annotations

import sys

import click

from rpm.analysis.cli import analyze
from rpm.audit.cli import audit_cmd
from rpm.bench.cli import bench
from rpm.cli_shared import CONTEXT_SETTINGS, RpmGroup
from rpm.construct.cli import build
from rpm.estimator.cli import estimator, reason_cmd
from rpm.judge.cli import judge_cmd
from rpm.metrics.cli import bound_cmd, divergence_cmd, logprobs_cmd, perplexity_cmd, remi_cmd
from rpm.models.cli import model
from rpm.score.cli import score_cmd
from rpm.teacher.cli import teacher
from rpm.train.cli import generate_cmd, train_cmd


@click.group(cls=RpmGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="rpm-generalization")
def main():
    """R-EMI / R-EMID for role-playing models (Li et al.): the verbs behind each workflow rule.

    The Snakemake workflow calls these with explicit paths; each also runs by hand.
    """


# In the order of the workflow's stages.
bench.add_command(build, "build")
for command, name in [(bench, "bench"), (model, "model"), (teacher, "teacher"), (train_cmd, "train"),
                      (generate_cmd, "generate"), (estimator, "estimator"), (reason_cmd, "reason"),
                      (logprobs_cmd, "logprobs"), (remi_cmd, "remi"), (perplexity_cmd, "perplexity"),
                      (divergence_cmd, "divergence"), (bound_cmd, "bound"), (judge_cmd, "judge"),
                      (analyze, "analyze"), (audit_cmd, "audit"), (score_cmd, "score")]:
    main.add_command(command, name)


if __name__ == "__main__":
    sys.exit(main())

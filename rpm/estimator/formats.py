"""What the two estimator modules read and write.

q_phi1 (reasoning generator): the Table 15 prompt with the golden response withheld (its slot holds
the authors' sentence); it writes the whole Table 15 thought, of which only the part after
"[Core Features of the Golden Response]" is r. q_phi2 (policy model, the R-EMI scorer): the Table 17
prompt with r -> "## Agent Response\\n" + response (rpm.metrics.inputs, shared with the metrics); the
"w/o Reasoning" p(y|x) model reads the Table 18 prompt instead.
"""

from __future__ import annotations

import re

from rpm import prompts
from rpm.bench.schema import Sample
from rpm.core.errors import RpmInputError

HEADINGS = ("### Part 1: Restatement of Key Information", "### Part 2: Iterative Revision",
            "### Part 3: Final Feature Set of the Golden Response", "## I. Content Characteristics",
            "## II. Style Characteristics")


class GoldenLeakError(RpmInputError):
    pass


def reasoning_messages(sample: Sample) -> list[dict]:
    """Table 15 with the golden response withheld; refuses to return a prompt holding the golden text."""
    t = prompts.get("reasoning_rollout")
    fields = sample.prompt_fields(with_golden=False)
    messages = t.render(**fields, agent_golden_response=t.extras["golden_withheld_text"])
    golden = sample.agent_golden_response.strip()
    if any(golden in m["content"] for m in messages):
        raise GoldenLeakError(f"sample {sample.sample_ID}: the golden response occurs in the reasoning prompt "
                              "(it is part of the dialogue context); the estimator must not see it")
    return messages


def marker() -> str:
    return prompts.get("reasoning_rollout").extras["core_features_marker"]


def core_features(thought: str) -> tuple[str, bool]:
    """(r, marker_found): the part after the marker; without the marker, the whole thought."""
    m = marker()
    if m in thought:
        return thought.split(m, 1)[1].strip().strip("`\"'").strip(), True
    return thought.strip(), False


def format_score(thought: str) -> float:
    """0.5 if the core-features block sits inside a code fence, +0.5 if every template heading is there."""
    m = marker()
    score = 0.0
    if m in thought:
        before, after = thought.split(m, 1)
        if before.rstrip().endswith("```") and "```" in after:
            score += 0.5
    if all(h in thought for h in HEADINGS):
        score += 0.5
    return score


def length_score(r: str) -> float:
    return min(len(re.findall(r"\S+", r)) / 600.0, 1.0)

"""CoRL rewards as the authors' release computes them (docs/architecture.md, "How the authors ran it"),
all through the one scorer.

Each component is its own reward function: GRPO sums them and logs each one per step
(rewards/<name>/mean), which is the per-iteration reward log of the co-evolution.

q_phi1: format (0.5 code fence around the core features + 0.5 all headings), length (words of the
core features / 600, at most 1), likelihood exp(mean per-token log q_phi2(golden | x, r_i)).
q_phi2: format (1 if "## Agent Response" is present) and
ratio min(exp(log pi_ref("100%" | Table 19 with y_i) - log pi_ref("100%" | Table 19 with the golden)), 1),
pi_ref being the policy model of the previous iteration (the cold-start one in iteration 1).
"""

from __future__ import annotations

import numpy as np

from rpm import prompts
from rpm.estimator.formats import core_features, format_score, length_score
from rpm.metrics.inputs import scored_continuation, scorer_messages
from rpm.runtime.scorer import score_pairs

HEADING = "## Agent Response"


def _texts(completions) -> list[str]:
    return [c[0]["content"] if isinstance(c, list) else str(c) for c in completions]


def reasoner_rewards(policy_model, tok, samples_by_id: dict, batch_size: int = 4) -> list:
    def reasoner_format(prompts, completions, **_):
        return [format_score(t) for t in _texts(completions)]

    def reasoner_length(prompts, completions, **_):
        return [length_score(core_features(t)[0]) for t in _texts(completions)]

    def reasoner_likelihood(prompts, completions, sample_ID, **_):
        samples = [samples_by_id[i] for i in sample_ID]
        rs = [core_features(t)[0] or "(empty)" for t in _texts(completions)]
        s = score_pairs(policy_model, tok, [scorer_messages(x, r) for x, r in zip(samples, rs)],
                        [scored_continuation(x.agent_golden_response) for x in samples], batch_size=batch_size)
        return np.exp(s.sums / s.ntok).tolist()

    return [reasoner_format, reasoner_length, reasoner_likelihood]


def _response(text: str) -> str:
    return text.split(HEADING, 1)[1].strip() if HEADING in text else text.strip()


def judge_logprob(ref_model, tok, samples, reasonings, candidates, batch_size: int = 4) -> np.ndarray:
    """log pi_ref("100%" | Table 19 prompt with each candidate)."""
    t = prompts.get("policy_reward_judge")
    msgs = []
    for s, r, y in zip(samples, reasonings, candidates):
        f = s.prompt_fields(with_golden=False)
        msgs.append(t.render(user_persona=f["user_persona"], agent_character=f["agent_character"],
                             str_dialogue_context=f["str_dialogue_context"], reasoning_process=r.strip(),
                             expected_golden_response=s.agent_golden_response, y=y))
    return score_pairs(ref_model, tok, msgs, ["100%"] * len(msgs), batch_size=batch_size).sums


def policy_rewards(ref_model, tok, samples_by_id: dict, batch_size: int = 4) -> list:
    def policy_format(prompts, completions, **_):
        return [1.0 if HEADING in t else 0.0 for t in _texts(completions)]

    def policy_ratio(prompts, completions, sample_ID, reasoning, **_):
        samples = [samples_by_id[i] for i in sample_ID]
        ys = [_response(t) or "(empty)" for t in _texts(completions)]
        lp = judge_logprob(ref_model, tok, samples, reasoning, ys, batch_size)
        lp_gold = judge_logprob(ref_model, tok, samples, reasoning, [s.agent_golden_response for s in samples],
                                batch_size)
        return np.minimum(np.exp(lp - lp_gold), 1.0).tolist()

    return [policy_format, policy_ratio]

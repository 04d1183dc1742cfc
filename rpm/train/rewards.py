"""Rewards of the RPM methods, all computed with the one log-prob scorer (rpm.runtime.scorer).

Table 24 reward (RFT, RL, ThinkingRL; Appendix E.1): the reference model (the base model before SFT)
reads the Table 24 judge prompt holding the golden response and the candidate; the reward is the
probability it gives to the expected output "100%".

E.2 method (CoRL applied to an RPM), two rewards on the same single model:
- thought reward: exp(mean per-token log p(golden response block | prompt, thought)) under the model
  as it was when the iteration started (the likelihood reward of the reasoning generator, Sec. 3.3);
- response reward: min(p_ref("100%" | judge prompt with y_i) / p_ref("100%" | same with the golden), 1)
  (the policy-model reward of Sec. 3.3, with the Table 24 prompt and the base model as reference).
"""

from __future__ import annotations

import numpy as np

from rpm import prompts
from rpm.runtime.scorer import score_pairs
from rpm.train.formats import parse_generation, response_block

EXPECTED = "100%"


def _texts(completions) -> list[str]:
    """TRL passes conversational completions as [[{"role": "assistant", "content": ...}], ...]."""
    return [c[0]["content"] if isinstance(c, list) else str(c) for c in completions]


def judge_logprob(ref_model, tok, fields: list[dict], candidates: list[str], batch_size: int = 4) -> np.ndarray:
    """log p_ref("100%" | Table 24 prompt with candidate k), one value per candidate."""
    template = prompts.get("rpm_reward_judge")
    messages = [template.render(user_persona=f["user_persona"], agent_character=f["agent_character"],
                                str_dialogue_context=f["str_dialogue_context"],
                                expected_golden_response=f["golden"], rollout_response=c)
                for f, c in zip(fields, candidates)]
    scores = score_pairs(ref_model, tok, messages, [EXPECTED] * len(messages), batch_size=batch_size)
    return np.asarray(scores.sums, dtype=np.float64)


class Table24Reward:
    """p_ref("100%") for each rollout's response (the thought, if any, is not judged)."""

    __name__ = "table24_p100"

    def __init__(self, ref_model, tok, batch_size: int = 4):
        self.ref_model, self.tok, self.batch_size = ref_model, tok, batch_size

    def __call__(self, prompts, completions, user_persona, agent_character, str_dialogue_context, golden, **_):
        responses = [parse_generation(t)[1] or "(empty)" for t in _texts(completions)]
        fields = [dict(user_persona=u, agent_character=a, str_dialogue_context=d, golden=g)
                  for u, a, d, g in zip(user_persona, agent_character, str_dialogue_context, golden)]
        return np.exp(judge_logprob(self.ref_model, self.tok, fields, responses, self.batch_size)).tolist()


class RatioReward(Table24Reward):
    """min(p_ref("100%" | y_i) / p_ref("100%" | golden), 1): the CoRL policy-model reward."""

    __name__ = "corl_response_ratio"

    def __call__(self, prompts, completions, user_persona, agent_character, str_dialogue_context, golden, **_):
        responses = [parse_generation(t)[1] or "(empty)" for t in _texts(completions)]
        fields = [dict(user_persona=u, agent_character=a, str_dialogue_context=d, golden=g)
                  for u, a, d, g in zip(user_persona, agent_character, str_dialogue_context, golden)]
        lp = judge_logprob(self.ref_model, self.tok, fields, responses, self.batch_size)
        lp_gold = judge_logprob(self.ref_model, self.tok, fields, golden, self.batch_size)
        return np.minimum(np.exp(lp - lp_gold), 1.0).tolist()


class ThoughtLikelihoodReward:
    """exp(mean log p(golden block | prompt, thought_i)) under a frozen copy of the policy."""

    __name__ = "corl_thought_likelihood"

    def __init__(self, model, tok, batch_size: int = 4):
        self.model, self.tok, self.batch_size = model, tok, batch_size

    def __call__(self, prompts, completions, golden, **_):
        thoughts = [parse_generation(t)[0] for t in _texts(completions)]
        block = [response_block(g) for g in golden]
        # log p(thought + block) - log p(thought) = log p(block | thought): both through the one scorer.
        full = score_pairs(self.model, self.tok, prompts, [f"{t}\n\n{b}" for t, b in zip(thoughts, block)],
                           batch_size=self.batch_size)
        ntok_block = np.array([len(self.tok(b, add_special_tokens=False)["input_ids"]) for b in block])
        lp_block = np.array([lp[-n:].sum() for lp, n in zip(full.token_logprobs, ntok_block)])
        return np.exp(lp_block / ntok_block).tolist()

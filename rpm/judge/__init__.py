"""LLM-as-a-judge (Sections 2.3 and 3.4): WinRate and PointScore of an RPM's responses, averaged over an
ensemble of judges.

WinRate     the RPM's response against the golden reference, pairwise, asked in both presentation orders
            (model_first: the RPM's response is Reply A; golden_first: it is Reply B). From the RPM's side
            a win is 1, a loss 0, a tie 0.5; a subset's WinRate is the mean over its samples' two verdicts.
PointScore  the RPM's response scored on its own on the prompt's scale (1-10); the mean over samples.
Ensemble    the mean of the judges' WinRate / PointScore, as the paper averages Qwen3-235B-A22B,
            GPT-4o-mini and Claude-3.7-Sonnet.

Every judge is a named config (rpm.judge.core.JudgeConfig): an OpenAI-compatible endpoint (`openai`), or
a local model directory served on loopback by `transformers serve` for the duration of the run
(`serve_local`, rpm.serve), so the offline default takes the same HTTP path as the paper's endpoints.
The prompts are ours (rpm/prompts/judge_*.yaml): the paper does not print its judge prompts.

Unparsed verdicts are asked again (new seed, `retry_temperature`), a bounded number of times; one still
unparsed counts as the neutral value (a tie, 0.5, for WinRate; the middle of the scale for PointScore), so
it stays in the denominator, and it is counted (n_unparsed) per judge, RPM and subset in scores.csv.
All requests go through rpm.llm.client.ChatClient: its content-addressed cache means a re-run never asks twice.
"""

from rpm.judge.core import (
                            LEDGER_COLUMNS,
                            SCORE_COLUMNS,
                            VERDICT_COLUMNS,
                            JudgeConfig,
                            JudgeError,
                            judge_rpm,
                            load_items,
                            summarize,
)

__all__ = ["JudgeConfig", "JudgeError", "LEDGER_COLUMNS", "SCORE_COLUMNS", "VERDICT_COLUMNS", "judge_rpm",
           "load_items", "summarize"]

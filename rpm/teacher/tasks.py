"""The teacher LLM's three jobs for the RPM methods and the estimator, each cached as a DAG file.

- augment  (DA, Table 22): two steps per chosen training sample: imagine conversations (JSON with
           three possibilities), then write a 4-round dialogue from one of them (JSON); the new sample
           keeps the persona and character, its golden response is the fourth agent turn.
- reject   (DPO, Table 23): the teacher answers with the persona and character hidden; that answer is
           the rejected response, the golden response the chosen one.
- trace    (ThinkingSFT and the CoRL estimator's cold start, Table 15): the teacher sees the golden
           response and writes the thought; only the part after "[Core Features of the Golden
           Response]" is kept (as in the authors' release).

An answer that is not in the requested form is repaired where that is unambiguous (a JSON object
inside code fences or prose; the helpers are shared, rpm.llm.answers), otherwise asked again with
another seed at `retry_temperature`, a bounded number of times, then reported per sample in the
task's report. Nothing is dropped silently: the report lists every sample with its status
(accepted, repaired, rejected) and reason.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rpm import prompts
from rpm.bench.schema import Sample, Turn, sample_from_dict
from rpm.estimator.formats import core_features as extract
from rpm.llm.answers import Report, ask_all as _ask_all, extract_json_object
from rpm.llm.client import ChatClient
from rpm.train.formats import CLOSE, OPEN, parse_generation


@dataclass
class TeacherPolicy:
    retries: int = 2                 # extra attempts after the first malformed answer
    retry_temperature: float = 0.7
    max_tokens: int = 512
    # strict: a trace without the core-features marker is rejected (the authors' behaviour);
    # lenient: it is kept whole and marked repaired (for weak offline teachers such as SmolLM2-135M).
    trace_policy: str = "strict"
    augment_fraction: float = 0.6    # the paper's ~3k augmented for ~5k originals
    max_samples: int | None = None   # ask about at most this many training samples (seeded choice; None = all)
    seed: int = 0


def pick(samples: list[Sample], policy: TeacherPolicy, task: str, fraction: float = 1.0) -> list[int]:
    """Indices of the samples the teacher is asked about: a seeded share, capped by max_samples."""
    n = round(fraction * len(samples))
    if policy.max_samples is not None:
        n = min(n, policy.max_samples)
    return sorted(random.Random(f"{policy.seed}:{task}").sample(range(len(samples)), n))


def _dialogue_parse(text):
    obj, repaired = extract_json_object(text)
    if obj is None:
        return None, False, "no JSON object in the answer"
    keys = [f"{role}_{i}" for i in range(1, 5) for role in ("user_query", "agent_response")]
    bad = [k for k in keys if not isinstance(obj.get(k), str) or not obj[k].strip()]
    if bad:
        return None, False, f"missing or empty field(s) {bad}"
    return obj, repaired, ""


def _topics_parse(text):
    obj, repaired = extract_json_object(text)
    if obj is None:
        return None, False, "no JSON object in the answer"
    seeds = [v for k, v in sorted(obj.items()) if k.startswith("possibility") and isinstance(v, str) and v.strip()]
    if not seeds:
        return None, False, "no non-empty possibility_N field"
    return seeds, repaired, ""


def augment(samples: list[Sample], client: ChatClient, policy: TeacherPolicy) -> tuple[list[Sample], Report]:
    report = Report("augment", total=len(samples))
    chosen = pick(samples, policy, "augment", policy.augment_fraction)
    fields = {i: samples[i].prompt_fields(with_golden=False) for i in chosen}
    step1 = _ask_all(client, {i: prompts.get("da_topics").render(
        user_persona=fields[i]["user_persona"], agent_character=fields[i]["agent_character"]) for i in chosen},
        policy, _topics_parse, "augment-1", schema=prompts.get("da_topics").response_schema)
    ok1 = [i for i in chosen if step1[i][0] is not None]
    step2 = _ask_all(client, {i: prompts.get("da_dialogue").render(
        user_persona=fields[i]["user_persona"], agent_character=fields[i]["agent_character"],
        context_seed=step1[i][0][0]) for i in ok1}, policy, _dialogue_parse, "augment-2",
        schema=prompts.get("da_dialogue").response_schema)
    out = []
    for i in chosen:
        s = samples[i]
        topics, rep1, n1, why1 = step1[i]
        if topics is None:
            report.add(s.sample_ID, "rejected", f"step 1: {why1}", n1)
            continue
        dialogue, rep2, n2, why2 = step2[i]
        if dialogue is None:
            report.add(s.sample_ID, "rejected", f"step 2: {why2}", n1 + n2)
            continue
        turns = []
        for k in range(1, 4):
            turns += [Turn("user_query", dialogue[f"user_query_{k}"].strip()),
                      Turn("agent_response", dialogue[f"agent_response_{k}"].strip())]
        turns.append(Turn("user_query", dialogue["user_query_4"].strip()))
        new = Sample(f"{s.sample_ID}-da", s.user_persona, s.agent_character, tuple(turns),
                     dialogue["agent_response_4"].strip())
        sample_from_dict(new.to_dict(), file="<teacher augment>")  # same validation as any benchmark record
        out.append(new)
        report.add(s.sample_ID, "repaired" if rep1 or rep2 else "accepted", "", n1 + n2)
    return out, report


def _rejected_parse(text):
    _, response = parse_generation(text)
    if not response:
        return None, False, "empty answer"
    return response, OPEN in text or CLOSE in text, ""


def reject(samples: list[Sample], client: ChatClient, policy: TeacherPolicy) -> tuple[list[dict], Report]:
    report = Report("reject", total=len(samples))
    chosen = pick(samples, policy, "reject")
    answers = _ask_all(client, {i: prompts.get("dpo_rejected").render(
        str_dialogue_context=samples[i].prompt_fields()["str_dialogue_context"]) for i in chosen},
        policy, _rejected_parse, "reject", schema=prompts.get("dpo_rejected").response_schema)
    rows = []
    for i in chosen:
        s = samples[i]
        response, repaired, n, why = answers[i]
        if response is None:
            report.add(s.sample_ID, "rejected", why, n)
        elif response.strip() == s.agent_golden_response.strip():
            report.add(s.sample_ID, "rejected", "the teacher's answer equals the golden response", n)
        else:
            rows.append({"sample_ID": s.sample_ID, "rejected": response})
            report.add(s.sample_ID, "repaired" if repaired else "accepted", "", n)
    return rows, report


def core_features(text: str, policy: TeacherPolicy) -> tuple[str | None, bool, str]:
    """The part of a thought after the core-features marker (the authors' rule; the extraction itself
    is the estimator's, rpm.estimator.formats.core_features), judged by the trace policy."""
    kept, found = extract(text)
    if found:
        return (kept, False, "") if kept else (None, False, "nothing after the core-features marker")
    if policy.trace_policy == "lenient" and kept:
        return kept, True, "no core-features marker: kept whole (lenient policy)"
    return None, False, "no core-features marker in the answer"


def trace(samples: list[Sample], client: ChatClient, policy: TeacherPolicy) -> tuple[list[dict], Report]:
    report = Report("trace", total=len(samples))
    chosen = pick(samples, policy, "trace")

    def parse(text):  # keep the whole thought too: the reasoning generator learns to write all of it
        kept, repaired, why = core_features(text, policy)
        return ((kept, text.strip()) if kept is not None else None), repaired, why

    answers = _ask_all(client, {i: prompts.get("reasoning_rollout").render(**samples[i].prompt_fields(with_golden=True))
                                for i in chosen}, policy, parse, "trace",
                        schema=prompts.get("reasoning_rollout").response_schema)
    rows = []
    for i in chosen:
        s = samples[i]
        value, repaired, n, why = answers[i]
        if value is None:
            report.add(s.sample_ID, "rejected", why, n)
            continue
        rows.append({"sample_ID": s.sample_ID, "trace": value[0], "thought": value[1], "repaired": repaired})
        report.add(s.sample_ID, "repaired" if repaired else "accepted", why, n)
    return rows, report

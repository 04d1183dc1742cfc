"""Step 3 of Appendix A.1, dialogue collection (Tables 6 and 7).

- ID dialogues (Table 6): for every user persona of Step 2 and its character, a context seed
  (PersonaChat / DailyDialog style, seeded choice) is rewritten into a 4-round role-playing dialogue.
- Turn-level compositions (Table 7): two ID dialogues with an English persona and a real character
  (the conditions Step 4 keeps for the dialogue shift) are combined into one non-linear 8-round dialogue;
  the persona and character are those of the first.
- Word-level compositions (Table 7, two parts): part 1 proposes up to 5 variants of the final user query
  with their golden responses; variants equal to the original query are dropped (reported); part 2
  selects one, which must be one of the candidates, and its golden response replaces the last round.

A dialogue is stored as its rounds, [{"user_query": ...}, {"agent_response": ...}, ...], ending on an
agent response: Step 4 turns the last agent response into the golden response.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from rpm import prompts
from rpm.construct.characters import character_text
from rpm.construct.common import AskPolicy, ContextSeed, seeded
from rpm.core.errors import RpmInputError
from rpm.llm.answers import Report, ask_all, extract_json


@dataclass
class DialogueSettings:
    n_turn: int = 2    # turn-level compositions to ask for (the paper: 0.6k)
    n_word: int = 2    # word-level compositions to ask for (the paper: 0.6k)
    seed: int = 0


def round_keys(n: int) -> list[str]:
    return [f"{role}_{i}" for i in range(1, n + 1) for role in ("user_query", "agent_response")]


def parse_rounds(text: str, n: int):
    """An n-round dialogue answer (Table 6: 4, Table 7: 8) -> (turns, repaired, reason)."""
    obj, repaired = extract_json(text, dict, repair_commas=True)
    if obj is None:
        return None, False, "no JSON object in the answer"
    bad = [k for k in round_keys(n) if not isinstance(obj.get(k), str) or not obj[k].strip()]
    if bad:
        return None, False, f"missing or empty field(s) {bad}"
    return [{k.rsplit("_", 1)[0]: obj[k].strip()} for k in round_keys(n)], repaired, ""


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def changed_words(a: str, b: str) -> int:
    """Words of b not at the same place in a, plus length difference: a rough size of the perturbation."""
    wa, wb = re.findall(r"\w+", a.lower()), re.findall(r"\w+", b.lower())
    return sum(x != y for x, y in zip(wa, wb)) + abs(len(wa) - len(wb))


def parse_variants(text: str, original_query: str):
    """Word-level part 1 -> (candidate variants, repaired, reason)."""
    items, repaired = extract_json(text, list, repair_commas=True)
    if items is None:
        return None, False, "no JSON array of variants in the answer"
    good, dropped = [], []
    for n, item in enumerate(items):
        q = item.get("user_query_variant") if isinstance(item, dict) else None
        r = item.get("golden_agent_response_variant") if isinstance(item, dict) else None
        if not (isinstance(q, str) and q.strip() and isinstance(r, str) and r.strip()):
            dropped.append(f"variant {n}: missing or empty field")
        elif _norm(q) == _norm(original_query):
            dropped.append(f"variant {n}: same as the original query")
        elif _norm(q) in {_norm(g["user_query_variant"]) for g in good}:
            dropped.append(f"variant {n}: duplicate")
        else:
            good.append({"user_query_variant": q.strip(), "golden_agent_response_variant": r.strip()})
    if not good:
        return None, False, "; ".join(dropped) or "an empty array"
    return good, repaired, "; ".join(dropped)


def selection_schema(candidates: list[dict]) -> dict:
    """Table 7 part 2's response_schema with the selected query restricted to this request's candidates."""
    schema = prompts.get("bench_dialogue_word_composition_2").response_schema
    schema["properties"]["selected_user_query_variant"]["enum"] = [c["user_query_variant"] for c in candidates]
    return schema


def parse_selection(text: str, candidates: list[dict]):
    """Word-level part 2 -> ((query, response), repaired, reason); the query must be a candidate's."""
    obj, repaired = extract_json(text, dict, repair_commas=True)
    if obj is None:
        return None, False, "no JSON object in the answer"
    q, r = obj.get("selected_user_query_variant"), obj.get("selected_golden_agent_response_variant")
    if q is None and r is None and "user_query_variant" in obj:   # a candidate echoed under its own keys
        q, r, repaired = obj.get("user_query_variant"), obj.get("golden_agent_response_variant"), True
    if not (isinstance(q, str) and q.strip() and isinstance(r, str) and r.strip()):
        return None, False, "missing or empty selected_user_query_variant / selected_golden_agent_response_variant"
    if _norm(q) not in {_norm(c["user_query_variant"]) for c in candidates}:
        return None, False, "the selected query is not one of the candidate variants"
    return (q.strip(), r.strip()), repaired, ""


def dialogue_text(turns: list[dict]) -> str:
    return "\n".join(f"{'User' if 'user_query' in t else 'Agent'}: {next(iter(t.values()))}" for t in turns)


def collect_dialogues(personas: list[dict], characters: list[dict], contexts: list[ContextSeed], client,
                      policy: AskPolicy, settings: DialogueSettings) -> tuple[list[dict], list[Report]]:
    chars = {c["character_id"]: c for c in characters}
    missing = sorted({p["character_id"] for p in personas} - set(chars))
    if missing:
        raise RpmInputError(f"personas name character(s) {missing} that the characters file does not hold")
    people = {p["persona_id"]: p for p in personas}
    rng = seeded(settings.seed, "context-seeds")
    seed_of = {pid: contexts[rng.randrange(len(contexts))] for pid in people}

    id_report = Report("id", total=len(people))
    answers = ask_all(client, {pid: prompts.get("bench_dialogue_id").render(
        user_persona=p["user_persona"], context_seed=seed_of[pid].text(),
        agent_character=character_text(chars[p["character_id"]])) for pid, p in people.items()},
        policy, lambda text: parse_rounds(text, 4), schema=prompts.get("bench_dialogue_id").response_schema)
    rows = []
    for pid, p in people.items():
        turns, repaired, attempts, why = answers[pid]
        id_report.add(pid, "rejected" if turns is None else "repaired" if repaired else "accepted", why, attempts,
                      id_key="persona_id")
        if turns is not None:
            rows.append({"dialogue_id": f"{pid}-id", "kind": "id", "persona_id": pid,
                         "character_id": p["character_id"], "context_seed_id": seed_of[pid].id, "turns": turns})

    # Compositions start from the dialogues Step 4 keeps for the dialogue shift: English persona, real character.
    base = [d for d in rows if people[d["persona_id"]]["language"] == "en"
            and chars[d["character_id"]]["kind"] == "real"]
    turn_rows, turn_report = _turn_level(base, people, chars, client, policy, settings)
    word_rows, word_reports = _word_level(base, people, chars, seed_of, contexts, client, policy, settings)
    return rows + turn_rows + word_rows, [id_report, turn_report, *word_reports]


def _turn_level(base, people, chars, client, policy, settings):
    order = base[:]
    seeded(settings.seed, "turn-level").shuffle(order)
    pairs = [(order[i], order[(i + 1) % len(order)]) for i in range(min(settings.n_turn, len(order)))] \
        if len(order) >= 2 else []
    report = Report("turn_level", total=len(pairs))
    fields = {}
    for d1, d2 in pairs:
        p = people[d1["persona_id"]]
        fields[f"{d1['dialogue_id']}+{d2['dialogue_id']}"] = prompts.get("bench_dialogue_turn_composition").render(
            user_persona=p["user_persona"], agent_character=character_text(chars[d1["character_id"]]),
            dialogue_1=dialogue_text(d1["turns"]), dialogue_2=dialogue_text(d2["turns"]))
    answers = ask_all(client, fields, policy, lambda text: parse_rounds(text, 8),
                      schema=prompts.get("bench_dialogue_turn_composition").response_schema)
    rows = []
    for (d1, d2), key in zip(pairs, fields):
        turns, repaired, attempts, why = answers[key]
        report.add(key, "rejected" if turns is None else "repaired" if repaired else "accepted", why, attempts,
                   id_key="dialogue_id")
        if turns is not None:
            rows.append({"dialogue_id": f"{d1['dialogue_id']}-turn", "kind": "turn", "persona_id": d1["persona_id"],
                         "character_id": d1["character_id"], "source_dialogues": [d1["dialogue_id"], d2["dialogue_id"]],
                         "turns": turns})
    return rows, report


def _word_level(base, people, chars, seed_of, contexts, client, policy, settings):
    chosen = seeded(settings.seed, "word-level").sample(base, min(settings.n_word, len(base)))
    part1, part2 = Report("word_level_1", total=len(chosen)), Report("word_level_2")
    by_id = {d["dialogue_id"]: d for d in chosen}

    def fields(d):
        p = people[d["persona_id"]]
        return {"user_persona": p["user_persona"], "agent_character": character_text(chars[d["character_id"]]),
                "str_dialogue_context_without_last_query": dialogue_text(d["turns"][:-2]),
                "original_user_query": d["turns"][-2]["user_query"],
                "original_golden_agent_response": d["turns"][-1]["agent_response"]}

    variants = ask_all(client, {k: prompts.get("bench_dialogue_word_composition_1").render(
        **fields(d), str_reference_user_chat_history=seed_of[d["persona_id"]].text()) for k, d in by_id.items()},
        policy, lambda k, text: parse_variants(text, by_id[k]["turns"][-2]["user_query"]), keyed=True,
        schema=prompts.get("bench_dialogue_word_composition_1").response_schema)
    todo = {}
    for k in by_id:
        value, repaired, attempts, why = variants[k]
        part1.add(k, "rejected" if value is None else "repaired" if repaired else "accepted", why, attempts,
                  id_key="dialogue_id")
        if value is not None:
            todo[k] = value
    part2.total = len(todo)
    picks = ask_all(client, {k: prompts.get("bench_dialogue_word_composition_2").render(
        **fields(by_id[k]), str_candidate_variants=json.dumps(c, ensure_ascii=False, indent=1))
        for k, c in todo.items()}, policy, lambda k, text: parse_selection(text, todo[k]), keyed=True,
        schema=lambda k: selection_schema(todo[k]))
    rows = []
    for k in todo:
        value, repaired, attempts, why = picks[k]
        part2.add(k, "rejected" if value is None else "repaired" if repaired else "accepted", why, attempts,
                  id_key="dialogue_id")
        if value is None:
            continue
        d, (query, response) = by_id[k], value
        rows.append({"dialogue_id": f"{k}-word", "kind": "word", "persona_id": d["persona_id"],
                     "character_id": d["character_id"], "source_dialogues": [k],
                     "turns": d["turns"][:-2] + [{"user_query": query}, {"agent_response": response}],
                     "changed_words": changed_words(d["turns"][-2]["user_query"], query),
                     "candidates": todo[k]})
    return rows, [part1, part2]

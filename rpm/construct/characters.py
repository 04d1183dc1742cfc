"""Step 1 of Appendix A.1, agent character collection (the three prompts of Table 4).

a. initial collection: for each seed persona and its chat, the LLM names about `num_domains`
   characters from literature, film & television, theater and gaming (a JSON array);
b. refinement: each distinct character's four aspects (source, basic information, background,
   personality), optionally with text from a Retriever appended to the prompt (the paper's web
   search; the Table 4 prompt itself has no slot for it, so it follows as a "Retrieved Information"
   section); every character records which was used;
c. classification: real-life or fictional role. Beside it, the classifier's positive control
   (`classification_control`): characters of known kind (rpm/construct/seeds/known_characters.yaml) classified
   by the same prompt and endpoint; its accuracy with an exact CI says whether the labels mean anything.

A character that fails any part is reported and not written; a candidate with an unknown category
or no name is reported per candidate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rpm import prompts
from rpm.bench.schema import AgentCharacter, Sample, Turn
from rpm.bench.subsets import subset, subset_for_tag
from rpm.construct.common import (
    DOMAIN_DESC,
    DOMAINS,
    AskPolicy,
    BuildInputError,
    CharacterSeed,
    PersonaSeed,
    seed_entries,
)
from rpm.construct.retrieve import Retriever
from rpm.llm.answers import Report, ask_all, extract_json

ASPECTS = ("character_source", "basic_character_information", "character_background", "character_personality")


@dataclass
class CharacterSettings:
    num_domains: int = 4              # "about {num_domains} characters" per seed persona (Table 4)
    max_personas: int | None = None   # ask about at most this many seed personas (the first ones)


def domain_of(category) -> str | None:
    """The canonical domain for an LLM's category ('film' -> 'Film & Television'), or None if unknown."""
    if not isinstance(category, str):
        return None
    try:
        return subset(subset_for_tag(category, "OOD2Test")).tag
    except ValueError:
        return None


def parse_candidates(text: str):
    """Table 4a's answer -> ((good candidates, problems), repaired, reason)."""
    items, repaired = extract_json(text, list, repair_commas=True)
    if items is None:
        one, repaired = extract_json(text, dict, repair_commas=True)
        if one is None or "character_name" not in one:
            return None, False, "no JSON array of characters in the answer"
        items, repaired = [one], True   # one object where an array was asked: unambiguous
    good, problems = [], []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"item {n}: not an object")
            continue
        name = item.get("character_name")
        if not isinstance(name, str) or not name.strip():
            problems.append(f"item {n}: no character_name")
            continue
        domain = domain_of(item.get("category"))
        if domain is None:
            problems.append(f"item {n} ({name.strip()!r}): unknown category {item.get('category')!r}")
            continue
        good.append({"character_name": name.strip(), "character_domain": domain,
                     "character_description": str(item.get("character_description") or "").strip(),
                     "explanation": str(item.get("explanation") or "").strip()})
    if not good:
        return None, False, "; ".join(problems) or "an empty array"
    return (good, problems), repaired, ""


def refine_schema(name: str) -> dict:
    """Table 4 part 2's response_schema keyed by this character's name (the template writes the placeholder)."""
    schema = prompts.get("bench_character_refine").response_schema
    schema["properties"] = {name: schema["properties"].pop("{character_name}")}
    schema["required"] = [name]
    return schema


def parse_refined(text: str, name: str):
    """Table 4b's answer -> (the four aspects, repaired, reason)."""
    obj, repaired = extract_json(text, dict, repair_commas=True)
    if obj is None:
        return None, False, "no JSON object in the answer"
    inner = obj.get(name)
    if not isinstance(inner, dict):
        if set(ASPECTS) & set(obj):           # the aspects without the character-name wrapper
            inner, repaired = obj, True
        elif len(obj) == 1 and isinstance(next(iter(obj.values())), dict):  # the name spelt differently
            inner, repaired = next(iter(obj.values())), True
        else:
            return None, False, f"no object under the character name {name!r}"
    bad = [k for k in ASPECTS if not isinstance(inner.get(k), str) or not inner[k].strip()]
    if bad:
        return None, False, f"missing or empty aspect(s) {bad}"
    return {k: inner[k].strip() for k in ASPECTS}, repaired, ""


_REAL = re.compile(r"real[\s_-]*life", re.IGNORECASE)
_FICTIONAL = re.compile(r"fictional", re.IGNORECASE)


def _kind(text: str) -> str | None:
    real, fictional = bool(_REAL.search(text)), bool(_FICTIONAL.search(text))
    return "real" if real and not fictional else "fictional" if fictional and not real else None


def parse_kind(text: str):
    """Table 4c's answer -> ("real" | "fictional", repaired, reason). Naming both labels is ambiguous."""
    obj, repaired = extract_json(text, dict, repair_commas=True)
    raw = obj.get("classification_result") if obj else None
    if isinstance(raw, str) and _kind(raw):
        return _kind(raw), repaired, ""
    if obj is None and _kind(text):           # the label alone, in prose
        return _kind(text), True, ""
    return None, False, "no classification_result naming exactly one of Real Life Role / Fictional Role"


def read_known_characters(path) -> list[dict]:
    """The control's characters: the four aspects, a domain and the known `kind` (real | fictional)."""
    entries = seed_entries(Path(path))
    for n, e in enumerate(entries):
        need = ("id", "kind", "character_name", "character_domain", *ASPECTS)
        bad = [k for k in need if not isinstance((e or {}).get(k), str) or not e[k].strip()]
        if bad or e["kind"] not in ("real", "fictional"):
            raise BuildInputError(f"{path}: entry {n} ({(e or {}).get('id')!r}): fields {bad or ['kind']} must be "
                                  "non-empty strings, kind one of real / fictional")
    return entries


def classification_control(known: list[dict], client, policy: AskPolicy,
                           confidence: float = 0.95) -> tuple[Report, dict]:
    """Classify characters of known kind with Table 4c: (per-item report, accuracy with its exact CI). The
    classification is `informative` only when the CI's lower end is above chance (0.5)."""
    from scipy.stats import binomtest

    report = Report("classify_control", total=len(known))
    kinds = ask_all(client, {k["id"]: prompts.get("bench_character_classify").render(
        character_information=character_text(k)) for k in known}, policy, parse_kind,
        schema=prompts.get("bench_character_classify").response_schema)
    correct = answered = 0
    said = {"real": 0, "fictional": 0}
    for k in known:
        value, repaired, attempts, why = kinds[k["id"]]
        if value is None:
            report.add(k["id"], "rejected", why, attempts, id_key="known_character")
            continue
        answered += 1
        said[value] += 1
        correct += value == k["kind"]
        report.add(k["id"], "repaired" if repaired else "accepted", f"known {k['kind']}, answered {value}", attempts,
                   id_key="known_character")
    # Unanswered items count as wrong: the denominator is every control character.
    ci = binomtest(correct, len(known)).proportion_ci(confidence_level=confidence, method="exact")
    summary = {"n": len(known), "answered": answered, "correct": correct, "accuracy": correct / len(known),
               "ci_low": float(ci.low), "ci_high": float(ci.high), "answered_real": said["real"],
               "answered_fictional": said["fictional"], "informative": bool(ci.low > 0.5)}
    return report, summary


def character_text(fields: dict) -> str:
    """A character as every prompt shows it: the one formatting, Sample.prompt_fields()."""
    c = AgentCharacter(**{k: fields[k] for k in ("character_name", "character_domain", *ASPECTS)})
    return Sample("x", "x", c, (Turn("user_query", "x"),), "x").prompt_fields()["agent_character"]


def _initial_prompt(seed: PersonaSeed, settings: CharacterSettings):
    return prompts.get("bench_character_initial").render(
        num_domains=settings.num_domains, str_PRE_DEFINED_DOMAINS=", ".join(DOMAINS),
        str_PRE_DEFINED_DOMAINS_DESC="; ".join(f"{d}: {DOMAIN_DESC[d]}" for d in DOMAINS),
        user_persona=seed.persona, user_chat_history="\n".join(seed.chat_history))


def _refine_prompt(c: dict, retrieved: str | None):
    messages = prompts.get("bench_character_refine").render(
        character_name=c["character_name"], character_description=c["character_description"],
        character_domain=c["character_domain"])
    if retrieved:
        messages[-1]["content"] += ("\n\n## Retrieved Information\nUse this retrieved text to correct and enrich the "
                                    f"character information:\n\"{retrieved}\"")
    return messages


def collect_characters(seeds: list[PersonaSeed], client, policy: AskPolicy, settings: CharacterSettings,
                       retriever: Retriever | None = None, character_seeds: list[CharacterSeed] = ()
                       ) -> tuple[list[dict], list[Report]]:
    """Character seeds (hand-named characters) join the candidates as if Step 1a had named them for their
    seed personas; they are refined and classified like every other candidate."""
    seeds = seeds[: settings.max_personas] if settings.max_personas else seeds
    known = {s.id for s in seeds}
    initial = Report("initial", total=len(seeds))
    cands = Report("initial_candidates")
    answers = ask_all(client, {s.id: _initial_prompt(s, settings) for s in seeds}, policy, parse_candidates,
                      schema=prompts.get("bench_character_initial").response_schema)

    # Distinct characters in order of first mention; a character named for two personas is one character.
    chars: dict[str, dict] = {}

    def add(persona_id: str, c: dict, attempts: int, note: str = "") -> None:
        key = re.sub(r"\W+", " ", c["character_name"].lower()).strip()
        if key not in chars:
            chars[key] = {"character_id": f"c{len(chars) + 1:04d}", **c, "seed_persona_ids": [], "explanations": []}
        else:
            note = "; ".join(filter(None, [note, f"same character as {chars[key]['character_id']}"]))
        cands.add(f"{persona_id}:{c['character_name']}", "accepted", note, attempts, id_key="candidate")
        if persona_id not in chars[key]["seed_persona_ids"]:
            chars[key]["seed_persona_ids"].append(persona_id)
            chars[key]["explanations"].append(c["explanation"])

    for s in seeds:
        value, repaired, attempts, why = answers[s.id]
        if value is None:
            initial.add(s.id, "rejected", why, attempts, id_key="persona_seed")
            continue
        good, problems = value
        initial.add(s.id, "repaired" if repaired else "accepted", "; ".join(problems), attempts, id_key="persona_seed")
        for problem in problems:
            cands.add(f"{s.id}:{problem.split(':')[0]}", "rejected", problem, attempts, id_key="candidate")
        for c in good:
            add(s.id, c, attempts)
    for cs in character_seeds:
        domain = domain_of(cs.category)
        if domain is None:
            raise BuildInputError(f"character seed {cs.id!r}: field 'category': unknown category {cs.category!r}; "
                                  f"expected one of {list(DOMAINS)}")
        for pid in cs.persona_seeds:
            if pid not in known:
                raise BuildInputError(f"character seed {cs.id!r}: field 'persona_seeds': {pid!r} is not a seed persona "
                                      "of this run")
            add(pid, {"character_name": cs.character_name, "character_domain": domain,
                      "character_description": cs.character_description, "explanation": ""}, 0,
                f"character seed {cs.id}")
    found = list(chars.values())

    refine = Report("refine", total=len(found))
    retrieved = {c["character_id"]: (retriever.retrieve(c["character_name"], c["character_domain"])
                                     if retriever else None)
                 for c in found}
    by_id = {c["character_id"]: c for c in found}
    refined = ask_all(client, {cid: _refine_prompt(c, retrieved[cid]) for cid, c in by_id.items()}, policy,
                      lambda cid, text: parse_refined(text, by_id[cid]["character_name"]), keyed=True,
                      schema=lambda cid: refine_schema(by_id[cid]["character_name"]))
    ok = []
    for c in found:
        cid = c["character_id"]
        value, repaired, attempts, why = refined[cid]
        if value is None:
            refine.add(cid, "rejected", why, attempts, id_key="character_id")
            continue
        refine.add(cid, "repaired" if repaired else "accepted", why, attempts, id_key="character_id")
        c.update(value)
        c["retrieval"] = {"retriever": retriever.name if retriever else "none",
                          "retrieved_chars": len(retrieved[cid] or "")}
        ok.append(c)

    classify = Report("classify", total=len(ok))
    kinds = ask_all(client, {c["character_id"]: prompts.get("bench_character_classify").render(
        character_information=character_text(c)) for c in ok}, policy, parse_kind,
        schema=prompts.get("bench_character_classify").response_schema)
    out = []
    for c in ok:
        value, repaired, attempts, why = kinds[c["character_id"]]
        if value is None:
            classify.add(c["character_id"], "rejected", why, attempts, id_key="character_id")
            continue
        classify.add(c["character_id"], "repaired" if repaired else "accepted", why, attempts, id_key="character_id")
        out.append({**c, "kind": value})
    return out, [initial, cands, refine, classify]


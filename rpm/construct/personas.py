"""Step 2 of Appendix A.1, user persona collection (the two prompts of Table 5).

From the (seed persona, agent character) pairs of Step 1 a seeded choice of at most `max_pairs`
(the paper: 1k) is expanded. The English persona is the seed persona itself (the paper: "the seed
personas from Step 1 are already described in English"); part 1 rewrites it into German, Spanish,
Chinese, Japanese and Korean variants, part 2 expands each variant along six aspects in its own
language. A user persona of the benchmark is the part-1 variant followed by its six expansions.
Variants in Chinese, Japanese or Korean must be written in that script (checked); each variant that passes is
kept and each that does not is reported per language (`expand_1_languages`), so a model that does not write
a language still gives the others; a pair with no usable variant keeps only its English persona, and a
variant whose part 2 fails is reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rpm import prompts
from rpm.construct.characters import character_text
from rpm.construct.common import LANGUAGE_NAMES, LANGUAGES, AskPolicy, PersonaSeed, seeded
from rpm.core.errors import RpmInputError
from rpm.llm.answers import Report, ask_all, extract_json

EXPANSION_KEYS = ("interests_hobbies", "values_beliefs", "knowledge_expertise", "behavioral_traits",
                  "communication_style", "cultural_background")
# The script a variant must use, where one can be checked from the characters alone.
_SCRIPT = {"zh": re.compile(r"[\u4e00-\u9fff]"), "ja": re.compile(r"[\u3040-\u30ff]"),
           "ko": re.compile(r"[\uac00-\ud7af]")}


@dataclass
class PersonaSettings:
    max_pairs: int | None = None   # expand at most this many (seed persona, character) pairs (seeded)
    seed: int = 0


def script_problem(lang: str, text: str) -> str:
    pattern = _SCRIPT.get(lang)
    return f"not written in {LANGUAGE_NAMES[lang]} script" if pattern and not pattern.search(text) else ""


def parse_variants(text: str):
    """Table 5 part 1's answer -> ({lang: variant}, repaired, reason). Each usable variant is kept; the reason
    names every language whose variant is not (missing, empty, or not in its script): a model that does not
    write a language still gives the others. An answer with no usable variant is rejected."""
    obj, repaired = extract_json(text, dict, repair_commas=True)
    if obj is None:
        return None, False, "no JSON object in the answer"
    out, bad = {}, []
    for n, lang in enumerate(LANGUAGES, start=1):
        value = obj.get(f"user_persona_variant{n}")
        if not isinstance(value, str) or not value.strip():
            bad.append(f"user_persona_variant{n}: missing or empty")
        elif script_problem(lang, value):
            bad.append(f"user_persona_variant{n}: {script_problem(lang, value)}")
        else:
            out[lang] = value.strip()
    if not out:
        return None, False, "; ".join(bad)
    return out, repaired, "; ".join(bad)


def parse_expansion(lang: str, text: str):
    """Table 5 part 2's answer -> (the six aspects, repaired, reason)."""
    obj, repaired = extract_json(text, dict, repair_commas=True)
    if obj is None:
        return None, False, "no JSON object in the answer"
    bad = [k for k in EXPANSION_KEYS if not isinstance(obj.get(k), str) or not obj[k].strip()]
    if bad:
        return None, False, f"missing or empty field(s) {bad}"
    joined = " ".join(obj[k].strip() for k in EXPANSION_KEYS)
    if script_problem(lang, joined):
        return None, False, script_problem(lang, joined)
    return {k: obj[k].strip() for k in EXPANSION_KEYS}, repaired, ""


def pairs_of(characters: list[dict], seeds: dict[str, PersonaSeed]) -> list[tuple[PersonaSeed, dict]]:
    return [(seeds[pid], c) for c in characters for pid in c["seed_persona_ids"]]


def collect_personas(characters: list[dict], seeds: list[PersonaSeed], client, policy: AskPolicy,
                     settings: PersonaSettings) -> tuple[list[dict], list[Report]]:
    by_id = {s.id: s for s in seeds}
    unknown = sorted({pid for c in characters for pid in c["seed_persona_ids"]} - set(by_id))
    if unknown:
        raise RpmInputError(f"characters name seed persona(s) {unknown} that the persona seed file does not hold")
    pairs = pairs_of(characters, by_id)
    if settings.max_pairs is not None and len(pairs) > settings.max_pairs:
        keep = set(seeded(settings.seed, "persona-pairs").sample(range(len(pairs)), settings.max_pairs))
        pairs = [p for i, p in enumerate(pairs) if i in keep]
    pair_ids = {f"{s.id}-{c['character_id']}": (s, c) for s, c in pairs}

    part1 = Report("expand_1", total=len(pair_ids))
    languages = Report("expand_1_languages", total=len(pair_ids) * len(LANGUAGES))
    part2 = Report("expand_2")
    rows = [{"persona_id": f"{pid}-en", "pair_id": pid, "seed_persona_id": s.id, "character_id": c["character_id"],
             "language": "en", "user_persona": s.persona, "source": "seed"} for pid, (s, c) in pair_ids.items()]
    variants = ask_all(client, {pid: prompts.get("bench_persona_expand_1").render(
        character_information=character_text(c), original_user_persona=s.persona)
        for pid, (s, c) in pair_ids.items()}, policy, parse_variants,
        schema=prompts.get("bench_persona_expand_1").response_schema)
    todo = {}
    for pid in pair_ids:
        value, repaired, attempts, why = variants[pid]
        part1.add(pid, "rejected" if value is None else "repaired" if repaired else "accepted", why, attempts,
                  id_key="pair_id")
        for n, lang in enumerate(LANGUAGES, start=1):
            if value and lang in value:
                languages.add(f"{pid}-{lang}", "accepted", "", attempts, id_key="persona_id")
                todo[f"{pid}-{lang}"] = (pid, lang, value[lang])
            else:
                mine = [w for w in why.split("; ") if w.startswith(f"user_persona_variant{n}:")]
                languages.add(f"{pid}-{lang}", "rejected", mine[0] if mine else why, attempts, id_key="persona_id")
    expanded = ask_all(client, {key: prompts.get("bench_persona_expand_2").render(step1_ReversedUserPersona=text)
                                for key, (_, _, text) in todo.items()}, policy,
                       lambda key, text: parse_expansion(todo[key][1], text), keyed=True,
                       schema=prompts.get("bench_persona_expand_2").response_schema)
    for key, (pid, lang, variant) in todo.items():
        value, repaired, attempts, why = expanded[key]
        part2.add(key, "rejected" if value is None else "repaired" if repaired else "accepted", why, attempts,
                  id_key="persona_id")
        if value is None:
            continue
        s, c = pair_ids[pid]
        rows.append({"persona_id": key, "pair_id": pid, "seed_persona_id": s.id, "character_id": c["character_id"],
                     "language": lang, "user_persona": " ".join([variant, *value.values()]), "source": "llm",
                     "variant": variant, "expansion": value})
    part2.total = len(todo)
    return rows, [part1, languages, part2]

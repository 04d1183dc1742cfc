"""The JSON schemas of the JSON-answer prompt templates (`response_schema` in their YAML files).

The one chat client sends a template's schema as an OpenAI `response_format` of type json_schema, so that
llama.cpp's server, vLLM or OpenAI decode under a grammar. Checked here: every schema is valid Draft 2020-12
and keeps to the subset llama.cpp's json-schema-to-grammar converts (and OpenAI's strict mode accepts for
objects: every property required, no additional properties); a hand-written answer of the schema's shape
is accepted by the parser the code really uses for that template; and which templates have a schema is
written out, so a new template must be classified (JSON answer or not) before the tests pass.
"""

from __future__ import annotations

import json
import string

import jsonschema
import pytest

from rpm import prompts
from rpm.construct import characters, dialogues, personas
from rpm.construct.common import DOMAINS, LANGUAGES
from rpm.teacher import tasks

# Templates whose answer is JSON: they must carry a response_schema.
WITH_SCHEMA = [
    "bench_character_classify",
    "bench_character_initial",
    "bench_character_refine",
    "bench_dialogue_id",
    "bench_dialogue_turn_composition",
    "bench_dialogue_word_composition_1",
    "bench_dialogue_word_composition_2",
    "bench_persona_expand_1",
    "bench_persona_expand_2",
    "da_dialogue",
    "da_topics",
]
# Templates whose answer is not JSON: prose, a tagged response, a percentage, or (the judges, scored by
# log-probabilities) one letter or number. reasoning_rollout's answer is a Markdown thought whose core
# features follow a marker; dpo_rejected's is an RPM response.
WITHOUT_SCHEMA = [
    "dpo_rejected",
    "judge_pointscore",
    "judge_winrate",
    "policy_reward_judge",
    "policy_rollout",
    "reasoning_reward",
    "reasoning_rollout",
    "rpm_response",
    "rpm_reward_judge",
    "thinking_response",
]

ALLOWED_KEYWORDS = {"type", "properties", "required", "items", "enum", "minItems", "maxItems",
                    "additionalProperties"}
ALLOWED_TYPES = {"object", "array", "string", "integer", "number", "boolean"}

CHARACTER = "Yiruma"
ORIGINAL_QUERY = "Which of your pieces should I play at my sister's wedding?"
VARIANTS = [
    {"user_query_variant": "Which of your pieces should I play at my sister's funeral?",
     "golden_agent_response_variant": "Perhaps 'Kiss the Rain', played slowly; grief needs room to breathe."},
    {"user_query_variant": "Which of your pieces should I play at my sister's graduation?",
     "golden_agent_response_variant": "'Indigo' - bright, hopeful, like a new beginning."},
    {"user_query_variant": "Which of your pieces should I play at my brother's wedding?",
     "golden_agent_response_variant": "'River Flows in You' has carried many couples down the aisle."},
    {"user_query_variant": "Which of your pieces should I sing at my sister's wedding?",
     "golden_agent_response_variant": "My pieces are for piano; but 'May Be' has a melody one can hum."},
    {"user_query_variant": "Which of your pieces should I avoid at my sister's wedding?",
     "golden_agent_response_variant": "Skip 'Passing By' - it is a farewell, not a vow."},
]

# One hand-written answer per template, of the shape its response_schema asks for.
EXAMPLES = {
    "bench_character_initial": [
        {"category": "Literature", "character_name": "Friedrich Nietzsche",
         "character_description": "German philosopher of the 19th century.",
         "explanation": "The user questions the meaning of hard work."},
        {"category": "Film & Television", "character_name": "Forrest Gump",
         "character_description": "Title character of the 1994 film.",
         "explanation": "The user loves running."},
    ],
    "bench_character_refine": {
        "{character_name}": {
            "character_source": "Real life: South Korean pianist and composer.",
            "basic_character_information": "Born 1978 in Seoul; studied at King's College London.",
            "character_background": "Known for 'River Flows in You' (2001).",
            "character_personality": "Gentle, modest, sentimental.",
        }
    },
    "bench_character_classify": {"classification_result": "Real Life Role"},
    "bench_persona_expand_1": {
        "user_persona_variant1": "Eine Lehrerin aus Hamburg, die abends Klavier spielt.",
        "user_persona_variant2": "Un estudiante de Sevilla que compone canciones.",
        "user_persona_variant3": "一位来自成都的护士，喜欢弹钢琴。",
        "user_persona_variant4": "大阪に住むエンジニアで、ピアノが好きです。",
        "user_persona_variant5": "서울에 사는 대학생으로 피아노를 배우고 있습니다.",
    },
    "bench_persona_expand_2": {
        "interests_hobbies": "Klavier, Wandern, alte Filme.",
        "values_beliefs": "Ehrlichkeit und Geduld.",
        "knowledge_expertise": "Fortgeschrittene Hobbypianistin.",
        "behavioral_traits": "Plant gern, übt jeden Abend.",
        "communication_style": "Höflich und direkt.",
        "cultural_background": "Norddeutsch, nüchtern, musikalisch geprägt.",
    },
    "bench_dialogue_id": {
        "user_query_1": "Hi! I just started learning piano.",
        "agent_response_1": "How wonderful - what made you begin?",
        "user_query_2": "Your music, honestly.",
        "agent_response_2": "That makes me very happy. Which piece?",
        "user_query_3": "River Flows in You.",
        "agent_response_3": "Start with the left hand; let it flow.",
        "user_query_4": "Can I play it at my sister's wedding next month?",
        "agent_response_4": "Yes - slow it down a little, and it will be yours.",
    },
    "bench_dialogue_turn_composition": {
        "user_query_1": "Hi! I just started learning piano.",
        "agent_response_1": "How wonderful - what made you begin?",
        "user_query_2": "Your music, honestly.",
        "agent_response_2": "That makes me very happy.",
        "user_query_3": "Do you ever get stage fright?",
        "agent_response_3": "Every time; I breathe with the first chord.",
        "user_query_4": "I work night shifts as a nurse.",
        "agent_response_4": "Then you know quiet hours better than most.",
        "user_query_5": "What do you play when you are tired?",
        "agent_response_5": "Something simple, in C major.",
        "user_query_6": "Is Seoul nice in autumn?",
        "agent_response_6": "The most beautiful season there.",
        "user_query_7": "Back to River Flows in You - the left hand is hard.",
        "agent_response_7": "Practise it alone until it sings.",
        "user_query_8": "Which piece would calm my patients at night?",
        "agent_response_8": "'Kiss the Rain', very softly - for you and for them.",
    },
    "bench_dialogue_word_composition_1": VARIANTS,
    "bench_dialogue_word_composition_2": {
        "selected_user_query_variant": VARIANTS[0]["user_query_variant"],
        "selected_golden_agent_response_variant": VARIANTS[0]["golden_agent_response_variant"],
    },
    "da_topics": {
        "possibility_1": "The user starts with their first piano lesson; asks about practice; the agent encourages.",
        "possibility_2": "The user asks about Seoul; the agent shares memories of his childhood.",
        "possibility_3": "The user wants a wedding piece; the agent suggests and explains.",
    },
    "da_dialogue": {
        "user_query_1": "I'm a nurse and I play piano to relax.",
        "agent_response_1": "Music and care go well together.",
        "user_query_2": "Do you practise every day?",
        "agent_response_2": "Almost - even ten minutes count.",
        "user_query_3": "What do you think about while composing?",
        "agent_response_3": "People I love, and rain.",
        "user_query_4": "What should I play after a hard shift?",
        "agent_response_4": "Something slow that lets your hands rest: 'May Be'.",
    },
}

# The parser the code applies to each template's answer: text -> (value or None, repaired, reason).
PARSERS = {
    "bench_character_initial": characters.parse_candidates,
    "bench_character_refine": lambda text: characters.parse_refined(text, CHARACTER),
    "bench_character_classify": characters.parse_kind,
    "bench_persona_expand_1": personas.parse_variants,
    "bench_persona_expand_2": lambda text: personas.parse_expansion("de", text),
    "bench_dialogue_id": lambda text: dialogues.parse_rounds(text, 4),
    "bench_dialogue_turn_composition": lambda text: dialogues.parse_rounds(text, 8),
    "bench_dialogue_word_composition_1": lambda text: dialogues.parse_variants(text, ORIGINAL_QUERY),
    "bench_dialogue_word_composition_2": lambda text: dialogues.parse_selection(text, VARIANTS),
    "da_topics": tasks._topics_parse,
    "da_dialogue": tasks._dialogue_parse,
}


def schema_of(name: str) -> dict:
    return prompts.get(name).extras["response_schema"]


def fill_placeholders(schema, fields: dict):
    """The schema with `{placeholder}` property names filled from a request's fields (as the prompt is)."""
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key == "properties":
                value = {k.format(**fields): fill_placeholders(v, fields) for k, v in value.items()}
            elif key == "required":
                value = [k.format(**fields) for k in value]
            else:
                value = fill_placeholders(value, fields)
            out[key] = value
        return out
    if isinstance(schema, list):
        return [fill_placeholders(v, fields) for v in schema]
    return schema


def keyword_problems(node, path="$") -> list[str]:
    """Where a schema leaves the subset: unknown keywords, types, open objects, optional properties."""
    if not isinstance(node, dict):
        return [f"{path}: not a schema object"]
    problems = [f"{path}: keyword {k!r}" for k in sorted(set(node) - ALLOWED_KEYWORDS)]
    kind = node.get("type")
    if kind not in ALLOWED_TYPES:
        problems.append(f"{path}: type {kind!r}")
    if "additionalProperties" in node and node["additionalProperties"] is not False:
        problems.append(f"{path}: additionalProperties must be false")
    if kind == "object":
        props = node.get("properties")
        if not isinstance(props, dict) or not props:
            problems.append(f"{path}: an object needs properties")
            props = {}
        if node.get("required") != list(props):
            problems.append(f"{path}: required must list every property, in order")
        if node.get("additionalProperties") is not False:
            problems.append(f"{path}: an object needs additionalProperties: false")
        for key, sub in props.items():
            problems += keyword_problems(sub, f"{path}.{key}")
    elif any(k in node for k in ("properties", "required")):
        problems.append(f"{path}: properties/required on a non-object")
    if kind == "array":
        if "items" not in node:
            problems.append(f"{path}: an array needs items")
        else:
            problems += keyword_problems(node["items"], f"{path}[]")
        lo, hi = node.get("minItems", 0), node.get("maxItems")
        if not (isinstance(lo, int) and lo >= 0 and (hi is None or (isinstance(hi, int) and hi >= lo))):
            problems.append(f"{path}: bad minItems/maxItems")
    elif any(k in node for k in ("items", "minItems", "maxItems")):
        problems.append(f"{path}: items/minItems/maxItems on a non-array")
    if "enum" in node:
        py = {"string": str, "integer": int, "number": (int, float), "boolean": bool}.get(kind)
        if not node["enum"] or py is None or not all(isinstance(v, py) for v in node["enum"]):
            problems.append(f"{path}: enum must be a non-empty list of {kind} values")
    return problems


def schema_strings(node):
    """Property names and enum values: where a placeholder could be written."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties":
                yield from value
            if key in ("enum", "required"):
                yield from (v for v in value if isinstance(v, str))
            yield from schema_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from schema_strings(value)


# --- (3) which templates have a schema ----------------------------------------------------------------


def test_the_templates_with_a_schema_are_exactly_the_json_answer_ones():
    with_schema = sorted(n for n in prompts.names() if "response_schema" in prompts.get(n).extras)
    assert with_schema == WITH_SCHEMA
    # Every template is classified, so a new one fails here until it is put in one list or the other.
    assert sorted(WITH_SCHEMA + WITHOUT_SCHEMA) == prompts.names()
    assert sorted(EXAMPLES) == sorted(PARSERS) == WITH_SCHEMA


@pytest.mark.parametrize("name", WITHOUT_SCHEMA)
def test_templates_without_a_schema_do_not_ask_for_json(name):
    t = prompts.get(name)
    assert "json" not in "\n".join(filter(None, (t.system, t.user, t.expected_output))).lower()


@pytest.mark.parametrize("name", WITH_SCHEMA)
def test_templates_with_a_schema_ask_for_json(name):
    assert "JSON" in prompts.get(name).user


# --- (1) the schemas are valid and keep to the subset ----------------------------------------------------


@pytest.mark.parametrize("name", WITH_SCHEMA)
def test_schema_is_valid_draft_2020_12(name):
    jsonschema.Draft202012Validator.check_schema(schema_of(name))


@pytest.mark.parametrize("name", WITH_SCHEMA)
def test_schema_uses_only_the_supported_subset(name):
    assert keyword_problems(schema_of(name)) == []


@pytest.mark.parametrize("name", WITH_SCHEMA)
def test_placeholders_in_a_schema_are_the_templates(name):
    t = prompts.get(name)
    used = {f for s in schema_strings(schema_of(name)) for _, f, _, _ in string.Formatter().parse(s) if f is not None}
    assert used <= set(t.placeholders)


# --- (2) an answer of the schema's shape is accepted by the code's parser ---------------------------------


@pytest.mark.parametrize("name", WITH_SCHEMA)
def test_example_answer_fits_the_schema_and_the_parser(name):
    example = EXAMPLES[name]
    jsonschema.Draft202012Validator(schema_of(name)).validate(example)
    value, repaired, reason = PARSERS[name](json.dumps(example))
    assert value is not None, reason
    if name == "bench_character_refine":
        assert repaired  # the unfilled "{character_name}" key: read as the name spelt differently
    else:
        assert not repaired and reason == ""


def test_refine_schema_filled_for_the_request_gives_the_printed_shape():
    filled = fill_placeholders(schema_of("bench_character_refine"), {"character_name": CHARACTER})
    jsonschema.Draft202012Validator.check_schema(filled)
    assert keyword_problems(filled) == []
    example = {CHARACTER: EXAMPLES["bench_character_refine"]["{character_name}"]}
    jsonschema.Draft202012Validator(filled).validate(example)
    value, repaired, reason = characters.parse_refined(json.dumps(example), CHARACTER)
    assert value is not None and not repaired, reason
    assert list(value) == list(characters.ASPECTS)


def test_every_category_the_schema_allows_is_a_known_domain():
    schema = schema_of("bench_character_initial")
    assert schema["items"]["properties"]["category"]["enum"] == list(DOMAINS)
    for category in DOMAINS:
        answer = [{**EXAMPLES["bench_character_initial"][0], "category": category}]
        jsonschema.Draft202012Validator(schema).validate(answer)
        (good, problems), _, _ = characters.parse_candidates(json.dumps(answer))
        assert [c["character_domain"] for c in good] == [category] and problems == []


def test_every_classification_the_schema_allows_is_parsed():
    schema = schema_of("bench_character_classify")
    kinds = set()
    for label in schema["properties"]["classification_result"]["enum"]:
        value, repaired, reason = characters.parse_kind(json.dumps({"classification_result": label}))
        assert value is not None and not repaired, reason
        kinds.add(value)
    assert kinds == {"real", "fictional"}


@pytest.mark.parametrize("name, rounds", [("bench_dialogue_id", 4), ("da_dialogue", 4),
                                          ("bench_dialogue_turn_composition", 8)])
def test_dialogue_schemas_alternate_query_and_response_for_the_rounds_the_code_asks(name, rounds):
    # Grammars emit properties in schema order: user_query_1, agent_response_1, user_query_2, ...
    assert list(schema_of(name)["properties"]) == dialogues.round_keys(rounds)


def test_schema_keys_are_the_parsers_keys():
    assert list(schema_of("bench_persona_expand_1")["properties"]) == [
        f"user_persona_variant{n}" for n in range(1, len(LANGUAGES) + 1)]
    assert list(schema_of("bench_persona_expand_2")["properties"]) == list(personas.EXPANSION_KEYS)
    inner = schema_of("bench_character_refine")["properties"]["{character_name}"]
    assert list(inner["properties"]) == list(characters.ASPECTS)
    word_1 = schema_of("bench_dialogue_word_composition_1")
    assert word_1["minItems"] == word_1["maxItems"] == 5   # "generating 5 possible variants"


@pytest.mark.parametrize("name", WITH_SCHEMA)
def test_schema_rejects_a_missing_or_an_extra_key(name):
    validator = jsonschema.Draft202012Validator(schema_of(name))
    example = EXAMPLES[name]
    obj = example[0] if isinstance(example, list) else example
    first = next(iter(obj))
    for changed in ({k: v for k, v in obj.items() if k != first}, {**obj, "extra": "x"}):
        answer = [changed, *example[1:]] if isinstance(example, list) else changed
        assert not validator.is_valid(answer)

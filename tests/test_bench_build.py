"""`rpm bench build`: parsing, repair and selection of each step on real-looking LLM answers; the whole
pipeline on a scripted LLM (a complete benchmark that loads); and the acceptance run through a real
OpenAI-compatible server on loopback (`transformers serve` with the tiny model), re-run from cache."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from rpm.bench.load import load_bench
from rpm.construct.characters import (
    CharacterSettings,
    classification_control,
    collect_characters,
    domain_of,
    parse_candidates,
    parse_kind,
    parse_refined,
    read_known_characters,
)
from rpm.construct.common import PACKAGED_SEEDS, AskPolicy, read_context_seeds, read_persona_seeds
from rpm.construct.dialogues import (
    DialogueSettings,
    changed_words,
    collect_dialogues,
    parse_rounds,
    parse_selection,
    parse_variants as parse_query_variants,
)
from rpm.construct.personas import PersonaSettings, collect_personas, parse_expansion, parse_variants
from rpm.construct.retrieve import LocalFilesRetriever
from rpm.construct.split import SplitSettings, split, target, write_split
from rpm.core.names import BENCH_FILES
from rpm.llm.answers import ask_all, extract_json
from rpm.llm.client import Endpoint, Ledger

PERSONAS = PACKAGED_SEEDS / "personachat.yaml"
CONTEXTS = [PACKAGED_SEEDS / "personachat.yaml", PACKAGED_SEEDS / "dailydialog.yaml"]


# ---------------------------------------------------------------- shared JSON reading


@pytest.mark.parametrize("text,want,value,repaired", [
    ('[{"a": 1}]', list, [{"a": 1}], False),
    ('Here you go:\n```json\n[{"a": 1},]\n```', list, [{"a": 1}], True),            # fence + trailing comma
    ('{ "x": {"a": "", "b": "", } }', dict, {"x": {"a": "", "b": ""}}, True),      # the paper's own example shape
    ('```json\n{"a": 1}\n```\nor\n```json\n{"a": 2}\n```', dict, None, False),     # two answers: ambiguous
    ('{"a": 1} and {"b": 2}', dict, None, False),
    ("I cannot help with that.", dict, None, False),
])
def test_json_reading_repairs_only_unambiguous_answers(text, want, value, repaired):
    assert extract_json(text, want, repair_commas=True) == (value, repaired)


# ---------------------------------------------------------------- Step 1

INITIAL_ANSWER = """Based on the persona, here are four characters:
```json
[{ "category": "Literature", "character_name": "Henry David Thoreau", \
"character_description": "American writer who lived by Walden Pond.", "explanation": "He loves cabins by lakes.", },
 { "category": "Film", "character_name": "Moana", "character_description": "Disney wayfinder.", \
"explanation": "Loves the water." },
 { "category": "Poetry", "character_name": "Basho", "character_description": "Haiku master.", \
"explanation": "Travels." },
 { "category": "Gaming", "character_name": "", "character_description": "?", "explanation": "" }]
```"""


def test_initial_candidates_keep_known_categories_and_report_the_rest():
    (good, problems), repaired, why = parse_candidates(INITIAL_ANSWER)
    assert repaired and why == ""
    assert [(c["character_name"], c["character_domain"]) for c in good] == [
        ("Henry David Thoreau", "Literature"), ("Moana", "Film & Television")]
    assert len(problems) == 2 and "unknown category 'Poetry'" in problems[0] and "no character_name" in problems[1]
    assert parse_candidates("Thoreau, Moana and Basho.")[0] is None
    assert domain_of("Theatre") == "Theater" and domain_of("Sculpture") is None


@pytest.mark.parametrize("answer,repaired", [
    ('{"Moana": {"character_source": "Moana (2016)", "basic_character_information": "16, Motunui", '
     '"character_background": "Voyager.", "character_personality": "Brave.",}}', True),
    ('{"character_source": "Moana (2016)", "basic_character_information": "16, Motunui", '
     '"character_background": "Voyager.", "character_personality": "Brave."}', True),   # no name wrapper
    ('{"Moana of Motunui": {"character_source": "Moana (2016)", "basic_character_information": "16", '
     '"character_background": "Voyager.", "character_personality": "Brave."}}', True),  # name spelt differently
])
def test_refinement_reads_the_four_aspects(answer, repaired):
    value, rep, _ = parse_refined(answer, "Moana")
    assert value["character_source"] == "Moana (2016)" and rep is repaired


def test_refinement_rejects_missing_aspects():
    value, _, why = parse_refined('{"Moana": {"character_source": "Moana (2016)"}}', "Moana")
    assert value is None and "basic_character_information" in why


@pytest.mark.parametrize("answer,kind,repaired", [
    ('```json\n{ "classification_result": "Real Life Role" }\n```', "real", True),
    ('{"classification_result": "Fictional Role"}', "fictional", False),
    ('{"classification_result": "Real-Life Role"}', "real", False),
    ("This character is a Fictional Role created by Disney.", "fictional", True),
    ('{ "classification_result": "... (Real Life Role or Fictional Role) }', None, False),  # the template echoed
    ('{"classification_result": "unsure"}', None, False),
])
def test_classification_needs_exactly_one_label(answer, kind, repaired):
    value, rep, _ = parse_kind(answer)
    assert value == kind and (value is None or rep is repaired)


def test_local_files_retriever(tmp_path):
    (tmp_path / "moana.txt").write_text("Moana is the daughter of the chief of Motunui.")
    (tmp_path / "henry_david_thoreau").mkdir()
    (tmp_path / "henry_david_thoreau" / "a.txt").write_text("Walden (1854).")
    r = LocalFilesRetriever(tmp_path, max_chars=20)
    assert r.retrieve("Moana", "Film & Television") == "Moana is the daughter"[:20]
    assert r.retrieve("Henry David Thoreau", "Literature") == "Walden (1854)."
    assert r.retrieve("Basho", "Literature") is None


# ---------------------------------------------------------------- Step 2

VARIANTS = ('{"user_persona_variant1": "Ich paddle gern auf Seen in Brandenburg.", '
            '"user_persona_variant2": "Me encanta remar en los lagos de Asturias.", '
            '"user_persona_variant3": "我喜欢在杭州西湖划桨板。", '
            '"user_persona_variant4": "週末は琵琶湖でパドルボードをします。", '
            '"user_persona_variant5": "주말마다 호수에서 패들보드를 타요."}')


def test_persona_variants_are_kept_per_language_in_their_script():
    value, repaired, why = parse_variants(VARIANTS)
    assert list(value) == ["de", "es", "zh", "ja", "ko"] and not repaired and why == ""
    bad = VARIANTS.replace("週末は琵琶湖でパドルボードをします。", "I paddle board on Lake Biwa.")
    value, _, why = parse_variants(bad)  # the Japanese variant is not Japanese: the other four are kept
    assert list(value) == ["de", "es", "zh", "ko"] and why == "user_persona_variant4: not written in Japanese script"
    none = json.dumps({f"user_persona_variant{n}": "" for n in range(1, 6)})
    value, _, why = parse_variants(none)
    assert value is None and why.count("missing or empty") == 5


def test_persona_expansion_keeps_the_language():
    fields = ["interests_hobbies", "values_beliefs", "knowledge_expertise", "behavioral_traits",
              "communication_style", "cultural_background"]
    ok = json.dumps({k: "喜欢划桨板。" for k in fields}, ensure_ascii=False)
    assert parse_expansion("zh", ok)[0]["values_beliefs"] == "喜欢划桨板。"
    assert parse_expansion("zh", json.dumps({k: "likes boards" for k in fields}))[2] == "not written in Chinese script"
    assert "cultural_background" in parse_expansion("de", json.dumps({k: "x" for k in fields[:5]}))[2]


# ---------------------------------------------------------------- Step 3


def _rounds(n, prefix="r"):
    return {f"{role}_{i}": f"{prefix} {role} {i}" for i in range(1, n + 1) for role in ("user_query", "agent_response")}


def test_rounds_parse_in_order_and_name_missing_fields():
    turns, repaired, _ = parse_rounds("```json\n" + json.dumps(_rounds(4)) + "\n```", 4)
    assert (repaired and turns[0] == {"user_query": "r user_query 1"}
            and turns[-1] == {"agent_response": "r agent_response 4"})
    eight = _rounds(8)
    del eight["agent_response_8"]
    assert "agent_response_8" in parse_rounds(json.dumps(eight), 8)[2]


def test_word_level_variants_and_selection():
    original = "What should I pack for the lake trip?"
    answer = json.dumps([
        {"user_query_variant": "What should I pack for the mountain trip?", "golden_agent_response_variant": "Boots."},
        {"user_query_variant": original, "golden_agent_response_variant": "Same."},
        {"user_query_variant": "What should I pack for the mountain  trip?", "golden_agent_response_variant": "Dup."},
        {"user_query_variant": "What should I cook for the lake trip?", "golden_agent_response_variant": "Fish."},
    ])
    cands, _, why = parse_query_variants(answer, original)
    assert [c["golden_agent_response_variant"] for c in cands] == ["Boots.", "Fish."]
    assert "variant 1: same as the original query" in why and "variant 2: duplicate" in why
    assert changed_words(original, cands[1]["user_query_variant"]) == 1
    pick = '{"selected_user_query_variant": "What should I cook for the lake trip?", ' \
           '"selected_golden_agent_response_variant": "Grilled trout, as Thoreau would."}'
    assert parse_selection(pick, cands)[0] == ("What should I cook for the lake trip?",
                                               "Grilled trout, as Thoreau would.")
    invented = pick.replace("cook", "sing")
    assert parse_selection(invented, cands)[2] == "the selected query is not one of the candidate variants"


# ---------------------------------------------------------------- Step 4


@pytest.mark.parametrize("lang,kind,dkind,domain,where", [
    ("en", "real", "id", "Literature", "id"), ("ko", "real", "id", "Gaming", "user_ko"),
    ("en", "fictional", "id", "Theater", "char_theater"), ("en", "real", "turn", "Gaming", "dial_turn"),
    ("en", "real", "word", "Film & Television", "dial_word"), ("de", "fictional", "id", "Literature", None),
    ("en", "fictional", "turn", "Literature", None),
])
def test_step4_criteria(lang, kind, dkind, domain, where):
    got, why = target(lang, kind, dkind, domain)
    assert got == where and (where is not None or "one component at a time" in why)


# ---------------------------------------------------------------- retries and the whole pipeline on a scripted LLM


@dataclass
class _Answer:
    text: str


class ScriptedLLM:
    """Answers each Table 4-7 prompt as a capable LLM would (some with fences and trailing commas, as
    real models write them); the first answer to every dialogue request is truncated, so the retry path runs."""

    REAL = {"Henry David Thoreau", "Marie Curie"}
    FICTIONAL = {"Sherlock Holmes": "Literature", "Moana": "Film", "Hamlet": "Theater", "Mario": "Gaming"}
    SCRIPTS = {"de": "Ich bin", "es": "Soy", "zh": "我是", "ja": "私は", "ko": "저는"}

    def __init__(self):
        self.endpoint = Endpoint(name="scripted", backend="openai", base_url="http://scripted", model="m")
        self.ledger, self.calls, self.seen = Ledger(), 0, set()

    def complete_many(self, requests, **kw):
        self.calls += len(requests)
        return [_Answer(self.answer(m[-1]["content"], kw.get("seeds"))) for m in requests]

    def answer(self, prompt, seeds):
        if prompt.startswith("You are given a user's persona"):
            items = [{"category": "Literature", "character_name": n, "character_description": "d", "explanation": "e"}
                     for n in sorted(self.REAL)]
            items += [{"category": d, "character_name": n, "character_description": "d", "explanation": "e"}
                      for n, d in self.FICTIONAL.items()]
            return "```json\n" + json.dumps(items).replace("}", ', }') + "\n```"
        if prompt.startswith("Please summarize"):
            name = re.search(r'character "(.+?)" from 4 aspects', prompt).group(1)
            return json.dumps({name: {"character_source": f"{name}'s work", "basic_character_information": "b",
                                      "character_background": "bg", "character_personality": "p"}})
        if prompt.startswith("Your task is to determine"):
            name = re.search(r"Name: (.+)", prompt).group(1)
            return json.dumps({"classification_result": "Real Life Role" if name in self.REAL else "Fictional Role"})
        if prompt.startswith("You are designing"):
            seed = re.search(r'original user persona is: "(.+?)"', prompt).group(1)
            return json.dumps({f"user_persona_variant{n}": f"{self.SCRIPTS[lang]} {seed[:20]}"
                               for n, lang in enumerate(self.SCRIPTS, start=1)}, ensure_ascii=False)
        if prompt.startswith("Your task is to take"):
            head = re.search(r"original user persona: (\S+ \S+)", prompt).group(1)
            return json.dumps({k: head for k in ("interests_hobbies", "values_beliefs", "knowledge_expertise",
                                                 "behavioral_traits", "communication_style", "cultural_background")},
                              ensure_ascii=False)
        rounds = 8 if "8-round" in prompt else 4
        if prompt.startswith("You are tasked with generating a realistic"):
            text = json.dumps(_rounds(rounds, f"p{hash(prompt) % 997}"))
            return text[:40] if seeds is None else text     # first attempt truncated, retry complete
        if prompt.startswith("You are tasked with generating 5"):
            return json.dumps([{"user_query_variant": f"variant {k}", "golden_agent_response_variant": f"gold {k}"}
                               for k in range(5)])
        if prompt.startswith("You are tasked with selecting"):
            return '{"selected_user_query_variant": "variant 3", "selected_golden_agent_response_variant": "gold 3"}'
        raise AssertionError(f"unexpected prompt: {prompt[:80]}")


def test_ask_all_retries_with_new_seeds_then_reports():
    llm = ScriptedLLM()
    dialogue = "You are tasked with generating a realistic 4-round dialogue"
    got = ask_all(llm, {"a": [{"role": "user", "content": dialogue}]}, AskPolicy(retries=1),
                  lambda text: parse_rounds(text, 4))
    assert got["a"][0] is not None and got["a"][2] == 2 and llm.calls == 2
    got = ask_all(llm, {"b": [{"role": "user", "content": dialogue}]}, AskPolicy(retries=0),
                  lambda text: parse_rounds(text, 4))
    assert got["b"] == (None, False, 1, "no JSON object in the answer")


def test_whole_pipeline_on_a_scripted_llm_gives_a_complete_benchmark(tmp_path):
    llm, policy = ScriptedLLM(), AskPolicy(retries=1)
    seeds = read_persona_seeds(PERSONAS)[:2]
    chars, reports1 = collect_characters(seeds, llm, policy, CharacterSettings(), None)
    assert {c["kind"] for c in chars} == {"real", "fictional"} and len(chars) == 6
    assert all(c["retrieval"]["retriever"] == "none" for c in chars)
    assert {r.task: r.counts()["repaired"] for r in reports1}["initial"] == 2   # fenced, trailing commas
    people, _ = collect_personas(chars, seeds, llm, policy, PersonaSettings())
    assert len(people) == 6 * 2 * 6   # 6 characters x 2 seed personas x 6 languages
    dialogues, reports3 = collect_dialogues(people, chars, read_context_seeds(CONTEXTS), llm, policy,
                                            DialogueSettings(n_turn=2, n_word=2))
    id_report = next(r for r in reports3 if r.task == "id")
    assert id_report.counts() == {"accepted": len(people), "repaired": 0, "rejected": 0}
    assert {r["attempts"] for r in id_report.rows} == {2}
    files, provenance, rep = split(dialogues, people, chars, SplitSettings())
    assert rep["empty"] == [] and len(rep["unused"]) == 2 * 4 * 5   # non-English persona with a fictional character
    write_split(files, provenance, rep, tmp_path / "bench", tmp_path / "split.json")
    loaded = load_bench(tmp_path / "bench")                          # the normal loader, every file
    assert {f: len(v) for f, v in loaded.items()} == rep["samples"]
    assert loaded["dial_word"][0].dialogue_context[-1].text == "variant 3"
    assert loaded["dial_word"][0].agent_golden_response == "gold 3"
    assert (loaded["char_gaming"][0].subset_tag == "Gaming"
            and loaded["char_gaming"][0].agent_character.character_name == "Mario")
    assert {s.user_persona[:2] for s in loaded["user_zh"]} == {"我是"}
    assert (tmp_path / "bench/stats.tsv").read_text().splitlines()[0].split("\t") == [
        "file", "split", "shift", "samples", "user_personas", "agent_characters"]
    assert len((tmp_path / "bench/stats.tsv").read_text().splitlines()) == 1 + len(BENCH_FILES)


class KnowingLLM(ScriptedLLM):
    """Classifies the control's characters by what they are; `constant` answers one label whatever it is shown."""

    def __init__(self, real: set[str], constant: str | None = None):
        super().__init__()
        self.REAL, self.constant = real, constant

    def answer(self, prompt, seeds):
        if self.constant:
            return json.dumps({"classification_result": self.constant})
        return super().answer(prompt, seeds)


def test_the_classifier_control_tells_an_informative_classifier_from_a_constant_one(tmp_path):
    known = read_known_characters(PACKAGED_SEEDS / "known_characters.yaml")
    assert len(known) == 20 and sum(k["kind"] == "real" for k in known) == 10
    real = {k["character_name"] for k in known if k["kind"] == "real"}
    report, good = classification_control(known, KnowingLLM(real), AskPolicy(retries=0))
    assert good["correct"] == 20 and good["informative"] and good["ci_low"] > 0.8
    assert report.counts()["accepted"] == 20 and all("answered" in r["reason"] for r in report.rows)
    _, constant = classification_control(known, KnowingLLM(real, "Real Life Role"), AskPolicy(retries=0))
    assert (constant["correct"], constant["answered_real"], constant["informative"]) == (10, 20, False)
    assert constant["ci_low"] < 0.5 < constant["ci_high"]
    (tmp_path / "bad.yaml").write_text("- {id: x, kind: alien, character_name: X}\n")
    with pytest.raises(Exception, match="bad.yaml: entry 0"):
        read_known_characters(tmp_path / "bad.yaml")


def test_character_seeds_and_the_retriever_join_step1(tmp_path):
    from rpm.construct.common import BuildInputError, CharacterSeed

    (tmp_path / "ada_lovelace.txt").write_text("Ada Lovelace wrote the first published algorithm (1843).")

    class Recording(ScriptedLLM):
        prompts = []

        def answer(self, prompt, seeds):
            self.prompts.append(prompt)
            return super().answer(prompt, seeds)

    llm = Recording()
    seeds = read_persona_seeds(PERSONAS)[:1]
    ada = CharacterSeed("cs1", "Ada Lovelace", "Literature", "Mathematician.", ("pc01",))
    chars, reports = collect_characters(seeds, llm, AskPolicy(), CharacterSettings(), LocalFilesRetriever(tmp_path),
                                        [ada])
    by_name = {c["character_name"]: c for c in chars}
    assert by_name["Ada Lovelace"]["seed_persona_ids"] == ["pc01"]
    assert by_name["Ada Lovelace"]["retrieval"] == {"retriever": "local-files", "retrieved_chars": 56}
    assert by_name["Moana"]["retrieval"]["retrieved_chars"] == 0
    assert any("## Retrieved Information" in p and "first published algorithm" in p for p in llm.prompts)
    with pytest.raises(BuildInputError, match="'persona_seeds': 'pc09'"):
        collect_characters(seeds, llm, AskPolicy(), CharacterSettings(), None,
                           [CharacterSeed("cs2", "Ada", "Literature", "", ("pc09",))])


def test_split_stops_on_empty_subsets_unless_partial(tmp_path):
    people = [{"persona_id": "p-en", "language": "en", "user_persona": "i swim."}]
    chars = [{"character_id": "c1", "character_name": "Marie Curie", "character_domain": "Literature", "kind": "real",
              "character_source": "s", "basic_character_information": "b", "character_background": "g",
              "character_personality": "p"}]
    dialogues = [{"dialogue_id": f"d{i}", "kind": "id", "persona_id": "p-en", "character_id": "c1",
                  "turns": [{"user_query": "hi"}, {"agent_response": f"hello {i}"}]} for i in range(3)]
    with pytest.raises(ValueError, match="no samples for user_de, .*--allow-partial"):
        split(dialogues, people, chars, SplitSettings())
    files, prov, rep = split(dialogues, people, chars, SplitSettings(allow_partial=True))
    why = rep["empty_reasons"]   # each empty file says why, from what the earlier steps accepted
    assert set(why) == set(rep["empty"])
    assert why["user_de"].startswith("no dialogue with a German persona (0 German personas accepted")
    assert why["char_film"].startswith("no dialogue with a fictional Film & Television character (0 of 1")
    assert why["dial_turn"].startswith("no turn-level composed dialogue")
    (tmp_path / "b").mkdir()
    (tmp_path / "b/user_de.jsonl").write_text("stale")
    written = write_split(files, prov, rep, tmp_path / "b", tmp_path / "r.json")
    assert written == ["train", "id_test"] and not (tmp_path / "b/user_de.jsonl").exists()
    assert sum(map(len, load_bench(tmp_path / "b", files=tuple(written)).values())) == 3


# ---------------------------------------------------------------- acceptance: a real server on loopback


def _posts(log: Path) -> int:
    return sum("POST /v1/chat/completions" in line for line in log.read_text(errors="replace").splitlines())


# Hand-written upstream input for Steps 2 and 3 (the tiny model's Step 1 yields no character), so that every
# step's requests reach the server; marked as test input, it never enters a shipped benchmark.
HAND_CHARACTERS = [
    {"character_id": "c0001", "character_name": "Marie Curie", "character_domain": "Literature", "kind": "real",
     "character_source": "History of science", "basic_character_information": "Born 1867 in Warsaw.",
     "character_background": "Two Nobel prizes.", "character_personality": "Reserved and tireless.",
     "seed_persona_ids": ["pc01"]},
    {"character_id": "c0002", "character_name": "Moana", "character_domain": "Film & Television", "kind": "fictional",
     "character_source": "Moana (2016)", "basic_character_information": "A chief's daughter on Motunui.",
     "character_background": "Sails beyond the reef.", "character_personality": "Brave and stubborn.",
     "seed_persona_ids": ["pc02"]},
]


def test_build_end_to_end_through_a_real_server_then_from_cache(tiny_model_dir, tmp_path):
    """The tiny random model writes no usable JSON: every step must still finish, report each item with its
    reason, and whatever was accepted must load; the re-run is answered from the cache (no POST at the server)."""
    from click.testing import CliRunner

    from rpm.cli import main
    from rpm.io import write_jsonl
    from rpm.llm.serve import local_server

    log, out = tmp_path / "server.log", tmp_path / "build"
    write_jsonl(tmp_path / "hand_characters.jsonl", HAND_CHARACTERS)
    with local_server(tiny_model_dir, log_path=log) as server:
        endpoint = json.dumps({"backend": "openai", "base_url": server.base_url, "model": server.model})
        common = ["--endpoint", endpoint, "--cache-dir", str(tmp_path / "cache"), "--retries", "1",
                  "--max-tokens", "16"]
        steps = [
            ["characters", "--persona-seeds", str(PERSONAS), "--max-personas", "2", "--out", f"{out}/characters.jsonl"],
            ["personas", "--characters", str(tmp_path / "hand_characters.jsonl"), "--persona-seeds", str(PERSONAS),
             "--out", f"{out}/personas.jsonl"],
            ["dialogues", "--characters", str(tmp_path / "hand_characters.jsonl"),
             "--personas", f"{out}/personas.jsonl", "--context-seeds", str(CONTEXTS[0]),
             "--context-seeds", str(CONTEXTS[1]), "--out", f"{out}/dialogues.jsonl"],
        ]
        split_cmd = ["split", "--characters", str(tmp_path / "hand_characters.jsonl"), "--personas",
                     f"{out}/personas.jsonl", "--dialogues", f"{out}/dialogues.jsonl", "--out", f"{out}/bench",
                     "--report", f"{out}/split.json", "--allow-partial"]

        def run_all():
            for step in steps:
                result = CliRunner().invoke(main, ["bench", "build", *step, *common,
                                                   "--report", f"{out}/{step[0]}.json"])
                assert result.exit_code == 0, result.output
            result = CliRunner().invoke(main, ["bench", "build", *split_cmd])
            assert result.exit_code == 0, result.output
            return [json.loads((out / f"{s[0]}.json").read_text()) for s in steps]

        first = run_all()
        posts = _posts(log)
        calls = [r["ledger"]["calls"] for r in first]
        assert posts == sum(calls) and all(calls), calls      # every step asked the server
        for report in first:
            for task in report["tasks"].values():
                assert task["accepted"] + task["repaired"] + task["rejected"] == task["asked"] == len(task["details"])
                assert all(d["reason"] for d in task["details"] if d["status"] == "rejected")
                assert all(d["attempts"] == 2 for d in task["details"] if d["status"] == "rejected")
        assert first[0]["tasks"]["initial"]["asked"] == 2 and first[0]["retriever"] == "none"
        control = first[0]["classify_control"]            # the classifier's control asked the server too
        assert first[0]["tasks"]["classify_control"]["asked"] == control["n"] == 20
        assert control["correct"] <= control["answered"] <= 20 and 0 <= control["ci_low"] <= control["ci_high"] <= 1
        assert first[1]["tasks"]["expand_1"]["asked"] == 2
        people = [json.loads(line) for line in (out / "personas.jsonl").read_text().splitlines()]
        assert {p["language"] for p in people if p["source"] == "seed"} == {"en"} and len(people) >= 2
        assert first[2]["tasks"]["id"]["asked"] == len(people)
        split_report = json.loads((out / "split.json").read_text())
        written = tuple(split_report["files_written"])
        loaded = load_bench(out / "bench", files=written) if written else {}
        assert {f: len(v) for f, v in loaded.items()} == {f: split_report["samples"][f] for f in written}
        assert (out / "bench/stats.tsv").is_file()

        second = run_all()
        assert _posts(log) == posts                                   # zero endpoint calls on the re-run
        assert all(r["ledger"]["calls"] == 0 for r in second)
        assert [r["written"] for r in second] == [r["written"] for r in first]


def test_split_names_the_file_line_and_dialogue_of_bad_input(tmp_path):
    from click.testing import CliRunner

    from rpm.cli import main
    from rpm.io import write_jsonl

    write_jsonl(tmp_path / "c.jsonl", [{"character_id": "c1", "character_name": "Marie Curie", "kind": "real",
                                        "character_domain": "Literature", "character_source": "s",
                                        "basic_character_information": "b", "character_background": "g",
                                        "character_personality": "p"}])
    write_jsonl(tmp_path / "p.jsonl", [{"persona_id": "p-en", "language": "en", "user_persona": "i swim."}])
    write_jsonl(tmp_path / "d.jsonl", [
        {"dialogue_id": "d1", "kind": "id", "persona_id": "p-en", "character_id": "c1",
         "turns": [{"user_query": "hi"}, {"agent_response": "hello"}]},
        {"dialogue_id": "d2", "kind": "id", "persona_id": "p-en", "character_id": "c1", "turns": ["hi", "hello"]}])
    args = ["bench", "build", "split", "--characters", str(tmp_path / "c.jsonl"),
            "--personas", str(tmp_path / "p.jsonl"), "--dialogues", str(tmp_path / "d.jsonl"),
            "--out", str(tmp_path / "b"), "--report", str(tmp_path / "r.json")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "d.jsonl, line 2, dialogue 'd2': field 'turns'" in result.output
    assert "Traceback" not in result.output


def test_a_served_model_starts_only_on_a_cache_miss(tiny_model_dir, tmp_path):
    """`--endpoint '{serve: DIR}'`: the step serves DIR on loopback when it first needs an answer; a re-run
    answered from the cache starts no server at all, and the report names DIR, not the server's view."""
    from click.testing import CliRunner

    from rpm.cli import main
    from rpm.io import write_jsonl

    write_jsonl(tmp_path / "hand_characters.jsonl", HAND_CHARACTERS[:1])
    log = tmp_path / "server.log"
    args = ["bench", "build", "personas", "--characters", str(tmp_path / "hand_characters.jsonl"), "--persona-seeds",
            str(PERSONAS), "--max-pairs", "1", "--out", str(tmp_path / "personas.jsonl"), "--report",
            str(tmp_path / "personas.json"), "--endpoint", json.dumps({"serve": str(tiny_model_dir)}), "--cache-dir",
            str(tmp_path / "cache"), "--retries", "0", "--max-tokens", "8", "--server-log", str(log)]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    report = json.loads((tmp_path / "personas.json").read_text())
    assert report["ledger"]["calls"] > 0 and _posts(log) == report["ledger"]["calls"]
    assert report["ledger"]["model"] == str(Path(tiny_model_dir).resolve())
    size = log.stat().st_size
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0, second.output
    again = json.loads((tmp_path / "personas.json").read_text())
    assert again["ledger"]["calls"] == 0 and again["ledger"]["cached"] == report["ledger"]["calls"]
    assert log.stat().st_size == size            # no server was started for the cached re-run


def test_an_endpoint_that_does_not_answer_is_a_clear_error(tmp_path):
    from click.testing import CliRunner

    from rpm.cli import main
    from rpm.llm.serve import free_port

    endpoint = {"backend": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1", "model": "m", "max_retries": 0,
                "timeout": 2}
    result = CliRunner().invoke(main, ["bench", "build", "characters", "--persona-seeds", str(PERSONAS),
                                       "--max-personas", "1", "--out", str(tmp_path / "c.jsonl"),
                                       "--report", str(tmp_path / "c.json"),
                                       "--endpoint", json.dumps(endpoint), "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 1, result.output
    assert "did not answer: APIConnectionError" in result.output and "re-run the step to resume" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "c.jsonl").exists()

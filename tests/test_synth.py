"""The mini RPGBench: deterministic, schema-exact, shifted as Step 4 of Appendix A says, severity-controlled."""

import re
import shutil
from importlib import resources

import pytest
import yaml
from click.testing import CliRunner

from rpm.bench.load import load_bench
from rpm.bench.subsets import subset
from rpm.bench.synth import DOMAINS, LANGUAGES, SeedError, SynthConfig, load_seeds, synth, synthesize
from rpm.cli import main
from rpm.core.names import BENCH_FILES

SEEDS = load_seeds()
EN = {p.texts["en"]: p for p in SEEDS.personas}
REAL = {c.profile.character_name: c for c in SEEDS.real}
FICTIONAL = {c.profile.character_name: c for cs in SEEDS.fictional.values() for c in cs}


def users(sample):
    return [t.text for t in sample.dialogue_context if t.role == "user_query"]


@pytest.fixture(scope="module")
def bench():
    return synthesize(SynthConfig(n_train=64, n_per_subset=12, seed=3), SEEDS)


def test_seed_material_is_complete():
    assert len(SEEDS.personas) >= 30 and len(SEEDS.real) >= 20 and len(SEEDS.dialogues) >= 20
    assert all(len(cs) >= 6 for cs in SEEDS.fictional.values()) and set(SEEDS.fictional) == set(DOMAINS.values())
    for p in SEEDS.personas:  # each persona has its five rewrites, none equal to the English text
        assert len({p.texts[lang] for lang in ("en", *LANGUAGES.values())}) == 6


def test_written_benchmark_loads_through_the_one_loader(tmp_path):
    synth(tmp_path, SynthConfig(n_train=20, n_per_subset=5, seed=0))
    loaded = load_bench(tmp_path)
    assert list(loaded) == list(BENCH_FILES)
    assert len(loaded["train"]) == 20 and all(len(loaded[f]) == 5 for f in BENCH_FILES[1:])
    stats = (tmp_path / "stats.tsv").read_text().splitlines()
    assert len(stats) == 14 and stats[1].startswith("train\tIDTrain\tid\t20\t")


def test_same_seed_same_benchmark_other_seed_other(bench):
    again = synthesize(SynthConfig(n_train=64, n_per_subset=12, seed=3), SEEDS)
    other = synthesize(SynthConfig(n_train=64, n_per_subset=12, seed=4), SEEDS)
    assert bench == again and bench != other


def test_no_sample_is_repeated_across_splits(bench):
    keys = [(s.user_persona, s.agent_character, s.dialogue_context) for rows in bench.values() for s in rows]
    assert len(keys) == len(set(keys))
    ids = [s.sample_ID for rows in bench.values() for s in rows]
    assert len(ids) == len(set(ids))


def test_id_splits_are_english_real_and_four_turns(bench):
    for s in bench["train"] + bench["id_test"]:
        assert s.user_persona in EN and s.agent_character.character_name in REAL
        assert len(users(s)) == 4 and s.subset_tag is None and s.dialogue_context[-1].role == "user_query"


def test_golden_response_depends_on_persona_character_and_dialogue(bench):
    for s in bench["train"]:
        persona, ch = EN[s.user_persona], REAL[s.agent_character.character_name]
        assert persona.interest in s.agent_golden_response
        assert ch.theme in s.agent_golden_response
        assert any(s.agent_golden_response.startswith(o) for o in ch.openers)
    goldens = {s.agent_golden_response for s in bench["train"]}
    assert len(goldens) == len(bench["train"])


@pytest.mark.parametrize("name", list(LANGUAGES))
def test_user_shift_changes_only_the_persona_language(bench, name):
    lang = LANGUAGES[name]
    texts = {p.texts[lang]: p for p in SEEDS.personas}
    for s in bench[name]:
        assert s.user_persona in texts and s.user_persona not in EN
        assert texts[s.user_persona].interest in s.agent_golden_response  # same person, same conditional
        assert s.agent_character.character_name in REAL and len(users(s)) == 4
        assert s.sample_ID.startswith("OOD1Test-") and s.subset_tag == subset(name).tag


@pytest.mark.parametrize("name", list(DOMAINS))
def test_character_shift_uses_fictional_characters_of_the_domain(bench, name):
    for s in bench[name]:
        ch = FICTIONAL[s.agent_character.character_name]
        assert ch.profile.character_domain == DOMAINS[name] and ch.kind == "fictional"
        assert ch.theme in s.agent_golden_response
        assert s.user_persona in EN and len(users(s)) == 4 and s.subset_tag == f"{subset(name).tag}-Fictional"


def test_turn_level_composition_joins_two_dialogues_into_eight_turns(bench):
    for s in bench["dial_turn"]:
        assert len(users(s)) == 8 and s.subset_tag == "TurnLevelComposition"
        assert s.user_persona in EN and s.agent_character.character_name in REAL


def test_word_level_composition_swaps_a_word_from_the_history(bench):
    by_final = {}
    for d in SEEDS.dialogues:
        by_final[d.id] = d
    for s in bench["dial_word"]:
        assert len(users(s)) == 4 and s.subset_tag == "WordLevelComposition"
        persona = EN[s.user_persona]
        matches = [(d, w) for d in SEEDS.dialogues for w in d.swap_words
                   if users(s)[-1] == d.final_query.format(word=w, interest=persona.interest)]
        assert matches, users(s)[-1]
        d, word = matches[0]
        history = " ".join(t.text for t in s.dialogue_context[:-1]).lower()
        assert word.lower() in history and word != d.word
        assert d.golden.format(word=word, interest=persona.interest,
                               theme=REAL[s.agent_character.character_name].theme) in s.agent_golden_response


@pytest.mark.parametrize("severity", [0.0, 0.25, 0.5, 1.0])
def test_severity_is_the_fraction_of_shifted_samples(severity):
    b = synthesize(SynthConfig(n_train=8, n_per_subset=8, seed=0,
                               severity={"user": severity, "character": severity, "dialogue": severity}), SEEDS)
    want = round(severity * 8)
    for name in LANGUAGES:
        assert sum(s.user_persona not in EN for s in b[name]) == want
    for name in DOMAINS:
        assert sum(s.agent_character.character_name in FICTIONAL for s in b[name]) == want
    assert sum(len(users(s)) == 8 for s in b["dial_turn"]) == want


def test_bad_seed_file_names_the_entry_and_placeholder(tmp_path):
    for name in ("personas.yaml", "characters.yaml", "dialogues.yaml"):
        shutil.copy(resources.files("rpm.bench") / "seeds" / name, tmp_path / name)
    dialogues = yaml.safe_load((tmp_path / "dialogues.yaml").read_text())
    dialogues[1]["golden"] = "About {word} and {mood}."
    (tmp_path / "dialogues.yaml").write_text(yaml.safe_dump(dialogues, allow_unicode=True))
    with pytest.raises(SeedError, match=rf"dialogues.yaml entry 1 \({dialogues[1]['id']}\) golden: "
                                        r"unknown placeholder\(s\) \['mood'\]"):
        load_seeds(tmp_path)


@pytest.mark.parametrize("args,message", [
    (["--severity", "user"], "expected SHIFT=FRACTION"),
    (["--severity", "user=lots"], "expected SHIFT=FRACTION"),
    (["--severity", "weather=0.5"], "unknown shift type(s) ['weather']"),
    (["--severity", "user=1.5"], "severity.user = 1.5: must lie in [0, 1]"),
])
def test_cli_rejects_bad_severity(tmp_path, args, message):
    result = CliRunner().invoke(main, ["bench", "synth", "--out", str(tmp_path / "b"), *args])
    assert result.exit_code != 0 and message in result.output
    assert not (tmp_path / "b").exists()


def test_cli_writes_and_validates(tmp_path):
    result = CliRunner().invoke(main, ["bench", "synth", "--out", str(tmp_path / "b"), "--n-train", "10",
                                       "--n-per-subset", "3", "--severity", "user=0.5"])
    assert result.exit_code == 0, result.output
    assert "wrote 46 samples in 13 files" in result.output
    result = CliRunner().invoke(main, ["bench", "validate", str(tmp_path / "b")])
    assert result.exit_code == 0 and "46 valid records" in result.output


SEVERITIES = (0.0, 0.25, 0.5, 0.75, 1.0)


@pytest.mark.parametrize("seed,n", [(0, 4), (3, 16)])
def test_severities_are_nested_and_unshifted_samples_identical(seed, n):
    runs = {s: synthesize(SynthConfig(n_train=8, n_per_subset=n, seed=seed,
                                      severity={"user": s, "character": s, "dialogue": s}), SEEDS)
            for s in SEVERITIES}
    base = runs[0.0]
    for name in base:
        if name in ("train", "id_test"):
            assert all([x.to_dict() for x in runs[s][name]] == [x.to_dict() for x in base[name]] for s in SEVERITIES)
            continue
        full = runs[1.0][name]
        before = set()
        for s in SEVERITIES:
            rows = runs[s][name]
            assert [x.sample_ID for x in rows] == [x.sample_ID for x in base[name]]
            shifted = set()
            for i, x in enumerate(rows):
                if x.to_dict() == base[name][i].to_dict():
                    continue
                assert x.to_dict() == full[i].to_dict(), (name, s, i)   # the one fixed shifted version
                shifted.add(i)
            assert len(shifted) == round(s * n), (name, s)
            assert before <= shifted, (name, s)                         # nested: shifted stays shifted
            before = shifted


@pytest.mark.parametrize("seed,n", [(0, 4), (2, 16)])
def test_ood_subsets_share_their_bases_so_severity_0_is_one_set_of_texts(seed, n):
    zero = synthesize(SynthConfig(n_train=8, n_per_subset=n, seed=seed,
                                  severity={"user": 0.0, "character": 0.0, "dialogue": 0.0}), SEEDS)
    full = synthesize(SynthConfig(n_train=8, n_per_subset=n, seed=seed), SEEDS)
    ood = [name for name in zero if name not in ("train", "id_test")]

    def text(x):
        return (*x.prompt_fields().values(), x.agent_golden_response)

    for name in ood:
        assert [text(x) for x in zero[name]] == [text(x) for x in zero[ood[0]]], name
        assert not {text(x) for x in zero[name]} & {text(x) for x in zero["id_test"]}
    # Fully shifted, the subsets differ from the base and from one another (each its own shift).
    assert len({tuple(text(x) for x in full[name]) for name in ood}) == len(ood)


def _sentences(text: str) -> list[str]:
    return [t for t in re.split(r"(?<=[.!?])\s+", text) if len(t) >= 20]


@pytest.mark.parametrize("seed,n_train,n", [(0, 32, 4), (1, 64, 16), (2, 16, 8)])
def test_no_line_of_a_golden_response_appears_in_its_own_context(seed, n_train, n):
    b = synthesize(SynthConfig(n_train=n_train, n_per_subset=n, seed=seed), SEEDS)
    leaks = []
    for name, rows in b.items():
        for x in rows:
            context = "\n".join(t.text for t in x.dialogue_context)
            leaks += [(name, x.sample_ID, line) for line in _sentences(x.agent_golden_response) if line in context]
    assert not leaks, leaks[:5]

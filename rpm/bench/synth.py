"""`rpm bench synth`: the mini RPGBench of the embedded default, made from hand-written seeds.

The seeds (rpm/bench/seeds/*.yaml) hold English user personas with German, Spanish, Chinese,
Japanese and Korean rewrites, real-world and fictional characters (Literature, Film & Television,
Theater, Gaming) with a voice, and 4-turn dialogue seeds. A sample joins one persona, one character
and one dialogue; its golden response is built from the character's voice (opener, signature,
closer, theme), the persona's interest and the dialogue's slot word, so the response depends on
every part of the input and the mutual information the metrics estimate is far from zero.

Shifts follow Step 4 of the paper's Appendix A: ID = English persona, real character, plain 4-turn
dialogue; user shift swaps in a non-English persona, character shift a fictional character, dialogue
shift a turn-level (two dialogues joined into 8 turns) or word-level (the final query's slot word
swapped for a word used earlier, and the golden response follows it) composition.

Severity knob, per shift type: the fraction of an OOD subset's samples whose shifted component is
really shifted; the rest are drawn exactly like ID test samples. Severity 0 makes an OOD subset
distributed like ID test; 1 (the default) is the paper's fully shifted subset. Severities are nested:
each OOD sample is a fixed base and a fixed shifted version of it, and raising the severity only
switches more samples to their shifted version (`synthesize`), so a sweep over it compares the same
samples and knows the true ordering of shift magnitudes. The OOD subsets share their bases: sample i of
user_de, char_literature and dial_turn shift the same ID-like sample. No line of a golden response appears in its
own sample's context (the turn-level composition's earlier reply uses other lines of the voice).
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from rpm.bench.fetch import write_bench
from rpm.bench.schema import AgentCharacter, Sample, Turn, sample_from_dict
from rpm.bench.subsets import subset
from rpm.core.errors import RpmInputError
from rpm.core.names import BENCH_FILES, SHIFTS

LANGUAGES = {"user_de": "de", "user_es": "es", "user_zh": "zh", "user_ja": "ja", "user_ko": "ko"}
DOMAINS = {"char_literature": "Literature", "char_film": "Film & Television", "char_theater": "Theater",
           "char_gaming": "Gaming"}


@dataclass(frozen=True)
class Persona:
    id: str
    interest: str
    texts: dict  # language code -> persona text


@dataclass(frozen=True)
class Character:
    profile: AgentCharacter
    kind: str  # "real" | "fictional"
    theme: str
    openers: tuple[str, ...]
    signatures: tuple[str, ...]
    closers: tuple[str, ...]


@dataclass(frozen=True)
class DialogueSeed:
    id: str
    turns: tuple[tuple[str, str], ...]  # (user template, agent template) pairs
    final_query: str
    word: str
    swap_words: tuple[str, ...]
    golden: str


@dataclass(frozen=True)
class Seeds:
    personas: tuple[Persona, ...]
    real: tuple[Character, ...]
    fictional: dict  # domain -> tuple[Character, ...]
    dialogues: tuple[DialogueSeed, ...]


@dataclass
class SynthConfig:
    n_train: int = 96
    n_per_subset: int = 16
    severity: dict = field(default_factory=lambda: {s: 1.0 for s in SHIFTS})
    seed: int = 0

    def __post_init__(self):
        unknown = set(self.severity) - set(SHIFTS)
        if unknown:
            raise RpmInputError(f"severity: unknown shift type(s) {sorted(unknown)}; expected {list(SHIFTS)}")
        for k, v in self.severity.items():
            if not 0.0 <= float(v) <= 1.0:
                raise RpmInputError(f"severity.{k} = {v}: must lie in [0, 1]")
        if self.n_train < 1 or self.n_per_subset < 1:
            raise RpmInputError("n_train and n_per_subset must be at least 1")


# ---------------------------------------------------------------- seeds


class SeedError(RpmInputError):
    pass


def _fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}


def _need(entry: dict, key: str, where: str, kind=str):
    if key not in entry:
        raise SeedError(f"{where}: missing field {key!r}")
    value = entry[key]
    if kind is str and (not isinstance(value, str) or not value.strip()):
        raise SeedError(f"{where}: field {key!r} must be a non-empty string")
    if kind is list and (not isinstance(value, list) or not value or
                         not all(isinstance(v, str) and v.strip() for v in value)):
        raise SeedError(f"{where}: field {key!r} must be a non-empty list of strings")
    if kind is dict and not isinstance(value, dict):
        raise SeedError(f"{where}: field {key!r} must be a mapping")
    if kind is None and not (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)):
        raise SeedError(f"{where}: field {key!r} must be a non-empty list of mappings")
    return value


def _check_fields(template: str, allowed: set[str], required: set[str], where: str) -> None:
    used = _fields(template)
    if used - allowed:
        raise SeedError(f"{where}: unknown placeholder(s) {sorted(used - allowed)}; allowed {sorted(allowed)}")
    if required - used:
        raise SeedError(f"{where}: missing placeholder(s) {sorted(required - used)}")


def _read_yaml(seed_dir, name: str) -> tuple[list, str]:
    if seed_dir is None:
        ref = resources.files("rpm.bench") / "seeds" / name
        where = f"rpm/bench/seeds/{name}"
    else:
        ref = Path(seed_dir) / name
        where = str(ref)
    data = yaml.safe_load(ref.read_text(encoding="utf-8"))
    if not isinstance(data, list) or not data:
        raise SeedError(f"{where}: expected a non-empty list of entries")
    return data, where


def load_seeds(seed_dir: str | Path | None = None) -> Seeds:
    """Read and check the seed files (the packaged ones unless `seed_dir` is given)."""
    rows, where = _read_yaml(seed_dir, "personas.yaml")
    personas = []
    for i, p in enumerate(rows):
        w = f"{where} entry {i} ({p.get('id', '?') if isinstance(p, dict) else '?'})"
        texts = {lang: _need(p, lang, w) for lang in ("en", *LANGUAGES.values())}
        personas.append(Persona(_need(p, "id", w), _need(p, "interest", w), texts))

    rows, where = _read_yaml(seed_dir, "characters.yaml")
    real, fictional = [], {d: [] for d in DOMAINS.values()}
    for i, c in enumerate(rows):
        w = f"{where} entry {i} ({c.get('name', '?') if isinstance(c, dict) else '?'})"
        voice = _need(c, "voice", w, dict)
        kind = _need(c, "kind", w)
        profile = AgentCharacter(
            character_name=_need(c, "name", w), character_domain=_need(c, "domain", w),
            character_source=_need(c, "source", w),
            basic_character_information=_need(c, "basic_character_information", w),
            character_background=_need(c, "character_background", w),
            character_personality=_need(c, "character_personality", w))
        ch = Character(profile, kind, _need(voice, "theme", w + " voice"),
                       *(tuple(_need(voice, k, w + " voice", list)) for k in ("openers", "signatures", "closers")))
        if kind == "real":
            real.append(ch)
        elif kind == "fictional" and profile.character_domain in fictional:
            fictional[profile.character_domain].append(ch)
        else:
            raise SeedError(f"{w}: kind must be 'real', or 'fictional' with a domain in {list(fictional)}")

    rows, where = _read_yaml(seed_dir, "dialogues.yaml")
    dialogues = []
    for i, d in enumerate(rows):
        w = f"{where} entry {i} ({d.get('id', '?') if isinstance(d, dict) else '?'})"
        turns = []
        for j, t in enumerate(_need(d, "turns", w, None)):
            tw = f"{w} turns[{j}]"
            user, agent = _need(t, "user", tw), _need(t, "agent", tw)
            _check_fields(user, {"interest"}, set(), tw + " user")
            _check_fields(agent, {"theme", "name"}, set(), tw + " agent")
            turns.append((user, agent))
        seed = DialogueSeed(_need(d, "id", w), tuple(turns), _need(d, "final_query", w), _need(d, "word", w),
                            tuple(_need(d, "swap_words", w, list)), _need(d, "golden", w))
        _check_fields(seed.final_query, {"word", "interest"}, {"word"}, w + " final_query")
        _check_fields(seed.golden, {"word", "interest", "theme"}, {"word", "interest", "theme"}, w + " golden")
        history = " ".join(u + " " + a for u, a in seed.turns).lower()
        for word in seed.swap_words:
            if not re.search(rf"\b{re.escape(word.lower())}\b", history):
                raise SeedError(f"{w}: swap word {word!r} does not occur in the dialogue's earlier turns")
        dialogues.append(seed)

    empty = [d for d, cs in fictional.items() if not cs]
    if not real or empty:
        raise SeedError(f"characters.yaml: need real characters and fictional ones in every domain (none for {empty})")
    return Seeds(tuple(personas), tuple(real), {d: tuple(cs) for d, cs in fictional.items()}, tuple(dialogues))


# ---------------------------------------------------------------- composition


def _voice(rng: random.Random, ch: Character, avoid: tuple[str, ...] = ()) -> tuple[str, str, str]:
    """An opener, a signature and a closer of the character's voice, none of them one of `avoid`."""
    return tuple(rng.choice([line for line in lines if line not in avoid] or lines)
                 for lines in (ch.openers, ch.signatures, ch.closers))


def _golden(voice: tuple[str, str, str], persona: Persona, ch: Character, d: DialogueSeed, word: str) -> str:
    core = d.golden.format(word=word, interest=persona.interest, theme=ch.theme)
    return " ".join([voice[0], core, voice[1], voice[2]])


def _history(persona: Persona, ch: Character, d: DialogueSeed) -> list[Turn]:
    turns = []
    for user, agent in d.turns:
        turns.append(Turn("user_query", user.format(interest=persona.interest)))
        turns.append(Turn("agent_response", agent.format(theme=ch.theme, name=ch.profile.character_name)))
    return turns


def _dialogue(rng, persona, ch, d, *, compose: str | None, other: DialogueSeed | None):
    """Return (turns, golden) for a plain, turn-composed or word-composed dialogue."""
    word = rng.choice(d.swap_words) if compose == "word" else d.word
    voice = _voice(rng, ch)
    turns = []
    if compose == "turn":  # the other dialogue, answered in full, then this one: 8 user turns
        turns += _history(persona, ch, other)
        turns.append(Turn("user_query", other.final_query.format(word=other.word, interest=persona.interest)))
        # The earlier reply speaks with other lines of the same voice: a line of the golden response in its
        # own context would let the estimator copy it (a leak, not generalisation).
        turns.append(Turn("agent_response", _golden(_voice(rng, ch, avoid=voice), persona, ch, other, other.word)))
    turns += _history(persona, ch, d)
    turns.append(Turn("user_query", d.final_query.format(word=word, interest=persona.interest)))
    return turns, _golden(voice, persona, ch, d, word)


def synthesize(cfg: SynthConfig, seeds: Seeds | None = None) -> dict[str, list[Sample]]:
    """Build {file: samples} for `train` and the 12 subsets, deterministically from cfg.seed.

    Nested severities: every OOD sample is a fixed pair (an ID-like base, and that base with its one shifted
    component changed), and each subset has a fixed shifting order; at severity s the first round(s * n)
    samples in that order are the shifted versions. Every draw is made at every severity, so a sample that is
    not shifted is byte-identical across severities and one shifted at s stays shifted above s."""
    seeds = seeds or load_seeds()
    rng = random.Random(cfg.seed)
    used: set[tuple] = set()  # no (persona, character, dialogue, variant) triplet appears twice

    def unique(key) -> bool:
        if key in used:
            return False
        used.add(key)
        return True

    def draw():
        """An ID sample's parts: English persona, real character, plain dialogue."""
        for _ in range(10_000):
            p, ch, d = rng.choice(seeds.personas), rng.choice(seeds.real), rng.choice(seeds.dialogues)
            if unique((p.id, ch.profile.character_name, d.id, None, None, "en")):
                return p, ch, d
        raise RpmInputError("the seeds are too few for the requested benchmark size")

    def parts(p, ch, d, lang="en", compose=None, other=None):
        turns, golden = _dialogue(rng, p, ch, d, compose=compose, other=other)
        return p.texts[lang], ch.profile, turns, golden

    def shifted(name: str, shift: str, p, ch, d, base):
        """The base sample with its `shift` component changed (the user's language, the character, or the
        dialogue's composition); the rest is the base's."""
        if shift == "user":
            unique((p.id, ch.profile.character_name, d.id, None, None, LANGUAGES[name]))
            return (p.texts[LANGUAGES[name]], *base[1:])
        if shift == "character":
            pool = seeds.fictional[DOMAINS[name]]
            choices = [c for c in pool if (p.id, c.profile.character_name, d.id, None, None, "en") not in used]
            fictional = rng.choice(choices or pool)
            unique((p.id, fictional.profile.character_name, d.id, None, None, "en"))
            return parts(p, fictional, d)
        compose = "turn" if name == "dial_turn" else "word"
        other = rng.choice([o for o in seeds.dialogues if o.id != d.id]) if compose == "turn" else None
        unique((p.id, ch.profile.character_name, d.id, compose, other.id if other else None, "en"))
        return parts(p, ch, d, compose=compose, other=other)

    files: dict[str, list[Sample]] = {}
    counters = {"IDTrain": 0, "IDTest": 0, "OOD1Test": 0, "OOD2Test": 0, "OOD3Test": 0}

    def make(split: str, tag: str | None, parts) -> Sample:
        counters[split] += 1
        persona, profile, turns, golden = parts
        return Sample(f"{split}-{counters[split]:05d}", persona, profile, tuple(turns), golden, tag)

    files["train"] = [make("IDTrain", None, parts(*draw())) for _ in range(cfg.n_train)]
    files["id_test"] = [make("IDTest", None, parts(*draw())) for _ in range(cfg.n_per_subset)]
    # One list of bases for every OOD subset: sample i of each subset is a shift of the same base, so the
    # shift types are compared on paired samples, and at severity 0 every OOD subset holds the same texts
    # (work on them is done once: the jobs share rows by input, rpm/runtime/reuse.py).
    bases = []
    for _ in range(cfg.n_per_subset):
        p, ch, d = draw()
        bases.append((p, ch, d, parts(p, ch, d)))
    for name in BENCH_FILES[2:]:
        sub = subset(name)
        order = rng.sample(range(cfg.n_per_subset), cfg.n_per_subset)   # the fixed shifting order
        on = set(order[:round(cfg.severity[sub.shift] * cfg.n_per_subset)])
        tag = f"{sub.tag}-Fictional" if sub.shift == "character" else sub.tag
        rows = []
        for i, (p, ch, d, base) in enumerate(bases):
            version = shifted(name, sub.shift, p, ch, d, base)
            rows.append(make(sub.split, tag, version if i in on else base))
        files[name] = rows
    # Everything written goes through the same validation as fetched data.
    for name, rows in files.items():
        for i, s in enumerate(rows):
            sample_from_dict(s.to_dict(), file=f"<synth {name}>", line=i + 1)
    return files


def synth(out_dir: str | Path, cfg: SynthConfig, seed_dir: str | Path | None = None) -> dict[str, list[Sample]]:
    files = synthesize(cfg, load_seeds(seed_dir))
    write_bench(files, out_dir)
    return files

"""Step 4 of Appendix A.1, the distribution-shift split, written as `rpm bench fetch` writes a benchmark.

Each dialogue of Step 3 with its persona and character becomes one sample: the dialogue up to the
last user query is the context, the last agent response the golden response. The criteria of Step 4:

    ID                English persona, real character, ID (4-round, not composed) dialogue
    user shift        non-English persona (DE, ES, ZH, JA, KO), real character, ID dialogue
    character shift   English persona, fictional character (Literature, Film, Theater, Gaming), ID dialogue
    dialogue shift    English persona, real character, turn- or word-level composed dialogue

ID samples are split into train and test by a seeded draw (`test_fraction`; the paper's 5,274 / 2,637
is 1/3). A sample no criterion takes (e.g. a non-English persona with a fictional character) is listed
as unused in the report with its reason. Every sample passes the benchmark schema; the files are
train.jsonl, one {subset}.jsonl per evaluation subset and stats.tsv (Table 2 per file), plus
table2.tsv (Table 2's rows) and provenance.tsv (which dialogue, persona and character made each
sample). A subset with no sample stops the step unless `allow_partial` (then its file is not written).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from rpm.bench.fetch import stats_table
from rpm.bench.schema import AgentCharacter, Sample, Turn, sample_from_dict
from rpm.bench.subsets import subset, subset_for_tag
from rpm.construct.common import LANGUAGE_NAMES, LANGUAGES, seeded
from rpm.core.errors import RpmInputError
from rpm.core.names import BENCH_FILES
from rpm.io import write_json, write_jsonl, write_text

SHIFT_ROWS = (("IDTrain", "Train", ("train",)), ("IDTest", "Test", ("id_test",)),
              ("User Shift", "Test", tuple(f"user_{lang}" for lang in LANGUAGES)),
              ("Character Shift", "Test", ("char_literature", "char_film", "char_theater", "char_gaming")),
              ("Dialogue Compositional Shift", "Test", ("dial_turn", "dial_word")))


@dataclass
class SplitSettings:
    test_fraction: float = 1 / 3
    allow_partial: bool = False
    seed: int = 0


def target(language: str, kind: str, dialogue_kind: str, domain: str) -> tuple[str | None, str]:
    """(file the sample belongs to, or None; why not) by the criteria of Step 4."""
    english, real, plain = language == "en", kind == "real", dialogue_kind == "id"
    if english and real and plain:
        return "id", ""
    if not english and real and plain:
        return f"user_{language}", ""
    if english and not real and plain:
        return subset_for_tag(domain, "OOD2Test"), ""
    if english and real:
        return {"turn": "dial_turn", "word": "dial_word"}[dialogue_kind], ""
    changed = [what for what, shifted in (("a non-English persona", not english), ("a fictional character", not real),
                                          ("a composed dialogue", not plain)) if shifted]
    return None, f"{' and '.join(changed)}: Step 4 shifts one component at a time"


def make_sample(d: dict, persona: dict, character: dict) -> Sample:
    turns = tuple(Turn(*next(iter(t.items()))) for t in d["turns"][:-1])
    c = AgentCharacter(**{k: character[k] for k in AgentCharacter.__dataclass_fields__})
    return Sample("x", persona["user_persona"], c, turns, d["turns"][-1]["agent_response"])


def table2(files: dict[str, list[Sample]]) -> str:
    """The rows of the paper's Table 2: samples, unique user personas, unique characters per split."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(["split", "type", "samples", "user_personas", "agent_characters"])
    for name, kind, names in SHIFT_ROWS:
        rows = [s for f in names for s in files.get(f, [])]
        w.writerow([name, kind, len(rows), len({s.user_persona for s in rows}),
                    len({s.agent_character.character_name for s in rows})])
    return buf.getvalue()


def split(dialogues: list[dict], personas: list[dict], characters: list[dict], settings: SplitSettings,
          dialogues_file: str = "<dialogues>") -> tuple[dict[str, list[Sample]], list[dict], dict]:
    people = {p["persona_id"]: p for p in personas}
    chars = {c["character_id"]: c for c in characters}
    groups: dict[str, list[tuple[int, dict, Sample]]] = {"id": [], **{f: [] for f in BENCH_FILES
                                                                      if f not in ("train", "id_test")}}
    unused = []
    for line, d in enumerate(dialogues, start=1):
        p, c = people.get(d["persona_id"]), chars.get(d["character_id"])
        if p is None or c is None:
            raise RpmInputError(
                f"{dialogues_file}, line {line}, dialogue {d['dialogue_id']!r}: unknown "
                f"{'persona ' + repr(d['persona_id']) if p is None else 'character ' + repr(d['character_id'])}")
        where, why = target(p["language"], c["kind"], d["kind"], c["character_domain"])
        if where is None:
            unused.append({"dialogue_id": d["dialogue_id"], "reason": why})
            continue
        try:
            sample = make_sample(d, p, c)
        except (TypeError, KeyError, AttributeError, IndexError, StopIteration, ValueError) as e:
            raise RpmInputError(
                f"{dialogues_file}, line {line}, dialogue {d['dialogue_id']!r}: field 'turns': expected "
                f'rounds [{{"user_query": ...}}, {{"agent_response": ...}}, ...] ({e!r})') from None
        groups[where].append((line, d, sample))

    pool = groups.pop("id")
    n_test = round(settings.test_fraction * len(pool))
    if len(pool) >= 2:
        n_test = min(max(n_test, 1), len(pool) - 1)   # both ID files get a sample when there are two
    test = set(seeded(settings.seed, "id-split").sample(range(len(pool)), n_test))
    groups.update(train=[x for i, x in enumerate(pool) if i not in test],
                  id_test=[x for i, x in enumerate(pool) if i in test])

    files: dict[str, list[Sample]] = {}
    provenance = []
    counters: dict[str, int] = {}
    for name in BENCH_FILES:
        split_name = "IDTrain" if name == "train" else subset(name).split
        tag = None if subset_or_id(name) else subset(name).tag
        files[name] = []
        for line, d, s in groups[name]:
            counters[split_name] = counters.get(split_name, 0) + 1
            sid = f"{split_name}-{counters[split_name]}"
            record = {**s.to_dict(), "sample_ID": sid, **({"subset_tag": tag} if tag else {})}
            files[name].append(sample_from_dict(record, file=dialogues_file, line=line))  # the loader's validation
            provenance.append({"sample_ID": sid, "file": name, "dialogue_id": d["dialogue_id"],
                               "persona_id": d["persona_id"], "character_id": d["character_id"]})
    empty = [f for f in BENCH_FILES if not files[f]]
    if empty and not settings.allow_partial:
        raise RpmInputError(f"no samples for {', '.join(empty)}: the LLM's outputs were rejected or too few were asked "
                         "for (see the step reports); pass --allow-partial to write the files that have samples")
    report = {"step": "split", "samples": {f: len(v) for f, v in files.items()}, "empty": empty,
              "empty_reasons": {f: empty_reason(f, people, chars, dialogues) for f in empty},
              "unused": unused, "dialogues": len(dialogues)}
    return files, provenance, report


def empty_reason(name: str, people: dict, chars: dict, dialogues: list[dict]) -> str:
    """Why a benchmark file has no sample, from what the earlier steps accepted."""
    info = None if name in ("train", "id_test") else subset(name)
    if info is not None and info.shift == "user":
        lang = next(k for k, v in LANGUAGE_NAMES.items() if v.lower() == info.tag)
        n = sum(p["language"] == lang for p in people.values())
        return f"no dialogue with a {LANGUAGE_NAMES[lang]} persona ({n} {LANGUAGE_NAMES[lang]} personas accepted in " \
               "Step 2; its report lists each rejected variant and why)"
    if info is not None and info.shift == "character":
        fictional = [c for c in chars.values() if c["kind"] == "fictional"]
        return (f"no dialogue with a fictional {info.tag} character ({len(fictional)} of {len(chars)} characters "
                "were classified fictional in Step 1)")
    if info is not None and info.shift == "dialogue":
        kind = "turn" if name == "dial_turn" else "word"
        return f"no {kind}-level composed dialogue was accepted in Step 3 (see its report)"
    return f"too few ID dialogues ({sum(d['kind'] == 'id' for d in dialogues)}) to give both ID files a sample"


def _tsv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, delimiter="\t", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def subset_or_id(name: str) -> bool:
    """train and id_test records carry no subset_tag (RPGBench's IDTrain / IDTest records have none)."""
    return name in ("train", "id_test")


def write_split(files: dict[str, list[Sample]], provenance: list[dict], report: dict, out_dir: str | Path,
                report_path: str | Path) -> list[str]:
    out_dir = Path(out_dir)
    written = []
    for name in BENCH_FILES:
        path = out_dir / f"{name}.jsonl"
        if files[name]:
            write_jsonl(path, (s.to_dict() for s in files[name]))
            written.append(name)
        elif path.exists():   # a file of an earlier build would be read as if this build had made it
            path.unlink()
    write_text(out_dir / "stats.tsv", stats_table(files))
    write_text(out_dir / "table2.tsv", table2(files))
    write_text(out_dir / "provenance.tsv", _tsv(provenance, ["sample_ID", "file", "dialogue_id", "persona_id",
                                                             "character_id"]))
    write_json(report_path, {**report, "files_written": written})
    return written

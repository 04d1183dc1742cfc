"""The 12 evaluation subsets of RPGBench and the stable names this project gives them.

RPGBench ships five splits (IDTrain, IDTest, OOD1Test user shift, OOD2Test character shift,
OOD3Test dialogue compositional shift); the OOD records carry a `subset_tag`. Tags are matched
robustly (the paper's Table 10 writes "Literature-Fictional", the authors' scripts "Literature")
and an unknown tag fails loudly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Subset:
    name: str        # stable name used in file names and tables
    shift: str       # "id" | "user" | "character" | "dialogue"
    split: str       # RPGBench split holding it
    tag: str         # the authors' subset name (their estimation script)
    label: str       # short label for figures (the paper's abbreviations)
    aliases: tuple[str, ...] = ()


SUBSETS: tuple[Subset, ...] = (
    Subset("id_test", "id", "IDTest", "IDTest", "ID"),
    Subset("user_de", "user", "OOD1Test", "german", "DE", ("de", "deutsch", "germany")),
    Subset("user_es", "user", "OOD1Test", "spanish", "ES", ("es", "espanol", "spain")),
    Subset("user_zh", "user", "OOD1Test", "chinese", "ZH", ("zh", "china", "mandarin")),
    Subset("user_ja", "user", "OOD1Test", "japanese", "JA", ("ja", "jp", "japan")),
    Subset("user_ko", "user", "OOD1Test", "korean", "KO", ("ko", "kr", "korea")),
    Subset("char_literature", "character", "OOD2Test", "Literature", "Literature", ("literary",)),
    Subset("char_film", "character", "OOD2Test", "Film & Television", "Film",
           ("film", "films", "filmtelevision", "filmandtv", "filmtv", "movie", "movies", "television", "tv")),
    Subset("char_theater", "character", "OOD2Test", "Theater", "Theater", ("theatre",)),
    Subset("char_gaming", "character", "OOD2Test", "Gaming", "Gaming", ("game", "games", "videogames")),
    Subset("dial_turn", "dialogue", "OOD3Test", "TurnLevelComposition", "Turn",
           ("turnlevel", "turn", "turncomposition")),
    Subset("dial_word", "dialogue", "OOD3Test", "WordLevelComposition", "Word",
           ("wordlevel", "word", "wordcomposition")),
)
SUBSET_NAMES: tuple[str, ...] = tuple(s.name for s in SUBSETS)
OOD_SUBSETS: tuple[str, ...] = tuple(s.name for s in SUBSETS if s.shift != "id")
SHIFTS: tuple[str, ...] = ("user", "character", "dialogue")
SPLITS: tuple[str, ...] = ("IDTrain", "IDTest", "OOD1Test", "OOD2Test", "OOD3Test")
# Files written by `rpm bench fetch|synth`: the training split plus one file per evaluation subset.
BENCH_FILES: tuple[str, ...] = ("train",) + SUBSET_NAMES
_BY_NAME = {s.name: s for s in SUBSETS}


def subset(name: str) -> Subset:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown subset {name!r}; known subsets: {', '.join(SUBSET_NAMES)}") from None


def _key(text: str) -> str:
    text = text.strip().lower().replace("&", "and")
    text = re.sub(r"[-_ ](fictional|real|reallife)$", "", text)  # "Literature-Fictional" -> "literature"
    return re.sub(r"[^0-9a-z]+", "", text)


_TAG_INDEX: dict[str, str] = {}
for _s in SUBSETS:
    if _s.shift == "id":
        continue
    for _alias in (_s.tag, _s.name, _s.label, *_s.aliases):
        _TAG_INDEX[_key(_alias)] = _s.name


def subset_for_tag(tag: str, split: str | None = None) -> str:
    """Map an RPGBench subset tag to its stable subset name; raise ValueError on an unknown tag,
    or on a tag that belongs to another split than the record's."""
    name = _TAG_INDEX.get(_key(tag))
    if name is None:
        known = sorted({s.tag for s in SUBSETS if s.shift != "id"})
        raise ValueError(f"unknown subset tag {tag!r}; known tags: {known}")
    if split is not None and _BY_NAME[name].split != split:
        raise ValueError(f"subset tag {tag!r} ({name}) belongs to split {_BY_NAME[name].split}, not {split}")
    return name

"""The names every stage shares: the nine RPM methods, the shift types and the 12 evaluation subsets.

One source: the Snakemake rules (workflow/rules/common.smk), the config schema test and the click
choices all read these tuples. RPGBench ships five splits (IDTrain, IDTest, OOD1Test user shift,
OOD2Test character shift, OOD3Test dialogue compositional shift); `rpm.bench.subsets` maps the
authors' subset tags onto the stable names below.
"""

from __future__ import annotations

from dataclasses import dataclass

# The nine RPM methods of the paper's Appendix E.1-E.2, in the paper's table order.
METHODS: tuple[str, ...] = ("icl", "sft", "da", "dpo", "rft", "rl", "thinking_sft", "thinking_rl", "corl")
# The method each one starts from (the others start from the base model).
PARENT: dict[str, str] = {"dpo": "sft", "rft": "sft", "rl": "sft", "thinking_rl": "thinking_sft",
                          "corl": "thinking_sft"}
# Methods whose responses carry a thought before the response block (Table 16 format).
THINKING_METHODS: tuple[str, ...] = ("thinking_sft", "thinking_rl", "corl")
# The three R-EMI estimators of Table 1: full CoRL, the cold start alone, and p(y|x) without reasoning.
ESTIMATORS: tuple[str, ...] = ("corl", "wo_corl", "wo_reasoning")


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

# The precision policy (rpm.runtime.precision): each use of a model runs in one of these dtypes.
DTYPES = ("float32", "bfloat16")
# What a config or --dtype may say: a dtype, or "auto" (bfloat16 only where the hardware multiplies it natively).
PRECISIONS = ("auto", *DTYPES)
PRECISION_USES = ("generation", "training", "scoring")

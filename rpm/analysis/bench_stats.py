"""Table 2: split statistics of the benchmark in use (samples, unique user personas, unique agent
characters), counted from the benchmark files themselves through the one loader, so a shift's row
counts personas and characters unique across all of its subsets (stats.tsv counts per file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rpm.analysis.common import AnalysisInputError, new_figure
from rpm.bench.load import read_jsonl
from rpm.bench.subsets import subset as subset_info

TABLE2_COLUMNS = ["split", "name", "type", "files", "total_samples", "user_personas", "agent_characters"]
# The paper's rows of Table 2, in its order.
ROWS = (("IDTrain", "IDTrain", "Train"), ("IDTest", "IDTest", "Test"), ("OOD1Test", "User Shift", "Test"),
        ("OOD2Test", "Character Shift", "Test"), ("OOD3Test", "Dialogue Compositional Shift", "Test"))


def split_of(path: Path) -> str:
    if path.stem == "train":
        return "IDTrain"
    try:
        return subset_info(path.stem).split
    except KeyError as e:
        raise AnalysisInputError(f"{path}: not a benchmark file name (train or a subset): {e.args[0]}") from None


def table2(bench_files) -> list[dict]:
    groups: dict[str, list] = {}
    for f in map(Path, bench_files):
        groups.setdefault(split_of(f), []).append((f, read_jsonl(f)))
    rows = []
    for split, name, kind in ROWS:
        if split not in groups:
            continue
        samples = [s for _, ss in groups[split] for s in ss]
        rows.append({"split": split, "name": name, "type": kind, "files": " ".join(f.stem for f, _ in groups[split]),
                     "total_samples": len(samples), "user_personas": len({s.user_persona for s in samples}),
                     "agent_characters": len({s.agent_character.character_name for s in samples})})
    return rows


def table2_figure(rows: list[dict]):
    fig, ax = new_figure(figsize=(9, 4))
    xs = np.arange(len(rows))
    for k, (key, label) in enumerate((("total_samples", "samples"), ("user_personas", "unique user personas"),
                                      ("agent_characters", "unique agent characters"))):
        ax.bar(xs - 0.3 + 0.2 * (k + 0.5), [r[key] for r in rows], 0.2, label=label)
    ax.set_xticks(xs)
    ax.set_xticklabels([r["name"] for r in rows], fontsize=8)
    ax.set_title("Table 2: statistics of the benchmark splits in use", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig

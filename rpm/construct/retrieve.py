"""The optional retrieval hook of Step 1 (the paper's web search before refining a character).

The paper refines each character with the "LLM with search engine" of the Qwen3 API platform. Here
retrieval is a small interface: anything with `name` and `retrieve(character_name, domain)` returning
text (or None when it has nothing). The shipped implementation reads local files, so a user can put
downloaded Wikipedia pages or notes beside the build; without a retriever the refinement runs on the
LLM alone, and every refined character records which was used.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class Retriever(Protocol):
    name: str

    def retrieve(self, character_name: str, domain: str) -> str | None: ...


def slug(name: str) -> str:
    """File-name form of a character name: 'Sherlock Holmes' -> 'sherlock_holmes'."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


@dataclass
class LocalFilesRetriever:
    """Text about a character from `root/<slug>.txt` or every `*.txt` in the folder `root/<slug>/`."""

    root: Path
    max_chars: int = 4000   # the retrieved text shares the refinement prompt with the instructions
    name: str = "local-files"

    def __post_init__(self):
        self.root = Path(self.root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: retriever folder does not exist")

    def sources(self, character_name: str) -> list[Path]:
        key = slug(character_name)
        folder, single = self.root / key, self.root / f"{key}.txt"
        found = sorted(folder.glob("*.txt")) if folder.is_dir() else []
        return ([single] if single.is_file() else []) + found

    def retrieve(self, character_name: str, domain: str) -> str | None:
        texts = [p.read_text(encoding="utf-8").strip() for p in self.sources(character_name)]
        text = "\n\n".join(t for t in texts if t)
        return text[: self.max_chars] or None


def make_retriever(path: str | os.PathLike | None, max_chars: int = 4000) -> Retriever | None:
    return LocalFilesRetriever(Path(path), max_chars) if path else None

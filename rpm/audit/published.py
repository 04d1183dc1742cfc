"""The paper's published numbers, transcribed once from the paper into published.csv.

published.csv columns: table, row, column, value, source. `value` is the cell exactly as printed,
with the thousands separators of Table 2 removed: a number, optionally prefixed by "~" (printed as
approximate) or "<" (printed as an upper limit, e.g. "p < 0.001"), optionally suffixed by "k"
(thousands, as the text writes "17k"). README.md beside it lists how each table was read.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rpm.core.errors import RpmInputError

COLUMNS = ["table", "row", "column", "value", "source"]
_VALUE = re.compile(r"(?P<rel>[~<]?)(?P<num>-?[0-9]+(?:\.[0-9]+)?)(?P<k>k?)")
PACKAGED = "rpm/audit/published.csv"


class PublishedError(RpmInputError):
    """A transcription (published.csv or a copy given with --published) that cannot be used."""


class MissingCellError(PublishedError, KeyError):
    """A cell the audit needs is not in the transcription; a KeyError too, and worded like one."""


class Cells(dict):
    """One table's cells keyed by (row, column); looking up a missing one raises MissingCellError."""

    def __missing__(self, key):
        raise MissingCellError(key)


@dataclass(frozen=True)
class Published:
    table: str
    row: str
    column: str
    text: str          # the cell as transcribed
    value: float       # its number (k expanded)
    relation: str      # "=" exact as printed, "~" approximate, "<" upper limit
    decimals: int      # printed decimals (for the rounding tolerance)
    source: str

    @property
    def rounding(self) -> float:
        """Half a unit of the last printed digit: the most the printed value can differ from the exact one."""
        unit = 10.0 ** (-self.decimals)
        return (unit * 1000 if self.text.endswith("k") else unit) / 2


def parse_value(text: str) -> tuple[float, str, int]:
    m = _VALUE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a number (optionally ~ or < before it, k after it)")
    num = m.group("num")
    decimals = len(num.split(".")[1]) if "." in num else 0
    value = float(num) * (1000 if m.group("k") else 1)
    relation = m.group("rel") or ("~" if m.group("k") else "=")
    return value, relation, decimals


def load(path: str | Path | None = None) -> list[Published]:
    """The published values (the packaged published.csv unless `path` names another copy)."""
    try:
        if path is None:
            text = resources.files(__package__).joinpath("published.csv").read_text(encoding="utf-8")
            name = PACKAGED
        else:
            text = Path(path).read_text(encoding="utf-8")
            name = str(path)
    except UnicodeDecodeError as e:
        raise PublishedError(str(e)) from None
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != COLUMNS:
        raise PublishedError(f"{name}: header is {reader.fieldnames}, expected {COLUMNS}")
    out, seen = [], set()
    for lineno, row in enumerate(reader, start=2):
        key = (row["table"], row["row"], row["column"])
        if key in seen:
            raise PublishedError(f"{name}, line {lineno}: duplicate cell {key}")
        seen.add(key)
        try:
            value, relation, decimals = parse_value(row["value"])
        except ValueError as e:
            raise PublishedError(f"{name}, line {lineno}: column 'value': {e}") from None
        out.append(Published(row["table"], row["row"], row["column"], row["value"], value, relation, decimals,
                             row["source"]))
    return out


def cells(published: list[Published], table: str) -> Cells:
    """One table's cells keyed by (row, column), in the printed order."""
    return Cells({(p.row, p.column): p for p in published if p.table == table})


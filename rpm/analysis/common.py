"""Reading the analyses' input tables (checked, with errors naming file, line and column), joining
points with every exclusion counted, and writing figures.

Inputs: the metric CSVs (rpm/metrics/tables.py defines their columns) and the judge's scores.csv:
    rpm, subset, shift, judge, winrate, pointscore, n_samples, n_verdicts, n_unparsed
(rpm = "{base}/{method}", judge = a judge name or "ensemble", winrate in [0, 1] with ties 0.5).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from rpm.bench.subsets import subset as subset_info
from rpm.core.errors import RpmInputError
from rpm.core.names import SUBSET_NAMES
from rpm.io import atomic_path
from rpm.metrics.tables import REMI_COLUMNS

SCORES_COLUMNS = ["rpm", "subset", "shift", "judge", "winrate", "pointscore", "n_samples", "n_verdicts", "n_unparsed"]
LEDGER_COLUMNS = ["judge", "model", "calls", "cached", "prompt_tokens", "completion_tokens", "seconds"]
SHIFT_COLORS = {"id": "0.4", "user": "tab:blue", "character": "tab:orange", "dialogue": "tab:green"}
SHIFT_TITLES = {"id": "ID", "user": "User shift", "character": "Character shift",
                "dialogue": "Dialogue compositional shift"}


class AnalysisInputError(RpmInputError):
    """An input table is missing, empty, lacks a column, or holds a bad value."""

# ------------------------------------------------------------------ reading tables


def read_table(path: str | os.PathLike, columns: Sequence[str], *, sep: str = ",") -> pd.DataFrame:
    """Read a CSV/TSV as strings; refuse a missing or empty file or one lacking a required column."""
    path = Path(path)
    if not path.is_file():
        raise AnalysisInputError(f"{path}: no such file")
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise AnalysisInputError(f"{path}: the file is empty (no header)") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AnalysisInputError(f"{path}: missing column(s) {missing}; it has {list(df.columns)}")
    if df.empty:
        raise AnalysisInputError(f"{path}: the table has a header but no rows")
    df.attrs["path"] = str(path)
    return df


def numbers(df: pd.DataFrame, column: str) -> np.ndarray:
    """A column as floats: an empty cell, "nan" or "NA" is NaN (reported by the caller); any other text is an error."""
    out = np.empty(len(df))
    for k, text in enumerate(df[column].tolist()):
        text = text.strip()
        if text == "" or text.lower() in ("nan", "na"):  # Snakemake benchmarks write NA
            out[k] = math.nan
            continue
        try:
            out[k] = float(text)
        except ValueError:
            # Line numbers count the header as line 1.
            raise AnalysisInputError(f"{df.attrs.get('path', '?')}, line {k + 2}: column {column!r} holds "
                                     f"{text!r}, not a number") from None
    return out


def only(df: pd.DataFrame, column: str, value: str | None, what: str) -> pd.DataFrame:
    """Rows whose `column` equals `value`; with value None the column must hold exactly one value."""
    present = list(dict.fromkeys(df[column].tolist()))
    if value is None:
        if len(present) != 1:
            raise AnalysisInputError(f"{df.attrs.get('path', '?')}: several {what}s {present}; "
                                     f"choose one with --{what}")
        value = present[0]
    if value not in present:
        raise AnalysisInputError(f"{df.attrs.get('path', '?')}: no rows with {column} = {value!r}; present: {present}")
    sub = df[df[column] == value].copy()
    sub.attrs = dict(df.attrs)
    return sub


def keyed(df: pd.DataFrame, keys: Sequence[str], column: str) -> dict[tuple, float]:
    """{(key values): float value}; a key seen twice is an error (one value per point)."""
    values = numbers(df, column)
    out: dict[tuple, float] = {}
    for k, (row, v) in enumerate(zip(df[list(keys)].itertuples(index=False), values)):
        key = tuple(row)
        if key in out:
            raise AnalysisInputError(f"{df.attrs.get('path', '?')}, line {k + 2}: {dict(zip(keys, key))} appears twice")
        out[key] = v
    return out


def metric_values(path: str | os.PathLike, quantity: str, estimator: str | None = None) -> dict[tuple[str, str], float]:
    """{(rpm, subset): value} of one quantity (R-EMI, R-EMID, EMI, EMID, ...) of remi.csv / emi.csv."""
    df = read_table(path, REMI_COLUMNS)
    df = only(df, "estimator", estimator, "estimator")
    df = only(df, "quantity", quantity, "quantity")
    return keyed(df, ["rpm", "subset"], "value")


def judge_validity(path: str | os.PathLike, judge: str = "ensemble") -> str:
    """What a judge's validity check showed, from scores.csv's validity columns: "above chance (accuracy a
    [lo, hi])", or "not shown: ... not a finding" when the interval includes chance or no check was run."""
    df = only(read_table(path, SCORES_COLUMNS), "judge", judge, "judge")
    if "validity_accuracy" not in df.columns or df.empty:
        return "not shown: no validity check of this judge; the correlation is not a finding"
    acc, lo, hi = (float(df[c].iloc[0] or "nan") for c in ("validity_accuracy", "validity_ci_low", "validity_ci_high"))
    shown = f"accuracy {acc:.3f} [{lo:.3f}, {hi:.3f}] against chance 0.5"
    if math.isnan(lo) or lo <= 0.5:
        return f"not shown: judge validity {shown}; the correlation is not a finding"
    return f"above chance: judge validity {shown}"


def judge_winrates(path: str | os.PathLike, judge: str = "ensemble") -> dict[tuple[str, str], float]:
    """{(rpm, subset): WinRate} of one judge (or the ensemble) from the judge's scores.csv."""
    df = read_table(path, SCORES_COLUMNS)
    df = only(df, "judge", judge, "judge")
    values = keyed(df, ["rpm", "subset"], "winrate")
    bad = [(k, v) for k, v in values.items() if not math.isnan(v) and not 0.0 <= v <= 1.0]
    if bad:
        raise AnalysisInputError(f"{path}: WinRate of {bad[0][0]} is {bad[0][1]}, outside [0, 1]")
    return values


def differences(values: dict[tuple[str, str], float], id_subset: str = "id_test") -> dict[tuple[str, str], float]:
    """{(rpm, OOD subset): value(ID) - value(OOD)}: the same sign convention as R-EMID (a drop is positive).

    An RPM without an ID value gets NaN for each OOD subset (counted as excluded downstream)."""
    out = {}
    for (rpm, sub), v in values.items():
        if sub == id_subset:
            continue
        ref = values.get((rpm, id_subset), math.nan)
        out[(rpm, sub)] = ref - v
    return out


# ------------------------------------------------------------------ joining points


@dataclass
class Points:
    """(rpm, subset) points of x against y; excluded points stay in the table with their reason."""
    x_name: str
    y_name: str
    rows: list[dict] = field(default_factory=list)

    @property
    def included(self) -> list[dict]:
        return [r for r in self.rows if r["included"]]

    @property
    def n_excluded(self) -> int:
        return sum(not r["included"] for r in self.rows)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        inc = self.included
        return np.array([r["x"] for r in inc], dtype=float), np.array([r["y"] for r in inc], dtype=float)

    def exclusion_note(self) -> str:
        if not self.n_excluded:
            return ""
        reasons: dict[str, int] = {}
        for r in self.rows:
            if not r["included"]:
                reasons[r["note"]] = reasons.get(r["note"], 0) + 1
        return f"{self.n_excluded} point(s) excluded: " + "; ".join(f"{n} {why}" for why, n in reasons.items())


def join_points(x: dict[tuple[str, str], float], y: dict[tuple[str, str], float], x_name: str, y_name: str,
                extra: dict | None = None) -> Points:
    """Every key of x or y becomes a row; one missing on a side or NaN is kept, marked excluded."""
    pts = Points(x_name, y_name)
    keys = list(dict.fromkeys([*x, *y]))
    for key in sorted(keys, key=lambda k: (k[0], subset_order(k[1]))):
        xv, yv = x.get(key), y.get(key)
        if xv is None:
            note = f"no {x_name}"
        elif yv is None:
            note = f"no {y_name}"
        elif math.isnan(xv) or math.isnan(yv):
            note = f"{x_name if math.isnan(xv) else y_name} is NaN"
        else:
            note = ""
        rpm, sub = key
        pts.rows.append({"rpm": rpm, "subset": sub, "shift": shift_name(sub), "x": math.nan if xv is None else xv,
                         "y": math.nan if yv is None else yv, "included": not note, "note": note, **(extra or {})})
    return pts


def subset_order(name: str) -> int:
    return SUBSET_NAMES.index(name) if name in SUBSET_NAMES else len(SUBSET_NAMES)


def shift_name(name: str) -> str:
    try:
        return subset_info(name).shift
    except KeyError:
        return ""


def subset_label(name: str) -> str:
    try:
        return subset_info(name).label
    except KeyError:
        return name


def split_rpm(rpm: str) -> tuple[str, str]:
    base, sep, method = rpm.partition("/")
    if not sep:
        raise AnalysisInputError(f"rpm {rpm!r} is not of the form base/method")
    return base, method


# ------------------------------------------------------------------ figures


def new_figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig, paths: Iterable[str | os.PathLike]) -> None:
    """Write the figure to each path (format from its suffix: .png, .pdf, .svg), atomically."""
    import matplotlib.pyplot as plt

    paths = list(paths)
    if not paths:
        raise AnalysisInputError("no figure path given (--figure PATH.png --figure PATH.pdf)")
    for p in paths:
        fmt = Path(p).suffix.lstrip(".").lower()
        if fmt not in ("png", "pdf", "svg"):
            raise AnalysisInputError(f"{p}: figure format must be .png, .pdf or .svg")
        with atomic_path(p) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
    plt.close(fig)

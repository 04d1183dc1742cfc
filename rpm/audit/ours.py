"""This run's numbers, read from the CSVs the other stages write, each keyed by the published cell
it stands beside (`Ours`, with its tolerance); the join (`rpm.audit.join`) puts them beside the paper's.

Tolerances (used at scale "paper"; each row of audit.csv states the one it used):
- R-EMI (Table 20): max(0.01, our 95% bootstrap CI half-width) + half a printed unit (0.0005);
  implied R-EMID: the same + 0.0005 more (a difference of two rounded cells). Avg.: 0.01 + 0.0005.
- perplexity (Table 1): 5% of the paper's value.
- benchmark counts (Table 2): exact (the benchmark is a fixed, published data set).
- D_JS terms and the bound (Table 12): 10% of the paper's value (the embedder is our choice).
- Pearson r (Table 13): max(0.1, our bootstrap CI half-width); p-values: the same side of 0.05.
- cost (Table 14): 50% of the paper's value (other hardware, other judge), tokens per sample 25%.
- sample counts (Figures 4 and 5): exact.
"""

from __future__ import annotations

import csv
import math
import os
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from rpm.audit.labels import (
    FIG4_PANELS,
    FIG5_SIZES,
    METHOD,
    T1_COLUMN,
    T1_ROW,
    T2_COLUMN,
    T2_ROW,
    T12_COLUMN,
    T12_ROW,
    T12_RPM,
    T13_ROW,
    T14_ROW,
    T20_AVG,
    T20_COLUMN,
)
from rpm.audit.published import Published, cells
from rpm.bench.load import read_jsonl
from rpm.core.errors import RpmInputError
from rpm.core.names import SUBSETS


class AuditInputError(RpmInputError):
    """One of this run's CSVs (or an option naming its contents) that the audit cannot use."""


@dataclass
class AuditRow:
    table: str
    row: str
    column: str
    ours: float | None
    paper: str | None
    difference: float | None
    verdict: str
    tolerance: str
    note: str = ""

    def as_dict(self) -> dict:
        return {"table": self.table, "row": self.row, "column": self.column, "ours": format_number(self.ours),
                "paper": "" if self.paper is None else self.paper, "difference": format_number(self.difference),
                "verdict": self.verdict, "tolerance": self.tolerance, "note": self.note}


@dataclass
class Tolerance:
    """|ours - paper| <= absolute + relative * |paper|, or a significance rule for p-values."""
    absolute: float = 0.0
    relative: float = 0.0
    rule: str = ""       # "" (numeric) | "p<0.05"

    def width(self, paper: float) -> float:
        return self.absolute + self.relative * abs(paper)

    def describe(self, paper: float) -> str:
        if self.rule:
            return "same side of p = 0.05"
        if self.relative and not self.absolute:
            return f"{self.relative:.0%} (±{self.width(paper):.4g})"
        if self.relative:
            return f"±{self.absolute:.4g} + {self.relative:.0%}"
        return "exact" if self.absolute == 0 else f"±{self.absolute:.4g}"


def format_number(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def read_csv_rows(path: str | os.PathLike, columns: Sequence[str], *, sep: str = ",") -> list[tuple[int, dict]]:
    """(line number, row) of a CSV/TSV; a missing column or an empty table is an error naming the file."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter=sep)
        try:
            header = reader.fieldnames or []
            missing = [c for c in columns if c not in header]
            if missing:
                raise AuditInputError(f"{path}: missing column(s) {missing}; it has {header}")
            rows = [(k, r) for k, r in enumerate(reader, start=2)]
        except UnicodeDecodeError as e:
            raise AuditInputError(str(e)) from None
    if not rows:
        raise AuditInputError(f"{path}: the table has no rows")
    return rows


def number(path, lineno: int, row: dict, column: str, *, allow_empty: bool = False) -> float:
    text = (row.get(column) or "").strip()
    if text == "" or text.lower() == "nan":
        if allow_empty:
            return math.nan
        raise AuditInputError(f"{path}, line {lineno}: column {column!r} is empty")
    try:
        return float(text)
    except ValueError:
        raise AuditInputError(f"{path}, line {lineno}: column {column!r} holds {text!r}, not a number") from None


def split_rpm(path, lineno: int, rpm: str, base_map: dict[str, str]) -> tuple[str | None, str]:
    """Our "{base}/{method}" -> (paper base or None, paper method)."""
    if rpm.count("/") != 1:
        raise AuditInputError(f"{path}, line {lineno}: column 'rpm' holds {rpm!r}, not '{{base}}/{{method}}'")
    base, method = rpm.split("/")
    if method not in METHOD:
        raise AuditInputError(f"{path}, line {lineno}: unknown method {method!r} in rpm {rpm!r}; known: {list(METHOD)}")
    return base_map.get(base), METHOD[method]


def _ci_half(lo: float, hi: float) -> float:
    return (hi - lo) / 2 if math.isfinite(lo) and math.isfinite(hi) else 0.0


@dataclass
class Ours:
    """Our value for one published cell, its tolerance and a note."""
    value: float
    tolerance: Tolerance
    note: str = ""


def ours_table20(path, base_map) -> tuple[dict, dict, list[AuditRow]]:
    """R-EMI per (paper row, column) and implied-R-EMID counterparts from remi.csv; rows whose base has no paper
    counterpart come back as "not printed" rows."""
    rows = read_csv_rows(path, ["rpm", "metric", "quantity", "subset", "value", "ci_low", "ci_high"])
    remi: dict[tuple[str, str], Ours] = {}
    remid: dict[tuple[str, str], Ours] = {}
    extra: list[AuditRow] = []
    per_row: dict[str, dict[str, float]] = OrderedDict()
    for lineno, r in rows:
        if r["quantity"] not in ("R-EMI", "R-EMID"):
            continue
        if r["subset"] not in T20_COLUMN:
            raise AuditInputError(f"{path}, line {lineno}: unknown subset {r['subset']!r}; known: {list(T20_COLUMN)}")
        base, method = split_rpm(path, lineno, r["rpm"], base_map)
        value = number(path, lineno, r, "value")
        half = _ci_half(number(path, lineno, r, "ci_low", allow_empty=True),
                        number(path, lineno, r, "ci_high", allow_empty=True))
        col = T20_COLUMN[r["subset"]]
        if base is None:
            extra.append(AuditRow("Table 20" if r["quantity"] == "R-EMI" else "Table 20 (implied R-EMID)", r["rpm"],
                                  col, value, None, None, "not printed", "",
                                  f"base {r['rpm'].split('/')[0]!r} has no paper counterpart (map it with --base-map)"))
            continue
        key = (f"{base}/{method}", col)
        note = f"ours: {r['rpm']}, 95% CI half-width {half:.3g}"
        if r["quantity"] == "R-EMI":
            if key in remi:
                raise AuditInputError(f"{path}, line {lineno}: a second R-EMI row for {key} (several runs map to one "
                                      "paper row; check --base-map)")
            remi[key] = Ours(value, Tolerance(max(0.01, half) + 0.0005), note)
            per_row.setdefault(key[0], {})[r["subset"]] = value
        else:
            remid[key] = Ours(value, Tolerance(max(0.01, half) + 0.001), note)
    for row, vals in per_row.items():
        if len(vals) == len(T20_COLUMN):
            remi[(row, T20_AVG)] = Ours(float(np.mean(list(vals.values()))), Tolerance(0.0105),
                                        "mean of our 12 subsets (the paper's Avg. is the 12-column mean, see checks)")
    return remi, remid, extra


def ours_table1(path) -> dict:
    rows = read_csv_rows(path, ["estimator", "scope", "name", "perplexity"])
    out = {}
    for lineno, r in rows:
        if r["scope"] != "shift" or r["name"] not in T1_COLUMN:
            continue
        if r["estimator"] not in T1_ROW:
            raise AuditInputError(f"{path}, line {lineno}: unknown estimator {r['estimator']!r}; known: {list(T1_ROW)}")
        out[(T1_ROW[r["estimator"]], T1_COLUMN[r["name"]])] = Ours(number(path, lineno, r, "perplexity"),
                                                                   Tolerance(relative=0.05),
                                                                   f"n_samples {r.get('n_samples', '')}")
    return out


def ours_table12(path, base_map) -> tuple[dict, dict]:
    """Our divergence terms and bound (all samples) for the RPM mapped to Table 12's, plus our H_hat and Delta."""
    rows = read_csv_rows(path, ["rpm", "target", "size", *T12_COLUMN, "h_hat", "delta"])
    out, terms = {}, {}
    for lineno, r in rows:
        if r["size"] != "all":
            continue
        base, method = split_rpm(path, lineno, r["rpm"], base_map)
        if (base, method) != T12_RPM:
            continue
        if r["target"] not in T12_ROW:
            raise AuditInputError(f"{path}, line {lineno}: unknown target subset {r['target']!r}; "
                                  f"known: {list(T12_ROW)}")
        row = T12_ROW[r["target"]]
        for ours_col, col in T12_COLUMN.items():
            out[(row, col)] = Ours(number(path, lineno, r, ours_col), Tolerance(relative=0.10), f"ours: {r['rpm']}")
        terms[row] = (number(path, lineno, r, "h_hat"), number(path, lineno, r, "delta"), r["rpm"])
    return out, terms


def ours_table2(stats_path, bench_dir) -> dict:
    """Counts per RPGBench split: samples summed from stats.tsv; unique personas and characters of a split with
    several subset files need the files themselves (`bench_dir`), since stats.tsv counts them per file."""
    rows = read_csv_rows(stats_path, ["file", "split", *T2_COLUMN], sep="\t")
    per_split: dict[str, list[tuple[int, dict]]] = OrderedDict()
    for lineno, r in rows:
        if r["split"] not in T2_ROW:
            raise AuditInputError(f"{stats_path}, line {lineno}: unknown split {r['split']!r}; known: {list(T2_ROW)}")
        per_split.setdefault(r["split"], []).append((lineno, r))
    files_of = Counter(s.split for s in SUBSETS) + Counter({"IDTrain": 1})
    out = {}
    loaded = None
    for split, items in per_split.items():
        row = T2_ROW[split]
        note = f"{len(items)} of the split's {files_of[split]} file(s) in {Path(stats_path).name}"
        out[(row, "Total Samples")] = Ours(sum(number(stats_path, k, r, "samples") for k, r in items), Tolerance(),
                                           note)
        if files_of[split] == 1:
            k, r = items[0]
            for col in ("user_personas", "agent_characters"):
                out[(row, T2_COLUMN[col])] = Ours(number(stats_path, k, r, col), Tolerance(), "")
        elif bench_dir is not None:
            if loaded is None:
                loaded = {}
            samples = [s for _, r in items
                       for s in loaded.setdefault(r["file"], read_jsonl(Path(bench_dir) / f"{r['file']}.jsonl"))]
            # The same definition as stats.tsv (rpm/bench/fetch.py: stats_table), over the split's files together.
            out[(row, "User Personas")] = Ours(float(len({s.user_persona for s in samples})), Tolerance(),
                                               f"unique over {len(items)} files of {bench_dir}")
            out[(row, "Agent Characters")] = Ours(float(len({s.agent_character.character_name for s in samples})),
                                                  Tolerance(), f"unique over {len(items)} files of {bench_dir}")
    return out


CORRELATION_REQUIRED = ["figure", "x", "y", "scope", "n", "pearson_r", "pearson_p", "pearson_ci_low",
                        "pearson_ci_high", "spearman_rho", "spearman_p"]


def ours_correlations(path) -> tuple[dict, dict, list[AuditRow]]:
    """Table 13 cells, Figure 4 sample counts, and every other correlation as a "not printed" row."""
    rows = read_csv_rows(path, CORRELATION_REQUIRED)
    t13, fig, extra = {}, {}, []
    for lineno, r in rows:
        figure = r["figure"]
        n = number(path, lineno, r, "n")
        pr = number(path, lineno, r, "pearson_r", allow_empty=True)
        pp = number(path, lineno, r, "pearson_p", allow_empty=True)
        half = _ci_half(number(path, lineno, r, "pearson_ci_low", allow_empty=True),
                        number(path, lineno, r, "pearson_ci_high", allow_empty=True))
        if figure == "table13" and r["scope"] in T13_ROW:
            row = T13_ROW[r["scope"]]
            t13[(row, "Pearson r")] = Ours(pr, Tolerance(max(0.1, half)), f"n = {n:g}; {r['y']} vs {r['x']}")
            t13[(row, "p")] = Ours(pp, Tolerance(rule="p<0.05"), f"n = {n:g}")
            continue
        if figure in FIG4_PANELS and r["scope"] in ("all", ""):
            fig[(figure, "pairs")] = Ours(n, Tolerance(), f"{r['y']} vs {r['x']}")
        if figure == "fig5a" and r["scope"].startswith("size="):
            # Figure 5 prints sample sizes only; ours is the same size where our sweep has it, with its r and rho.
            size = r["scope"][len("size="):]
            for key, want in FIG5_SIZES.items():
                if size == str(want):
                    rho = number(path, lineno, r, "spearman_rho", allow_empty=True)
                    fig[key] = Ours(float(want), Tolerance(), f"our bound vs R-EMID at {want} samples per side: "
                                                              f"Pearson r = {pr:.3g}, Spearman rho = {rho:.3g}")
        label = f"{figure}: {r['y']} vs {r['x']} ({r['scope'] or 'all'})"
        for col, value in (("n", n), ("Pearson r", pr), ("Pearson p", pp),
                           ("Spearman rho", number(path, lineno, r, "spearman_rho", allow_empty=True)),
                           ("Spearman p", number(path, lineno, r, "spearman_p", allow_empty=True))):
            extra.append(AuditRow(_figure_table(figure), label, col, value, None, None, "not printed", "",
                                  "the paper shows this correlation only in a figure legend"))
    return t13, fig, extra


def _figure_table(figure: str) -> str:
    if figure.startswith("fig"):
        return f"Figure {figure[3:].rstrip('abcd')}"
    return figure


COST_COLUMNS = ["method", "n_samples", "wall_seconds", "cpu_seconds", "prompt_tokens", "completion_tokens", "calls"]


def ours_table14(path, published: Sequence[Published]) -> dict:
    """Our measured cost, brought to the paper's 1,500 samples and priced with the paper's own prices."""
    rows = read_csv_rows(path, COST_COLUMNS)
    t14 = cells(published, "Table 14")
    samples = t14[("both", "test samples")].value
    out, minutes = {}, {}
    for lineno, r in rows:
        if r["method"] not in T14_ROW:
            raise AuditInputError(f"{path}, line {lineno}: unknown method {r['method']!r}; known: {list(T14_ROW)}")
        row = T14_ROW[r["method"]]
        n = number(path, lineno, r, "n_samples")
        if n <= 0:
            raise AuditInputError(f"{path}, line {lineno}: column 'n_samples' must be positive, got {n:g}")
        scale = samples / n
        m = number(path, lineno, r, "wall_seconds") / 60 * scale
        minutes[r["method"]] = m
        note = f"measured on {n:g} samples, scaled to {samples:g}"
        out[(row, "Time (min)")] = Ours(m, Tolerance(relative=0.5), note)
        if r["method"] == "R-EMID":
            price = t14[(row, "A100-80GB price (USD per hour)")].value
            out[(row, "Cost (USD)")] = Ours(m / 60 * price, Tolerance(relative=0.5),
                                            f"{note}; the paper's A100 price applied to our wall time")
        else:
            tokens = number(path, lineno, r, "prompt_tokens")
            price = t14[(row, "price (USD per million tokens)")].value
            out[(row, "Cost (USD)")] = Ours(tokens * scale / 1e6 * price, Tolerance(relative=0.5),
                                            f"{note}; the paper's price per input token")
            out[(row, "tokens per sample")] = Ours(tokens / n, Tolerance(relative=0.25), "prompt tokens per sample, "
                                                   "all judge calls of a sample")
            out[(row, "input tokens (million)")] = Ours(tokens * scale / 1e6, Tolerance(relative=0.25), note)
    if "R-EMID" in minutes and "judge" in minutes and minutes["R-EMID"] > 0:
        out[("judge / R-EMID", "time ratio")] = Ours(minutes["judge"] / minutes["R-EMID"], Tolerance(relative=0.5))
    return out


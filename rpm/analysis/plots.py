"""Plot primitives shared by the figures: a scatter with its regression line and correlation legend,
and grouped bars."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from rpm.analysis.common import SHIFT_COLORS, SHIFT_TITLES, Points
from rpm.analysis.correlation import Correlation


def scatter_with_fit(ax, points: Points, corr: Correlation, *, title: str, xlabel: str, ylabel: str) -> None:
    """Points coloured by shift type, the least-squares line, and r / rho with p-values in the legend."""
    inc = points.included
    for shift, color in SHIFT_COLORS.items():
        xs = [r["x"] for r in inc if r["shift"] == shift]
        ys = [r["y"] for r in inc if r["shift"] == shift]
        if xs:
            ax.scatter(xs, ys, s=22, color=color, alpha=0.8, label=SHIFT_TITLES[shift], edgecolors="none")
    x, y = points.arrays()
    if x.size >= 2 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        grid = np.linspace(x.min(), x.max(), 50)
        ax.plot(grid, slope * grid + intercept, color="black", lw=1.2, label=corr.label())
    else:
        ax.plot([], [], " ", label=corr.label())
    note = points.exclusion_note()
    if note:
        ax.plot([], [], " ", label=note)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=6.5, loc="best", frameon=True)
    ax.grid(alpha=0.3)


def grouped_bars(ax, categories: Sequence[str], series: dict[str, Sequence[float]], *, ylabel: str,
                 title: str = "") -> None:
    """One group per category, one bar per series; NaN bars are drawn as an 'n/a' mark, not omitted."""
    n = max(len(series), 1)
    width = 0.8 / n
    xs = np.arange(len(categories))
    for k, (name, values) in enumerate(series.items()):
        pos = xs - 0.4 + width * (k + 0.5)
        vals = np.array(values, dtype=float)
        ax.bar(pos, np.nan_to_num(vals, nan=0.0), width, label=name)
        for p, v in zip(pos, vals):
            if math.isnan(v):
                ax.text(p, 0, "n/a", rotation=90, fontsize=5, ha="center", va="bottom")
    ax.set_xticks(xs)
    ax.set_xticklabels(categories, rotation=45, ha="right", fontsize=8)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: never over a bar
    ax.grid(axis="y", alpha=0.3)

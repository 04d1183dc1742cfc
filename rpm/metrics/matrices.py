"""The .npz written by `rpm logprobs`: everything later metrics need, nothing recomputed.

Arrays (N = kept samples, in benchmark order):
    sample_ids     str (N,)
    golden_lp      float64 (N, N)  lp[i, j] = log q(golden_j | prompt_i), summed over tokens; NaN where the
                                   pair was not scored (meta "negatives": K sampled negatives per row,
                                   rpm/metrics/pairs.py); the diagonal is always scored
    golden_ntok    int64 (N, N)    tokens of golden_j (the same down each column)
    golden_ent     float64 (N,)    sum over golden_i's tokens of the estimator's next-token entropy
    model_lp, model_ntok, model_ent   the same for the RPM's responses (absent in a golden-only file)
    meta           str ()          JSON: subset, rpm, estimator, reasoning flag, prompt template,
                                   source files, max_length, dtype, dropped samples with reasons; with
                                   --rpm-responses also row_keys and reused_rows (rpm/metrics/row_reuse.py)

Keeping summed log-probs and token counts (not a normalised score) means any normalisation (per-token
mean or sum), any pair scheme (all pairs or K sampled) and any subsample can be computed later.
Files are written atomically and read without pickle.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rpm.core.errors import RpmInputError
from rpm.io import atomic_path

SIDES = ("model", "golden")


class MatrixFileError(RpmInputError):
    pass


@dataclass
class Side:
    lp: np.ndarray
    ntok: np.ndarray
    ent: np.ndarray | None = None

    def take(self, idx: np.ndarray) -> "Side":
        idx = np.asarray(idx)
        return Side(self.lp[np.ix_(idx, idx)], self.ntok[np.ix_(idx, idx)],
                    None if self.ent is None else self.ent[idx])


@dataclass
class LogprobMatrices:
    sample_ids: list[str]
    golden: Side
    model: Side | None = None
    meta: dict = field(default_factory=dict)
    path: str | None = None

    @property
    def n(self) -> int:
        return len(self.sample_ids)

    def label(self, key: str, default: str = "") -> str:
        return str(self.meta.get(key, default))

    def take(self, idx) -> "LogprobMatrices":
        idx = np.asarray(idx)
        return LogprobMatrices([self.sample_ids[k] for k in idx], self.golden.take(idx),
                               None if self.model is None else self.model.take(idx), dict(self.meta), self.path)


def save(path: str | os.PathLike, m: LogprobMatrices) -> None:
    arrays = {"sample_ids": np.array(m.sample_ids, dtype=str), "meta": np.array(json.dumps(m.meta, ensure_ascii=False))}
    for name in SIDES:
        side = getattr(m, name)
        if side is None:
            continue
        arrays[f"{name}_lp"] = np.asarray(side.lp, dtype=np.float64)
        arrays[f"{name}_ntok"] = np.asarray(side.ntok, dtype=np.int64)
        if side.ent is not None:
            arrays[f"{name}_ent"] = np.asarray(side.ent, dtype=np.float64)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:   # a file object: np.savez must not add ".npz"
        np.savez(f, **arrays)


def load(path: str | os.PathLike) -> LogprobMatrices:
    path = Path(path)
    if not path.is_file():
        raise MatrixFileError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise MatrixFileError(f"{path}: not a log-prob matrix file written by `rpm logprobs` ({e})") from None
    for key in ("sample_ids", "golden_lp", "golden_ntok", "meta"):
        if key not in data:
            raise MatrixFileError(f"{path}: missing array {key!r}")
    ids = [str(s) for s in data["sample_ids"]]
    n = len(ids)
    sides = {}
    for name in SIDES:
        if f"{name}_lp" not in data:
            continue
        lp, ntok = data[f"{name}_lp"], data[f"{name}_ntok"]
        if lp.shape != (n, n) or ntok.shape != (n, n):
            raise MatrixFileError(f"{path}: {name} matrices have shapes {lp.shape}, {ntok.shape}; expected ({n}, {n})")
        if (ntok < 1).any():
            raise MatrixFileError(f"{path}: {name}_ntok has counts below 1")
        if np.isinf(lp).any() or not np.isfinite(np.diag(lp)).all():
            raise MatrixFileError(f"{path}: {name}_lp holds infinite values or an unscored diagonal pair")
        if np.isnan(lp).any() and not json.loads(str(data["meta"])).get("negatives"):
            raise MatrixFileError(f"{path}: {name}_lp has unscored (NaN) pairs but its meta names no sampled negatives")
        ent = data.get(f"{name}_ent")
        sides[name] = Side(lp, ntok, ent)
    return LogprobMatrices(ids, sides["golden"], sides.get("model"), json.loads(str(data["meta"])), str(path))

"""Scored rows reused where their inputs did not change (the sweep's nested severities).

A row of `rpm logprobs` is prompt i (x_i, r_i) against the continuations it scores: every sample's, or its
own and its K sampled negatives (rpm/metrics/pairs.py, the same plan at every severity of one subset). Its
key is the SHA-256 of the estimator's identity (its adapter weights and base, the dtype, the prompt template,
max_length and the pair plan's settings), the prompt's messages and, for each continuation set (golden and
every RPM), the texts of the columns it scores, its own first and the rest in column order. A later job given
an earlier job's files (`--reuse DIR`) copies every row whose key it holds, with its entropy, and scores the
others: an unshifted sample whose negatives are unshifted too is byte-identical at the next severity, and so
is ID test at every severity. Reused values are the same model's log-probs of the same tokens, computed in
another batch (the last bits of float arithmetic may differ between batches).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from rpm.core.errors import RpmInputError
from rpm.metrics.matrices import load
from rpm.metrics.pairs import plan_from_mask
from rpm.runtime.load import read_adapter_manifest

SETTINGS = ("reasoning", "prompt", "dtype", "max_length", "negatives", "pair_seed")


def estimator_identity(estimator_dir: str | Path) -> str:
    """SHA-256 over the estimator's weights and its base directory's name, never its location: a results tree
    copied or moved elsewhere keeps its keys (a prepared base is never rewritten in place; a retrained adapter
    changes the key). A plain model directory (no adapter manifest) is keyed by its own weight files."""
    h = hashlib.sha256()
    manifest = read_adapter_manifest(estimator_dir)
    if manifest is None:
        weights = sorted(Path(estimator_dir).glob("*.safetensors"))
        # No local weights: a hub id, which names the same weights wherever the job runs.
        h.update((Path(estimator_dir).resolve().name if weights else str(estimator_dir)).encode("utf-8"))
        for f in weights:
            h.update(f.read_bytes())
        return h.hexdigest()
    h.update(Path(manifest["base"]).name.encode("utf-8"))
    for adapter in manifest["chain"]:
        for f in sorted(Path(adapter).glob("*.safetensors")):
            h.update(f.read_bytes())
    return h.hexdigest()


def ordered_columns(a: int, cols) -> list[int]:
    """Row a's scored columns, its own first and the others ascending (the order of plan_from_mask)."""
    return [a, *sorted(int(c) for c in cols if c != a)]


def row_keys(identity: str, meta: dict, prompts: list, sets: dict[str, list[str]], keep: list[int],
             plan: list[list[int]] | None) -> list[str]:
    """One key per kept row (positions a of `keep`; plan[a] names kept columns, None: every column)."""
    head = {"estimator": identity, **{k: meta.get(k) for k in SETTINGS}}
    keys = []
    for a, i in enumerate(keep):
        cols = ordered_columns(a, plan[a] if plan is not None else range(len(keep)))
        canon = [head, prompts[i], {name: [texts[keep[b]] for b in cols] for name, texts in sorted(sets.items())}]
        keys.append(hashlib.sha256(json.dumps(canon, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest())
    return keys


class Reusable:
    """The rows of an earlier job's files of one subset: golden-only file + one file per RPM label."""

    def __init__(self, golden_file: str | Path, rpm_files: dict[str, str | Path]):
        self.golden = load(golden_file)
        keys = self.golden.meta.get("row_keys")
        if not isinstance(keys, list) or len(keys) != self.golden.n:
            raise RpmInputError(f"{golden_file}: no row keys in its meta (written before rows were reusable); "
                                "rerun it, or drop --reuse")
        self.rows = {k: a for a, k in enumerate(keys)}
        self.rpms = {label: load(f) for label, f in rpm_files.items()}
        for label, m in self.rpms.items():
            if m.sample_ids != self.golden.sample_ids or m.model is None:
                raise RpmInputError(f"{m.path}: not the RPM file ({label}) that goes with {golden_file}")
        self.sources = [str(golden_file), *map(str, rpm_files.values())]

    def hits(self, keys: list[str]) -> dict[int, int]:
        """{this job's row: the earlier file's row} for every key both hold."""
        return {a: self.rows[k] for a, k in enumerate(keys) if k in self.rows}

    def fill(self, name: str, lp: np.ndarray, ent: np.ndarray, hits: dict[int, int], plan) -> None:
        """Copy the hit rows of set `name` ("golden" or "rpm:LABEL") into lp and ent in place."""
        side = self.golden.golden if name == "golden" else self.rpms[name.split(":", 1)[1]].model
        old_plan = plan_from_mask(np.isfinite(side.lp))
        n = lp.shape[0]
        for a, old in hits.items():
            cols = ordered_columns(a, plan[a] if plan is not None else range(n))
            old_cols = ordered_columns(old, old_plan[old])
            if len(old_cols) != len(cols):
                raise RpmInputError(f"{self.golden.path}: row {old} scored {len(old_cols)} columns, this job's row "
                                    f"{a} plans {len(cols)}; the files cannot share rows")
            lp[a, cols] = side.lp[old, old_cols]
            ent[a] = side.ent[old]


def reusable_files(reuse_dir: str | Path, stem: str, labels) -> Reusable | None:
    """The earlier job's files of subset `stem` under reuse_dir (golden/{stem}.npz, LABEL/{stem}.npz)."""
    golden = Path(reuse_dir) / "golden" / f"{stem}.npz"
    rpms = {label: Path(reuse_dir) / label / f"{stem}.npz" for label in labels}
    missing = [str(p) for p in (golden, *rpms.values()) if not p.is_file()]
    if missing:
        raise RpmInputError(f"--reuse {reuse_dir}: no {', '.join(missing)}; give the --out directory of an "
                            "earlier `rpm logprobs --rpm-responses` job with the same RPM labels")
    return Reusable(golden, rpms)


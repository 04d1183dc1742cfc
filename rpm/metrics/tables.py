"""The CSV tables of the metrics stage, built from log-prob files, benchmark files and responses.

remi.csv / emi.csv (long format, one value per row)
    estimator, rpm, metric (R-EMI | EMI), quantity (MI_model | MI_golden | R-EMI | EMI | R-EMID | EMID),
    subset, reference (the ID subset, for R-EMID rows), shift, value, ci_low, ci_high, n, n_reference,
    and the estimator options (normalization, pairs, k, n_boot, confidence, seed).
    Bootstrap seeds depend on the subset only, so a subset's golden MI (and its interval) is the same
    number for every RPM, as it must be: the golden responses do not depend on the RPM.
perplexity.csv
    estimator, scope (subset | shift), name, n_samples, n_tokens, nll_per_token, perplexity, average.
divergences.csv
    source, target, shift, component (user_persona | agent_character | dialogue_context | joint),
    jsd, n_source, n_target, embedder.
bound.csv
    rpm, estimator, source, target, shift, size, seed, n_source, n_target, every term of Theorem 3.4,
    the bound, the scale-adjusted variant, d_joint, r_emid (all samples) and r_emid_sub (same subsample).
"""

from __future__ import annotations

import csv
import math
import os
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np

from rpm.bench.load import read_jsonl
from rpm.bench.subsets import subset as lookup
from rpm.core.errors import RpmInputError
from rpm.io import atomic_path
from rpm.metrics import inputs
from rpm.metrics.bound import NULL_COLUMNS, SubsetData, bound_replicates, sample_size_sweep
from rpm.metrics.divergence import embed_components, jsd_null
from rpm.metrics.inputs import component_texts
from rpm.metrics.matrices import LogprobMatrices, load
from rpm.metrics.mi import MIConfig, remi, remid, subset_seed
from rpm.metrics.perplexity import perplexity

REMI_COLUMNS = ["estimator", "rpm", "metric", "quantity", "subset", "reference", "shift", "value", "ci_low",
                "ci_high", "n", "n_reference", "normalization", "pairs", "k", "n_boot", "confidence", "seed",
                "boot_undefined"]
PERPLEXITY_COLUMNS = ["estimator", "scope", "name", "n_samples", "n_tokens", "nll_per_token", "perplexity", "average"]
DIVERGENCE_COLUMNS = ["source", "target", "shift", "component", "jsd", "jsd_null_mean", "jsd_null_p", "permutations",
                      "n_source", "n_target", "embedder"]
BOUND_COLUMNS = ["rpm", "estimator", "source", "target", "shift", "size", "seed", "n_source", "n_target",
                 "d_user", "d_character", "d_dialogue", "d_joint", "h_hat", "delta_p", "delta_q", "delta",
                 "sum_sqrt_d", "shift_term", "output_term", "bound", "bound_scale_adjusted", "r_emid", "r_emid_sub",
                 "normalization", "embedder", *NULL_COLUMNS]
SHIFT_ORDER = ("id", "user", "character", "dialogue")


class TableInputError(RpmInputError):
    pass


def shift_of(subset: str) -> str:
    try:
        return lookup(subset).shift
    except KeyError:
        return ""


def write_csv(path: str | os.PathLike, rows: Sequence[dict], columns: Sequence[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="raise")
        w.writeheader()
        for row in rows:
            w.writerow({k: _fmt(row.get(k, "")) for k in columns})


def _fmt(v):
    # float() first: numpy 2 writes repr(np.float64(x)) as "np.float64(x)", which no CSV reader parses.
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else repr(float(v))
    if isinstance(v, np.integer):
        return int(v)
    return v


# ------------------------------------------------------------------ remi.csv / emi.csv


def _check_golden_shared(files: Sequence[LogprobMatrices]) -> None:
    """Files of one (estimator, subset) must agree on the golden matrix where their samples overlap."""
    seen: dict[tuple[str, str], LogprobMatrices] = {}
    for m in files:
        key = (m.label("estimator"), m.label("subset"))
        if key not in seen:
            seen[key] = m
            continue
        ref = seen[key]
        common = [sid for sid in m.sample_ids if sid in set(ref.sample_ids)]
        if not common:
            continue
        a = {sid: k for k, sid in enumerate(m.sample_ids)}
        b = {sid: k for k, sid in enumerate(ref.sample_ids)}
        ia, ib = [a[s] for s in common], [b[s] for s in common]
        if (not np.array_equal(m.golden.ntok[np.ix_(ia, ia)], ref.golden.ntok[np.ix_(ib, ib)])
                or not np.allclose(m.golden.lp[np.ix_(ia, ia)], ref.golden.lp[np.ix_(ib, ib)], atol=1e-3, rtol=0,
                                   equal_nan=True)):
            raise TableInputError(
                f"{m.path} and {ref.path}: golden log-probs of subset {key[1]!r} under estimator {key[0]!r} differ; "
                "they were scored with different models, prompts or reasoning")


def remi_table(files: Sequence[LogprobMatrices], cfg: MIConfig = MIConfig(), *, id_subset: str = "id_test",
               metric: str | None = None) -> list[dict]:
    """R-EMI per (estimator, RPM, subset) and R-EMID per ID -> OOD subset, with intervals."""
    groups: "OrderedDict[tuple[str, str], dict[str, LogprobMatrices]]" = OrderedDict()
    for m in files:
        if m.model is None:
            raise TableInputError(f"{m.path}: holds only golden responses; R-EMI needs a file written with --responses")
        key = (m.label("estimator"), m.label("rpm"))
        sub = m.label("subset")
        if sub in groups.setdefault(key, {}):
            raise TableInputError(f"{m.path} and {groups[key][sub].path}: both are subset {sub!r} of "
                                  f"RPM {key[1]!r} under estimator {key[0]!r}")
        groups[key][sub] = m
    _check_golden_shared(files)
    opts = {"normalization": cfg.normalization, "pairs": cfg.pairs, "k": cfg.k if cfg.pairs == "sampled" else "",
            "n_boot": cfg.n_boot, "confidence": cfg.confidence, "seed": cfg.seed}
    rows = []
    for (est, rpm), subsets in groups.items():
        results = {}
        for sub, m in subsets.items():
            name = metric or ("R-EMI" if m.meta.get("reasoning") else "EMI")
            r = remi(m.model.lp, m.model.ntok, m.golden.lp, m.golden.ntok, cfg, boot_seed=subset_seed(cfg.seed, sub))
            results[sub] = (name, r)
            base = {"estimator": est, "rpm": rpm, "metric": name, "subset": sub, "reference": "",
                    "shift": shift_of(sub), "n": m.n, "n_reference": "", **opts}
            for quantity, e in (("MI_model", r.mi_model), ("MI_golden", r.mi_golden), (name, r.remi)):
                rows.append({**base, "quantity": quantity, "value": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high,
                             "boot_undefined": e.undefined})
        if id_subset not in results:
            print(f"note: RPM {rpm!r} (estimator {est!r}) has no {id_subset!r} file; no R-EMID rows", file=sys.stderr)
            continue
        name_p, rp = results[id_subset]
        for sub, (name, rq) in results.items():
            if sub == id_subset:
                continue
            e = remid(rp, rq, cfg)
            rows.append({"estimator": est, "rpm": rpm, "metric": name, "quantity": name + "D", "subset": sub,
                         "reference": id_subset, "shift": shift_of(sub), "value": e.value, "ci_low": e.ci_low,
                         "ci_high": e.ci_high, "n": rq.remi.n, "n_reference": rp.remi.n, **opts,
                         "boot_undefined": e.undefined})
    return rows


# ------------------------------------------------------------------ perplexity.csv


def perplexity_table(files: Sequence[LogprobMatrices], average: str = "token") -> list[dict]:
    """Perplexity of golden responses per estimator, per subset and per shift group (Table 1)."""
    _check_golden_shared(files)
    per: "OrderedDict[str, OrderedDict[str, LogprobMatrices]]" = OrderedDict()
    for m in files:
        per.setdefault(m.label("estimator"), OrderedDict()).setdefault(m.label("subset"), m)
    rows = []
    for est, subsets in per.items():
        pooled: dict[str, tuple[list, list]] = {}
        for sub, m in subsets.items():
            lp, nt = np.diag(m.golden.lp), np.diag(m.golden.ntok)
            p = perplexity(lp, nt, average)
            rows.append({"estimator": est, "scope": "subset", "name": sub, "n_samples": p.n_samples,
                         "n_tokens": p.n_tokens, "nll_per_token": p.nll_per_token, "perplexity": p.perplexity,
                         "average": average})
            acc = pooled.setdefault(shift_of(sub) or "other", ([], []))
            acc[0].extend(lp.tolist())
            acc[1].extend(nt.tolist())
        for shift in [*SHIFT_ORDER, "other"]:
            if shift in pooled:
                p = perplexity(*pooled[shift], average)
                rows.append({"estimator": est, "scope": "shift", "name": shift, "n_samples": p.n_samples,
                             "n_tokens": p.n_tokens, "nll_per_token": p.nll_per_token, "perplexity": p.perplexity,
                             "average": average})
    return rows


# ------------------------------------------------------------------ divergences.csv


def divergence_table(id_file: str | os.PathLike, ood_files: Sequence[str | os.PathLike], embedder, *,
                     embeddings_out: str | os.PathLike | None = None, permutations: int = 200,
                     seed: int = 0) -> list[dict]:
    """D_JS between the ID subset and each OOD subset, per input component and joint, each beside its
    permutation null (divergence.jsd_null: the null's mean and p, seeded).

    With `embeddings_out`, the input and golden-response embeddings of every subset are also saved
    (see `save_embeddings`), so `rpm bound` can reuse them for every RPM instead of re-embedding.
    """

    cache: dict[str, dict[str, np.ndarray]] = {}

    def embed(path: Path):
        samples = read_jsonl(path)
        e = embed_components(component_texts(samples), embedder)
        if embeddings_out is not None:
            cache[path.stem] = {**e, "golden_response": embedder.encode([s.agent_golden_response for s in samples]),
                                "sample_ids": np.array([s.sample_ID for s in samples], dtype=str)}
        return e

    id_file = Path(id_file)
    p = embed(id_file)
    rows = []
    for f in ood_files:
        f = Path(f)
        q = embed(f)
        for comp in p:
            t = jsd_null(p[comp], q[comp], permutations=permutations, seed=seed)
            rows.append({"source": id_file.stem, "target": f.stem, "shift": shift_of(f.stem), "component": comp,
                         "jsd": t.value, "jsd_null_mean": t.null_mean, "jsd_null_p": t.p, "permutations": permutations,
                         "n_source": len(p[comp]), "n_target": len(q[comp]), "embedder": embedder.name})
    if embeddings_out is not None:
        save_embeddings(embeddings_out, cache, embedder.name)
    return rows


def save_embeddings(path: str | os.PathLike, cache: dict[str, dict[str, np.ndarray]], embedder_name: str) -> None:
    """One .npz: "{subset}::{key}" arrays (components, golden_response, sample_ids) and the embedder name."""
    arrays = {"embedder": np.array(embedder_name)}
    for subset, items in cache.items():
        for key, value in items.items():
            arrays[f"{subset}::{key}"] = value
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def save_replicates(path: str | os.PathLike, reps: dict) -> None:
    """bound_table's replicates_out as one .npz: '{rpm}::{subset}::{quantity}' arrays."""
    arrays = {f"{rpm}::{subset}::{q}": v for (rpm, subset), d in reps.items() for q, v in d.items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_replicates(path: str | os.PathLike) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    out: dict = {}
    with np.load(path, allow_pickle=False) as z:
        for key in z.files:
            rpm, subset, q = key.split("::")
            out.setdefault((rpm, subset), {})[q] = z[key]
    return out


def load_embeddings(path: str | os.PathLike, embedder_name: str) -> dict[str, dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as z:
        stored = str(z["embedder"])
        if stored != embedder_name:
            raise TableInputError(f"{path}: embeddings were made with embedder {stored!r}, not {embedder_name!r}")
        out: dict[str, dict[str, np.ndarray]] = {}
        for key in z.files:
            if "::" in key:
                subset, item = key.split("::", 1)
                out.setdefault(subset, {})[item] = z[key]
    return out


# ------------------------------------------------------------------ bound.csv


def load_subset_data(name: str, bench_file: Path, responses_file: Path, npz: Path, embedder, cached=None):
    """Embeddings and matrices of one subset, aligned to the log-prob file's (kept) samples.

    `cached` (one subset of `load_embeddings`) supplies the input and golden-response embeddings;
    only the RPM's responses are embedded then.
    """
    m = load(npz)
    if m.model is None:
        raise TableInputError(f"{npz}: holds only golden responses; the bound needs the RPM's responses too")
    samples = read_jsonl(bench_file)
    responses = inputs.align(inputs.read_text_rows(responses_file, "response"), samples,
                             file=str(responses_file), bench_file=str(bench_file))
    by_id = {s.sample_ID: k for k, s in enumerate(samples)}
    missing = [sid for sid in m.sample_ids if sid not in by_id]
    if missing:
        raise TableInputError(f"{npz}: sample {missing[0]!r} is not in {bench_file}")
    idx = [by_id[sid] for sid in m.sample_ids]
    kept = [samples[k] for k in idx]
    if cached is not None:
        pos = {str(sid): k for k, sid in enumerate(cached["sample_ids"])}
        absent = [sid for sid in m.sample_ids if sid not in pos]
        if absent:
            raise TableInputError(f"subset {name!r}: sample {absent[0]!r} has no cached embedding; "
                                  "re-run `rpm divergence --embeddings-out` on the same benchmark")
        rows = np.array([pos[sid] for sid in m.sample_ids], dtype=int)
        emb_inputs = {k: v[rows] for k, v in cached.items() if k not in ("sample_ids", "golden_response")}
        golden_resp = cached["golden_response"][rows]
    else:
        emb_inputs = embed_components(inputs.component_texts(kept), embedder)
        golden_resp = embedder.encode([s.agent_golden_response for s in kept])
    model_resp = embedder.encode([responses[k] for k in idx])
    return SubsetData(name, emb_inputs, model_resp, golden_resp, m)


def bound_table(bench_dir: Path, runs: Sequence[tuple[Path, Path]], embedder, *, id_subset: str = "id_test",
                subsets: Sequence[str] | None = None, sizes=("all",), seeds=(0,), cfg: MIConfig = MIConfig(),
                embeddings: str | os.PathLike | None = None, progress: bool = True,
                null_permutations: int = 0, replicates: int = 0, replicates_out: dict | None = None) -> list[dict]:
    """Bound rows for each RPM run, given as (responses_dir, logprobs_dir) pairs over one benchmark; with
    null_permutations, the size-"all" rows carry each term's permutation null (seeded by cfg.seed). With
    `replicates` > 0, `replicates_out[(rpm, target)]` receives bound.bound_replicates (paired across calls)."""
    from tqdm.auto import tqdm

    bench_dir = Path(bench_dir)
    cache = load_embeddings(embeddings, embedder.name) if embeddings is not None else {}
    null_cache: dict = {}   # the input components' nulls are the same for every RPM
    rows = []
    for responses_dir, logprobs_dir in runs:
        responses_dir, logprobs_dir = Path(responses_dir), Path(logprobs_dir)
        names = list(subsets) if subsets else sorted(p.stem for p in logprobs_dir.glob("*.npz") if p.stem != id_subset)
        if not names:
            raise TableInputError(f"{logprobs_dir}: no OOD subset files (*.npz other than {id_subset}.npz)")

        def files(name):
            paths = (bench_dir / f"{name}.jsonl", responses_dir / f"{name}.jsonl", logprobs_dir / f"{name}.npz")
            for path in paths:
                if not path.is_file():
                    raise TableInputError(f"{path}: missing input for subset {name!r}")
            return paths

        p = load_subset_data(id_subset, *files(id_subset), embedder, cache.get(id_subset))
        for name in tqdm(names, desc=f"bound {p.matrices.label('rpm')}", unit="subset", disable=not progress):
            q = load_subset_data(name, *files(name), embedder, cache.get(name))
            for row in sample_size_sweep(p, q, sizes, seeds, cfg, null_permutations=null_permutations,
                                         null_cache=null_cache):
                rows.append({**row, "rpm": p.matrices.label("rpm"), "estimator": p.matrices.label("estimator"),
                             "shift": shift_of(name), "normalization": cfg.normalization, "embedder": embedder.name})
            if replicates and replicates_out is not None:
                replicates_out[(p.matrices.label("rpm"), name)] = bound_replicates(p, q, cfg, replicates)
    return rows

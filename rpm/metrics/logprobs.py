"""`rpm logprobs`: score one subset's golden (and an RPM's) responses under an estimator, all pairs (or K
sampled negatives per prompt row, rpm/metrics/pairs.py).

For every sample i the estimator's prompt is built from the benchmark record (plus the cached
reasoning r_i when a reasoning file is given: R-EMI; without one: EMI / "w/o Reasoning"), and every
sample's response is scored against it, giving the N x N matrices of matrices.py. The golden matrix
does not depend on the RPM: a golden-only file (no responses) can be written once per subset and
reused by every RPM with `golden_from`, which then scores only the model responses.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from rpm.bench.load import read_jsonl
from rpm.core.errors import RpmInputError
from rpm.io import write_json
from rpm.metrics import inputs
from rpm.metrics.matrices import LogprobMatrices, Side, load, save
from rpm.metrics.pairs import negative_plan, plan_from_mask
from rpm.metrics.row_reuse import Reusable, estimator_identity, row_keys
from rpm.runtime.load import load_model, load_tokenizer
from rpm.runtime.scorer import Dropped, default_max_length, score_matrix_sets


class LogprobsInputError(RpmInputError):
    pass


def compute(estimator_dir: str | os.PathLike, bench_file: str | os.PathLike, out: str | os.PathLike, *,
            responses: str | os.PathLike | None = None, reasoning: str | os.PathLike | None = None,
            golden_from: str | os.PathLike | None = None, batch_size: int = 8, max_length: int | None = None,
            overlong: str = "error", subset: str | None = None, rpm: str | None = None,
            estimator_name: str | None = None, dtype: str = "float32", progress: bool = True,
            negatives: int | None = None, seed: int = 0, model=None, tok=None) -> tuple[LogprobMatrices, list[Dropped]]:
    """Score and write `out` (.npz). Returns the matrices and the dropped samples. `negatives`: K sampled
    negatives per row (seeded by `seed` and the subset), None for all pairs; with `golden_from` the model
    responses are scored on exactly the golden file's pairs."""
    bench_file, estimator_dir = Path(bench_file), Path(estimator_dir)
    samples = read_jsonl(bench_file)
    with_reasoning = reasoning is not None
    reasons = _reasons(reasoning, samples, bench_file)
    model_texts = None
    if responses is not None:
        model_texts = inputs.align(inputs.read_text_rows(responses, "response"), samples,
                                   file=str(responses), bench_file=str(bench_file))
    if responses is None and golden_from is not None:
        raise LogprobsInputError("--golden-from only makes sense with --responses (it reuses the golden part)")

    meta = {
        "subset": subset or bench_file.stem,
        # Default RPM label: the responses' directory (results/rpm/{base}/{method}/responses), shared by
        # all subsets of one RPM so `rpm remi` can pair them into R-EMID.
        "rpm": rpm if rpm is not None else (str(Path(responses).parent) if responses else ""),
        "estimator": estimator_name or estimator_dir.name,
        "estimator_dir": str(estimator_dir),
        "reasoning": with_reasoning,
        "prompt": inputs.WITH_REASONING if with_reasoning else inputs.WITHOUT_REASONING,
        "bench_file": str(bench_file),
        "responses_file": str(responses) if responses else None,
        "reasoning_file": str(reasoning) if reasoning else None,
        "dtype": dtype,
        "negatives": negatives,
        "pair_seed": seed,
    }

    golden_prev = load(golden_from) if golden_from is not None else None

    model, tok, max_length = _estimator(estimator_dir, dtype, model, tok, max_length)
    meta["max_length"] = int(max_length)
    if golden_prev is not None:
        _check_reusable(golden_prev, meta, samples, str(golden_from))

    by_id = {s.sample_ID: k for k, s in enumerate(samples)}
    idx = [by_id[sid] for sid in golden_prev.sample_ids] if golden_prev is not None else list(range(len(samples)))
    prompts = [inputs.scorer_messages(samples[k], reasons[k]) for k in idx]
    sets = {}
    if golden_prev is None:
        sets["golden"] = [inputs.scored_continuation(samples[k].agent_golden_response, with_reasoning) for k in idx]
    if model_texts is not None:
        sets["model"] = [inputs.scored_continuation(model_texts[k], with_reasoning) for k in idx]
    result = score_matrix_sets(model, tok, prompts, sets, sample_ids=[samples[k].sample_ID for k in idx],
                               batch_size=batch_size, max_length=max_length, overlong=overlong,
                               entropy=True, progress=progress,
                               column_plan=_plan(negatives, seed, meta["subset"], golden_prev))
    first = next(iter(result.values()))
    kept = first.sample_ids
    if not kept:
        raise LogprobsInputError(f"{bench_file}: every sample was dropped as over-long (max_length {max_length}); "
                                 "nothing to score")
    dropped = list(golden_prev.meta.get("dropped", [])) if golden_prev is not None else []
    dropped_now = first.dropped
    dropped += [d.to_dict() for d in dropped_now]
    meta["dropped"] = dropped
    meta["n_bench"] = len(samples)

    def side(name):
        r = result[name]
        return Side(r.lp, r.ntok, r.entropy)

    if golden_prev is not None:
        pos = {sid: k for k, sid in enumerate(golden_prev.sample_ids)}
        golden = golden_prev.golden.take(np.array([pos[sid] for sid in kept], dtype=int))
        meta["golden_from"] = str(golden_from)
    else:
        golden = side("golden")
    m = LogprobMatrices(list(kept), golden, side("model") if "model" in result else None, meta)
    save(out, m)
    m.path = str(out)
    return m, dropped_now


def _check_reusable(prev: LogprobMatrices, meta: dict, samples, where: str) -> None:
    """A golden-only file can stand in for this run only if it was scored the same way."""
    for key in ("estimator_dir", "reasoning", "prompt", "bench_file", "reasoning_file", "dtype", "max_length",
                "negatives", "pair_seed"):
        if prev.meta.get(key) != meta.get(key):
            raise LogprobsInputError(
                f"{where}: its {key} is {prev.meta.get(key)!r}, this run's is {meta.get(key)!r}; "
                "the golden matrix can only be reused when scored by the same estimator, prompt and inputs")
    known = {s.sample_ID for s in samples}
    stray = [sid for sid in prev.sample_ids if sid not in known]
    if stray:
        raise LogprobsInputError(f"{where}: sample {stray[0]!r} is not in the benchmark file {meta['bench_file']}")


def _plan(negatives: int | None, seed: int, subset: str, golden_prev: LogprobMatrices | None):
    """The scorer's column plan: the reused golden file's scored pairs, K sampled negatives, or None (all)."""
    if golden_prev is not None and negatives:
        scored = np.isfinite(golden_prev.golden.lp)   # rows are in golden_prev's order, as the prompts are
        return lambda keep: plan_from_mask(scored[np.ix_(keep, keep)])
    if negatives:
        return lambda keep: negative_plan(len(keep), negatives, seed, subset)
    return None


def write_report(path: str | os.PathLike, m: LogprobMatrices) -> None:
    write_json(path, {"out": m.path, "subset": m.meta.get("subset"), "rpm": m.meta.get("rpm"),
                      "n_bench": m.meta.get("n_bench"), "n_kept": m.n, "max_length": m.meta.get("max_length"),
                      "dropped": m.meta.get("dropped", [])})


def describe(m: LogprobMatrices) -> str:
    sides = "golden + model" if m.model is not None else "golden only"
    return json.dumps({"samples": m.n, "sides": sides, "dropped": len(m.meta.get("dropped", []))})


def _reasons(reasoning, samples, bench_file) -> list:
    """The cached reasoning r_i in benchmark order (checked against the subset), or None per sample."""
    if reasoning is None:
        return [None] * len(samples)
    return inputs.align(inputs.read_text_rows(reasoning, "reasoning"), samples, file=str(reasoning),
                        bench_file=str(bench_file))


def _estimator(estimator_dir, dtype: str, model, tok, max_length):
    """The estimator model, tokenizer and length limit, loaded unless the caller already holds them."""
    if model is None:
        model = load_model(estimator_dir, dtype=dtype)
        model.eval()
    if tok is None:
        tok = load_tokenizer(estimator_dir)
    if max_length is None:

        max_length = default_max_length(model)
    return model, tok, max_length


def compute_many(estimator_dir: str | os.PathLike, bench_file: str | os.PathLike, golden_out: str | os.PathLike,
                 rpms: dict[str, tuple[str, str]], *, reasoning: str | os.PathLike | None = None, batch_size: int = 8,
                 max_length: int | None = None, overlong: str = "error", estimator_name: str | None = None,
                 dtype: str = "float32", progress: bool = True, negatives: int | None = None, seed: int = 0,
                 model=None, tok=None, reuse: Sequence[Reusable] = ()) -> list[Dropped]:
    """Golden responses and every RPM's responses of one subset against each prompt's single KV cache.

    `rpms` maps an RPM label (e.g. "smollm2/sft") to (responses file, output .npz). Each prompt (x_i, r_i)
    is run once for all of them, so the golden matrix is computed once and shared by every RPM, and the
    prompt cost is paid once per subset instead of once per RPM. Writes `golden_out` (golden only) and one
    file per RPM (golden + model), the same files `compute` writes one at a time. Every row's key is kept in
    the meta (`row_keys`); with `reuse` (files written earlier: an earlier job's of this subset, this job's of
    the subsets before it) the rows they hold are copied, not scored (rpm/metrics/row_reuse.py); the first
    source holding a row gives it.
    """
    bench_file, estimator_dir = Path(bench_file), Path(estimator_dir)
    samples = read_jsonl(bench_file)
    with_reasoning = reasoning is not None
    reasons = _reasons(reasoning, samples, bench_file)
    texts = {label: inputs.align(inputs.read_text_rows(resp, "response"), samples, file=str(resp),
                                 bench_file=str(bench_file)) for label, (resp, _) in rpms.items()}
    model, tok, max_length = _estimator(estimator_dir, dtype, model, tok, max_length)
    meta = {"subset": bench_file.stem, "rpm": "", "estimator": estimator_name or estimator_dir.name,
            "estimator_dir": str(estimator_dir), "reasoning": with_reasoning,
            "prompt": inputs.WITH_REASONING if with_reasoning else inputs.WITHOUT_REASONING,
            "bench_file": str(bench_file), "responses_file": None,
            "reasoning_file": str(reasoning) if reasoning else None, "dtype": dtype, "max_length": int(max_length),
            "negatives": negatives, "pair_seed": seed}
    prompts = [inputs.scorer_messages(s, r) for s, r in zip(samples, reasons)]
    sets = {"golden": [inputs.scored_continuation(s.agent_golden_response, with_reasoning) for s in samples]}
    for label, rows in texts.items():
        sets[f"rpm:{label}"] = [inputs.scored_continuation(t, with_reasoning) for t in rows]
    plan_of = _plan(negatives, seed, meta["subset"], None)
    identity, seen = estimator_identity(estimator_dir), {}

    sources = list(reuse)

    def skip_rows(keep, plan):
        seen["keep"], seen["plan"] = keep, plan
        seen["keys"] = row_keys(identity, meta, prompts, sets, keep, plan)
        seen["hits"], taken = [], set()
        for source in sources:
            hits = {a: old for a, old in source.hits(seen["keys"]).items() if a not in taken}
            taken |= set(hits)
            seen["hits"].append(hits)
        return taken

    result = score_matrix_sets(model, tok, prompts, sets, sample_ids=[s.sample_ID for s in samples],
                               batch_size=batch_size, max_length=max_length, overlong=overlong, entropy=True,
                               progress=progress, column_plan=plan_of, skip_rows=skip_rows)
    used = [(source, hits) for source, hits in zip(sources, seen["hits"]) if hits]
    for source, hits in used:
        for name, r in result.items():
            source.fill(name, r.lp, r.entropy, hits, seen["plan"])
    if used:
        meta["reused_from"] = [f for source, _ in used for f in source.sources]
    meta["row_keys"], meta["reused_rows"] = seen["keys"], sum(len(hits) for _, hits in used)
    first = result["golden"]
    if not first.sample_ids:
        raise LogprobsInputError(f"{bench_file}: every sample was dropped as over-long (max_length {max_length}); "
                                 "nothing to score")
    meta["dropped"] = [d.to_dict() for d in first.dropped]
    meta["n_bench"] = len(samples)

    def side(name):
        r = result[name]
        return Side(r.lp, r.ntok, r.entropy)

    golden = side("golden")
    save(golden_out, LogprobMatrices(list(first.sample_ids), golden, None, dict(meta)))
    for label, (resp, out) in rpms.items():
        save(out, LogprobMatrices(list(first.sample_ids), golden, side(f"rpm:{label}"),
                                  {**meta, "rpm": label, "responses_file": str(resp), "golden_from": str(golden_out)}))
    return first.dropped

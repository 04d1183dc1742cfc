"""`rpm score`: R-EMI, R-EMID and the Theorem 3.4 bound for your own role-playing model's responses.

The practitioner's path through the same functions the DAG's metric rules call, so the numbers are
the DAG's numbers for the same responses:

    responses (a folder of {subset}.jsonl, or one JSONL with a "subset" field)
      -> coverage check against the benchmark (missing / extra IDs, unknown subsets: all listed)
      -> cached reasoning r of the estimator (reused when present, else `rpm reason`'s reason_files)
      -> `rpm logprobs`' compute() per subset         -> OUT/logprobs/{subset}.npz
      -> `rpm remi`'s remi_table()                     -> OUT/remi.csv   (R-EMI per subset, R-EMID per shift)
      -> `rpm bound`'s bound_table()                   -> OUT/bound.csv  (every term of Theorem 3.4)
      -> OUT/summary.md and OUT/remi.png (R-EMI per subset with its bootstrap interval)

Estimator specs
    DIR                a CoRL estimator directory made by this DAG, results/estimator/{base}: its
                       coevolved/policy scores, coevolved/reasoner reasons, and its cached traces in
                       reasoning/corl/{subset}.jsonl are reused for the subsets that have one.
    DIR                a directory holding policy/ and reasoner/ (what `rpm estimator coevolve` or
                       `rpm estimator published` writes); reasoning is computed.
    published[:SRC]    the authors' adapters (hub YongqiLi/R-EMID-Estimator, or SRC: another repository
                       or a local copy), laid out by rpm.estimator.published on a base model you name;
                       reasoning is computed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rpm.analysis.common import new_figure, save_figure
from rpm.bench.load import read_jsonl
from rpm.bench.schema import Sample
from rpm.bench.subsets import subset as lookup
from rpm.core.names import SUBSET_NAMES
from rpm.estimator.published import publish_layout
from rpm.estimator.train import reason_files
from rpm.io import write_text
from rpm.metrics.bound import parse_sizes
from rpm.metrics.logprobs import compute
from rpm.metrics.matrices import load
from rpm.metrics.mi import MIConfig
from rpm.metrics.tables import BOUND_COLUMNS, REMI_COLUMNS, bound_table, remi_table, write_csv
from rpm.runtime.embed import load_embedder
from rpm.runtime.generate import Decoding
from rpm.runtime.load import load_model, load_tokenizer
from rpm.score.responses import (
    ResponseSet,
    ScoreInputError,
    read_responses,
    write_responses,
)

DEFAULT_PUBLISHED = "YongqiLi/R-EMID-Estimator"

@dataclass
class Estimator:
    policy: Path                    # q_phi2, the scorer
    reasoner: Path                  # q_phi1, writes r
    reasoning_dir: Path | None      # cached r per subset ({subset}.jsonl), reused where present
    name: str                       # the estimator label in remi.csv / bound.csv
    source: str                     # what the spec named, for the summary


def resolve_estimator(spec: str, out_dir: Path, *, name: str | None = None, base: str | None = None,
                      reasoner_subfolder: str | None = None, policy_subfolder: str | None = None,
                      revision: str | None = None) -> Estimator:
    """The estimator a spec names (module docstring); published adapters are laid out under out_dir/estimator."""
    if spec == "published" or spec.startswith("published:"):

        source = spec.partition(":")[2] or DEFAULT_PUBLISHED
        missing = [opt for opt, v in (("--estimator-base", base), ("--reasoner-subfolder", reasoner_subfolder),
                                      ("--policy-subfolder", policy_subfolder)) if not v]
        if missing:
            raise ScoreInputError(f"estimator {spec!r}: the published adapters also need {', '.join(missing)} "
                                  "(the base model directory they were trained on, "
                                  "and their folders in the repository)")
        if not Path(base).is_dir():
            raise ScoreInputError(f"--estimator-base {base}: no such directory (prepare it with `rpm model prepare`)")
        root = publish_layout(source, base=base, out=str(out_dir / "estimator"), reasoner_subfolder=reasoner_subfolder,
                              policy_subfolder=policy_subfolder, revision=revision)
        return Estimator(root / "policy", root / "reasoner", None, name or "published",
                         f"published adapters {source}" + (f"@{revision}" if revision else ""))
    root = Path(spec)
    if not root.is_dir():
        raise ScoreInputError(f"estimator {spec!r}: not a directory and not 'published[:SOURCE]'")
    if (root / "coevolved" / "policy").is_dir():
        cached = root / "reasoning" / "corl"
        return Estimator(root / "coevolved" / "policy", root / "coevolved" / "reasoner",
                         cached if cached.is_dir() else None, name or "corl", f"CoRL estimator {root}")
    if (root / "policy").is_dir():
        return Estimator(root / "policy", root / "reasoner", None, name or root.name, f"estimator {root}")
    raise ScoreInputError(f"estimator {spec!r}: expected a CoRL estimator directory (results/estimator/BASE, "
                          "holding coevolved/policy and coevolved/reasoner) or a directory holding policy/ and "
                          "reasoner/, or 'published[:SOURCE]'")


def reasoning_files(est: Estimator, bench_files: dict[str, Path], out_dir: Path, dec, *,
                    override: Path | None = None, progress: bool = True) -> tuple[dict[str, Path], dict[str, str]]:
    """The reasoning file of each subset and where it came from ("cached" or "computed").

    Cached traces (--reasoning-dir, else the estimator's own) are reused per subset; the rest are
    written by the reasoner into out_dir, all missing subsets in one pass, exactly as `rpm reason` does.
    """
    cache = override or est.reasoning_dir
    files: dict[str, Path] = {}
    origin: dict[str, str] = {}
    todo = []
    for sub, bench_file in bench_files.items():
        cached = cache / f"{sub}.jsonl" if cache else None
        if cached is not None and cached.is_file():
            files[sub], origin[sub] = cached, f"cached ({cached})"
        else:
            todo.append(sub)
    if todo:

        if not est.reasoner.is_dir():
            raise ScoreInputError(f"{est.reasoner}: no reasoning generator to compute r for {todo}")
        reason_files(est.reasoner, [bench_files[s] for s in todo], out_dir, dec, progress=progress)
        for sub in todo:
            files[sub], origin[sub] = out_dir / f"{sub}.jsonl", f"computed ({out_dir / f'{sub}.jsonl'})"
    return files, origin


# ------------------------------------------------------------------ the run


@dataclass
class ScoreSettings:
    """The metric settings, with the DAG's defaults (workflow/schemas/config.schema.yaml, metrics)."""

    id_subset: str = "id_test"
    normalization: str = "mean"
    pairs: str = "all"
    k: int = 1000
    seed: int = 0
    n_boot: int = 1000
    confidence: float = 0.95
    batch_size: int = 8
    max_length: int | None = None
    overlong: str = "error"
    dtype: str = "float32"
    embedder: str = "minilm"
    embed_batch_size: int | None = None
    embeddings: str | None = None
    sizes: str = "10,30,50,100,all"
    seeds: str = "0,1,2"
    null_permutations: int = 200
    reason_max_new_tokens: int = 2048
    reason_batch_size: int = 8

    def mi_config(self):
        return MIConfig(normalization=self.normalization, pairs=self.pairs, k=self.k, seed=self.seed,
                        n_boot=self.n_boot, confidence=self.confidence)


@dataclass
class ScoreResult:
    out: Path
    remi_rows: list[dict]
    bound_rows: list[dict]
    reasoning: dict[str, str]
    dropped: dict[str, list]
    files: list[Path]


def load_subsets(bench_dir: Path, subsets: Sequence[str] | None, id_subset: str) -> dict[str, list[Sample]]:
    names = list(subsets) if subsets else list(SUBSET_NAMES)
    unknown = [s for s in names if s not in SUBSET_NAMES]
    if unknown:
        raise ScoreInputError(f"--subset {unknown[0]!r}: unknown subset; known subsets: {', '.join(SUBSET_NAMES)}")
    if id_subset not in names:
        raise ScoreInputError(f"the ID subset {id_subset!r} must be scored too: R-EMID and the bound are "
                              f"measured from it (add --subset {id_subset})")
    if len(names) < 2:
        raise ScoreInputError("score at least one OOD subset beside the ID subset")
    bench = {}
    for s in names:
        f = bench_dir / f"{s}.jsonl"
        if not f.is_file():
            raise ScoreInputError(f"{f}: the benchmark has no file for subset {s!r} "
                                  "(a benchmark directory as `rpm bench fetch|synth` writes it)")
        bench[s] = read_jsonl(f)
    return bench


def score(responses: str | os.PathLike, bench_dir: str | os.PathLike, estimator: str, out: str | os.PathLike,
          *, name: str, settings: ScoreSettings = ScoreSettings(), subsets: Sequence[str] | None = None,
          estimator_options: dict | None = None, reasoning_dir: str | os.PathLike | None = None,
          progress: bool = True, log=print) -> ScoreResult:
    """Check, reason, score and summarise; writes everything into `out` (see the module docstring).

    `estimator` is a spec (see resolve_estimator, which gets `estimator_options`); the responses are
    checked against the benchmark before any model is loaded."""

    bench_dir, out = Path(bench_dir), Path(out)
    cfg = settings.mi_config()          # bad settings fail before any work
    sizes = parse_sizes(settings.sizes)
    try:
        seeds = [int(s) for s in settings.seeds.split(",") if s.strip()] or [0]
    except ValueError:
        raise ScoreInputError(f"--seeds {settings.seeds!r}: expected comma-separated integers, e.g. '0,1,2'") from None
    bench = load_subsets(bench_dir, subsets, settings.id_subset)
    resp = read_responses(responses, bench, str(bench_dir))
    for sub in resp.ignored:
        log(f"note: responses for subset {sub!r} are not scored (not among --subset)")
    estimator = resolve_estimator(estimator, out, **(estimator_options or {}))
    write_responses(out / "responses", resp, bench)
    bench_files = {s: bench_dir / f"{s}.jsonl" for s in bench}

    dec = Decoding(max_new_tokens=settings.reason_max_new_tokens, batch_size=settings.reason_batch_size,
                   seed=settings.seed, stop=None)
    reasons, origin = reasoning_files(estimator, bench_files, out / "reasoning", dec,
                                      override=Path(reasoning_dir) if reasoning_dir else None, progress=progress)

    model, tok = load_model(estimator.policy, dtype=settings.dtype), load_tokenizer(estimator.policy)
    model.eval()
    dropped = {}
    npz = {}
    for sub in bench:
        npz[sub] = out / "logprobs" / f"{sub}.npz"
        log(f"scoring {sub}: {len(bench[sub])} samples, all pairs")
        _, d = compute(estimator.policy, bench_files[sub], npz[sub], responses=out / "responses" / f"{sub}.jsonl",
                       reasoning=reasons[sub], batch_size=settings.batch_size, max_length=settings.max_length,
                       overlong=settings.overlong, rpm=name, estimator_name=estimator.name, dtype=settings.dtype,
                       progress=progress, model=model, tok=tok)
        dropped[sub] = [x.to_dict() for x in d]
        for x in d:
            log(f"dropped sample {x.sample_id!r} of {sub}: {x.reason}")
    del model

    remi_rows = remi_table([load(npz[s]) for s in bench], cfg, id_subset=settings.id_subset)
    write_csv(out / "remi.csv", remi_rows, REMI_COLUMNS)

    embedder = load_embedder(settings.embedder, batch_size=settings.embed_batch_size)
    ood = [s for s in bench if s != settings.id_subset]
    bound_rows = bound_table(bench_dir, [(out / "responses", out / "logprobs")], embedder,
                             id_subset=settings.id_subset, subsets=ood, sizes=sizes, seeds=seeds, cfg=cfg,
                             embeddings=settings.embeddings, progress=progress,
                             null_permutations=settings.null_permutations)
    write_csv(out / "bound.csv", bound_rows, BOUND_COLUMNS)

    result = ScoreResult(out, remi_rows, bound_rows, origin, dropped,
                         [out / "remi.csv", out / "bound.csv", out / "remi.png", out / "summary.md"])
    figure(remi_rows, out / "remi.png", name)
    summary(result, name=name, responses=resp, bench_dir=bench_dir, estimator=estimator, settings=settings)
    return result


# ------------------------------------------------------------------ summary.md and the figure


def _ci(row: dict) -> str:
    lo, hi = row["ci_low"], row["ci_high"]
    if lo != lo or hi != hi:       # NaN: no bootstrap
        return "n/a"
    return f"[{lo:+.4f}, {hi:+.4f}]"


def figure(remi_rows: list[dict], path: Path, name: str) -> None:
    """R-EMI per subset with its bootstrap interval, coloured by shift type."""
    rows = [r for r in remi_rows if r["quantity"] == r["metric"]]
    colours = {"id": "#444444", "user": "#1f77b4", "character": "#ff7f0e", "dialogue": "#2ca02c"}
    fig, ax = new_figure(figsize=(max(5.0, 0.6 * len(rows) + 1.5), 3.4))
    for x, r in enumerate(rows):
        v, lo, hi, c = r["value"], r["ci_low"], r["ci_high"], colours.get(r["shift"], "black")
        if lo == lo and hi == hi:
            # Drawn as a segment, not error bars: a percentile interval need not contain the estimate.
            ax.plot([x, x], [lo, hi], color=c, lw=1.5, marker="_", markersize=8)
        ax.plot([x], [v], "o", color=c)
    ax.axhline(0.0, color="grey", lw=0.8, ls=":")
    ax.set_xticks(range(len(rows)), [lookup(r["subset"]).label for r in rows], rotation=45, ha="right")
    ax.set_ylabel(f"{rows[0]['metric'] if rows else 'R-EMI'} (nats / token)"
                  if rows and rows[0]["normalization"] == "mean" else "R-EMI (nats)")
    ax.set_title(f"{name}: R-EMI per subset, {rows[0]['confidence']:.0%} bootstrap interval" if rows else name)
    for shift, c in colours.items():
        ax.plot([], [], "o", color=c, label=shift)
    ax.legend(fontsize=7, ncol=4, loc="best")
    save_figure(fig, [path])


def summary(result: ScoreResult, *, name: str, responses: ResponseSet, bench_dir: Path, estimator: Estimator,
            settings: ScoreSettings) -> None:
    rows = result.remi_rows
    metric = next((r["metric"] for r in rows), "R-EMI")
    lines = [f"# {metric} of `{name}`", "",
             f"- responses: `{responses.source}`", f"- benchmark: `{bench_dir}`",
             f"- estimator: {estimator.source} (label `{estimator.name}`; policy `{estimator.policy}`)",
             f"- settings: normalization {settings.normalization}, pairs {settings.pairs}"
             + (f" (k = {settings.k})" if settings.pairs == "sampled" else "")
             + f", {settings.n_boot} bootstrap replicates, {settings.confidence:.0%} intervals, seed {settings.seed}, "
               f"embedder {settings.embedder}", ""]
    if responses.ignored:
        lines += [f"Not scored (responses given, subset not asked for): {', '.join(responses.ignored)}.", ""]
    lines += [f"## {metric} per subset", "", f"| subset | shift | n | MI model | MI golden | {metric} | interval |",
              "|---|---|---|---|---|---|---|"]
    by = {(r["subset"], r["quantity"]): r for r in rows}
    for sub in dict.fromkeys(r["subset"] for r in rows if r["quantity"] == metric):
        r = by[(sub, metric)]
        lines.append(f"| {sub} | {r['shift']} | {r['n']} | {by[(sub, 'MI_model')]['value']:+.4f} | "
                     f"{by[(sub, 'MI_golden')]['value']:+.4f} | {r['value']:+.4f} | {_ci(r)} |")
    lines += ["", f"## {metric}D({settings.id_subset} -> subset) per shift", "",
              f"Positive: the model keeps less of its {metric} on the shifted subset than on {settings.id_subset}.", "",
              f"| subset | shift | {metric}D | interval |", "|---|---|---|---|"]
    for r in rows:
        if r["quantity"] == metric + "D":
            lines.append(f"| {r['subset']} | {r['shift']} | {r['value']:+.4f} | {_ci(r)} |")
    lines += ["", "## Theorem 3.4 bound (all samples)", "",
              "bound = sqrt(2/3) * H_hat * sum_z sqrt(D_JS(P_Xz || Q_Xz)) + 8 * (delta_P + delta_Q)^(1/4)", "",
              "| target | shift | d_user | d_character | d_dialogue | h_hat | delta | shift term | output term | bound "
              "| R-EMID |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for b in result.bound_rows:
        if b["size"] == "all":
            lines.append(f"| {b['target']} | {b['shift']} | {b['d_user']:.4f} | {b['d_character']:.4f} | "
                         f"{b['d_dialogue']:.4f} | {b['h_hat']:.4f} | {b['delta']:.4f} | {b['shift_term']:.4f} | "
                         f"{b['output_term']:.4f} | {b['bound']:.4f} | {b['r_emid']:+.4f} |")
    lines += ["", "## Reasoning r", ""]
    lines += [f"- {sub}: {how}" for sub, how in result.reasoning.items()]
    dropped = {s: d for s, d in result.dropped.items() if d}
    lines += ["", "## Dropped samples", ""]
    lines += ([f"- {s}: {', '.join(x['sample_ID'] for x in d)} (over-long; see logprobs/{s}.npz meta)"
               for s, d in dropped.items()] or ["None: every sample was scored."])
    lines += ["", "## Files", "",
              "- `remi.csv`: MI_model, MI_golden and R-EMI per subset, R-EMID per OOD subset (columns of "
              "results/metrics/remi.csv)",
              "- `bound.csv`: every term of Theorem 3.4 per ID -> OOD shift and sample size (columns of "
              "results/metrics/bound.csv)",
              "- `remi.png`: R-EMI per subset with its interval",
              "- `logprobs/{subset}.npz`: the N x N log-prob matrices (golden and model responses)",
              "- `responses/{subset}.jsonl`: the checked responses, in benchmark order", ""]
    write_text(result.out / "summary.md", "\n".join(lines))

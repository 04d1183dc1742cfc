"""What bfloat16 does to R-EMI, in units of its bootstrap standard error, on a finished default run.

    python benchmarks/precision.py                       # the run in results/ (make run): N = 4 per subset
    python benchmarks/precision.py --sweep-severity 0    # the sweep's benchmark there: N = sweep.n_per_subset
    python benchmarks/precision.py --run DIR --rpm sft

Two measurements, per evaluation subset, on the run's own files (benchmark, CoRL reasoning, estimator):

scoring     the RPM's and the golden responses scored by the CoRL policy in float32 and in bfloat16;
            R-EMI from each; |R-EMI(bf16) - R-EMI(fp32)| / SE, SE = the standard deviation of the
            float32 estimate's bootstrap replicates. The config's rule: scoring may run in bfloat16 only
            if this stays under 0.1 on every subset.
generation  the RPM's responses generated again in the other dtype (bfloat16 where the run generated in
            float32, float32 where it generated in bfloat16) and both sets scored in float32: the two
            R-EMIs, their difference in SE units, and whether each lies inside the other's 95% interval.

With --sweep-severity the files are the sweep's at that severity (results/sweep/severity_S/): its
sweep.n_per_subset samples per subset give the rules the power the run's four samples lack, and the scoring
uses the sweep's K sampled negatives (sweep.negatives), as the sweep does. Timings of each scoring pass and
of the regeneration are printed too. Nothing under the run directory is modified: matrices and responses are
written to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rpm.io import write_jsonl  # noqa: E402
from rpm.metrics.logprobs import compute  # noqa: E402
from rpm.metrics.mi import MIConfig, remi  # noqa: E402
from rpm.runtime.generate import Decoding  # noqa: E402
from rpm.runtime.load import load_model, load_tokenizer  # noqa: E402
from rpm.runtime.precision import dtype_of  # noqa: E402
from rpm.train.respond import generate_for_subsets  # noqa: E402


def remi_of(m, cfg: MIConfig):
    r = remi(m.model.lp, m.model.ntok, m.golden.lp, m.golden.ntok, cfg)
    return r.remi


def score(policy, bench, reasoning, responses, out, dtype, model, tok, negatives, seed):
    t = time.perf_counter()
    m, _ = compute(policy, bench, out, responses=responses, reasoning=reasoning, dtype=dtype, progress=False,
                   model=model, tok=tok, batch_size=8, negatives=negatives, seed=seed)
    return m, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=str(REPO), help="Working directory of a finished default run (holds results/).")
    ap.add_argument("--base", default="smollm2")
    ap.add_argument("--rpm", default="sft", help="The RPM whose responses are scored and regenerated.")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--sweep-severity", default=None,
                    help="Use the sweep's files at this severity (e.g. 0) instead of the run's benchmark.")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    res = Path(args.run) / "results"
    policy = res / "estimator" / args.base / "coevolved" / "policy"
    rpm_dir = res / "rpm" / args.base / args.rpm
    if args.sweep_severity is not None:
        where = res / "sweep" / f"severity_{float(args.sweep_severity):g}"
        bench_dir, responses_dir, negatives = where / "bench", where / "responses", cfg["sweep"]["negatives"]
        reasoning_of = lambda b: where / "reasoning" / b.name  # noqa: E731
    else:
        bench_dir, responses_dir, negatives = res / "data" / "bench", rpm_dir / "responses", cfg["metrics"]["negatives"]

        def reasoning_of(b):
            old = res / "estimator" / "reasoning" / "corl" / b.name
            return old if old.is_file() else res / "estimator" / args.base / "reasoning" / "corl" / b.name
    benches = sorted(bench_dir.glob("*.jsonl"))
    benches = [b for b in benches if b.stem != "train" and (responses_dir / b.name).is_file()]
    if not benches:
        sys.exit(f"no responses under {responses_dir} for the benchmark files in {bench_dir}: run the default first")
    mi_cfg = MIConfig(normalization=cfg["metrics"]["normalization"], n_boot=args.n_boot, seed=cfg["seed"])
    run_dtype = dtype_of(cfg["precision"], "generation")
    other = "bfloat16" if run_dtype == "float32" else "float32"
    tmp = Path(tempfile.mkdtemp(prefix="rpm-precision-"))
    try:
        g = cfg["rpm"]["generate"]
        dec = Decoding(max_new_tokens=g["max_new_tokens"], repetition_penalty=g["repetition_penalty"],
                       batch_size=g["batch_size"], seed=cfg["seed"])
        regen = tmp / f"responses_{other}"
        t = time.perf_counter()
        for bench_file, rows in generate_for_subsets(str(rpm_dir / "model"), [str(b) for b in benches], dec,
                                                     dtype=other):
            write_jsonl(regen / f"{Path(bench_file).stem}.jsonl", rows)
        print(f"regenerated {args.rpm}'s responses on {len(benches)} subsets in {other} in "
              f"{time.perf_counter() - t:.0f} s (the run generated them in {run_dtype})", flush=True)

        models = {d: (load_model(policy, d).eval(), load_tokenizer(policy)) for d in ("float32", "bfloat16")}
        rows = []
        for b in benches:
            got = {}
            for label, responses, dtype in (("fp32", responses_dir / b.name, "float32"),
                                            ("bf16", responses_dir / b.name, "bfloat16"),
                                            ("regen", regen / b.name, "float32")):
                m, secs = score(policy, b, reasoning_of(b), responses, tmp / f"{b.stem}-{label}.npz", dtype,
                                *models[dtype], negatives, cfg["seed"])
                got[label] = (remi_of(m, mi_cfg), secs)
            base, _ = got["fp32"]
            se = float(np.nanstd(base.replicates, ddof=1))
            sb, sg = got["bf16"][0], got["regen"][0]
            row = {"subset": b.stem, "n": base.n, "remi_fp32": base.value, "se": se,
                   "scoring_bf16_remi": sb.value, "scoring_shift_in_se": abs(sb.value - base.value) / se,
                   "scoring_s_fp32": got["fp32"][1], "scoring_s_bf16": got["bf16"][1],
                   f"generation_{other}_remi": sg.value, "generation_shift_in_se": abs(sg.value - base.value) / se,
                   "generation_within_cis": bool(base.ci_low <= sg.value <= base.ci_high
                                                 and sg.ci_low <= base.value <= sg.ci_high)}
            rows.append(row)
            print(f"{b.stem:16s} N={base.n:3d}  R-EMI fp32 {base.value:+.4f} (SE {se:.4f}) | scoring bf16 "
                  f"{sb.value:+.4f}: {row['scoring_shift_in_se']:.3f} SE ({got['bf16'][1]:.1f} s vs "
                  f"{got['fp32'][1]:.1f} s) | responses generated in {other} {sg.value:+.4f}: "
                  f"{row['generation_shift_in_se']:.3f} SE, inside each other's CI: {row['generation_within_cis']}",
                  flush=True)
        worst = max(r["scoring_shift_in_se"] for r in rows)
        t32, t16 = sum(r["scoring_s_fp32"] for r in rows), sum(r["scoring_s_bf16"] for r in rows)
        print(f"scoring: largest shift {worst:.3f} SE over {len(rows)} subsets (rule: < 0.1 for bf16 scoring); "
              f"time fp32 {t32:.0f} s, bf16 {t16:.0f} s ({t32 / t16:.2f}x)")
        print(f"generation: largest shift {max(r['generation_shift_in_se'] for r in rows):.3f} SE; inside each "
              f"other's 95% CI on {sum(r['generation_within_cis'] for r in rows)} of {len(rows)} subsets")
        print(json.dumps(rows))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""The bound's bootstrap replicates and permutation nulls: one decomposition per replicate (the path before)
against one stacked decomposition of draw-count weightings, timed in the same run.

    python benchmarks/bound.py                      # the sweep's shape: N = 64 per side, MiniLM's 384 dimensions
    python benchmarks/bound.py --n 128 --threads 2

old  the previous code, kept here: per replicate, the resampled rows' three Gram matrices per divergence
     (6 divergences), one eigen-decomposition each; per permutation, the same on the split rows
new  bound.bound_replicates / divergence.jsd_null: every replicate a weighting of the pooled samples, decomposed
     over the samples it uses, all replicates in one LAPACK call (rpm/metrics/divergence.py)

Printed: seconds for each path, the ratio, and the largest difference between the two paths' values.
Random embeddings and log-prob matrices of the given shape: the cost depends on the shapes, not the values.
"""

from __future__ import annotations

import argparse
import os
import time


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64, help="samples per side [default: 64, the sweep's N]")
    ap.add_argument("--dim", type=int, default=384, help="embedding dimensions [default: 384, MiniLM]")
    ap.add_argument("--replicates", type=int, default=1000, help="bootstrap replicates [default: 1000, n_boot]")
    ap.add_argument("--permutations", type=int, default=200, help="null permutations [default: 200]")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads [default: 1, as the run's jobs get]")
    args = ap.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    import numpy as np

    from rpm.metrics.bound import SubsetData, bound_replicates, h_hat, theorem_3_4
    from rpm.metrics.divergence import jsd_null
    from rpm.metrics.matrices import LogprobMatrices, Side
    from rpm.metrics.mi import MIConfig, subset_seed

    rng = np.random.default_rng(0)
    n, d = args.n, args.dim

    def side():
        ntok = np.tile(rng.integers(60, 130, n), (n, 1))
        return Side(rng.normal(-2.0, 0.5, (n, n)) * ntok, ntok, rng.random(n) * 2 * ntok[0])

    def subset(name):
        emb = lambda: rng.normal(size=(n, d))  # noqa: E731
        m = LogprobMatrices([f"{name}-{i}" for i in range(n)], side(), side(), {"rpm": "r", "estimator": "e"})
        inputs = {z: emb() for z in ("user_persona", "agent_character", "dialogue_context", "joint")}
        return SubsetData(name, inputs, emb(), emb(), m)

    def entropy_of_rows(x):
        gram = x @ x.T if x.shape[0] <= x.shape[1] else x.T @ x
        lam = np.linalg.eigvalsh((gram + gram.T) / 2)
        lam = lam[lam > 1e-12]
        lam = lam / lam.sum()
        return float(-(lam * np.log(lam)).sum())

    def old_jsd(ep, eq):
        up = ep / np.linalg.norm(ep, axis=1, keepdims=True)
        uq = eq / np.linalg.norm(eq, axis=1, keepdims=True)
        x, y = up / np.sqrt(len(up)), uq / np.sqrt(len(uq))
        value = entropy_of_rows(np.vstack([x, y]) / np.sqrt(2)) - (entropy_of_rows(x) + entropy_of_rows(y)) / 2
        return min(max(value, 0.0), np.log(2))

    def old_bound(ps, qs):
        d = [old_jsd(ps.inputs[z], qs.inputs[z]) for z in ("user_persona", "agent_character", "dialogue_context")]
        old_jsd(ps.inputs["joint"], qs.inputs["joint"])
        return theorem_3_4(*d, h_hat([ps.matrices, qs.matrices]), old_jsd(ps.model_responses, ps.golden_responses),
                           old_jsd(qs.model_responses, qs.golden_responses)).bound

    p, q = subset("id_test"), subset("user_de")
    cfg = MIConfig(seed=0)
    print(f"N = {n} per side, {d} dimensions, {args.replicates} replicates, {args.permutations} permutations, "
          f"{args.threads} thread(s)", flush=True)

    t = time.perf_counter()
    new = bound_replicates(p, q, cfg, args.replicates)
    t_new = time.perf_counter() - t
    t = time.perf_counter()
    draw_p = np.random.default_rng([*subset_seed(0, p.name), 1]).integers(0, n, size=(args.replicates, n))
    draw_q = np.random.default_rng([*subset_seed(0, q.name), 1]).integers(0, n, size=(args.replicates, n))
    worst = 0.0
    for b in range(args.replicates):
        if len(set(draw_p[b])) > 1 and len(set(draw_q[b])) > 1:
            worst = max(worst, abs(old_bound(p.take(draw_p[b]), q.take(draw_q[b])) - new["bound"][b]))
    t_old = time.perf_counter() - t
    # R-EMI's replicates (mi.remi) are inside t_new only: both paths compute them the same way.
    print(f"bootstrap replicates: old {t_old:.2f} s, new {t_new:.2f} s, {t_old / t_new:.1f}x "
          f"(largest bound difference {worst:.1e})", flush=True)

    a, c = p.inputs["user_persona"], q.inputs["user_persona"]
    for paired in (False, True):
        t = time.perf_counter()
        test = jsd_null(a, c, permutations=args.permutations, seed=0, paired=paired)
        t_new = time.perf_counter() - t
        t = time.perf_counter()
        r, pooled, values = np.random.default_rng(0), np.vstack([a, c]), []
        for _ in range(args.permutations):
            if paired:
                swap = r.random(n) < 0.5
                values.append(old_jsd(np.where(swap[:, None], c, a), np.where(swap[:, None], a, c)))
            else:
                order = r.permutation(2 * n)
                values.append(old_jsd(pooled[order[:n]], pooled[order[n:]]))
        t_old = time.perf_counter() - t
        print(f"null ({'paired' if paired else 'pooled'}): old {t_old:.2f} s, new {t_new:.2f} s, "
              f"{t_old / t_new:.1f}x (null means {np.mean(values):.6f} / {test.null_mean:.6f})", flush=True)


if __name__ == "__main__":
    main()

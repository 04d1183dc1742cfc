"""Theorem 3.4: the upper bound on R-EMID(P -> Q), every term of it, and the sample-size sweep of
Figure 5a.

    bound = sqrt(2/3) * H_hat * sum_{z in user, character, dialogue} sqrt(D_JS(P_Xz || Q_Xz))  (shift term)
            + 8 * Delta^(1/4)                                                                  (output term)
    Delta = delta_P + delta_Q,  delta_P = D_JS(P_Ytheta || P_Y),  delta_Q = D_JS(Q_Ytheta || Q_Y)

How each term is estimated here
    D_JS(P_Xz || Q_Xz)  representation JSD (divergence.py) between the embeddings of component z of
                        the ID samples (P) and of the OOD subset's samples (Q).
    delta_P, delta_Q    representation JSD between the embeddings of the RPM's responses and of the
                        golden responses on the same samples, on the ID and the OOD side. The sets are
                        compared as sets (marginals P_Ytheta vs P_Y), not pair by pair.
    H_hat               the theorem's max_x [H(Q_{Y|x,r}) + H(P_{Ytheta|x,r})]. Neither conditional is
                        known, so both are read off the estimator q(y | x, r) that scores R-EMI. By the
                        chain rule, H(Y | x, r) = E_y [sum_t H(q(. | x, r, y_<t))]; we evaluate the
                        inner sum along one observed response: the golden response for the first term
                        and the RPM's response for the second (the RPM never sees r, so the estimator
                        stands in for P_{Ytheta|x,r} too). The next-token entropies come for free from
                        the scorer's diagonal pass (`rpm logprobs` stores them). With the default
                        per-token normalisation each sum is divided by the response's token count, so
                        H_hat is in nats per token, the unit of per-token R-EMID; with "sum" it stays
                        in nats per response, the unit of summed R-EMID. H_hat is the maximum over the
                        samples of both sides (P and Q), as max_{x in X} ranges over every input.
                        Why the predictive entropy rather than -log q(y | x, r) of the response: the
                        latter is a cross-entropy, larger than the entropy by a KL term that measures
                        the estimator's misfit, and noisier; the entropy of q's own next-token
                        distribution is what H of the model's conditional means.

Against the null (size "all" rows only): every D_JS term (the three components, the joint, delta_P and
delta_Q) comes with its permutation null's mean and p-value (divergence.jsd_null), and the bound is also
computed on the null-corrected terms, max(D - null mean, 0): `bound_null_corrected`. `tightness` is
bound / |R-EMID| (how many times the bound exceeds what it bounds; 1 would be tight).

The EMID authors' scale-adjusted variant (Oh et al. 2025, their public release
deeplearning-wisc/mllmshift-emi, function EMIDupperbound with no entropy scaler): the bound with the
entropy factor and the constants dropped, each output divergence taken to the 1/4 separately:
    sum_z sqrt(D_JS(P_Xz || Q_Xz)) + delta_P^(1/4) + delta_Q^(1/4)
(their release applies it to two input components, image and text; here to the three RPM components).
The paper text does not define it; the release does. The paper's Table 12 values (about 0.11 for
divergences of 0.2-0.5) match neither the theorem nor this variant on the printed divergences, so the
scale the authors used for Table 12 is not recoverable from the paper.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np

from rpm.core.errors import RpmInputError
from rpm.metrics.divergence import jsd_null, jsd_of_weights, representation_jsd, unit_rows
from rpm.metrics.inputs import COMPONENTS
from rpm.metrics.matrices import LogprobMatrices, Side
from rpm.metrics.mi import MIConfig, remi, subset_seed

SQRT_2_3 = math.sqrt(2.0 / 3.0)


@dataclass(frozen=True)
class Bound:
    d_user: float
    d_character: float
    d_dialogue: float
    h_hat: float
    delta_p: float
    delta_q: float
    delta: float
    sum_sqrt_d: float
    shift_term: float
    output_term: float
    bound: float
    bound_scale_adjusted: float

    def to_dict(self) -> dict:
        return asdict(self)


def theorem_3_4(d_user: float, d_character: float, d_dialogue: float, h_hat: float,
                delta_p: float, delta_q: float) -> Bound:
    """Eq. (1)/(3) of the paper on given terms, returning every term."""
    for name, v in (("d_user", d_user), ("d_character", d_character), ("d_dialogue", d_dialogue),
                    ("h_hat", h_hat), ("delta_p", delta_p), ("delta_q", delta_q)):
        if not (v >= 0 and math.isfinite(v)):
            raise RpmInputError(f"{name} must be a finite non-negative number, got {v!r}")
    shift, output = shift_and_output_terms(d_user, d_character, d_dialogue, h_hat, delta_p, delta_q)
    return Bound(d_user, d_character, d_dialogue, h_hat, delta_p, delta_q, delta_p + delta_q,
                 math.sqrt(d_user) + math.sqrt(d_character) + math.sqrt(d_dialogue), float(shift), float(output),
                 float(shift + output), scale_adjusted(d_user, d_character, d_dialogue, delta_p, delta_q))


def shift_and_output_terms(d_user, d_character, d_dialogue, h_hat, delta_p, delta_q):
    """The theorem's two terms, elementwise: on floats (theorem_3_4) or on arrays of bootstrap replicates."""
    shift = SQRT_2_3 * h_hat * (np.sqrt(d_user) + np.sqrt(d_character) + np.sqrt(d_dialogue))
    return shift, 8.0 * (delta_p + delta_q) ** 0.25


def scale_adjusted(d_user: float, d_character: float, d_dialogue: float, delta_p: float, delta_q: float) -> float:
    """The EMID release's scale-adjusted bound, over the three RPM input components."""
    return (math.sqrt(d_user) + math.sqrt(d_character) + math.sqrt(d_dialogue)
            + delta_p ** 0.25 + delta_q ** 0.25)


def predictive_entropy(side: Side, normalization: str = "mean") -> np.ndarray:
    """Per sample: the estimator's next-token entropy summed along the response (or its per-token mean)."""
    if side.ent is None:
        raise RpmInputError("the log-prob file has no entropies; re-run `rpm logprobs` (it stores them)")
    ent = np.asarray(side.ent, dtype=np.float64)
    if normalization == "sum":
        return ent
    if normalization == "mean":
        return ent / np.diag(side.ntok)
    raise RpmInputError(f"normalization must be 'mean' or 'sum', got {normalization!r}")


def h_hat(sides: Iterable[LogprobMatrices], normalization: str = "mean") -> float:
    """max over every sample of (entropy along the golden response + entropy along the RPM's response)."""
    return max(float(sample_entropy_sums(m, normalization).max()) for m in sides)


def sample_entropy_sums(m: LogprobMatrices, normalization: str = "mean") -> np.ndarray:
    """Per sample: the entropy along its golden response plus the entropy along the RPM's (H_hat's max runs
    over these)."""
    if m.model is None:
        raise RpmInputError(f"{m.path or 'log-prob file'}: holds no model responses; H_hat needs both")
    return predictive_entropy(m.golden, normalization) + predictive_entropy(m.model, normalization)


# ------------------------------------------------------------------ one subset's data, and the sweep


@dataclass
class SubsetData:
    """Everything the bound needs from one subset, rows aligned to `matrices.sample_ids`."""

    name: str
    inputs: dict[str, np.ndarray]      # component -> (n, d) embeddings; COMPONENTS plus optionally "joint"
    model_responses: np.ndarray        # (n, d)
    golden_responses: np.ndarray       # (n, d)
    matrices: LogprobMatrices

    def __post_init__(self):
        n = self.matrices.n
        for key, e in [*self.inputs.items(), ("model_responses", self.model_responses),
                       ("golden_responses", self.golden_responses)]:
            if len(e) != n:
                raise RpmInputError(f"subset {self.name}: {key} has {len(e)} rows for {n} samples")

    @property
    def n(self) -> int:
        return self.matrices.n

    def take(self, idx: np.ndarray) -> "SubsetData":
        return SubsetData(self.name, {k: v[idx] for k, v in self.inputs.items()}, self.model_responses[idx],
                          self.golden_responses[idx], self.matrices.take(idx))


def bound_for(p: SubsetData, q: SubsetData, normalization: str = "mean") -> tuple[Bound, float | None]:
    """The bound between two subsets, and the joint D_JS(P_X || Q_X) when "joint" embeddings exist."""
    d = {z: representation_jsd(p.inputs[z], q.inputs[z]) for z in COMPONENTS}
    joint = (representation_jsd(p.inputs["joint"], q.inputs["joint"])
             if "joint" in p.inputs and "joint" in q.inputs else None)
    b = theorem_3_4(d["user_persona"], d["agent_character"], d["dialogue_context"],
                    h_hat([p.matrices, q.matrices], normalization),
                    representation_jsd(p.model_responses, p.golden_responses),
                    representation_jsd(q.model_responses, q.golden_responses))
    return b, joint


def r_emid(p: LogprobMatrices, q: LogprobMatrices, cfg: MIConfig) -> float:
    """Point estimate of R-EMID(P -> Q) (no bootstrap), for placing beside the bound."""
    quick = MIConfig(cfg.normalization, cfg.pairs, cfg.k, cfg.seed, 0, cfg.confidence)
    rp = remi(p.model.lp, p.model.ntok, p.golden.lp, p.golden.ntok, quick).remi.value
    rq = remi(q.model.lp, q.model.ntok, q.golden.lp, q.golden.ntok, quick).remi.value
    return rp - rq


REPLICATE_QUANTITIES = ("d_user", "d_character", "d_dialogue", "d_joint", "bound", "r_emid")


def bound_replicates(p: SubsetData, q: SubsetData, cfg: MIConfig, n_boot: int) -> dict[str, np.ndarray]:
    """Bootstrap replicates (n_boot each) of every divergence, the bound and R-EMID between P and Q.

    Each side's samples are resampled with a seed that depends only on the config's seed and the subset's
    name, so two calls on subsets of one name and size draw the same indices: the controlled-shift sweep
    pairs its severities this way (its samples are nested, index by index). R-EMID's replicates are those
    of mi.remi under the same per-subset seeds (copies of one sample are not negative pairs there); a
    replicate with no value (every draw one sample) is NaN and counted by the caller."""
    boot = MIConfig(cfg.normalization, cfg.pairs, cfg.k, cfg.seed, n_boot, cfg.confidence)
    rp = remi(p.matrices.model.lp, p.matrices.model.ntok, p.matrices.golden.lp, p.matrices.golden.ntok, boot,
              boot_seed=subset_seed(cfg.seed, p.name)).remi.replicates
    rq = remi(q.matrices.model.lp, q.matrices.model.ntok, q.matrices.golden.lp, q.matrices.golden.ntok, boot,
              boot_seed=subset_seed(cfg.seed, q.name)).remi.replicates
    out = {k: np.full(n_boot, np.nan) for k in REPLICATE_QUANTITIES}
    out["r_emid"] = rp - rq
    draw_p = np.random.default_rng([*subset_seed(cfg.seed, p.name), 1]).integers(0, p.n, size=(n_boot, p.n))
    draw_q = np.random.default_rng([*subset_seed(cfg.seed, q.name), 1]).integers(0, q.n, size=(n_boot, q.n))
    # One sample drawn n times has no distribution to compare: that replicate stays NaN.
    ok = np.array([len(np.unique(a)) > 1 and len(np.unique(b)) > 1 for a, b in zip(draw_p, draw_q)])
    if not ok.any():
        return out
    # Each draw as weights over the samples (a sample drawn k times weighs k/n): the divergences of every
    # replicate at once (divergence.jsd_of_weights), equal to bound_for on the resampled rows.
    wp = np.stack([np.bincount(a, minlength=p.n) for a in draw_p[ok]]) / p.n
    wq = np.stack([np.bincount(b, minlength=q.n) for b in draw_q[ok]]) / q.n
    zp, zq = np.zeros_like(wp), np.zeros_like(wq)

    def between(a, c, w_a, w_c, z_a, z_c):      # sets a (weights w_a) and c (w_c), pooled as [a; c]
        return jsd_of_weights(np.vstack([unit_rows(a), unit_rows(c)]), np.hstack([w_a, z_c]), np.hstack([z_a, w_c]))

    d = {z: between(p.inputs[z], q.inputs[z], wp, wq, zp, zq) for z in COMPONENTS}
    delta_p = between(p.model_responses, p.golden_responses, wp, wp, zp, zp)
    delta_q = between(q.model_responses, q.golden_responses, wq, wq, zq, zq)
    per_p, per_q = sample_entropy_sums(p.matrices, cfg.normalization), sample_entropy_sums(q.matrices,
                                                                                           cfg.normalization)
    h = np.maximum(per_p[draw_p[ok]].max(axis=1), per_q[draw_q[ok]].max(axis=1))
    out["d_user"][ok], out["d_character"][ok] = d["user_persona"], d["agent_character"]
    out["d_dialogue"][ok] = d["dialogue_context"]
    shift, output = shift_and_output_terms(d["user_persona"], d["agent_character"], d["dialogue_context"], h,
                                           delta_p, delta_q)
    out["bound"][ok] = shift + output
    if "joint" in p.inputs and "joint" in q.inputs:
        out["d_joint"][ok] = between(p.inputs["joint"], q.inputs["joint"], wp, wq, zp, zq)
    return out


def parse_sizes(text: str | Sequence) -> list[int | str]:
    """'10,30,50,100,all' -> [10, 30, 50, 100, 'all']."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[int | str] = []
    for item in items:
        item = str(item).strip()
        if item == "all":
            out.append("all")
            continue
        try:
            value = int(item)
        except ValueError:
            raise RpmInputError(f"sample size {item!r} is neither a positive integer nor 'all'") from None
        if value < 2:
            raise RpmInputError(f"sample size {value} is too small: CLUB and the divergences need at least 2")
        out.append(value)
    if not out:
        raise RpmInputError("no sample sizes given")
    return out


def subsample(n: int, size: int | str, seed: int, name: str) -> np.ndarray:
    """Seeded indices of a subsample without replacement (all indices for 'all' or size >= n)."""
    if size == "all" or size >= n:
        return np.arange(n)
    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])
    return np.sort(rng.choice(n, size=size, replace=False))


NULL_TERMS = ("d_user", "d_character", "d_dialogue", "d_joint", "delta_p", "delta_q")
TERM_COMPONENT = {"d_user": "user_persona", "d_character": "agent_character", "d_dialogue": "dialogue_context",
                  "d_joint": "joint"}
NULL_COLUMNS = [f"{t}_null_{x}" for t in NULL_TERMS for x in ("mean", "p")] + [
    "bound_null_corrected", "tightness", "null_permutations"]


def null_columns(p: SubsetData, q: SubsetData, b: Bound, r_emid_value: float, permutations: int, seed: int,
                 cache: dict | None = None) -> dict:
    """Each term's permutation null, the null-corrected bound and the tightness (module docstring).
    `cache` holds nulls that do not change between calls (an ID side's delta_P, a subset's components)."""
    cache = {} if cache is None else cache
    out: dict = {}

    def null(key, a, c, paired):
        if key not in cache:
            cache[key] = jsd_null(a, c, permutations=permutations, seed=seed, paired=paired)
        return cache[key]

    for term in NULL_TERMS:
        if term in ("delta_p", "delta_q"):
            side = p if term == "delta_p" else q
            key = ("delta", side.name, side.matrices.label("rpm"), side.matrices.label("estimator"),
                   tuple(side.matrices.sample_ids))
            t = null(key, side.model_responses, side.golden_responses, True)
        elif TERM_COMPONENT[term] in p.inputs and TERM_COMPONENT[term] in q.inputs:
            z = TERM_COMPONENT[term]
            key = ("input", p.name, q.name, z, tuple(p.matrices.sample_ids), tuple(q.matrices.sample_ids))
            t = null(key, p.inputs[z], q.inputs[z], False)
        else:
            t = None
        out[f"{term}_null_mean"] = t.null_mean if t else float("nan")
        out[f"{term}_null_p"] = t.p if t else float("nan")

    def corrected(term):
        return max(getattr(b, term) - out[f"{term}_null_mean"], 0.0)

    nb = theorem_3_4(corrected("d_user"), corrected("d_character"), corrected("d_dialogue"), b.h_hat,
                     corrected("delta_p"), corrected("delta_q"))
    out["bound_null_corrected"] = nb.bound
    out["tightness"] = b.bound / abs(r_emid_value) if r_emid_value else float("inf")
    out["null_permutations"] = permutations
    return out


def sample_size_sweep(p: SubsetData, q: SubsetData, sizes: Sequence[int | str], seeds: Sequence[int],
                      cfg: MIConfig = MIConfig(), *, null_permutations: int = 0,
                      null_cache: dict | None = None) -> list[dict]:
    """Figure 5a: the bound estimated on n samples per side, for each size and seed.

    Each row holds every term, the bound, the scale-adjusted variant, R-EMID on all samples
    (`r_emid`, what the bound should approach) and on the same subsample (`r_emid_sub`). The size
    "all" does not depend on the seed and appears once (seed empty); with null_permutations > 0 it also
    carries NULL_COLUMNS (empty on the other sizes).
    """
    full = r_emid(p.matrices, q.matrices, cfg)
    rows = []
    for size in sizes:
        for seed in ([None] if size == "all" else seeds):
            ip = subsample(p.n, size, seed or 0, p.name)
            iq = subsample(q.n, size, seed or 0, q.name)
            ps, qs = p.take(ip), q.take(iq)
            b, joint = bound_for(ps, qs, cfg.normalization)
            rows.append({
                "source": p.name, "target": q.name, "size": str(size), "seed": "" if seed is None else seed,
                "n_source": len(ip), "n_target": len(iq), **b.to_dict(),
                "d_joint": joint if joint is not None else float("nan"),
                "r_emid": full, "r_emid_sub": r_emid(ps.matrices, qs.matrices, cfg),
            })
            if size == "all" and null_permutations:
                rows[-1].update(null_columns(p, q, b, full, null_permutations, cfg.seed, null_cache))
    return rows

"""Representation Jensen-Shannon divergence between two sets of texts (the D_JS of Theorem 3.4).

The estimate (as the EMID authors, Oh et al. 2025, compute it)
    1. embed every text and L2-normalise each embedding e (so e e^T has trace 1);
    2. rho = (1/n) sum e e^T, the second-moment matrix normalised to trace 1: a density matrix;
    3. H(rho) = -sum_k lambda_k log lambda_k over its eigenvalues (von Neumann entropy, natural log);
    4. D_JS(P || Q) = H((rho_P + rho_Q) / 2) - (H(rho_P) + H(rho_Q)) / 2.
    It is 0 for identical sets, symmetric, and at most log 2 (reached when the two sets span
    orthogonal subspaces). Each set is trace-normalised before mixing, so the mixture weighs P and Q
    equally whatever their sizes (the EMID release mixes the unnormalised second-moment matrices,
    which weighs them by sample count; the two agree for equal sizes).

Computed from Gram matrices: rho = A^T A with A the unit rows scaled by 1/sqrt(n) shares its non-zero eigenvalues with
the n x n matrix A A^T, so the eigen-decomposition is over the samples or the embedding dimension, whichever
is smaller. A bootstrap draw or a permutation split is a weighting of one pooled row set (`jsd_of_weights`),
so a null's or a bootstrap's replicates are decomposed in one stacked call, each over the samples it uses.

Its null (`jsd_null`): D_JS of two finite samples of one distribution is not 0 (two draws of 4 ID
dialogues give ~0.5), so every estimate is reported beside a permutation null from the same samples. Two
sets of different samples (an input component, ID vs OOD) are pooled and split at random into sets of the
original sizes; two sets paired by sample (an RPM's and the golden responses to the same inputs) have
each pair's members swapped at random. p = (1 + #{null >= estimate}) / (1 + permutations).

The embedders are `rpm.runtime.embed`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rpm.core.errors import RpmInputError
from rpm.runtime.embed import Embedder

# ------------------------------------------------------------------ the divergence itself


def density_matrix(emb: np.ndarray) -> np.ndarray:
    """Trace-1 second-moment matrix of L2-normalised rows."""
    e = unit_rows(emb)
    rho = e.T @ e
    return rho / np.trace(rho)


def von_neumann_entropy(rho: np.ndarray) -> float:
    """-tr(rho log rho) in nats; eigenvalues at or below round-off are 0 log 0 = 0."""
    lam = np.linalg.eigvalsh((rho + rho.T) / 2)
    lam = lam[lam > 1e-12]
    lam = lam / lam.sum()
    return float(-(lam * np.log(lam)).sum())


def unit_rows(emb: np.ndarray) -> np.ndarray:
    e = np.asarray(emb, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] == 0:
        raise RpmInputError(f"expected a non-empty (n, d) embedding matrix, got shape {e.shape}")
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    if (norms == 0).any():
        raise RpmInputError("an embedding is the zero vector; it has no direction to normalise")
    return e / norms


_BATCH = 256    # weightings decomposed per LAPACK call: bounds the stacked matrices' memory


def weighted_entropies(units: np.ndarray, weights: np.ndarray, gram: np.ndarray | None = None) -> np.ndarray:
    """Von Neumann entropy of rho_w = sum_i w_i u_i u_i^T for each row w of `weights` (B, n; each sums to 1).

    Bootstrap draws, permutation splits and the mixture of two sets are all such weightings of one pooled
    row set, so every replicate is one row of `weights` and all of them go to LAPACK as one stacked call.
    rho_w = A^T A with A's rows sqrt(w_i) u_i, whose non-zero eigenvalues are those of A A^T =
    W^1/2 G W^1/2 (G = the Gram matrix of the unit rows): only the rows a weighting uses enter, so a
    bootstrap draw (~63% distinct samples) decomposes a matrix of its distinct samples, not of its n draws;
    when more rows are used than the embedding has dimensions, the d x d matrix A^T A is smaller and used."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    rows, inverse = np.unique(w, axis=0, return_inverse=True)    # e.g. a permutation null's one mixture
    used = rows > 0
    m = int(used.sum(axis=1).max())
    out = np.empty(len(rows))
    g = (units @ units.T if gram is None else gram) if m <= units.shape[1] else None
    for start in range(0, len(rows), _BATCH):
        block, mask = rows[start:start + _BATCH], used[start:start + _BATCH]
        if g is not None:
            support = np.argsort(~mask, axis=1, kind="stable")[:, :m]        # used rows first, then padding
            root = np.sqrt(np.take_along_axis(block, support, axis=1))      # padding has weight 0: zero rows
            mats = g[support[:, :, None], support[:, None, :]] * root[:, :, None] * root[:, None, :]
        else:
            mats = np.einsum("bi,id,ie->bde", block, units, units, optimize=True)
        lam = np.linalg.eigvalsh(mats)
        keep = lam > 1e-12      # eigenvalues at or below round-off are 0 log 0 = 0
        lam = np.where(keep, lam, 0.0)
        lam = lam / lam.sum(axis=1, keepdims=True)
        out[start:start + _BATCH] = -np.where(keep, lam * np.log(np.where(keep, lam, 1.0)), 0.0).sum(axis=1)
    return out[inverse.reshape(-1)]


def jsd_of_weights(units: np.ndarray, wa: np.ndarray, wc: np.ndarray, gram: np.ndarray | None = None) -> np.ndarray:
    """D_JS between the weightings wa and wc (rows of (B, n), each summing to 1) of one unit row set:
    H((rho_a + rho_c) / 2) - (H(rho_a) + H(rho_c)) / 2, one value per row."""
    if gram is None and len(units) <= units.shape[1]:
        gram = units @ units.T
    value = weighted_entropies(units, (wa + wc) / 2, gram) - (
        weighted_entropies(units, wa, gram) + weighted_entropies(units, wc, gram)) / 2
    # Round-off can leave a tiny negative (identical sets) or a hair above log 2.
    return np.clip(value, 0.0, math.log(2))


def split_weights(n_a: int, n_c: int) -> tuple[np.ndarray, np.ndarray]:
    """The uniform weightings of the first n_a and the last n_c rows of a pooled set, as (1, n) rows."""
    wa, wc = np.zeros((1, n_a + n_c)), np.zeros((1, n_a + n_c))
    wa[0, :n_a], wc[0, n_a:] = 1.0 / n_a, 1.0 / n_c
    return wa, wc


def _jsd_units(up: np.ndarray, uq: np.ndarray) -> float:
    return float(jsd_of_weights(np.vstack([up, uq]), *split_weights(len(up), len(uq)))[0])


def representation_jsd(emb_p: np.ndarray, emb_q: np.ndarray) -> float:
    """D_JS between the embedding sets P and Q, in nats (0 <= D_JS <= log 2)."""
    up, uq = unit_rows(emb_p), unit_rows(emb_q)
    if up.shape[1] != uq.shape[1]:
        raise RpmInputError(f"embedding dimensions differ: {up.shape[1]} vs {uq.shape[1]}")
    return _jsd_units(up, uq)


@dataclass(frozen=True)
class NullTest:
    """An estimate beside its permutation null: the null's mean and the one-sided p of the estimate."""

    value: float
    null_mean: float
    p: float
    permutations: int


def jsd_null(emb_p: np.ndarray, emb_q: np.ndarray, *, permutations: int, seed: int, paired: bool = False) -> NullTest:
    """D_JS(P, Q) and its permutation null (module docstring): pooled and re-split, or swapped within pairs."""
    up, uq = unit_rows(emb_p), unit_rows(emb_q)
    if up.shape[1] != uq.shape[1]:
        raise RpmInputError(f"embedding dimensions differ: {up.shape[1]} vs {uq.shape[1]}")
    if paired and len(up) != len(uq):
        raise RpmInputError(f"paired sets differ in size: {len(up)} vs {len(uq)}")
    if permutations < 1:
        raise RpmInputError("permutations must be >= 1")
    value = _jsd_units(up, uq)
    rng = np.random.default_rng(seed)
    n_p, n_q = len(up), len(uq)
    wa, wc = np.zeros((permutations, n_p + n_q)), np.zeros((permutations, n_p + n_q))
    for b in range(permutations):      # the draws in the order of one loop per permutation
        if paired:      # pooled rows: P's then Q's; each pair's members swapped when `swap`
            swap = rng.random(n_p) < 0.5
            a = np.where(swap, np.arange(n_p) + n_p, np.arange(n_p))
            c = np.where(swap, np.arange(n_p), np.arange(n_p) + n_p)
        else:
            order = rng.permutation(n_p + n_q)
            a, c = order[:n_p], order[n_p:]
        wa[b, a], wc[b, c] = 1.0 / n_p, 1.0 / n_q
    null = jsd_of_weights(np.vstack([up, uq]), wa, wc)
    p = (1 + int((null >= value - 1e-12).sum())) / (1 + permutations)
    return NullTest(value, float(null.mean()), float(p), permutations)


# ------------------------------------------------------------------ embedders


def embed_components(texts: dict[str, Sequence[str]], embedder: Embedder) -> dict[str, np.ndarray]:
    """Embed each component's texts (e.g. the output of inputs.component_texts)."""
    return {name: embedder.encode(list(values)) for name, values in texts.items()}

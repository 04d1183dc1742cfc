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
is smaller.

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
    e = _unit_rows(emb)
    rho = e.T @ e
    return rho / np.trace(rho)


def von_neumann_entropy(rho: np.ndarray) -> float:
    """-tr(rho log rho) in nats; eigenvalues at or below round-off are 0 log 0 = 0."""
    lam = np.linalg.eigvalsh((rho + rho.T) / 2)
    lam = lam[lam > 1e-12]
    lam = lam / lam.sum()
    return float(-(lam * np.log(lam)).sum())


def _unit_rows(emb: np.ndarray) -> np.ndarray:
    e = np.asarray(emb, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] == 0:
        raise RpmInputError(f"expected a non-empty (n, d) embedding matrix, got shape {e.shape}")
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    if (norms == 0).any():
        raise RpmInputError("an embedding is the zero vector; it has no direction to normalise")
    return e / norms


def _entropy_of_rows(a: np.ndarray) -> float:
    """Von Neumann entropy of A^T A (trace 1), from the eigenvalues of whichever of A A^T and A^T A is smaller
    (they share their non-zero eigenvalues)."""
    gram = a @ a.T if a.shape[0] <= a.shape[1] else a.T @ a
    lam = np.linalg.eigvalsh((gram + gram.T) / 2)
    lam = lam[lam > 1e-12]
    lam = lam / lam.sum()
    return float(-(lam * np.log(lam)).sum())


def _jsd_units(up: np.ndarray, uq: np.ndarray) -> float:
    a, b = up / math.sqrt(len(up)), uq / math.sqrt(len(uq))
    value = _entropy_of_rows(np.vstack([a, b]) / math.sqrt(2)) - (_entropy_of_rows(a) + _entropy_of_rows(b)) / 2
    # Round-off can leave a tiny negative (identical sets) or a hair above log 2.
    return float(min(max(value, 0.0), math.log(2)))


def representation_jsd(emb_p: np.ndarray, emb_q: np.ndarray) -> float:
    """D_JS between the embedding sets P and Q, in nats (0 <= D_JS <= log 2)."""
    up, uq = _unit_rows(emb_p), _unit_rows(emb_q)
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
    up, uq = _unit_rows(emb_p), _unit_rows(emb_q)
    if up.shape[1] != uq.shape[1]:
        raise RpmInputError(f"embedding dimensions differ: {up.shape[1]} vs {uq.shape[1]}")
    if paired and len(up) != len(uq):
        raise RpmInputError(f"paired sets differ in size: {len(up)} vs {len(uq)}")
    if permutations < 1:
        raise RpmInputError("permutations must be >= 1")
    value = _jsd_units(up, uq)
    rng = np.random.default_rng(seed)
    pooled, n_p = np.vstack([up, uq]), len(up)
    null = np.empty(permutations)
    for b in range(permutations):
        if paired:
            swap = rng.random(n_p) < 0.5
            a, c = np.where(swap[:, None], uq, up), np.where(swap[:, None], up, uq)
        else:
            order = rng.permutation(len(pooled))
            a, c = pooled[order[:n_p]], pooled[order[n_p:]]
        null[b] = _jsd_units(a, c)
    p = (1 + int((null >= value - 1e-12).sum())) / (1 + permutations)
    return NullTest(value, float(null.mean()), float(p), permutations)


# ------------------------------------------------------------------ embedders


def embed_components(texts: dict[str, Sequence[str]], embedder: Embedder) -> dict[str, np.ndarray]:
    """Embed each component's texts (e.g. the output of inputs.component_texts)."""
    return {name: embedder.encode(list(values)) for name, values in texts.items()}

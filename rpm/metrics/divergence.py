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

The embedders are `rpm.runtime.embed`.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from rpm.core.errors import RpmInputError
from rpm.runtime.embed import Embedder

# ------------------------------------------------------------------ the divergence itself


def density_matrix(emb: np.ndarray) -> np.ndarray:
    """Trace-1 second-moment matrix of L2-normalised rows."""
    e = np.asarray(emb, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] == 0:
        raise RpmInputError(f"expected a non-empty (n, d) embedding matrix, got shape {e.shape}")
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    if (norms == 0).any():
        raise RpmInputError("an embedding is the zero vector; it has no direction to normalise")
    e = e / norms
    rho = e.T @ e
    return rho / np.trace(rho)


def von_neumann_entropy(rho: np.ndarray) -> float:
    """-tr(rho log rho) in nats; eigenvalues at or below round-off are 0 log 0 = 0."""
    lam = np.linalg.eigvalsh((rho + rho.T) / 2)
    lam = lam[lam > 1e-12]
    lam = lam / lam.sum()
    return float(-(lam * np.log(lam)).sum())


def representation_jsd(emb_p: np.ndarray, emb_q: np.ndarray) -> float:
    """D_JS between the embedding sets P and Q, in nats (0 <= D_JS <= log 2)."""
    rp, rq = density_matrix(emb_p), density_matrix(emb_q)
    if rp.shape != rq.shape:
        raise RpmInputError(f"embedding dimensions differ: {rp.shape[0]} vs {rq.shape[0]}")
    value = von_neumann_entropy((rp + rq) / 2) - (von_neumann_entropy(rp) + von_neumann_entropy(rq)) / 2
    # Round-off can leave a tiny negative (identical sets) or a hair above log 2.
    return float(min(max(value, 0.0), math.log(2)))


# ------------------------------------------------------------------ embedders


def embed_components(texts: dict[str, Sequence[str]], embedder: Embedder) -> dict[str, np.ndarray]:
    """Embed each component's texts (e.g. the output of inputs.component_texts)."""
    return {name: embedder.encode(list(values)) for name, values in texts.items()}

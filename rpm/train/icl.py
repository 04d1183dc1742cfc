"""In-context learning (Appendix E.1): the k most similar ID training samples, by cosine similarity of
input embeddings, are shown as earlier chat turns before the test prompt."""

from __future__ import annotations

import numpy as np

from rpm import prompts
from rpm.bench.schema import Sample
from rpm.train.formats import response_block, rpm_messages


def input_texts(samples: list[Sample]) -> list[str]:
    """What is embedded: the RPM's whole input (the Table 21 user message)."""
    t = prompts.get("rpm_response")
    return [t.render(**s.prompt_fields(with_golden=False))[-1]["content"] for s in samples]


def neighbours(index_emb: np.ndarray, query_emb: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k nearest training inputs for each query (cosine), nearest first."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=min(k, len(index_emb)), metric="cosine").fit(index_emb)
    return nn.kneighbors(query_emb, return_distance=False)


def icl_messages(test: Sample, examples: list[Sample]) -> list[dict]:
    """System text, then each example as a (Table 21 prompt, expected output) exchange, then the test."""
    msgs = rpm_messages(test)
    system, final = msgs[:-1], msgs[-1]
    shots = []
    for ex in examples:
        shots.append(rpm_messages(ex)[-1])
        shots.append({"role": "assistant", "content": response_block(ex.agent_golden_response)})
    return system + shots + [final]

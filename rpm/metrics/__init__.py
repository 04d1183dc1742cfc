"""The metrics of the paper: CLUB mutual information (EMI / R-EMI / R-EMID), representation JSD, the
Theorem 3.4 bound and perplexity, over log-probs from the one scorer (rpm.runtime.scorer). One file per idea:

- inputs.py       what is scored: the scorer prompts of a benchmark sample, response/reasoning files
- matrices.py     the .npz written by `rpm logprobs` and read by every later metric
- mi.py           CLUB MI from a matrix (Eq. 2), R-EMI, R-EMID, bootstrap confidence intervals
- divergence.py   representation JSD between sets of texts, per input component
- bound.py        Theorem 3.4: every term, the bound, the EMID authors' scale-adjusted variant, sweeps
- perplexity.py   Table 1: perplexity of golden responses
- logprobs.py     `rpm logprobs`: one subset's matrices under an estimator, written as matrices.py says
- tables.py       the CSVs of `rpm remi`, `rpm perplexity`, `rpm divergence`, `rpm bound`
- cli.py          the verbs `rpm logprobs`, `rpm remi`, `rpm perplexity`, `rpm divergence`, `rpm bound`

Heavy imports (torch, transformers, sentence-transformers, vllm) happen inside the functions that
need them, so `rpm --help` and the pure-numpy metrics stay fast.
"""

"""The one chat client: the teacher (augmentation, rejected responses, reasoning traces) and the
judges all talk to LLMs through it.

Backends
    openai  any OpenAI-compatible endpoint (base URL + model; the key is read from the environment
            variable the config names, never from a file, and never written anywhere).
    local   an in-process transformers model directory, greedy or sampled: the offline default.

Every completion is cached by content: the SHA-256 of the canonical request (backend, model,
messages, decoding settings) names a JSON file under the cache directory, so a re-run, or a later
stage asking the same question, never calls the endpoint twice (an endpoint whose URL changes between runs, a
local server on a free port, names its model by `cache_scope` instead). Retries with backoff on 429 / 5xx /
timeouts are the openai client's own (`max_retries`). Token usage is summed per endpoint in a ledger.

Structured outputs and log-probs
    A request may carry the JSON schema of its answer (the prompt registry's `response_schema`): it is sent
    as `response_format` {type: json_schema} to endpoints that take it (llama.cpp's server, vLLM, OpenAI:
    `structured_outputs: true`, the default) and left out for those that do not (`transformers serve`, the
    in-process backend), whose answers the caller parses and repairs as before; each Completion records
    whether the schema was sent. A request may ask for the `top_logprobs` of the answer's first token
    (`logprobs: true` endpoints, and the in-process backend, which computes them); the judge turns them into
    verdict probabilities.

Entries are written atomically (rpm.io), so processes filling one cache at once never see half an entry, and
two writers of one request just write the same answer twice. An entry that cannot be ours (truncated JSON,
bytes that are not UTF-8, a missing field, or the answer to other messages: a file copied in or edited by
hand) is treated as a miss: a warning names the file, the request is asked again and the entry is rewritten
atomically, so the cache repairs itself at the cost of that one call (tests/test_served_load.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rpm.core.errors import RpmError, RpmInputError
from rpm.io import write_json
from rpm.runtime.load import load_model, load_tokenizer

BACKENDS = ("openai", "local")
log = logging.getLogger(__name__)


class EndpointError(RpmError, RuntimeError):
    """An endpoint that cannot be asked as configured (e.g. its key's environment variable is unset)."""


@dataclass(frozen=True)
class Endpoint:
    name: str                      # label used in logs, ledgers and result rows
    backend: str = "local"         # "openai" | "local"
    model: str = ""                # endpoint model name, or the local model directory
    base_url: str | None = None    # openai backend
    api_key_env: str | None = None  # name of the environment variable holding the key
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    timeout: float = 120.0
    max_retries: int = 4
    seed: int = 0
    # What names the answering model in the cache key when base_url / model are not stable across runs:
    # a local server listens on a new free port each run (rpm.llm.serve). None: backend, model and base_url.
    cache_scope: str | None = None
    structured_outputs: bool = True  # the endpoint takes response_format {type: json_schema}
    logprobs: bool = True            # the endpoint returns top_logprobs
    # Characters at most in each free string of a sent schema (maxLength where the schema sets none): a small
    # local model under a grammar can repeat itself inside a string until max_tokens cuts the JSON. None: as is.
    max_string_length: int | None = None

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise RpmInputError(f"endpoint {self.name!r}: backend must be one of {BACKENDS}, got {self.backend!r}")
        if not self.model:
            raise RpmInputError(f"endpoint {self.name!r}: `model` is required")
        if self.backend == "openai" and not self.base_url:
            raise RpmInputError(f"endpoint {self.name!r}: the openai backend needs `base_url`")

    @classmethod
    def from_dict(cls, d: dict) -> "Endpoint":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise RpmInputError(f"endpoint {d.get('name', '?')!r}: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    key: str
    structured: bool = False  # the answer was decoded under the request's JSON schema
    # The first answer token's most likely alternatives, [[token, logprob], ...], when they were asked for.
    top_logprobs: list | None = None


@dataclass
class Ledger:
    calls: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0  # wall time of the calls made (cache hits cost none)
    structured: int = 0   # answers (asked or cached) decoded under their request's JSON schema

    def add(self, c: Completion, seconds: float = 0.0) -> None:
        self.structured += c.structured
        if c.cached:
            self.cached += 1
        else:
            self.calls += 1
            self.prompt_tokens += c.prompt_tokens
            self.completion_tokens += c.completion_tokens
            self.seconds += seconds


def request_key(endpoint: Endpoint, messages: list[dict], max_tokens: int, temperature: float, seed: int,
                schema: dict | None = None, top_logprobs: int = 0) -> str:
    """Content address of a request: everything that can change the answer, nothing else (no key). A schema
    or top_logprobs enter only when they are sent, so a plain request keeps its address."""
    if endpoint.cache_scope is not None:
        who = {"scope": endpoint.cache_scope}
    else:
        who = {"backend": endpoint.backend, "model": endpoint.model, "base_url": endpoint.base_url}
    canon = {**who, "messages": messages, "max_tokens": max_tokens, "temperature": temperature,
             "top_p": endpoint.top_p, "seed": seed}
    if schema is not None:
        canon["response_schema"] = schema
    if top_logprobs:
        canon["top_logprobs"] = top_logprobs
    return hashlib.sha256(json.dumps(canon, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def read_entry(path: Path | None, messages: list[dict]) -> dict | None:
    """The cache entry at `path` answering `messages`, or None (a miss). A corrupt or foreign entry is a miss
    too, with a warning naming the file (see the module docstring): the caller asks again and rewrites it."""
    if path is None or not path.is_file():
        return None
    try:
        hit = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        problem = f"not a JSON cache entry ({type(e).__name__}: {e})"
    else:
        if not isinstance(hit, dict) or not isinstance(hit.get("text"), str) or not all(
                type(hit.get(k)) is int for k in ("prompt_tokens", "completion_tokens")):
            problem = "a JSON value without the fields text, prompt_tokens and completion_tokens"
        elif hit.get("messages") != json.loads(json.dumps(messages, ensure_ascii=False)):
            problem = "the answer to other messages than the request this file name stands for"
        else:
            return hit
    log.warning("%s: ignoring a corrupt cache entry (%s); asking again and rewriting it", path, problem)
    return None


def openai_request(ep: Endpoint, messages: list[dict], max_tokens: int, temperature: float, seed: int,
                   schema: dict | None = None, top_logprobs: int = 0) -> dict:
    """The keyword arguments of `chat.completions.create` for one request (no network: tested as is)."""
    kwargs = {"model": ep.model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature,
              "top_p": ep.top_p, "seed": seed}
    if schema is not None:
        kwargs["response_format"] = {"type": "json_schema",
                                     "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    if top_logprobs:
        kwargs.update(logprobs=True, top_logprobs=top_logprobs)
    return kwargs


def cap_strings(schema: dict, limit: int | None) -> dict:
    """A copy of `schema` whose string types without enum or maxLength get maxLength `limit`."""
    if not limit:
        return schema

    def walk(node):
        if isinstance(node, dict):
            out = {k: walk(v) for k, v in node.items()}
            if out.get("type") == "string" and "enum" not in out and "maxLength" not in out:
                out["maxLength"] = limit
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def _cached(hit: dict, key: str) -> Completion:
    return Completion(hit["text"], hit["prompt_tokens"], hit["completion_tokens"], True, key,
                      bool(hit.get("structured", False)), hit.get("top_logprobs"))


def _store(path: Path, endpoint: Endpoint, messages: list[dict], c: Completion) -> None:
    write_json(path, {"endpoint": endpoint.name, "messages": messages, "text": c.text,
                      "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                      "structured": c.structured, "top_logprobs": c.top_logprobs})


@dataclass
class ChatClient:
    endpoint: Endpoint
    cache_dir: Path | None = None
    ledger: Ledger = field(default_factory=Ledger)
    # The model directory a local server (rpm.llm.serve) answers for: ledgers name it, not the server's view.
    served_model: str | None = None
    _backend: object = field(default=None, repr=False)

    def sent_schema(self, schema: dict | None) -> dict | None:
        """The schema a request to this endpoint carries: None where the endpoint does not take one; free
        strings capped at the endpoint's max_string_length."""
        if schema is None or not self.endpoint.structured_outputs or self.endpoint.backend != "openai":
            return None
        return cap_strings(schema, self.endpoint.max_string_length)

    def sent_top_logprobs(self, top_logprobs: int) -> int:
        return top_logprobs if top_logprobs and self.endpoint.logprobs else 0

    def complete(self, messages: list[dict], *, max_tokens: int | None = None, temperature: float | None = None,
                 seed: int | None = None, schema: dict | None = None, top_logprobs: int = 0) -> Completion:
        """One chat completion, from the cache when this exact request was made before. A retry after a
        malformed answer passes another `seed` (and a temperature above 0) so it asks a new question.
        `schema` (the answer's JSON schema) and `top_logprobs` are sent where the endpoint takes them."""
        max_tokens = self.endpoint.max_tokens if max_tokens is None else max_tokens
        temperature = self.endpoint.temperature if temperature is None else temperature
        seed = self.endpoint.seed if seed is None else seed
        schema, top_logprobs = self.sent_schema(schema), self.sent_top_logprobs(top_logprobs)
        key = request_key(self.endpoint, messages, max_tokens, temperature, seed, schema, top_logprobs)
        path = Path(self.cache_dir) / key[:2] / f"{key}.json" if self.cache_dir else None
        hit = read_entry(path, messages)
        if hit is not None:
            c = _cached(hit, key)
            self.ledger.add(c)
        else:
            c = self._ask(messages, max_tokens, temperature, seed, key, path, schema, top_logprobs)
        return c

    def _ask(self, messages, max_tokens, temperature, seed, key, path, schema=None, top_logprobs=0) -> Completion:
        """A cache miss: call the endpoint (with the schema and top_logprobs it takes), cache the answer, count it."""
        start = time.perf_counter()
        text, n_in, n_out, top = self._call(messages, max_tokens, temperature, seed, schema, top_logprobs)
        seconds = time.perf_counter() - start
        c = Completion(text, n_in, n_out, False, key, schema is not None, top)
        if path is not None:
            _store(path, self.endpoint, messages, c)
        self.ledger.add(c, seconds)
        return c

    def complete_many(self, requests: list[list[dict]], *, max_tokens: int | None = None,
                      temperature: float | None = None, seeds: list[int] | None = None,
                      batch_size: int = 8, schema: dict | None = None, top_logprobs: int = 0) -> list[Completion]:
        """Many completions; cache misses of a local backend are generated in batches (one seed per
        batch, the first request's), an endpoint is asked one request at a time."""
        max_tokens = self.endpoint.max_tokens if max_tokens is None else max_tokens
        temperature = self.endpoint.temperature if temperature is None else temperature
        seeds = seeds or [self.endpoint.seed] * len(requests)
        sent, top_n = self.sent_schema(schema), self.sent_top_logprobs(top_logprobs)
        out: list[Completion | None] = [None] * len(requests)
        misses = []
        for i, (messages, seed) in enumerate(zip(requests, seeds)):
            key = request_key(self.endpoint, messages, max_tokens, temperature, seed, sent, top_n)
            path = Path(self.cache_dir) / key[:2] / f"{key}.json" if self.cache_dir else None
            hit = read_entry(path, messages)
            if hit is not None:
                out[i] = _cached(hit, key)
                self.ledger.add(out[i])
            else:
                misses.append((i, key, path))
        if self.endpoint.backend == "local" and misses:
            if self._backend is None:
                self._backend = _LocalBackend(self.endpoint)
            for start in range(0, len(misses), batch_size):
                chunk = misses[start:start + batch_size]
                t0 = time.perf_counter()
                answers = self._backend.batch([requests[i] for i, _, _ in chunk], max_tokens, temperature,
                                              seeds[chunk[0][0]], top_n)
                share = (time.perf_counter() - t0) / len(chunk)  # a batch's time, split over its requests
                for (i, key, path), (text, n_in, n_out, top) in zip(chunk, answers):
                    out[i] = Completion(text, n_in, n_out, False, key, False, top)
                    self.ledger.add(out[i], share)
                    if path is not None:
                        _store(path, self.endpoint, requests[i], out[i])
        else:
            for i, key, path in misses:  # _ask() writes the cache and the ledger
                out[i] = self._ask(requests[i], max_tokens, temperature, seeds[i], key, path, sent, top_n)
        return out

    def _call(self, messages, max_tokens, temperature, seed, schema=None, top_logprobs=0):
        """(text, prompt tokens, completion tokens, top_logprobs of the first token or None)."""
        if self._backend is None:
            self._backend = (_OpenAIBackend if self.endpoint.backend == "openai" else _LocalBackend)(self.endpoint)
        return self._backend(messages, max_tokens, temperature, seed, schema, top_logprobs)


class _OpenAIBackend:
    def __init__(self, ep: Endpoint):
        from openai import OpenAI

        key = os.environ.get(ep.api_key_env, "") if ep.api_key_env else ""
        if ep.api_key_env and not key:
            raise EndpointError(f"endpoint {ep.name!r}: environment variable {ep.api_key_env} is not set; export "
                                "it with the endpoint's key (keys are read from the environment only)")
        # Local servers accept any key; the client library insists on a non-empty one.
        self.client = OpenAI(base_url=ep.base_url, api_key=key or "unused", timeout=ep.timeout,
                             max_retries=ep.max_retries)
        self.ep = ep

    def __call__(self, messages, max_tokens, temperature, seed, schema=None, top_logprobs=0):
        r = self.client.chat.completions.create(**openai_request(self.ep, messages, max_tokens, temperature, seed,
                                                                 schema, top_logprobs))
        usage, choice = r.usage, r.choices[0]
        top = None
        if top_logprobs:
            content = getattr(choice.logprobs, "content", None) or []
            top = [[t.token, float(t.logprob)] for t in content[0].top_logprobs] if content else []
        return (choice.message.content or "", getattr(usage, "prompt_tokens", 0) or 0,
                getattr(usage, "completion_tokens", 0) or 0, top)


class _LocalBackend:
    """An in-process transformers model; greedy when temperature is 0, seeded sampling otherwise."""

    def __init__(self, ep: Endpoint):
        self.model, self.tok, self.ep = load_model(ep.model), load_tokenizer(ep.model), ep
        self.model.eval()

    def batch(self, requests, max_tokens, temperature, seed, top_logprobs=0) -> list[tuple]:
        """Left-padded batched generation of several chats: (text, n_in, n_out, top_logprobs or None)."""
        import torch

        self.tok.padding_side = "left"
        texts = [self.tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in requests]
        enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(seed)
        kwargs = dict(do_sample=temperature > 0, max_new_tokens=max_tokens, pad_token_id=self.tok.pad_token_id,
                      return_dict_in_generate=True, output_logits=bool(top_logprobs))
        if temperature > 0:
            kwargs.update(temperature=temperature, top_p=self.ep.top_p)
        with torch.no_grad():
            gen = self.model.generate(**enc, **kwargs)
        out = gen.sequences[:, enc["input_ids"].shape[1]:]
        answers = []
        for r, (row, mask) in enumerate(zip(out, enc["attention_mask"])):
            ids = row.tolist()
            if self.tok.eos_token_id in ids:  # what follows the first end-of-sequence is padding
                ids = ids[:ids.index(self.tok.eos_token_id) + 1]
            top = self._top(gen.logits[0][r], top_logprobs) if top_logprobs else None
            answers.append((self.tok.decode(ids, skip_special_tokens=True), int(mask.sum()), len(ids), top))
        return answers

    def _top(self, logits, n: int) -> list:
        """The n most likely first tokens and their log-probs, from the model's raw logits (as a server's
        top_logprobs are)."""
        import torch

        lp = torch.log_softmax(logits.float(), dim=-1)
        values, ids = lp.topk(n)
        return [[self.tok.decode([i]), float(v)] for v, i in zip(values.tolist(), ids.tolist())]

    def __call__(self, messages, max_tokens, temperature, seed, schema=None, top_logprobs=0):
        import torch

        inputs = self.tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                              return_dict=True)
        torch.manual_seed(seed)
        kwargs = dict(do_sample=temperature > 0, max_new_tokens=max_tokens, pad_token_id=self.tok.pad_token_id,
                      return_dict_in_generate=True, output_logits=bool(top_logprobs))
        if temperature > 0:
            kwargs.update(temperature=temperature, top_p=self.ep.top_p)
        with torch.no_grad():
            gen = self.model.generate(**inputs, **kwargs)
        n_in = inputs["input_ids"].shape[1]
        new = gen.sequences[0, n_in:]
        top = self._top(gen.logits[0][0], top_logprobs) if top_logprobs else None
        return self.tok.decode(new, skip_special_tokens=True), n_in, int(new.shape[0]), top


def ledger_row(endpoint: Endpoint, ledger: Ledger, model: str | None = None) -> dict:
    return {"endpoint": endpoint.name, "model": model or endpoint.model, **asdict(ledger)}

"""The judge's records, its requests, the loop that asks them, and the summary tables (see rpm/judge/__init__)."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import random
from collections import defaultdict
from dataclasses import dataclass, fields as dc_fields
from pathlib import Path
from typing import Iterator, Sequence

from rpm import prompts
from rpm.bench.load import read_jsonl
from rpm.bench.schema import Sample
from rpm.bench.subsets import subset as subset_info
from rpm.core.errors import RpmError, RpmInputError
from rpm.core.names import SUBSET_NAMES
from rpm.judge.parsers import PARSERS, Parsed, make_parser, neutral_value
from rpm.judge.verdicts import TOP_LOGPROBS, score_from_logprobs, winrate_from_logprobs
from rpm.llm.client import ChatClient, Endpoint
from rpm.llm.serve import served_client
from rpm.metrics.inputs import align, read_text_rows

# source: logprobs (a probability from the verdict tokens), text (parsed from the answer), neutral (unparsed:
# counted at the neutral value, and in n_unparsed).
VERDICT_COLUMNS = ["judge", "judge_model", "prompt", "prompt_sha256", "parser", "rpm", "subset", "shift", "sample_ID",
                   "kind", "order", "parsed", "source", "score", "attempts", "raw"]
# unparsed_share: n_unparsed / n_verdicts, beside every WinRate. validity_*: the judge's validity check
# (rpm.judge.validity), the same on every row of a judge; NaN when no check was run.
SCORE_COLUMNS = ["rpm", "subset", "shift", "judge", "winrate", "pointscore", "n_samples", "n_verdicts", "n_unparsed",
                 "unparsed_share", "validity_accuracy", "validity_ci_low", "validity_ci_high"]
LEDGER_COLUMNS = ["judge", "model", "calls", "cached", "prompt_tokens", "completion_tokens", "seconds"]
BACKENDS = ("serve_local", "openai")
ENSEMBLE = "ensemble"


class JudgeError(RpmError, RuntimeError):
    """A judge run that cannot go on (an endpoint that stopped answering); the message says what to do."""


@dataclass(frozen=True)
class JudgeConfig:
    name: str
    backend: str = "serve_local"    # serve_local: `model` is a model directory served on loopback
    model: str = ""                 # the model directory (serve_local) or the endpoint's model name
    base_url: str | None = None     # openai backend
    api_key_env: str | None = None  # name of the environment variable holding the key (never its value)
    temperature: float = 0.0
    max_tokens: int = 8
    timeout: float = 120.0
    max_retries: int = 4            # transport retries with backoff (429 / 5xx / timeouts): the openai client's
    retries: int = 1                # new attempts after an unparsed verdict (another seed, retry_temperature)
    retry_temperature: float = 0.7
    seed: int = 0
    winrate_prompt: str = "judge_winrate"
    winrate_parser: str = "pairwise_verdict"
    pointscore_prompt: str = "judge_pointscore"
    pointscore_parser: str = "point_score"

    def __post_init__(self):
        where = f"judge {self.name!r}"
        if self.backend not in BACKENDS:
            raise RpmInputError(f"{where}: backend must be one of {BACKENDS}, got {self.backend!r}")
        if not self.model:
            raise RpmInputError(f"{where}: `model` is required")
        if self.backend == "openai" and not self.base_url:
            raise RpmInputError(f"{where}: the openai backend needs `base_url`")
        if self.backend == "serve_local" and self.base_url:
            raise RpmInputError(f"{where}: serve_local starts its own server; `base_url` must be null")
        for kind in ("winrate", "pointscore"):
            parser = getattr(self, f"{kind}_parser")
            if parser not in PARSERS:
                raise RpmInputError(f"{where}: unknown {kind}_parser {parser!r}; known: {', '.join(PARSERS)}")
            template = prompts.get(getattr(self, f"{kind}_prompt"))  # KeyError names the known prompts
            make_parser(parser, template)  # checks e.g. the scale a point_score parser needs

    @classmethod
    def from_dict(cls, d: dict) -> "JudgeConfig":
        known = {f.name for f in dc_fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise RpmInputError(f"judge {d.get('name', '?')!r}: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


@dataclass(frozen=True)
class Item:
    """One benchmark sample of one subset and the RPM's response to it."""
    subset: str
    sample: Sample
    response: str


# ------------------------------------------------------------------ what is judged


def pick(samples: Sequence[Sample], k: int | None, seed: int, subset: str) -> list[Sample]:
    """A seeded choice of k samples of a subset, in benchmark order; the same for every RPM (the seed does
    not involve the RPM), so WinRate differences compare the same samples."""
    if k is None or k >= len(samples):
        return list(samples)
    chosen = set(random.Random(f"{seed}:judge:{subset}").sample(range(len(samples)), k))
    return [s for i, s in enumerate(samples) if i in chosen]


def load_items(bench_dir: str | os.PathLike, responses_dir: str | os.PathLike | None, *, max_per_subset: int | None,
               seed: int, limit: int | None = None, subsets: Sequence[str] = SUBSET_NAMES) -> list[Item]:
    """The samples to judge: every subset's benchmark file and the RPM's response file (which must answer
    every benchmark sample, validated as the metrics validate it), a seeded max_per_subset of each, then at
    most `limit` in all (a dry check). Without a responses directory the responses are empty (the validity
    check fills them)."""
    items: list[Item] = []
    for name in subsets:
        bench_file = Path(bench_dir) / f"{name}.jsonl"
        samples = read_jsonl(bench_file)
        if responses_dir is None:
            texts = {s.sample_ID: "" for s in samples}
        else:
            resp_file = Path(responses_dir) / f"{name}.jsonl"
            texts = dict(zip([s.sample_ID for s in samples],
                             align(read_text_rows(resp_file, "response"), samples, file=str(resp_file),
                                   bench_file=str(bench_file))))
        items += [Item(name, s, texts[s.sample_ID]) for s in pick(samples, max_per_subset, seed, name)]
    return items if limit is None else items[:limit]


def judge_fields(sample: Sample, context_turns: int | None) -> dict[str, str]:
    """The judge prompts' input fields, short on purpose: the character's name, source and personality,
    the persona, and the last `context_turns` turns of the dialogue (None: all)."""
    c = sample.agent_character
    turns = list(sample.dialogue_context)
    if context_turns is not None:
        turns = turns[-context_turns:] if context_turns else []
    return {
        "agent_character": f"{c.character_name} ({c.character_source}). {c.character_personality}".strip(),
        "user_persona": sample.user_persona.strip(),
        "str_dialogue_context": "\n".join(f"{'User' if t.role == 'user_query' else 'Agent'}: {t.text}"
                                          for t in turns) or "(none)",
    }


def prompt_sha256(name: str) -> str:
    """SHA-256 of the prompt file as shipped (`sha256sum rpm/prompts/NAME.yaml` gives the same)."""
    data = prompts._package_files().joinpath(f"{name}.yaml").read_bytes()
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Request:
    item: Item
    kind: str       # winrate | pointscore
    order: str      # model_first | golden_first | single
    messages: list


def requests_for(item: Item, judge: JudgeConfig, context_turns: int | None) -> list[Request]:
    f = judge_fields(item.sample, context_turns)
    golden = item.sample.agent_golden_response.strip()
    model = item.response.strip()
    win = prompts.get(judge.winrate_prompt)
    point = prompts.get(judge.pointscore_prompt)
    return [Request(item, "winrate", "model_first", win.render(**f, response_a=model, response_b=golden)),
            Request(item, "winrate", "golden_first", win.render(**f, response_a=golden, response_b=model)),
            Request(item, "pointscore", "single", point.render(**f, response=model))]


def model_outcome(verdict: str, order: str) -> float:
    """The pairwise verdict from the RPM's side: 1 win, 0 loss, 0.5 tie."""
    if verdict == "tie":
        return 0.5
    model_letter = "A" if order == "model_first" else "B"
    return 1.0 if verdict == model_letter else 0.0


# ------------------------------------------------------------------ asking


@contextlib.contextmanager
def open_client(judge: JudgeConfig, cache_dir: str | os.PathLike | None,
                server_log: str | os.PathLike | None = None) -> Iterator[ChatClient]:
    """The judge's client: for openai the endpoint; for serve_local a `transformers serve` of the model
    directory on a free loopback port, started when first needed and stopped on exit."""
    common = dict(name=judge.name, backend="openai", temperature=judge.temperature, max_tokens=judge.max_tokens,
                  timeout=judge.timeout, max_retries=judge.max_retries, seed=judge.seed)
    cache = Path(cache_dir) if cache_dir else None
    if judge.backend == "openai":
        yield ChatClient(Endpoint(model=judge.model, base_url=judge.base_url, api_key_env=judge.api_key_env,
                                  **common), cache_dir=cache)
        return
    with served_client(judge.model, common, cache, server_log) as client:
        yield client


def ask(client: ChatClient, messages: list, parse, judge: JudgeConfig, from_logprobs=None
        ) -> tuple[Parsed, int, str, float | None]:
    """(verdict, attempts, raw text of the last attempt, probability score or None). The first attempt, at the
    judge's temperature, asks for the first token's top_logprobs where the endpoint gives them; when
    `from_logprobs` reads a score from them, that is the verdict. Otherwise the text is parsed, and each retry
    after an unparsed answer goes at retry_temperature with another seed, so it is a new request."""
    for attempt in range(judge.retries + 1):
        if attempt == 0:
            answer = client.complete(messages, top_logprobs=TOP_LOGPROBS if from_logprobs else 0)
            if answer.top_logprobs and from_logprobs is not None:
                value = from_logprobs(answer.top_logprobs)
                if value is not None:
                    return Parsed(value), 1, answer.text, value
        else:
            answer = client.complete(messages, temperature=judge.retry_temperature, seed=judge.seed + attempt)
        verdict = parse(answer.text)
        if verdict.value is not None:
            break
    return verdict, attempt + 1, answer.text, None


def _redact(text: str, judge: JudgeConfig) -> str:
    key = os.environ.get(judge.api_key_env, "") if judge.api_key_env else ""
    return text.replace(key, "***") if key else text


def judge_items(client: ChatClient, judge: JudgeConfig, items: Sequence[Item], rpm: str, *,
                context_turns: int | None, progress: bool = True) -> list[dict]:
    """Every item's three verdicts (WinRate both orders, PointScore) by one judge, as verdicts.csv rows."""
    import openai
    from tqdm.auto import tqdm

    meta = {}
    for kind in ("winrate", "pointscore"):
        name, parser = getattr(judge, f"{kind}_prompt"), getattr(judge, f"{kind}_parser")
        template = prompts.get(name)
        meta[kind] = (name, prompt_sha256(name), parser, make_parser(parser, template), neutral_value(parser, template),
                      template)
    requests = [r for item in items for r in requests_for(item, judge, context_turns)]
    rows = []
    for req in tqdm(requests, desc=f"judge {judge.name}", unit="verdict", disable=not progress):
        name, sha, parser, parse, neutral, template = meta[req.kind]
        if req.kind == "winrate":
            def from_logprobs(top, order=req.order):
                return winrate_from_logprobs(top, order)
        else:
            lo, hi = template.extras["scale"]

            def from_logprobs(top, scale=(float(lo), float(hi))):
                return score_from_logprobs(top, scale)
        try:
            verdict, attempts, raw, probability = ask(client, req.messages, parse, judge, from_logprobs)
        except openai.APIError as e:  # connection refused, timeouts and 429/5xx after the client's retries
            raise JudgeError(
                f"judge {judge.name!r} at {client.endpoint.base_url}: {type(e).__name__}: {_redact(str(e), judge)} "
                f"(after up to {judge.max_retries} retries with backoff), at verdict {len(rows) + 1} of "
                f"{len(requests)} ({req.item.subset} {req.item.sample.sample_ID} {req.kind} {req.order}). Every "
                f"answer received is cached in {client.cache_dir}: re-run to resume.") from None
        if probability is not None:
            score, source = probability, "logprobs"
        elif verdict.value is None:
            score, source = neutral, "neutral"
        elif req.kind == "winrate":
            score, source = model_outcome(verdict.value, req.order), "text"
        else:
            score, source = float(verdict.value), "text"
        rows.append({"judge": judge.name, "judge_model": judge.model, "prompt": name, "prompt_sha256": sha,
                     "parser": parser, "rpm": rpm, "subset": req.item.subset,
                     "shift": subset_info(req.item.subset).shift, "sample_ID": req.item.sample.sample_ID,
                     "kind": req.kind, "order": req.order, "parsed": verdict.value is not None, "source": source,
                     "score": score, "attempts": attempts, "raw": raw})
    return rows


def judge_rpm(judges: Sequence[JudgeConfig], items: Sequence[Item], rpm: str, *, cache_dir: str | os.PathLike,
              context_turns: int | None, server_log: str | os.PathLike | None = None,
              progress: bool = True) -> tuple[list[dict], list[dict]]:
    """(verdict rows, ledger rows) of one RPM by every judge, one judge (and its server) after the other."""
    verdicts, ledger = [], []
    for judge in judges:
        with open_client(judge, cache_dir, server_log) as client:
            verdicts += judge_items(client, judge, items, rpm, context_turns=context_turns, progress=progress)
        lg = client.ledger
        ledger.append({"judge": judge.name, "model": judge.model, "calls": lg.calls, "cached": lg.cached,
                       "prompt_tokens": lg.prompt_tokens, "completion_tokens": lg.completion_tokens,
                       "seconds": round(lg.seconds, 3)})
    return verdicts, ledger


# ------------------------------------------------------------------ summary


def _read_csv(path: Path, columns: Sequence[str]) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != list(columns):
            raise RpmInputError(f"{path}: expected the columns {list(columns)}, got {reader.fieldnames}")
        return list(reader)


def read_verdicts(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    rows = _read_csv(path, VERDICT_COLUMNS)
    for line, r in enumerate(rows, start=2):
        where = f"{path}, line {line}, sample {r['sample_ID']!r}"
        if r["parsed"] not in ("True", "False"):
            raise RpmInputError(f"{where}: field parsed must be True or False, got {r['parsed']!r}")
        if r["source"] not in ("logprobs", "text", "neutral"):
            raise RpmInputError(f"{where}: field source must be logprobs, text or neutral, got {r['source']!r}")
        if r["kind"] not in ("winrate", "pointscore"):
            raise RpmInputError(f"{where}: field kind must be winrate or pointscore, got {r['kind']!r}")
        try:
            r["score"] = float(r["score"])
        except ValueError:
            raise RpmInputError(f"{where}: field score is not a number: {r['score']!r}") from None
        r["parsed"] = r["parsed"] == "True"
    return rows


def summarize(verdict_files: Sequence[str | os.PathLike], ledger_files: Sequence[str | os.PathLike],
              validity: Sequence[dict] = ()) -> tuple[list[dict], list[dict]]:
    """scores.csv rows (per RPM, subset and judge, plus the ensemble: the mean over judges) and ledger.csv
    rows (per judge, summed over the RPMs' runs). `validity` (validity.csv rows) adds each judge's check."""
    checked = {v["judge"]: v for v in validity}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    judges: list[str] = []
    for f in verdict_files:
        for r in read_verdicts(f):
            groups[(r["rpm"], r["subset"], r["judge"])].append(r)
            if r["judge"] not in judges:
                judges.append(r["judge"])
    order = {s: i for i, s in enumerate(SUBSET_NAMES)}
    scores = []
    for rpm_name, subset in sorted({(k[0], k[1]) for k in groups}, key=lambda k: (k[0], order.get(k[1], 99), k[1])):
        per_judge = []
        for judge in judges:
            rows = groups.get((rpm_name, subset, judge))
            if not rows:
                continue
            win = [r["score"] for r in rows if r["kind"] == "winrate"]
            point = [r["score"] for r in rows if r["kind"] == "pointscore"]
            per_judge.append({"rpm": rpm_name, "subset": subset, "shift": rows[0]["shift"], "judge": judge,
                              "winrate": sum(win) / len(win) if win else float("nan"),
                              "pointscore": sum(point) / len(point) if point else float("nan"),
                              "n_samples": len({r["sample_ID"] for r in rows}), "n_verdicts": len(rows),
                              "n_unparsed": sum(not r["parsed"] for r in rows)})
        scores += per_judge
        scores.append({"rpm": rpm_name, "subset": subset, "shift": per_judge[0]["shift"], "judge": ENSEMBLE,
                       "winrate": sum(j["winrate"] for j in per_judge) / len(per_judge),
                       "pointscore": sum(j["pointscore"] for j in per_judge) / len(per_judge),
                       "n_samples": max(j["n_samples"] for j in per_judge),
                       "n_verdicts": sum(j["n_verdicts"] for j in per_judge),
                       "n_unparsed": sum(j["n_unparsed"] for j in per_judge)})
    totals: dict[str, dict] = {}
    for f in ledger_files:
        for r in _read_csv(Path(f), LEDGER_COLUMNS):
            t = totals.setdefault(r["judge"], {"judge": r["judge"], "model": r["model"], "calls": 0, "cached": 0,
                                               "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0})
            if t["model"] != r["model"]:
                raise RpmInputError(f"{f}: judge {r['judge']!r} has model {r['model']!r} here, "
                                    f"{t['model']!r} elsewhere")
            for k in ("calls", "cached", "prompt_tokens", "completion_tokens"):
                t[k] += int(r[k])
            t["seconds"] = round(t["seconds"] + float(r["seconds"]), 3)
    nan = float("nan")
    for r in scores:
        v = checked.get(r["judge"], {})
        r["unparsed_share"] = r["n_unparsed"] / r["n_verdicts"] if r["n_verdicts"] else nan
        for k in ("accuracy", "ci_low", "ci_high"):
            r[f"validity_{k}"] = float(v[k]) if k in v else nan
    return scores, list(totals.values())

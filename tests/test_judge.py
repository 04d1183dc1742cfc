"""The judge: verdict parsers on real answers, order swapping and ties, the transport retries of the one
chat client, and the HTTP path through a real `transformers serve` of the tiny model (the cache counted at
the server, a canary key, a server stopped mid-run)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from rpm.cli import main
from rpm.core.names import SUBSET_NAMES
from rpm.judge import parsers
from rpm.judge.core import (
    LEDGER_COLUMNS,
    SCORE_COLUMNS,
    VERDICT_COLUMNS,
    Item,
    JudgeConfig,
    JudgeError,
    judge_items,
    load_items,
    model_outcome,
    open_client,
    summarize,
)
from rpm.llm.client import ChatClient, Completion, Endpoint, Ledger
from rpm.metrics.tables import write_csv
from rpm.prompts import get as get_prompt

CANARY = "sk-canary-5f1c2e9a7b3d4c60-do-not-log"


# ------------------------------------------------------------------ parsers


@pytest.mark.parametrize("text, expected", [
    ("A", "A"),                                        # SmolLM2-135M, as answered here
    ("B.", "B"),
    ("**A**", "A"),
    ("[[B]]", "B"),
    ("Verdict: B", "B"),
    ("verdict: a", "A"),
    ("B\n\nReply B keeps Ali's voice; reply A drifts.", "B"),
    ("Reply A is better because it stays in character.", "A"),
    ("I think Response B is the better one.", "B"),
    ("Tie", "tie"),
    ("Verdict: tie - both replies fit equally.", "tie"),
    ("\u201cA\u201d", "A"),
])
def test_pairwise_parser_reads_verdicts(text, expected):
    assert parsers.pairwise_verdict(text).value == expected


@pytest.mark.parametrize("text", [
    "",
    "   ",
    "A good reply would mention the boxing.",          # the article, not a verdict
    "Verdict: A\nVerdict: B",                           # ambiguous
    "[[A]] or maybe [[B]]",
    "C",
    "fibrillationubenocab eleventh",                    # the tiny random model
    "Both replies have merits.",
])
def test_pairwise_parser_refuses_malformed(text):
    p = parsers.pairwise_verdict(text)
    assert p.value is None and p.reason


@pytest.mark.parametrize("text, expected", [
    ("10. The reply fits the character", 10.0),        # SmolLM2-135M, as answered here
    ("1. The reply fits the character perfectly\n2. Score: 9", 9.0),   # a list's enumerators are not scores
    ("7", 7.0),
    ("Score: 8/10", 8.0),
    ("I would rate it 6 out of 10.", 6.0),
    ("**9**", 9.0),
    ("7.5", 7.5),
])
def test_point_score_parser(text, expected):
    parse = parsers.make_parser("point_score", get_prompt("judge_pointscore"))
    assert parse(text).value == expected


@pytest.mark.parametrize("text", ["", "ten", "11", "0", "Score: -3", "The reply is fine.",
                                  "1. The response is in character.", "1) It fits.\n2) It is short."])
def test_point_score_parser_refuses_malformed(text):
    parse = parsers.make_parser("point_score", get_prompt("judge_pointscore"))
    p = parse(text)
    assert p.value is None and p.reason


def test_point_score_needs_a_scale():
    with pytest.raises(ValueError, match="scale"):
        parsers.make_parser("point_score", get_prompt("judge_winrate"))
    with pytest.raises(ValueError, match="unknown verdict parser"):
        parsers.make_parser("regex", get_prompt("judge_winrate"))


def test_prompts_say_they_are_ours():
    for name in ("judge_winrate", "judge_pointscore"):
        assert get_prompt(name).source.startswith("ours (the paper does not print")


# ------------------------------------------------------------------ order swapping and ties (no server needed)


def test_model_outcome_from_the_models_side():
    assert model_outcome("A", "model_first") == 1.0 and model_outcome("B", "model_first") == 0.0
    assert model_outcome("B", "golden_first") == 1.0 and model_outcome("A", "golden_first") == 0.0
    assert model_outcome("tie", "model_first") == model_outcome("tie", "golden_first") == 0.5


class ScriptedClient:
    """In-memory stand-in for ChatClient: answers from a function of the request (records each call)."""

    def __init__(self, answer, top=lambda prompt: None):
        self.answer, self.calls, self.top = answer, [], top
        self.endpoint = Endpoint(name="fake", backend="openai", model="fake", base_url="http://fake")
        self.cache_dir, self.ledger = None, Ledger()

    def complete(self, messages, *, max_tokens=None, temperature=None, seed=None, schema=None, top_logprobs=0):
        self.calls.append((temperature, seed))
        text = self.answer(messages[-1]["content"], len(self.calls))
        c = Completion(text, 10, 1, False, "k", False, self.top(messages[-1]["content"]) if top_logprobs else None)
        self.ledger.add(c)
        return c


@pytest.fixture()
def items(paper_records):
    from rpm.bench.schema import sample_from_dict

    samples = [sample_from_dict(r) for r in paper_records[:2]]
    return [Item("id_test", samples[0], "MODEL REPLY one"), Item("user_de", samples[1], "MODEL REPLY two")]


def reply(prompt, letter):
    return re.search(rf"Reply {letter}: (.*)", prompt).group(1)


def run_fake(items, answer, **judge):
    client = ScriptedClient(answer)
    cfg = JudgeConfig(name="fake", backend="openai", model="fake", base_url="http://fake", **judge)
    return judge_items(client, cfg, items, "b/m", context_turns=None, progress=False), client


def test_both_orders_are_asked_and_scored_from_the_models_side(items):
    # A judge that always prefers the golden reference, wherever it is shown: the RPM loses both orders.
    def prefers_golden(prompt, _):
        if "Reply A:" not in prompt:
            return "5"
        return "A" if reply(prompt, "B").startswith("MODEL") else "B"

    rows, _ = run_fake(items, prefers_golden)
    win = [r for r in rows if r["kind"] == "winrate"]
    assert [r["order"] for r in win] == ["model_first", "golden_first"] * 2
    assert all(r["score"] == 0.0 and r["parsed"] for r in win)
    # The model response is Reply A in model_first and Reply B in golden_first.
    assert {r["raw"] for r in win} == {"A", "B"}


def test_position_bias_cancels_and_ties_count_half(items, tmp_path):
    rows, _ = run_fake(items, lambda p, _: "A" if "Reply A:" in p else "7")
    assert [r["score"] for r in rows if r["kind"] == "winrate"] == [1.0, 0.0, 1.0, 0.0]
    rows_tie, _ = run_fake(items, lambda p, _: "Tie" if "Reply A:" in p else "7")
    assert all(r["score"] == 0.5 for r in rows_tie if r["kind"] == "winrate")
    write_csv(tmp_path / "verdicts.csv", rows, VERDICT_COLUMNS)
    scores, _ = summarize([tmp_path / "verdicts.csv"], [])
    by = {(r["subset"], r["judge"]): r for r in scores}
    assert by[("id_test", "fake")]["winrate"] == 0.5 and by[("id_test", "fake")]["pointscore"] == 7.0


def test_unparsed_verdicts_are_retried_then_counted_in_the_denominator(items, tmp_path):
    rows, client = run_fake(items, lambda p, _: "no idea", retries=2, retry_temperature=0.9, seed=3)
    assert len(client.calls) == 3 * 3 * len(items)   # three requests per sample, three attempts each
    assert client.calls[:3] == [(None, None), (0.9, 4), (0.9, 5)]  # new seed and temperature per retry
    assert all(not r["parsed"] and r["attempts"] == 3 and r["raw"] == "no idea" for r in rows)
    assert {r["score"] for r in rows if r["kind"] == "winrate"} == {0.5}      # a tie
    assert {r["score"] for r in rows if r["kind"] == "pointscore"} == {5.5}   # the middle of 1-10
    write_csv(tmp_path / "verdicts.csv", rows, VERDICT_COLUMNS)
    scores, _ = summarize([tmp_path / "verdicts.csv"], [])
    row = next(r for r in scores if r["subset"] == "id_test" and r["judge"] == "fake")
    assert (row["n_samples"], row["n_verdicts"], row["n_unparsed"]) == (1, 3, 3)


def test_ensemble_is_the_mean_over_judges(items, tmp_path):
    a, _ = run_fake(items, lambda p, _: "A" if "Reply A:" in p else "2")

    def prefers_model(p, _):
        return ("B" if reply(p, "B").startswith("MODEL") else "A") if "Reply A:" in p else "8"

    b, _ = run_fake(items, prefers_model)
    for r in b:
        r["judge"] = "other"
    write_csv(tmp_path / "verdicts.csv", a + b, VERDICT_COLUMNS)
    scores, _ = summarize([tmp_path / "verdicts.csv"], [])
    ens = next(r for r in scores if r["subset"] == "user_de" and r["judge"] == "ensemble")
    assert ens["winrate"] == pytest.approx((0.5 + 1.0) / 2) and ens["pointscore"] == pytest.approx(5.0)
    assert ens["n_verdicts"] == 6


def test_judge_config_is_validated():
    with pytest.raises(ValueError, match="unknown key"):
        JudgeConfig.from_dict({"name": "j", "model": "m", "api_key": "secret"})
    with pytest.raises(ValueError, match="base_url"):
        JudgeConfig(name="j", backend="openai", model="m")
    with pytest.raises(KeyError, match="unknown prompt"):
        JudgeConfig(name="j", model="m", winrate_prompt="nope")


# ------------------------------------------------------------------ transport retries (a real HTTP server)


def _completion_json():
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "B"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


@pytest.fixture()
def flaky_server():
    """A loopback HTTP server answering chat completions from a script of (status, delay) per request."""
    script, seen = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            seen.append(self.headers.get("authorization"))
            status, delay = script[len(seen) - 1] if len(seen) <= len(script) else (200, 0)
            time.sleep(delay)
            body = json.dumps(_completion_json() if status == 200 else {"error": {"message": "busy"}}).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("retry-after-ms", "10")  # keeps the client's backoff short here
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", script, seen
    httpd.shutdown()


def test_client_retries_429_5xx_and_timeouts(flaky_server):
    url, script, seen = flaky_server
    script += [(429, 0), (500, 0), (200, 1.0), (200, 0)]  # rate limit, server error, a timeout, then an answer
    client = ChatClient(Endpoint(name="t", backend="openai", model="m", base_url=url, timeout=0.3, max_retries=3))
    assert client.complete([{"role": "user", "content": "hi"}]).text == "B"
    assert len(seen) == 4


def test_client_gives_up_after_max_retries(flaky_server):
    import openai

    url, script, seen = flaky_server
    script += [(503, 0)] * 10
    client = ChatClient(Endpoint(name="t", backend="openai", model="m", base_url=url, max_retries=2))
    with pytest.raises(openai.InternalServerError):
        client.complete([{"role": "user", "content": "hi"}])
    assert len(seen) == 3


# ------------------------------------------------------------------ the HTTP path: a real transformers serve


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A 12-subset benchmark (2 samples each) and an RPM's responses to it."""
    from rpm.bench.synth import SynthConfig, synth

    root = tmp_path_factory.mktemp("judge_bench")
    files = synth(root / "bench", SynthConfig(n_train=2, n_per_subset=2))
    (root / "responses").mkdir()
    for name in SUBSET_NAMES:
        rows = [{"sample_ID": s.sample_ID, "response": f"Well, friend, {s.user_persona.split('.')[0].lower()}!"}
                for s in files[name]]
        (root / "responses" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture(scope="module")
def tiny_server(tiny_model_dir, tmp_path_factory):
    from rpm.llm.serve import local_server

    log = tmp_path_factory.mktemp("judge_server") / "server.log"
    with local_server(tiny_model_dir, log_path=log) as server:
        yield server, log


def posts(log: Path) -> int:
    """HTTP calls counted at the server: uvicorn's access-log lines of chat completions."""
    return sum('"POST /v1/chat/completions' in line for line in log.read_text(errors="replace").splitlines())


def run_cli(args, env=None):
    result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    return result


def judge_args(bench, out_dir, cache, spec, *extra):
    return ["judge", "run", "--bench-dir", str(bench / "bench"), "--responses-dir", str(bench / "responses"),
            "--rpm", "tiny/sft", "--judge", json.dumps(spec), "--out", str(out_dir / "verdicts.csv"),
            "--ledger-out", str(out_dir / "ledger.csv"), "--cache-dir", str(cache), "--max-per-subset", "1",
            "--context-turns", "1", "--quiet", *extra]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_served_model_samples_above_temperature_zero_and_is_greedy_at_zero(tiny_server):
    """A retry after an unparsed answer asks again at a temperature above 0 with another seed: the server must
    really sample then (transformers serve follows the served generation_config's do_sample), and stay greedy
    at temperature 0."""
    from rpm.llm.client import ChatClient, Endpoint

    server, _ = tiny_server
    client = ChatClient(Endpoint(name="t", backend="openai", base_url=server.base_url, model=server.model,
                                 max_tokens=12))
    msgs = [{"role": "user", "content": "Say something."}]
    greedy = {client.complete(msgs, temperature=0.0, seed=s).text for s in (1, 2)}
    sampled = {client.complete(msgs, temperature=1.0, seed=s).text for s in (1, 2, 3)}
    assert len(greedy) == 1
    assert len(sampled) > 1, sampled
    assert client.complete(msgs, temperature=1.0, seed=1).text in sampled  # seeded: reproducible


def test_http_judge_caches_at_the_server_and_never_writes_the_key(bench, tiny_server, tmp_path, monkeypatch):
    server, log = tiny_server
    monkeypatch.setenv("RPM_JUDGE_TEST_KEY", CANARY)
    spec = {"name": "tiny", "backend": "openai", "model": server.model, "base_url": server.base_url,
            "api_key_env": "RPM_JUDGE_TEST_KEY", "max_tokens": 2, "retries": 0, "max_retries": 1}
    cache = tmp_path / "cache"
    before = posts(log)
    r1 = run_cli(judge_args(bench, tmp_path / "run1", cache, spec, "--limit", "4"))
    assert r1.exit_code == 0, r1.output
    first = posts(log) - before
    ledger1 = read_csv(tmp_path / "run1" / "ledger.csv")[0]
    assert first > 0 and int(ledger1["calls"]) == first and int(ledger1["cached"]) == 0
    verdicts = read_csv(tmp_path / "run1" / "verdicts.csv")
    assert list(verdicts[0]) == VERDICT_COLUMNS
    assert len(verdicts) == 3 * 4  # 4 samples (--limit), two orders and a score each
    assert [v["subset"] for v in verdicts[::3]] == list(SUBSET_NAMES[:4])
    assert {v["judge_model"] for v in verdicts} == {server.model}
    assert {v["prompt_sha256"] for v in verdicts if v["kind"] == "winrate"} == {
        hashlib.sha256((Path(__file__).parents[1] / "rpm/prompts/judge_winrate.yaml").read_bytes()).hexdigest()}

    # The second run asks nothing: zero HTTP calls at the server, identical verdicts.
    mid = posts(log)
    r2 = run_cli(judge_args(bench, tmp_path / "run2", cache, spec, "--limit", "4"))
    assert r2.exit_code == 0, r2.output
    assert posts(log) == mid
    ledger2 = read_csv(tmp_path / "run2" / "ledger.csv")[0]
    assert int(ledger2["calls"]) == 0 and int(ledger2["cached"]) == first
    assert read_csv(tmp_path / "run2" / "verdicts.csv") == verdicts

    r3 = run_cli(["judge", "summarize", str(tmp_path / "run1"), "--scores-out", str(tmp_path / "scores.csv"),
                  "--ledger-out", str(tmp_path / "ledger.csv")])
    assert r3.exit_code == 0, r3.output
    scores = read_csv(tmp_path / "scores.csv")
    assert list(scores[0]) == SCORE_COLUMNS and list(read_csv(tmp_path / "ledger.csv")[0]) == LEDGER_COLUMNS
    assert {s["judge"] for s in scores} == {"tiny", "ensemble"} and len(scores) == 2 * 4

    # The canary key: in no output, cache file or server log.
    leaked = [p for p in [*tmp_path.rglob("*"), log] if p.is_file() and CANARY in p.read_text(errors="replace")]
    assert not leaked and CANARY not in r1.output + r2.output + r3.output


def test_stopped_server_fails_clearly_and_a_rerun_reuses_the_cache(bench, tiny_model_dir, tmp_path):
    spec = {"name": "tiny", "backend": "serve_local", "model": str(tiny_model_dir), "max_tokens": 2, "retries": 0,
            "max_retries": 1}
    judge = JudgeConfig.from_dict(spec)
    items = load_items(bench / "bench", bench / "responses", max_per_subset=1, seed=0, limit=6)
    cache, log = tmp_path / "cache", tmp_path / "server1.log"
    with pytest.raises(JudgeError, match="re-run to resume") as err:
        with open_client(judge, cache, log) as client:
            def stop_after_four_calls():
                while not log.is_file() or posts(log) < 4:
                    time.sleep(0.01)
                os.killpg(client.server.pid, signal.SIGKILL)

            threading.Thread(target=stop_after_four_calls, daemon=True).start()
            judge_items(client, judge, items, "tiny/sft", context_turns=1, progress=False)
    message = str(err.value)
    assert message.startswith("judge 'tiny' at http://127.0.0.1:") and "Error" in message, message
    cached_before = len(list(cache.rglob("*.json")))
    assert 3 <= cached_before < 3 * 6  # the 4th answer may have been logged but not received before the kill

    # The workflow's path: the verb starts its own server; only what is not cached is asked.
    r = run_cli(judge_args(bench, tmp_path / "rerun", cache, spec, "--limit", "6",
                           "--server-log", str(tmp_path / "server2.log")))
    assert r.exit_code == 0, r.output
    asked = posts(tmp_path / "server2.log")
    assert asked == len(list(cache.rglob("*.json"))) - cached_before
    ledger = read_csv(tmp_path / "rerun" / "ledger.csv")[0]
    assert int(ledger["calls"]) == asked and int(ledger["cached"]) == cached_before
    assert int(ledger["calls"]) + int(ledger["cached"]) == 3 * 6

    # Everything is cached now: a third run starts no server at all (its server log stays empty).
    r = run_cli(judge_args(bench, tmp_path / "again", cache, spec, "--limit", "6",
                           "--server-log", str(tmp_path / "server3.log")))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "server3.log").read_text() == ""
    assert read_csv(tmp_path / "again" / "verdicts.csv") == read_csv(tmp_path / "rerun" / "verdicts.csv")

"""The LLM path under stress, against a real `transformers serve` of the tiny model on loopback: the local server
under load from several clients, two processes filling one judge cache at once, corrupt and foreign cache
entries, and a teacher whose server is killed mid-run. HTTP calls are counted at the server (its access log)."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import pytest
from click.testing import CliRunner

from rpm.bench.synth import SynthConfig, synth
from rpm.cli import main
from rpm.core.names import SUBSET_NAMES
from rpm.judge.verdicts import TOP_LOGPROBS
from rpm.llm.client import ChatClient, Endpoint, request_key
from rpm.llm.serve import local_server

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("load_server") / "server.log"
    with local_server(tiny_model_dir, log_path=log) as srv:
        yield srv, log


def posts(log: Path) -> int:
    """Chat completions answered, counted at the server: uvicorn's access-log lines."""
    return sum('"POST /v1/chat/completions' in line for line in log.read_text(errors="replace").splitlines())


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def entries(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.json"))


# ------------------------------------------------------------------ the local server under load

CLIENTS, PER_CLIENT, BATCHES = 4, 50, 5
POOL = [[{"role": "user", "content": f"Load test request {i}: name a colour and a city."}] for i in range(PER_CLIENT)]
TIME_LIMIT = 300.0  # seconds for the whole concurrent phase (it takes ~40 s on 2 cores)


def test_local_server_under_load_answers_every_request_once_with_its_own_answer(server):
    srv, log = server
    ep = Endpoint(name="load", backend="openai", base_url=srv.base_url, model=srv.model, temperature=0.0,
                  max_tokens=2, timeout=60, max_retries=0)  # no retries: a lost request fails, never hides
    serial = [ChatClient(ep).complete(m).text for m in POOL]  # each request alone, one after the other
    start_posts, t0 = posts(log), time.monotonic()
    clients = [ChatClient(ep) for _ in range(CLIENTS)]
    got: list[list[tuple[int, str]]] = [[] for _ in range(CLIENTS)]
    stop = threading.Event()
    per_batch = PER_CLIENT // BATCHES

    def send(k: int, b: int) -> None:
        # Client k starts at another place in the pool, so concurrent requests differ; over the batches every
        # client sends every request of the pool once.
        for j in range(per_batch):
            if stop.is_set():
                return
            idx = (k * 12 + b * per_batch + j) % PER_CLIENT
            got[k].append((idx, clients[k].complete(POOL[idx]).text))

    rss = [rss_kib(srv.pid)]
    pool = ThreadPoolExecutor(CLIENTS)
    try:
        for b in range(BATCHES):
            futures = [pool.submit(send, k, b) for k in range(CLIENTS)]
            done, late = wait(futures, timeout=max(1.0, TIME_LIMIT - (time.monotonic() - t0)))
            assert not late, f"batch {b + 1} of {BATCHES} did not finish within the {TIME_LIMIT:.0f} s limit"
            for f in done:
                f.result()  # a request that failed fails the test here, with the client's error
            rss.append(rss_kib(srv.pid))
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
    seconds = time.monotonic() - t0

    sent = CLIENTS * PER_CLIENT
    assert [len(g) for g in got] == [PER_CLIENT] * CLIENTS
    assert [c.ledger.calls for c in clients] == [PER_CLIENT] * CLIENTS
    assert posts(log) - start_posts == sent  # every request answered exactly once: none lost, none repeated
    wrong = [(k, idx) for k, g in enumerate(got) for idx, text in g if text != serial[idx]]
    assert not wrong, f"{len(wrong)} answers differ from the same request sent alone: {wrong[:5]}"
    # Memory: after the last batch within a generous bound of after the first (a leak per request would show).
    first, last = rss[1], rss[-1]
    print(f"\nload: {sent} requests from {CLIENTS} clients in {seconds:.1f} s; server RSS KiB before "
          f"{rss[0]}, after each batch {rss[1:]}")
    assert last <= first * 1.25 + 64 * 1024, f"server RSS grew from {first} to {last} KiB over {BATCHES} batches"


# ------------------------------------------------------------------ two processes, one judge cache


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A 12-subset benchmark (one sample each is judged) and two RPMs' responses that agree on the first four
    subsets and differ on the next four: two judge runs then share some requests and not others."""
    root = tmp_path_factory.mktemp("load_bench")
    files = synth(root / "bench", SynthConfig(n_train=2, n_per_subset=2))
    for rpm_name in ("r1", "r2"):
        (root / rpm_name).mkdir()
        for n, name in enumerate(SUBSET_NAMES):
            who = rpm_name if 4 <= n < 8 else "both"
            rows = [{"sample_ID": s.sample_ID, "response": f"Hello from {who}, about {s.user_persona.split('.')[0]}"}
                    for s in files[name]]
            (root / rpm_name / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def judge_args(bench: Path, rpm_name: str, out: Path, cache: Path, spec: dict) -> list[str]:
    return ["judge", "run", "--bench-dir", str(bench / "bench"), "--responses-dir", str(bench / rpm_name),
            "--rpm", rpm_name, "--judge", json.dumps(spec), "--out", str(out / "verdicts.csv"),
            "--ledger-out", str(out / "ledger.csv"), "--cache-dir", str(cache), "--max-per-subset", "1",
            "--context-turns", "1", "--limit", "8", "--quiet"]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_two_processes_filling_one_judge_cache_lose_nothing_and_corrupt_nothing(server, bench, tmp_path):
    srv, log = server
    spec = {"name": "tiny", "backend": "openai", "model": srv.model, "base_url": srv.base_url, "max_tokens": 2,
            "retries": 0, "max_retries": 0}
    cache = tmp_path / "cache"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    before = posts(log)
    procs = {r: subprocess.Popen([str(BIN / "rpm"), *judge_args(bench, r, tmp_path / r, cache, spec)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for r in ("r1", "r2")}  # at once, same cache: 12 requests in common, 12 of their own each
    for r, p in procs.items():
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, f"{r}:\n{out}"
    asked = posts(log) - before

    # Every request's answer is in the cache, once, and each entry parses and belongs to its file name.
    ep = Endpoint(name="tiny", backend="openai", model=srv.model, base_url=srv.base_url, max_tokens=2)
    files = entries(cache)
    assert len(files) == 12 + 2 * 12
    for f in files:
        entry = json.loads(f.read_text(encoding="utf-8"))
        # The judge's first attempt asks for the verdict token's top_logprobs (rpm.judge.verdicts).
        assert f.stem == request_key(ep, entry["messages"], 2, 0.0, 0, None, TOP_LOGPROBS)
        assert isinstance(entry["text"], str)
    assert [p.name for p in cache.rglob(".*")] == []  # no temporary file left
    ledgers = {r: read_csv(tmp_path / r / "ledger.csv")[0] for r in procs}
    assert sum(int(lg["calls"]) for lg in ledgers.values()) == asked  # a request both missed is asked by both
    assert 36 <= asked <= 48
    split = ", ".join(f"{r}: {lg['calls']} calls + {lg['cached']} cached" for r, lg in ledgers.items())
    print(f"\njudge cache: 2 processes, 36 distinct requests, {asked} asked ({split})")
    first = {r: read_csv(tmp_path / r / "verdicts.csv") for r in procs}
    assert [len(v) for v in first.values()] == [24, 24]
    shared = [{k: v for k, v in row.items() if k != "rpm"} for row in first["r1"][:12]]
    assert shared == [{k: v for k, v in row.items() if k != "rpm"} for row in first["r2"][:12]]

    # Re-running both asks nothing and gives the same verdicts: no verdict was lost.
    mid = posts(log)
    for r in procs:
        result = CliRunner().invoke(main, judge_args(bench, r, tmp_path / f"{r}_again", cache, spec),
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        ledger = read_csv(tmp_path / f"{r}_again" / "ledger.csv")[0]
        assert (int(ledger["calls"]), int(ledger["cached"])) == (0, 24)
        assert read_csv(tmp_path / f"{r}_again" / "verdicts.csv") == first[r]
    assert posts(log) == mid


# ------------------------------------------------------------------ corrupt and foreign cache entries


def test_a_corrupt_or_foreign_cache_entry_is_asked_again_and_rewritten(server, tmp_path, caplog):
    srv, _ = server
    ep = Endpoint(name="t", backend="openai", base_url=srv.base_url, model=srv.model, max_tokens=3, max_retries=0)
    cache = tmp_path / "cache"
    msgs = [[{"role": "user", "content": f"Cache entry {i}."}] for i in range(5)]
    answers = [c.text for c in ChatClient(ep, cache_dir=cache).complete_many(msgs)]
    paths = [cache / k[:2] / f"{k}.json" for k in (request_key(ep, m, 3, 0.0, 0) for m in msgs)]
    whole = paths[0].read_bytes()
    paths[0].write_bytes(whole[: len(whole) // 2])                  # truncated JSON
    paths[1].write_bytes(b"\xff\xfe\x00 not a cache entry \x9c")     # arbitrary bytes
    paths[2].write_bytes(paths[4].read_bytes())                      # foreign: another request's answer
    paths[3].write_text('{"text": 5}')                               # JSON without the fields
    with caplog.at_level(logging.WARNING, logger="rpm.llm.client"):
        again = ChatClient(ep, cache_dir=cache)
        assert [again.complete(m).text for m in msgs] == answers
    assert (again.ledger.calls, again.ledger.cached) == (4, 1)      # the four bad ones asked again, once each
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 4 and all(w.startswith(f"{p}: ignoring a corrupt cache entry") for w, p in zip(warned, paths))
    caplog.clear()
    third = ChatClient(ep, cache_dir=cache)
    assert [c.text for c in third.complete_many(msgs)] == answers
    assert (third.ledger.calls, third.ledger.cached) == (0, 5) and not caplog.records  # rewritten whole
    assert [p.name for p in cache.rglob(".*")] == []


# ------------------------------------------------------------------ a teacher whose server is killed mid-run


def test_a_killed_server_fails_the_teacher_in_one_line_and_the_rerun_asks_only_what_is_missing(
        server, tiny_model_dir, tmp_path):
    bench = tmp_path / "bench"
    synth(bench, SynthConfig(n_train=8, n_per_subset=1))
    cache, report = tmp_path / "cache", tmp_path / "reject.report.json"

    def reject(srv) -> object:
        # cache_scope names the model in the cache key: the re-run's server has another port and view directory.
        teacher = {"backend": "openai", "base_url": srv.base_url, "model": srv.model, "cache_scope": "tiny-teacher",
                   "max_tokens": 4, "max_retries": 0, "timeout": 30}
        return CliRunner().invoke(main, ["teacher", "reject", "--bench-file", str(bench / "train.jsonl"),
                                         "--teacher", json.dumps(teacher), "--out", str(tmp_path / "reject.jsonl"),
                                         "--report", str(report), "--cache-dir", str(cache), "--retries", "0",
                                         "--max-tokens", "4"],
                                  catch_exceptions=False)

    doomed_log = tmp_path / "doomed.log"
    with local_server(tiny_model_dir, log_path=doomed_log) as doomed:
        def kill_after_three_answers():
            deadline = time.monotonic() + 120
            while posts(doomed_log) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            os.killpg(doomed.pid, signal.SIGKILL)

        threading.Thread(target=kill_after_three_answers, daemon=True).start()
        result = reject(doomed)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: {tmp_path / 'reject.jsonl'}: teacher 'teacher' at {doomed.base_url} did "
                               "not answer: APIConnectionError"), lines[0]
    assert f"cached in {cache}: re-run to resume" in lines[0]
    assert not (tmp_path / "reject.jsonl").exists() and not report.exists()  # nothing that looks complete
    kept = len(entries(cache))
    assert 2 <= kept < 8  # the 3rd answer may have been logged but not received before the kill

    srv, log = server
    before = posts(log)
    result = reject(srv)
    assert result.exit_code == 0, result.output
    ledger = json.loads(report.read_text())["ledger"]
    assert (ledger["calls"], ledger["cached"]) == (8 - kept, kept)  # only what was missing is asked
    print(f"\nteacher: server killed after {kept} of 8 answers; the re-run asked {ledger['calls']}")
    assert posts(log) - before == 8 - kept
    assert len(entries(cache)) == 8 and len((tmp_path / "reject.jsonl").read_text().splitlines()) == 8

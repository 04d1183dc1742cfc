"""The one local server (llama.cpp for a GGUF-prepared model), structured outputs and log-prob verdicts.

The served tests start llama.cpp's real server (the xllamacpp wheel) on loopback with the packaged SmolLM2
GGUF; the request-construction tests need no network and show what the paper config's endpoints receive.
"""

import json
import math
import os

import jsonschema
import pytest

from rpm import prompts
from rpm.judge.core import Item, JudgeConfig, judge_items
from rpm.judge.parsers import point_score
from rpm.judge.validity import validity_items, validity_rows
from rpm.judge.verdicts import TOP_LOGPROBS, letter_probabilities, score_from_logprobs, winrate_from_logprobs
from rpm.llm.answers import ask_all
from rpm.llm.client import ChatClient, Endpoint, openai_request, request_key
from rpm.llm.serve import LLAMA_CPP, TRANSFORMERS, open_client, served_client, server_kind

VERDICT_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string", "enum": ["A", "B"]}},
                  "required": ["answer"], "additionalProperties": False}


def test_paper_endpoints_get_the_schema_and_logprob_request():
    """What vLLM / OpenAI / DashScope endpoints of paper.yaml receive (the openai client's keyword arguments)."""
    ep = Endpoint(name="qwen", backend="openai", model="qwen3-235b-a22b", base_url="https://example.invalid/v1")
    schema = prompts.get("da_topics").response_schema
    kw = openai_request(ep, [{"role": "user", "content": "hi"}], 64, 0.0, 7, schema, 0)
    assert kw["response_format"] == {"type": "json_schema",
                                     "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    assert "logprobs" not in kw and kw["seed"] == 7 and kw["max_tokens"] == 64
    kw = openai_request(ep, [{"role": "user", "content": "A or B?"}], 1, 0.0, 0, None, TOP_LOGPROBS)
    assert kw["logprobs"] is True and kw["top_logprobs"] == 20 and "response_format" not in kw


def test_a_plain_request_keeps_its_cache_address_and_a_schema_changes_it():
    ep = Endpoint(name="e", backend="openai", model="m", base_url="http://127.0.0.1:1/v1")
    msgs = [{"role": "user", "content": "x"}]
    plain = request_key(ep, msgs, 8, 0.0, 0)
    assert plain == request_key(ep, msgs, 8, 0.0, 0, None, 0)
    assert plain != request_key(ep, msgs, 8, 0.0, 0, VERDICT_SCHEMA) != request_key(ep, msgs, 8, 0.0, 0, None, 5)


def test_endpoints_without_structured_outputs_get_no_schema():
    ep = Endpoint(name="e", backend="openai", model="m", base_url="http://127.0.0.1:1/v1", structured_outputs=False,
                  logprobs=False)
    client = ChatClient(ep)
    assert client.sent_schema(VERDICT_SCHEMA) is None and client.sent_top_logprobs(20) == 0
    assert ChatClient(Endpoint(name="l", backend="local", model="m")).sent_schema(VERDICT_SCHEMA) is None


def test_the_enumerator_string_is_not_a_score():
    """The default run's judge began 11 of 48 PointScore answers with a list enumerator."""
    assert point_score("1. The response is in character and answers the question.", (1, 10)).value is None
    assert point_score("1. The response fits.\n2. Score: 8", (1, 10)).value == 8.0
    assert point_score("10. The reply fits the character", (1, 10)).value == 10.0
    assert point_score("7", (1, 10)).value == 7.0


def test_verdict_probabilities_from_top_logprobs():
    top = [["A", math.log(0.6)], [" B", math.log(0.2)], ["The", math.log(0.1)], ["**A", math.log(0.05)]]
    p = letter_probabilities(top)
    assert p["A"] == pytest.approx(0.65) and p["B"] == pytest.approx(0.2)
    assert winrate_from_logprobs(top, "model_first") == pytest.approx(0.65 / 0.85)
    assert winrate_from_logprobs(top, "golden_first") == pytest.approx(0.2 / 0.85)
    assert winrate_from_logprobs([["The", -0.1]], "model_first") is None
    assert score_from_logprobs([["8", math.log(0.5)], ["9", math.log(0.5)], ["x", -1.0]], (1, 10)) == 8.5
    assert score_from_logprobs([["11", -0.1], ["0", -0.2]], (1, 10)) is None


def test_validity_check_on_a_case_with_a_known_answer(paper_records):
    """A judge that always prefers the sample's own golden reply is above chance; one that always prefers the
    foreign reply is below; a coin is not shown."""
    from rpm.bench.schema import sample_from_dict

    samples = [sample_from_dict({**r, "sample_ID": f"{r['sample_ID']}-{k}"}) for k in range(6) for r in paper_records]
    items = validity_items([Item("id_test", s, "") for s in samples], seed=0)
    assert len(items) == len(samples)
    assert all(i.response != i.sample.agent_golden_response or
               sum(s.agent_golden_response == i.response for s in samples) > 1 for i in items)

    def rows(score_of):
        return [{"judge": "j", "kind": "winrate", "subset": i.subset, "sample_ID": i.sample.sample_ID,
                 "order": o, "score": score_of(k, o), "parsed": True} for k, i in enumerate(items)
                for o in ("model_first", "golden_first")]

    good, ensemble = validity_rows(rows(lambda k, o: 0.0), n_boot=200, seed=0)
    assert ensemble["judge"] == "ensemble" and ensemble["accuracy"] == good["accuracy"]  # one judge: its own check
    assert good["accuracy"] == 1.0 and good["ci_low"] == 1.0 and good["verdict"] == "above chance"
    bad, _ = validity_rows(rows(lambda k, o: 1.0), n_boot=200, seed=0)
    assert bad["accuracy"] == 0.0 and bad["verdict"] == "below chance"
    coin, _ = validity_rows(rows(lambda k, o: float((k + (o == "model_first")) % 2)), n_boot=200, seed=0)
    assert coin["accuracy"] == 0.5 and coin["verdict"].startswith("not shown")


# ------------------------------------------------------------------ the real llama.cpp server


@pytest.fixture(scope="module")
def smollm2_client(smollm2_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("llama") / "server.log"
    assert server_kind(smollm2_dir) == LLAMA_CPP
    with served_client(smollm2_dir, {"name": "smollm2", "max_tokens": 64, "timeout": 300}, None, log) as client:
        yield client, log


@pytest.mark.slow
def test_llama_server_answers_a_nested_schema_with_valid_json(smollm2_client):
    client, log = smollm2_client
    schema = prompts.get("bench_dialogue_word_composition_1").response_schema
    answer = client.complete([{"role": "user", "content": "Write five short variants of the question "
                                                          "'Do you like tea?' with a reply to each, as JSON."}],
                             schema=schema, max_tokens=400)
    assert client.server.kind == LLAMA_CPP and answer.structured
    jsonschema.validate(json.loads(answer.text), schema)
    assert client.ledger.structured == 1
    assert log.read_text().count("launch_slot_") >= 1   # the server logs each completion it answers


@pytest.mark.slow
def test_llama_server_verdict_comes_with_its_probabilities(smollm2_client, paper_records):
    client, _ = smollm2_client
    answer = client.complete([{"role": "user", "content": "Which is a fruit? A) apple B) hammer. "
                                                          "Answer with the letter only."}],
                             max_tokens=1, top_logprobs=TOP_LOGPROBS)
    assert answer.top_logprobs and len(answer.top_logprobs) == TOP_LOGPROBS
    p = winrate_from_logprobs(answer.top_logprobs, "model_first")
    assert p is not None and 0.0 < p < 1.0
    # The judge itself: verdicts from the probabilities, strictly between 0 and 1, on a real sample.
    from rpm.bench.schema import sample_from_dict

    item = Item("id_test", sample_from_dict(paper_records[0]), "Hello there.")
    cfg = JudgeConfig(name="smollm2", backend="serve_local", model=str(client.model_dir), max_tokens=4)
    rows = judge_items(client, cfg, [item], "t/m", context_turns=2, progress=False)
    assert [r["source"] for r in rows if r["kind"] == "winrate"] == ["logprobs", "logprobs"]
    assert all(0.0 < r["score"] < 1.0 for r in rows if r["kind"] == "winrate")


@pytest.mark.slow
def test_teacher_style_ask_all_gets_schema_answers_through_open_client(smollm2_dir, tmp_path):
    """The teacher and the builder reach the server through open_client({backend: serve_local, ...})."""
    from types import SimpleNamespace

    policy = SimpleNamespace(retries=0, retry_temperature=0.7, max_tokens=200, seed=0)
    template = prompts.get("da_topics")
    with open_client({"backend": "serve_local", "model": str(smollm2_dir)}, tmp_path / "cache", tmp_path / "s.log",
                     name="teacher") as client:
        msgs = template.render(user_persona="I love hiking.", agent_character="Sherlock Holmes, a detective.")
        got = ask_all(client, {0: msgs}, policy, lambda text: (json.loads(text), False, ""),
                      schema=template.response_schema)
    value = got[0][0]
    jsonschema.validate(value, template.response_schema)
    assert client.ledger.structured == 1 and client.server.kind == LLAMA_CPP


def test_a_plain_hf_directory_is_served_by_transformers(tiny_model_dir):
    assert server_kind(tiny_model_dir) == TRANSFORMERS


def test_free_strings_of_a_sent_schema_are_capped_for_a_small_local_model():
    ep = Endpoint(name="e", backend="openai", model="m", base_url="http://127.0.0.1:1/v1", max_string_length=300)
    sent = ChatClient(ep).sent_schema(prompts.get("bench_character_initial").response_schema)
    item = sent["items"]["properties"]
    assert item["character_name"]["maxLength"] == 300 and "maxLength" not in item["category"]  # an enum
    plain = Endpoint(name="p", backend="openai", model="m", base_url="http://127.0.0.1:1/v1")
    assert "maxLength" not in json.dumps(ChatClient(plain).sent_schema(VERDICT_SCHEMA))


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_the_local_server_does_not_outlive_its_parent(smollm2_dir, how):
    """A job killed outright (SIGKILL) leaves no server behind: the server watches its parent. A SIGTERMed one
    (how Snakemake stops a job) stops its server on the way out through the verb's own cleanup."""
    import signal as sig
    import subprocess
    import sys
    import time

    code = ("import signal, sys, time\n"
            "from rpm.cli_shared import _exit_on_sigterm\n"
            "signal.signal(signal.SIGTERM, _exit_on_sigterm)\n"
            "from rpm.llm.serve import local_server\n"
            f"with local_server({str(smollm2_dir)!r}) as s:\n"
            "    print(s.pid, flush=True)\n"
            "    time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    server_pid = int(parent.stdout.readline())
    os.kill(parent.pid, getattr(sig, how))
    parent.wait(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{server_pid}/stat") as f:
            if f.read().split()[2] == "Z":     # a zombie has exited; only its entry waits to be reaped
                return
        time.sleep(0.2)
    os.kill(server_pid, sig.SIGKILL)
    raise AssertionError(f"the server (pid {server_pid}) outlived its {how}ed parent by 15 s")

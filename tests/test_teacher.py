"""The teacher's tasks and the shared chat client: parsing, repair, retries, reports and the cache."""

import json

import pytest

from rpm import prompts
from rpm.bench.synth import SynthConfig, synthesize
from rpm.llm.client import ChatClient, Endpoint, request_key
from rpm.teacher.tasks import TeacherPolicy, augment, core_features, extract_json_object, reject, trace


@pytest.mark.parametrize("text,obj,repaired", [
    ('{"a": "x"}', {"a": "x"}, False),
    ('```json\n{"a": "x"}\n```', {"a": "x"}, True),
    ('Sure! Here it is: {"a": "x"} Hope this helps.', {"a": "x"}, True),
    ('{"a": "x",}', None, False),
    ("no json here", None, False),
    ('["a"]', None, False),
])
def test_json_extraction_repairs_only_unambiguous_answers(text, obj, repaired):
    assert extract_json_object(text) == (obj, repaired)


def test_core_features_follow_the_authors_marker_rule():
    marker = prompts.get("reasoning_rollout").extras["core_features_marker"]
    strict, lenient = TeacherPolicy(trace_policy="strict"), TeacherPolicy(trace_policy="lenient")
    assert core_features(f"Part 1 ...\n{marker}\n## I. Content\n- warm", strict) == ("## I. Content\n- warm", False, "")
    assert core_features("## I. Content\n- warm", strict) == (None, False, "no core-features marker in the answer")
    kept, repaired, why = core_features("## I. Content\n- warm", lenient)
    assert kept == "## I. Content\n- warm" and repaired and "lenient" in why
    assert core_features(f"x {marker}  ", strict)[0] is None


@pytest.fixture(scope="module")
def samples():
    return synthesize(SynthConfig(n_train=6, n_per_subset=1, seed=0))["train"]


@pytest.fixture
def client(tiny_model_dir, tmp_path):
    return ChatClient(Endpoint(name="t", backend="local", model=str(tiny_model_dir), max_tokens=12),
                      cache_dir=tmp_path / "cache")


def test_tasks_report_every_asked_sample_and_cache_every_answer(samples, client, tiny_model_dir, tmp_path):
    policy = TeacherPolicy(retries=1, max_tokens=12, trace_policy="lenient", max_samples=4, augment_fraction=1.0)
    rows, rep = reject(samples, client, policy)
    summary = rep.summary()
    assert summary["samples"] == 4 and summary["split_samples"] == 6
    assert summary["accepted"] + summary["repaired"] + summary["rejected"] == 4
    assert {r["sample_ID"] for r in rows} <= {s.sample_ID for s in samples}
    new, rep = augment(samples, client, policy)  # a random tiny model never writes the JSON asked for
    assert new == [] and rep.summary()["rejected"] == 4
    assert all(d["attempts"] == 2 and d["reason"].startswith("step 1: ") for d in rep.summary()["details"])
    traces, rep = trace(samples, client, policy)
    assert len(traces) == 4 and all(t["repaired"] for t in traces)  # lenient: kept whole, marked
    calls = client.ledger.calls
    assert calls == 4 + 4 * 2 + 4 and client.ledger.completion_tokens > 0
    # The same questions again: all from the cache, zero model calls.
    again = ChatClient(Endpoint(name="t", backend="local", model=str(tiny_model_dir), max_tokens=12),
                       cache_dir=tmp_path / "cache")
    assert reject(samples, again, policy)[0] == rows and again.ledger.calls == 0 and again.ledger.cached == 4


def test_request_key_ignores_the_api_key_and_names_everything_else():
    ep = Endpoint(name="j", backend="openai", model="m", base_url="http://127.0.0.1:1/v1", api_key_env="K")
    msgs = [{"role": "user", "content": "hi"}]
    k = request_key(ep, msgs, 8, 0.0, 0)
    assert k == request_key(Endpoint(**{**ep.__dict__, "api_key_env": "OTHER"}), msgs, 8, 0.0, 0)
    assert len({k, request_key(ep, msgs, 9, 0.0, 0), request_key(ep, msgs, 8, 0.5, 0),
                request_key(ep, msgs, 8, 0.0, 1)}) == 4


@pytest.mark.parametrize("spec,message", [
    ({"name": "t", "backend": "ftp", "model": "m"}, "backend must be one of"),
    ({"name": "t", "backend": "openai", "model": "m"}, "needs `base_url`"),
    ({"name": "t", "backend": "local"}, "`model` is required"),
    ({"name": "t", "model": "m", "api_key": "sk-123"}, "unknown key(s) ['api_key']"),
])
def test_bad_endpoint_specs(spec, message):
    with pytest.raises(ValueError) as err:
        Endpoint.from_dict(spec)
    assert message in str(err.value)


def test_missing_key_variable_is_named(monkeypatch):
    monkeypatch.delenv("RPM_TEST_KEY", raising=False)
    c = ChatClient(Endpoint(name="j", backend="openai", model="m", base_url="http://127.0.0.1:9/v1",
                            api_key_env="RPM_TEST_KEY"))
    with pytest.raises(RuntimeError, match="environment variable RPM_TEST_KEY is not set"):
        c.complete([{"role": "user", "content": "hi"}])
    assert "RPM_TEST_KEY" not in json.dumps(c.ledger.__dict__)

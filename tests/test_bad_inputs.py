"""The bad-input corpus (tests/bad_inputs/): every malformed file gives its own clear error naming the file,
the line, the sample and the field, through the command a user runs. Nothing is skipped silently."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

CORPUS = REPO / "tests/bad_inputs"
RPM = str(Path(sys.executable).parent / "rpm")

BENCH_CASES = {
    "truncated_json.jsonl": "line 2, sample ?: malformed JSON at column",
    "wrong_type.jsonl": "line 2, sample 'IDTest-00002', field 'user_persona': expected a string, got int",
    "missing_field.jsonl": "line 2, sample 'IDTest-00002', field 'agent_golden_response': missing required field",
    "missing_character_field.jsonl": "field 'agent_character.character_background': missing required field",
    "unknown_field.jsonl": "line 2, sample 'IDTest-00002', field 'golden': unknown field(s) ['golden']",
    "empty_dialogue.jsonl": "field 'dialogue_context': is empty: a dialogue needs at least one user query",
    "dialogue_ends_on_agent.jsonl": "field 'dialogue_context': the dialogue must end on a user query",
    "empty_golden.jsonl": "line 2, sample 'IDTest-00002', field 'agent_golden_response': is empty",
    "duplicate_ids.jsonl": "line 2, sample 'IDTest-00001', field 'sample_ID': duplicate sample ID "
                           "(first seen on line 1)",
    "path_separator_id.jsonl": "sample '../../etc/passwd', field 'sample_ID': sample ID '../../etc/passwd' is not safe",
    "invalid_utf8.jsonl": "line 2, sample ?: invalid UTF-8 at byte 9 of the line",
    "blank_line.jsonl": "line 2, sample ?: blank line",
    "unknown_subset_tag.jsonl": "line 2, sample 'OOD1Test-00002', field 'subset_tag': unknown subset tag 'klingon'",
}
RESPONSE_CASES = {
    "missing_samples.jsonl": "3 sample(s) of subset 'dial_word'",
    "extra_sample.jsonl": "line 49, sample 'IDTest-09999': not a sample of subset 'id_test'",
    "empty_response.jsonl": "line 6, sample 'OOD1Test-00002': field \"response\" is empty",
    "unknown_subset.jsonl": "line 8, sample 'OOD1Test-00004': unknown subset 'user_xx'",
    "wrong_type_response.jsonl": "line 10, sample 'OOD1Test-00006': field \"response\" must be a string, got int",
    "duplicate_response.jsonl": "line 11, sample 'OOD1Test-00006': duplicate sample ID (first on line 10)",
    "truncated_json.jsonl": "line 48: malformed JSON at column",
    "missing_sample_id.jsonl": "line 4: missing or non-string \"sample_ID\"",
}


def rpm(*args, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([RPM, *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_the_corpus_has_a_case_for_every_file():
    assert {p.name for p in (CORPUS / "bench").glob("*.jsonl")} == set(BENCH_CASES) | {"overlong_context.jsonl"}
    assert {p.name for p in (CORPUS / "responses").glob("*.jsonl")} == set(RESPONSE_CASES)
    assert len(BENCH_CASES) + len(RESPONSE_CASES) + 1 >= 15


@pytest.mark.parametrize("name", sorted(BENCH_CASES))
def test_bad_benchmark_file(name):
    proc = rpm("bench", "validate", f"bench/{name}", cwd=CORPUS)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"Error: bench/{name}, "), proc.stderr
    assert BENCH_CASES[name] in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def small_bench(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "bench"
    assert rpm("bench", "synth", "--out", str(out), "--n-train", "4", "--n-per-subset", "4", cwd=CORPUS).returncode == 0
    return out


@pytest.mark.parametrize("name", sorted(RESPONSE_CASES))
def test_bad_response_file(name, small_bench, tmp_path):
    estimator = tmp_path / "estimator"  # never loaded: the responses are checked first
    estimator.mkdir()
    proc = rpm("score", "--responses", f"responses/{name}", "--bench", str(small_bench), "--estimator", str(estimator),
               "--out", str(tmp_path / "out"), cwd=CORPUS)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"responses/{name}" in proc.stderr and RESPONSE_CASES[name] in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.csv"))  # nothing was scored


@pytest.mark.slow
def test_an_overlong_context_is_refused_not_truncated(smoke_run, tmp_path):
    proc = rpm("logprobs", "--estimator", str(smoke_run / "results/estimator/tiny/coldstart/pxy"),
               "--bench-file", "bench/overlong_context.jsonl", "--responses", "overlong_context.responses.jsonl",
               "--out", str(tmp_path / "lp.npz"), "--quiet", cwd=CORPUS)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "over-long input(s), refusing to truncate: prompt of sample 'IDTest-00002'" in proc.stderr
    assert "> max_length 4096" in proc.stderr and not (tmp_path / "lp.npz").exists()

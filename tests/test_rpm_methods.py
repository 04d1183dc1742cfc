"""The RPM methods on the tiny model: real behaviour, not only files (issue: nine methods + generation)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rpm.bench.load import read_jsonl
from rpm.bench.synth import SynthConfig, synth
from rpm.cli import main
from rpm.runtime.embed import load_embedder
from rpm.runtime.load import load_rpm, read_manifest
from rpm.runtime.scorer import score_pairs
from rpm.train.formats import parse_generation, response_block, rpm_messages
from rpm.train.icl import icl_messages, input_texts, neighbours
from rpm.train.methods import train

SETTINGS = {
    "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
    "sft": {"max_steps": 8, "per_device_train_batch_size": 2, "learning_rate": 0.005, "lr_scheduler_type": "constant",
            "max_length": 4096, "save_steps": 4},
    "dpo": {"max_steps": 6, "per_device_train_batch_size": 2, "learning_rate": 0.005, "beta": 0.1,
            "max_length": 4096, "save_steps": 3},
    "grpo": {"max_steps": 2, "per_device_train_batch_size": 4, "num_generations": 4, "max_completion_length": 8,
             "learning_rate": 0.001, "save_steps": 1},
    "rft": {"samples": 2, "max_new_tokens": 8},
    "icl": {"k": 5, "embedder": "minilm"},
    "corl": {"iterations": 1},
    "reward": {"batch_size": 4},
}


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("rpm")
    synth(root / "bench", SynthConfig(n_train=6, n_per_subset=2, seed=0))
    return root


def _train(work, method, tiny_model_dir, **kw):
    return train(method, base=str(tiny_model_dir), train_file=str(work / "bench/train.jsonl"),
                 out=str(work / method), ckpt=str(work / f"ck-{method}"), settings=SETTINGS, seed=0, **kw)


def _mean_logprob(model_dir_or_model, tok, prompts, targets):
    model = model_dir_or_model
    s = score_pairs(model, tok, prompts, targets, batch_size=4)
    return np.array([lp.mean() for lp in s.token_logprobs])


@pytest.fixture(scope="module")
def sft_dir(work, tiny_model_dir):
    return _train(work, "sft", tiny_model_dir)


def test_sft_raises_the_likelihood_of_its_training_responses(work, sft_dir, tiny_model_dir):
    from rpm.runtime.load import load_model, load_tokenizer

    samples = read_jsonl(work / "bench/train.jsonl")
    tok = load_tokenizer(tiny_model_dir)
    prompts = [rpm_messages(s) for s in samples]
    targets = [response_block(s.agent_golden_response) for s in samples]
    before = _mean_logprob(load_model(tiny_model_dir), tok, prompts, targets)
    after = _mean_logprob(load_rpm(sft_dir)[0], tok, prompts, targets)
    assert (after > before).all(), (before, after)
    log = [json.loads(line) for line in (Path(sft_dir) / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 8 and losses[-1] < losses[0]
    manifest = read_manifest(sft_dir)
    assert manifest["chain"] == [str(Path(sft_dir) / "adapter")] and manifest["steps"] == 8


def test_dpo_raises_the_chosen_minus_rejected_margin(work, sft_dir, tiny_model_dir):
    samples = read_jsonl(work / "bench/train.jsonl")
    rejected = work / "rejected.jsonl"
    rejected.write_text("".join(json.dumps({"sample_ID": s.sample_ID, "rejected": "I do not know who you are."}) + "\n"
                                for s in samples))
    dpo_dir = _train(work, "dpo", tiny_model_dir, parent=str(sft_dir), teacher_file=str(rejected))
    from rpm.runtime.load import load_tokenizer

    tok = load_tokenizer(tiny_model_dir)
    prompts = [rpm_messages(s) for s in samples]
    chosen = [response_block(s.agent_golden_response) for s in samples]
    worse = [response_block("I do not know who you are.")] * len(samples)

    def margin(model):
        return (score_pairs(model, tok, prompts, chosen).sums - score_pairs(model, tok, prompts, worse).sums).mean()

    assert margin(load_rpm(dpo_dir)[0]) > margin(load_rpm(sft_dir)[0])
    assert read_manifest(dpo_dir)["chain"][0] == str(Path(sft_dir) / "adapter")


def test_grpo_logs_rollout_rewards_every_step(work, sft_dir, tiny_model_dir):
    rl = _train(work, "rl", tiny_model_dir, parent=str(sft_dir))
    log = [json.loads(line) for line in (Path(rl) / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "rewards/table24_p100/mean" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(0.0 < r["rewards/table24_p100/mean"] < 1.0 for r in steps)  # a probability of "100%"


def test_icl_prompt_holds_the_five_nearest_training_samples(work):
    train_samples = read_jsonl(work / "bench/train.jsonl")
    test = read_jsonl(work / "bench/char_film.jsonl")[0]
    emb = load_embedder("minilm")
    index, query = emb.encode(input_texts(train_samples)), emb.encode(input_texts([test]))
    nearest = neighbours(index, query, 5)[0]
    cos = (index / np.linalg.norm(index, axis=1, keepdims=True)) @ (query[0] / np.linalg.norm(query[0]))
    assert set(nearest) == set(np.argsort(-cos)[:5])
    msgs = icl_messages(test, [train_samples[j] for j in nearest])
    assert msgs[0]["role"] == "system" and len(msgs) == 1 + 2 * 5 + 1
    shown = [m["content"] for m in msgs[1:-1] if m["role"] == "assistant"]
    assert shown == [response_block(train_samples[j].agent_golden_response) for j in nearest]
    assert msgs[-1] == rpm_messages(test)[-1]


def test_generation_parses_thought_and_response():
    assert parse_generation("thinking...\n\n<Agent Response>\nHello.\n</Agent Response>") == ("thinking...", "Hello.")
    assert parse_generation("Hello there.</Agent Response>") == ("", "Hello there.")
    assert parse_generation("<Agent Response>\nCut off mid") == ("", "Cut off mid")


def test_generate_covers_every_sample_of_every_subset(work, sft_dir):
    bench = sorted((work / "bench").glob("*.jsonl"))
    args = ["generate", "--model", str(sft_dir), "--out-dir", str(work / "responses"), "--max-new-tokens", "6"]
    for f in bench:
        args += ["--bench-file", str(f)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    for f in bench:
        rows = [json.loads(line) for line in (work / "responses" / f.name).read_text().splitlines()]
        assert [r["sample_ID"] for r in rows] == [s.sample_ID for s in read_jsonl(f)]
        assert all(r["method"] == "sft" and len(r["adapter_sha256"]) == 64 for r in rows)


def test_missing_parent_or_teacher_file_is_a_clear_error(work, tiny_model_dir):
    with pytest.raises(ValueError, match="method dpo starts from the sft model: pass --parent"):
        _train(work, "dpo", tiny_model_dir)
    with pytest.raises(ValueError, match="needs the teacher's trace file"):
        _train(work, "thinking_sft", tiny_model_dir)


@pytest.mark.slow
def test_killed_training_resumes_from_its_last_checkpoint(work, tiny_model_dir, tmp_path):
    """SIGKILL after the first checkpoint; the rerun continues from it instead of restarting."""
    settings = dict(SETTINGS, sft=dict(SETTINGS["sft"], max_steps=6, save_steps=2))
    cmd = [sys.executable, "-m", "rpm", "train", "--method", "sft", "--base", str(tiny_model_dir),
           "--train-file", str(work / "bench/train.jsonl"), "--out", str(tmp_path / "m"),
           "--checkpoints", str(tmp_path / "ck"), "--settings", json.dumps(settings), "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while not (tmp_path / "ck" / "checkpoint-2" / "trainer_state.json").exists():
        assert time.time() < deadline and proc.poll() is None, "no checkpoint appeared"
        time.sleep(0.5)
    time.sleep(1.0)  # let the checkpoint files finish writing
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "m").exists()  # nothing that looks complete
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = read_manifest(tmp_path / "m")["resumed_from"]
    assert resumed and Path(resumed).name.startswith("checkpoint-") and int(Path(resumed).name.split("-")[1]) >= 2
    log = [json.loads(line) for line in (tmp_path / "m" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r][-1] == 6


def test_vllm_requests_carry_the_paper_decoding():
    from rpm.runtime.generate import Decoding, vllm_sampling_kwargs

    assert vllm_sampling_kwargs(Decoding()) == {
        "max_tokens": 256, "repetition_penalty": 1.05, "temperature": 0.0, "top_p": 1.0,
        "stop": ["</Agent Response>"], "include_stop_str_in_output": True, "seed": 0}
    sampled = vllm_sampling_kwargs(Decoding(do_sample=True, temperature=0.7, top_p=0.9, stop=None))
    assert sampled["temperature"] == 0.7 and sampled["top_p"] == 0.9 and sampled["stop"] == []


def test_vllm_backend_without_vllm_says_what_to_do(work, sft_dir):
    result = CliRunner().invoke(main, ["generate", "--model", str(sft_dir), "--bench-file",
                                       str(work / "bench/id_test.jsonl"), "--out-dir", str(work / "v"),
                                       "--backend", "vllm"], env={"RPM_VLLM_PYTHON": ""})
    assert result.exit_code == 1 and "set RPM_VLLM_PYTHON" in result.output


def test_trainer_settings_keep_json_floats_that_yaml_reads_as_strings():
    """The rule passes settings as JSON; YAML 1.1 would read json.dumps(1e-05) == "1e-05" as a string."""
    import json

    from rpm.cli_shared import parse_mapping

    settings = parse_mapping(json.dumps({"grpo": {"learning_rate": 1e-05}}), "--settings")
    assert settings["grpo"]["learning_rate"] == 1e-05 and isinstance(settings["grpo"]["learning_rate"], float)
    assert parse_mapping("{lr: 0.1, a: b}", "--settings") == {"lr": 0.1, "a": "b"}  # YAML still accepted


def test_nested_severities_reuse_the_unchanged_samples_generations(work, sft_dir, tmp_path):
    """`rpm generate --reuse` / `rpm reason --reuse` on the next severity: every sample whose record did not
    change gets the earlier row, only the newly shifted ones are generated, and a changed model reuses nothing."""
    from rpm.estimator.train import reason_files
    from rpm.runtime.generate import Decoding

    for sev in (0.0, 0.5):
        synth(tmp_path / f"s{sev}", SynthConfig(n_train=6, n_per_subset=4, seed=0,
                                               severity={"user": sev, "character": sev, "dialogue": sev}))
    files = ["id_test.jsonl", "user_de.jsonl", "dial_turn.jsonl"]

    def same(name):   # samples byte-identical at both severities (the nested design)
        a, b = (read_jsonl(tmp_path / f"s{sev}" / name) for sev in (0.0, 0.5))
        return sum(x == y for x, y in zip(a, b))

    unchanged = sum(same(f) for f in files)
    assert 4 <= unchanged < 12                     # id_test is untouched, half of each OOD subset shifted
    run = CliRunner().invoke
    base = ["generate", "--model", str(sft_dir), "--max-new-tokens", "6"]
    first = run(main, [*base, *[f"--bench-file={tmp_path / 's0.0' / f}" for f in files], "--out-dir",
                       str(tmp_path / "r0")])
    assert first.exit_code == 0, first.output
    again = run(main, [*base, *[f"--bench-file={tmp_path / 's0.5' / f}" for f in files], "--out-dir",
                       str(tmp_path / "r5"), *[f"--reuse={tmp_path / 'r0' / f}" for f in files]])
    assert again.exit_code == 0, again.output
    rows0 = {f: [json.loads(x) for x in (tmp_path / "r0" / f).read_text().splitlines()] for f in files}
    rows5 = {f: [json.loads(x) for x in (tmp_path / "r5" / f).read_text().splitlines()] for f in files}
    reused = [r for f in files for r in rows5[f] if "reused_from" in r]
    first_file = sum("reused_from" in r for r in rows5[files[0]])
    assert len(reused) == unchanged and f"({first_file} reused" in again.output
    for f in files:
        for r0, r5 in zip(rows0[f], rows5[f]):
            assert r0["input_sha256"] == r5["input_sha256"] or "reused_from" not in r5
            if "reused_from" in r5:
                # The first earlier row with that input (the OOD subsets share their bases: maybe another file's).
                assert r5["response"] == r0["response"] and r5["reused_from"].startswith(str(tmp_path / "r0"))
    dec = Decoding(max_new_tokens=6, stop=None)
    r_first = reason_files(sft_dir, [tmp_path / "s0.0" / f for f in files], tmp_path / "q0", dec, progress=False)
    r_next = reason_files(sft_dir, [tmp_path / "s0.5" / f for f in files], tmp_path / "q5", dec, progress=False,
                          reuse=[out for out, _ in r_first])
    assert sum("reused_from" in r for _, rows in r_next for r in rows) == unchanged
    other = Decoding(max_new_tokens=7, stop=None)     # other settings: nothing is reusable
    r_other = reason_files(sft_dir, [tmp_path / "s0.5" / f for f in files], tmp_path / "q7", other, progress=False,
                           reuse=[out for out, _ in r_first])
    assert not any("reused_from" in r for _, rows in r_other for r in rows)


def test_inputs_repeated_within_a_job_are_generated_once(work, sft_dir, tmp_path, monkeypatch):
    """At severity 0 the OOD subsets hold the same texts (shared bases): `rpm generate` and `rpm reason` give
    each distinct prompt one generation and copy it to every subset that repeats it."""
    import rpm.estimator.train as estimator_train
    import rpm.train.respond as respond
    from rpm.runtime.generate import Decoding

    synth(tmp_path / "s0", SynthConfig(n_train=6, n_per_subset=4, seed=0,
                                       severity={"user": 0.0, "character": 0.0, "dialogue": 0.0}))
    files = [tmp_path / "s0" / f for f in ("id_test.jsonl", "user_de.jsonl", "dial_turn.jsonl")]
    asked = []

    def spy(real):
        def counted(model, tok, message_lists, *args, **kwargs):
            asked.append(len(message_lists))
            return real(model, tok, message_lists, *args, **kwargs)
        return counted

    monkeypatch.setattr(respond, "generate_texts", spy(respond.generate_texts))
    r = CliRunner().invoke(main, ["generate", "--model", str(sft_dir), "--max-new-tokens", "6",
                                  *[f"--bench-file={f}" for f in files], "--out-dir", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    assert asked == [8]                              # id_test's 4 and the shared bases' 4, not 12
    rows = {f.name: [json.loads(x) for x in (tmp_path / "r" / f.name).read_text().splitlines()] for f in files}
    assert [x["response"] for x in rows["user_de.jsonl"]] == [x["response"] for x in rows["dial_turn.jsonl"]]
    assert [x["sample_ID"] for x in rows["dial_turn.jsonl"]] == [s.sample_ID for s in read_jsonl(files[2])]

    asked.clear()
    monkeypatch.setattr(estimator_train, "generate_texts", spy(estimator_train.generate_texts))
    written = estimator_train.reason_files(sft_dir, files, tmp_path / "q", Decoding(max_new_tokens=6, stop=None),
                                           progress=False)
    assert asked == [8]
    by = {out.name: out_rows for out, out_rows in written}
    assert [x["thought"] for x in by["user_de.jsonl"]] == [x["thought"] for x in by["dial_turn.jsonl"]]

"""The CoRL estimator on the tiny model: golden withheld, cold start helps, co-evolution logged, deterministic."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rpm.bench.load import read_jsonl
from rpm.bench.schema import Turn
from rpm.bench.synth import SynthConfig, synth
from rpm.estimator.formats import GoldenLeakError, core_features, format_score, length_score, marker, reasoning_messages
from rpm.estimator.train import coevolve, cold_start
from rpm.metrics.inputs import scored_continuation, scorer_messages
from rpm.runtime.scorer import score_pairs

SETTINGS = {
    "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
    "sft": {"max_steps": 6, "per_device_train_batch_size": 2, "learning_rate": 0.005, "lr_scheduler_type": "constant",
            "max_length": 4096, "save_steps": 3},
    "iterations": 1,
    "grpo_reasoner": {"max_steps": 1, "per_device_train_batch_size": 4, "num_generations": 4,
                      "max_completion_length": 8, "save_steps": 1},
    "grpo_policy": {"max_steps": 1, "per_device_train_batch_size": 4, "num_generations": 4,
                    "max_completion_length": 8, "save_steps": 1},
    "reason_max_new_tokens": 8,
}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("est")
    synth(root / "bench", SynthConfig(n_train=6, n_per_subset=2, seed=1))
    samples = read_jsonl(root / "bench/train.jsonl")
    with open(root / "traces.jsonl", "w") as f:
        for s in samples:  # a well-formed trace per sample, as a strong teacher would write it
            r = f"## I. Content Characteristics\n- speaks to {s.user_persona[:40]}"
            f.write(json.dumps({"sample_ID": s.sample_ID, "trace": r,
                                "thought": f"### Part 1\n{marker()}\n```\n{r}\n```"})
                    + "\n")
    return root


def test_no_reasoning_prompt_holds_the_golden_response(work):
    for f in sorted((work / "bench").glob("*.jsonl")):
        for s in read_jsonl(f):
            text = " ".join(m["content"] for m in reasoning_messages(s))
            assert s.agent_golden_response not in text
            assert "Please give your analysis without any given reference response" in text


def test_a_golden_response_inside_the_dialogue_is_refused(work):
    s = read_jsonl(work / "bench/train.jsonl")[0]
    leaky = replace(s, dialogue_context=(Turn("user_query", "hi"), Turn("agent_response", s.agent_golden_response),
                                         Turn("user_query", "again?")))
    with pytest.raises(GoldenLeakError, match=s.sample_ID):
        reasoning_messages(leaky)


def test_reasoner_reward_parts():
    m = marker()
    full = ("### Part 1: Restatement of Key Information\n### Part 2: Iterative Revision\n"
            "### Part 3: Final Feature Set of the Golden Response\n```" + m +
            "\n## I. Content Characteristics\n- a\n## II. Style Characteristics\n- b\n```")
    assert format_score(full) == 1.0
    assert format_score(full.replace("```", "")) == 0.5
    assert format_score("nothing") == 0.0
    assert core_features(full)[1] and core_features(full)[0].startswith("## I. Content")
    assert core_features("free text") == ("free text", False)
    assert length_score("word " * 300) == 0.5 and length_score("word " * 900) == 1.0


def test_cold_start_policy_raises_the_golden_likelihood_given_reasoning(work, tiny_model_dir):
    from rpm.runtime.load import load_model, load_tokenizer

    out = cold_start("policy", base=str(tiny_model_dir), train_file=str(work / "bench/train.jsonl"),
                     traces_file=str(work / "traces.jsonl"), settings=SETTINGS, out=str(work / "policy"),
                     ckpt=str(work / "ck-policy"), seed=0)
    samples = read_jsonl(work / "bench/train.jsonl")
    traces = {json.loads(line)["sample_ID"]: json.loads(line)["trace"]
              for line in (work / "traces.jsonl").read_text().splitlines()}
    tok = load_tokenizer(tiny_model_dir)
    prompts = [scorer_messages(s, traces[s.sample_ID]) for s in samples]
    targets = [scored_continuation(s.agent_golden_response) for s in samples]

    def mean_ll(model):
        r = score_pairs(model, tok, prompts, targets)
        return float(np.mean(r.sums / r.ntok))

    assert mean_ll(load_model(out)) > mean_ll(load_model(tiny_model_dir))


def test_same_seed_same_threads_gives_bitwise_identical_adapters(work, tiny_model_dir):
    outs = [cold_start("pxy", base=str(tiny_model_dir), train_file=str(work / "bench/train.jsonl"),
                       traces_file=None, settings=dict(SETTINGS, sft=dict(SETTINGS["sft"], max_steps=2)),
                       out=str(work / f"pxy{i}"), ckpt=str(work / f"ck-pxy{i}"), seed=0) for i in range(2)]
    a, b = [(Path(o) / "adapter" / "adapter_model.safetensors").read_bytes() for o in outs]
    assert a == b


def test_coevolution_writes_a_reward_log_per_iteration(work, tiny_model_dir):
    for module in ("reasoner", "policy"):
        if not (work / module / "rpm_method.json").exists():
            cold_start(module, base=str(tiny_model_dir), train_file=str(work / "bench/train.jsonl"),
                       traces_file=str(work / "traces.jsonl"), settings=dict(SETTINGS, sft=dict(SETTINGS["sft"],
                                                                                                max_steps=1)),
                       out=str(work / module), ckpt=str(work / f"ck-{module}"), seed=0)
    out = coevolve(base=str(tiny_model_dir), reasoner=str(work / "reasoner"), policy=str(work / "policy"),
                   pool_file=str(work / "bench/train.jsonl"), settings=SETTINGS, out=str(work / "coevolved"),
                   ckpt=str(work / "ck-co"), seed=0)
    log = [json.loads(line) for line in (Path(out) / "coevolution_log.jsonl").read_text().splitlines()]
    assert [(r["iteration"], r["module"]) for r in log] == [(1, "reasoner"), (1, "policy")]
    assert {"rewards/reasoner_format/mean", "rewards/reasoner_length/mean",
            "rewards/reasoner_likelihood/mean"} <= set(log[0])
    assert 0 < log[0]["rewards/reasoner_likelihood/mean"] < 1
    assert {"rewards/policy_format/mean", "rewards/policy_ratio/mean"} <= set(log[1])
    from rpm.runtime.load import load_model

    for module in ("reasoner", "policy"):
        m = json.loads((Path(out) / module / "rpm_method.json").read_text())
        assert len(m["chain"]) == 2 and m["iterations"] == 1  # cold-start adapter + one GRPO stage
        load_model(Path(out) / module)


def test_published_adapters_stand_in_for_the_coevolved_estimator(work, tiny_model_dir, tmp_path):
    """A local copy laid out like the hub repository (the download itself needs the network)."""
    from click.testing import CliRunner

    from rpm.cli import main
    from rpm.runtime.load import load_model

    for module in ("reasoner", "policy"):
        if not (work / module / "rpm_method.json").exists():
            cold_start(module, base=str(tiny_model_dir), train_file=str(work / "bench/train.jsonl"),
                       traces_file=str(work / "traces.jsonl"),
                       settings=dict(SETTINGS, sft=dict(SETTINGS["sft"], max_steps=1)),
                       out=str(work / module), ckpt=str(work / f"ck-{module}"), seed=0)
    repo = tmp_path / "R-EMID-Estimator"
    import shutil

    for module, sub in (("reasoner", "model_r"), ("policy", "model_pxy")):
        shutil.copytree(work / module / "adapter", repo / sub)
    args = ["estimator", "published", "--source", str(repo), "--base", str(tiny_model_dir),
            "--reasoner-subfolder", "model_r", "--policy-subfolder", "model_pxy", "--out", str(tmp_path / "pub")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    a = load_model(tmp_path / "pub" / "policy").state_dict()
    b = load_model(work / "policy").state_dict()
    assert all((a[k] == b[k]).all() for k in b)
    bad = CliRunner().invoke(main, ["estimator", "published", "--source", str(repo), "--base", str(tiny_model_dir),
                                    "--reasoner-subfolder", "nope", "--policy-subfolder", "model_pxy",
                                    "--out", str(tmp_path / "pub2")])
    assert bad.exit_code == 1 and "no LoRA adapter (adapter_config.json) in 'nope'" in bad.output

"""The one log-prob scorer: cached-prefix matrix == plain forward passes, over-long refusal, the
vLLM seam's request construction and parsing, and `rpm logprobs` with its input validation."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_jsonl

from rpm.bench.synth import SynthConfig, synth
from rpm.cli import main
from rpm.metrics import inputs
from rpm.metrics.matrices import load
from rpm.runtime import vllm_scorer
from rpm.runtime.load import load_model, load_tokenizer
from rpm.runtime.scorer import (
    OverlongError,
    ScoringError,
    encode,
    render_prompt,
    score_matrix,
    score_matrix_sets,
    score_pairs,
)

TOL = 1e-4   # per-token log-prob agreement required between the two modes (issue 5)


def _prompts(n):
    # Different lengths on purpose: the shortest prompt sets how many logits score_pairs keeps.
    return [[{"role": "system", "content": "Score the agent response."},
             {"role": "user", "content": f"persona {k}: " + "likes lakes and cabins. " * (1 + 2 * k)}]
            for k in range(n)]


def _conts(n):
    return [f"## Agent Response\nReply {k}: " + "the water is calm, " * (k % 3) + "goodbye." for k in range(n)]


def _max_diff(pairs_by_row, matrix):
    return max(float(np.abs(pairs_by_row[i].token_logprobs[j] - matrix.token_logprobs[i][j]).max())
               for i in range(len(pairs_by_row)) for j in range(len(pairs_by_row)))


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_cached_prefix_matrix_equals_plain_forward_passes(tiny, batch_size):
    """5 prompts x 5 continuations; batch sizes that do and do not divide N (the last, smaller batch
    rebuilds the cache), so crop, batch expansion and padding are all exercised."""
    model, tok = tiny
    n = 5
    m = score_matrix(model, tok, _prompts(n), _conts(n), batch_size=batch_size, entropy=True,
                     keep_token_logprobs=True)
    rows = [score_pairs(model, tok, [_prompts(n)[i]] * n, _conts(n), batch_size=3, entropy=True) for i in range(n)]
    assert _max_diff(rows, m) < TOL
    assert np.allclose(m.lp, np.array([r.sums for r in rows]), atol=TOL * 30, rtol=0)
    assert np.allclose(m.entropy, [rows[i].entropy[i].sum() for i in range(n)], atol=1e-3, rtol=0)
    # Token counts: the continuation's own tokens, the same down each column, no special tokens added.
    want = [len(tok(c, add_special_tokens=False)["input_ids"]) for c in _conts(n)]
    assert (m.ntok == np.tile(want, (n, 1))).all()
    assert m.lp.dtype == np.float64 and m.token_logprobs[0][0].dtype == np.float32
    assert (m.lp < 0).all() and m.dropped == []


def test_sets_share_one_prompt_pass_and_match_single_set(tiny):
    model, tok = tiny
    n = 4
    other = [c.upper() for c in _conts(n)]
    both = score_matrix_sets(model, tok, _prompts(n), {"golden": _conts(n), "model": other}, batch_size=3)
    alone = score_matrix(model, tok, _prompts(n), other, batch_size=2)
    assert np.allclose(both["model"].lp, alone.lp, atol=1e-3, rtol=0)
    assert both["golden"].sample_ids == both["model"].sample_ids


def test_prompt_is_the_chat_template_with_generation_prompt_and_continuation_is_appended(tiny):
    _, tok = tiny
    msgs = _prompts(1)[0]
    enc = encode(tok, [msgs], {"y": ["## Agent Response\nHi."]}, ["s1"])
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert render_prompt(tok, msgs) == text and text.endswith("<|im_start|>assistant\n")
    assert enc.prompt_ids[0] == tok(text, add_special_tokens=False)["input_ids"]
    assert enc.continuation_ids["y"][0] == tok("## Agent Response\nHi.", add_special_tokens=False)["input_ids"]


def test_overlong_pair_is_refused_naming_sample_and_lengths(tiny):
    model, tok = tiny
    prompts, conts, ids = _prompts(3), _conts(3), ["short-0", "mid-1", "long-2"]
    enc = encode(tok, prompts, {"y": conts}, ids)
    p_len = [len(p) for p in enc.prompt_ids]
    limit = p_len[2] + len(enc.continuation_ids["y"][2]) - 1     # only sample long-2's own pair is too long
    with pytest.raises(OverlongError, match=r"sample 'long-2': prompt \d+ tokens \+ continuation"):
        score_pairs(model, tok, prompts, conts, sample_ids=ids, max_length=limit)
    with pytest.raises(OverlongError, match=r"prompt of sample 'long-2' \(\d+ tokens\)"):
        score_matrix(model, tok, prompts, conts, sample_ids=ids, max_length=limit)
    # drop: left out and reported, never truncated; the other samples are scored as usual.
    pr = score_pairs(model, tok, prompts, conts, sample_ids=ids, max_length=limit, overlong="drop")
    assert pr.sample_ids == ["short-0", "mid-1"] and [d.sample_id for d in pr.dropped] == ["long-2"]
    d = pr.dropped[0]
    assert d.prompt_tokens == p_len[2] and d.max_length == limit and str(limit) in d.reason
    m = score_matrix(model, tok, prompts, conts, sample_ids=ids, max_length=limit, overlong="drop")
    assert m.sample_ids == ["short-0", "mid-1"] and m.lp.shape == (2, 2)
    assert [x.sample_id for x in m.dropped] == ["long-2"]
    full = score_matrix(model, tok, prompts, conts, sample_ids=ids)
    assert np.allclose(m.lp, full.lp[:2, :2], atol=1e-3)


def test_matrix_drop_covers_cross_pairs(tiny):
    """A prompt that fits its own continuation but not a longer one of another sample is dropped, named."""
    model, tok = tiny
    prompts = [_prompts(1)[0], _prompts(4)[3]]
    conts = ["## Agent Response\nok", "## Agent Response\n" + "a long answer " * 30]
    enc = encode(tok, prompts, {"y": conts}, ["a", "b"])
    p, c = [len(x) for x in enc.prompt_ids], [len(x) for x in enc.continuation_ids["y"]]
    limit = max(p[1] + c[0], p[0] + c[1])
    assert p[1] + c[1] > limit
    m = score_matrix(model, tok, prompts, conts, sample_ids=["a", "b"], max_length=limit, overlong="drop")
    assert m.sample_ids == ["a"] and m.dropped[0].sample_id == "b"


def test_empty_continuation_and_bad_policy_are_errors(tiny):
    model, tok = tiny
    with pytest.raises(ScoringError, match="sample 'x1': continuation .* empty"):
        score_pairs(model, tok, _prompts(2), ["fine", ""], sample_ids=["x0", "x1"])
    with pytest.raises(ValueError, match="overlong must be one of"):
        score_matrix(model, tok, _prompts(2), _conts(2), overlong="truncate")


# ------------------------------------------------------------------ vLLM seam (vLLM is not installed here)


def _fake_output(req, lp_of, *, drop_position=None):
    """A hand-made vLLM RequestOutput: prompt_logprobs[t] = {token_id: Logprob}, entry 0 None."""
    plp = [None]
    for t in range(1, len(req.token_ids)):
        entry = {req.token_ids[t]: SimpleNamespace(logprob=lp_of(req, t), rank=1, decoded_token="x"),
                 99999: SimpleNamespace(logprob=-0.01, rank=1, decoded_token="y")}
        plp.append(None if t == drop_position else entry)
    return SimpleNamespace(prompt_token_ids=list(req.token_ids), prompt_logprobs=plp, outputs=[])


def test_vllm_requests_are_grouped_by_prompt_and_parsed_back_into_the_matrix():
    prompts = [[1, 2, 3], [4, 5]]
    conts = [[7, 8], [9]]
    reqs = vllm_scorer.build_requests(prompts, conts)
    assert [(r.i, r.j) for r in reqs] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert reqs[1].token_ids == [1, 2, 3, 9] and reqs[1].n_prompt == 3
    assert reqs[2].token_ids == [4, 5, 7, 8] and reqs[2].n_prompt == 2

    def lp_of(req, t):
        return -0.1 * req.token_ids[t] - req.i

    outputs = [_fake_output(r, lp_of) for r in reqs]
    values = vllm_scorer.parse_outputs(reqs, outputs)
    assert np.allclose(values[2], [-0.7 - 1, -0.8 - 1]) and values[2].dtype == np.float32
    m = vllm_scorer.assemble(reqs, values, 2, ["a", "b"])
    assert np.allclose(m.lp, [[-1.5, -0.9], [-1.5 - 2, -0.9 - 1]]) and (m.ntok == [[2, 1], [2, 1]]).all()


def test_vllm_parsing_refuses_missing_or_mismatched_outputs():
    reqs = vllm_scorer.build_requests([[1, 2]], [[3, 4]])
    with pytest.raises(ScoringError, match="no log-prob for token 4 at position 3"):
        vllm_scorer.parse_outputs(reqs, [_fake_output(reqs[0], lambda r, t: -1.0, drop_position=3)])
    wrong = _fake_output(reqs[0], lambda r, t: -1.0)
    wrong.prompt_token_ids = [1, 2, 3, 5]
    with pytest.raises(ScoringError, match="belongs to another request"):
        vllm_scorer.parse_outputs(reqs, [wrong])
    with pytest.raises(ScoringError, match="was prompt_logprobs requested"):
        vllm_scorer.parse_outputs(reqs, [SimpleNamespace(prompt_token_ids=[1, 2, 3, 4], prompt_logprobs=None)])
    with pytest.raises(ScoringError, match="did not cover every pair"):
        vllm_scorer.assemble(reqs, [np.array([-1.0, -1.0], dtype=np.float32)], 2, ["a", "b"])


# ------------------------------------------------------------------ rpm logprobs


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    synth(out, SynthConfig(n_train=4, n_per_subset=3, seed=1))
    return out


def _rows(bench_file, key, fn):
    from rpm.bench.load import read_jsonl

    return [{"sample_ID": s.sample_ID, key: fn(s)} for s in read_jsonl(bench_file)]


def test_rpm_logprobs_writes_matrices_and_reuses_golden(tmp_path, tiny_model_dir, bench_dir):
    bench = bench_dir / "id_test.jsonl"
    resp = write_jsonl(tmp_path / "resp.jsonl", _rows(bench, "response", lambda s: s.agent_golden_response[::-1]))
    reas = write_jsonl(tmp_path / "reas.jsonl", _rows(bench, "reasoning", lambda s: f"Mention {s.user_persona[:40]}"))
    run = CliRunner().invoke
    base = ["logprobs", "--estimator", str(tiny_model_dir), "--bench-file", str(bench), "--reasoning", str(reas),
            "--quiet", "--batch-size", "2"]
    r = run(main, [*base, "--out", str(tmp_path / "golden.npz")])
    assert r.exit_code == 0, r.output
    r = run(main, [*base, "--responses", str(resp), "--golden-from", str(tmp_path / "golden.npz"),
                   "--out", str(tmp_path / "both.npz"), "--rpm", "tiny/rev", "--report", str(tmp_path / "rep.json")])
    assert r.exit_code == 0, r.output
    r = run(main, [*base, "--responses", str(resp), "--out", str(tmp_path / "fresh.npz")])
    assert r.exit_code == 0, r.output
    g, both, fresh = load(tmp_path / "golden.npz"), load(tmp_path / "both.npz"), load(tmp_path / "fresh.npz")
    assert g.model is None and both.model is not None and both.n == 3
    assert np.array_equal(both.golden.lp, g.golden.lp)
    assert (np.allclose(fresh.golden.lp, g.golden.lp, atol=1e-4)
            and np.allclose(fresh.model.lp, both.model.lp, atol=1e-4))
    assert both.meta["rpm"] == "tiny/rev" and both.meta["reasoning"] and both.meta["prompt"] == "policy_rollout"
    assert both.golden.ent.shape == (3,) and (both.model.ent > 0).all()
    assert json.loads((tmp_path / "rep.json").read_text())["dropped"] == []
    # Without reasoning: the Table 18 prompt, labelled as such.
    r = run(main, ["logprobs", "--estimator", str(tiny_model_dir), "--bench-file", str(bench), "--quiet",
                   "--responses", str(resp), "--out", str(tmp_path / "emi.npz")])
    assert r.exit_code == 0, r.output
    emi = load(tmp_path / "emi.npz")
    assert emi.meta["reasoning"] is False and emi.meta["prompt"] == "reasoning_reward"
    assert not np.allclose(emi.golden.lp, g.golden.lp)


def test_rpm_logprobs_drop_policy_writes_report(tmp_path, tiny_model_dir, bench_dir):
    bench = bench_dir / "id_test.jsonl"
    model_dir = tiny_model_dir
    tok = load_tokenizer(model_dir)
    from rpm.bench.load import read_jsonl

    samples = read_jsonl(bench)
    lens = [len(tok(render_prompt(tok, inputs.scorer_messages(s)), add_special_tokens=False)["input_ids"])
            + len(tok(inputs.scored_continuation(s.agent_golden_response, False),
                      add_special_tokens=False)["input_ids"])
            for s in samples]
    longest = int(np.argmax(lens))
    limit = sorted(lens)[-1] - 1
    r = CliRunner().invoke(main, ["logprobs", "--estimator", str(model_dir), "--bench-file", str(bench), "--quiet",
                                  "--max-length", str(limit), "--out", str(tmp_path / "x.npz")])
    assert r.exit_code == 1 and samples[longest].sample_ID in r.output and "max_length" in r.output
    assert not (tmp_path / "x.npz").exists()
    r = CliRunner().invoke(main, ["logprobs", "--estimator", str(model_dir), "--bench-file", str(bench), "--quiet",
                                  "--max-length", str(limit), "--overlong", "drop", "--out", str(tmp_path / "x.npz"),
                                  "--report", str(tmp_path / "rep.json")])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "rep.json").read_text())
    assert samples[longest].sample_ID in {d["sample_ID"] for d in rep["dropped"]}
    assert rep["n_kept"] == load(tmp_path / "x.npz").n < len(samples)


@pytest.mark.parametrize("mutate,message", [
    (lambda rows: rows[:-1], "no row for benchmark sample"),
    (lambda rows: rows + [{"sample_ID": "NOT-IN-BENCH", "response": "hi"}],
     "line 4, sample 'NOT-IN-BENCH': sample ID is not in"),
    (lambda rows: [rows[0], {**rows[1], "response": "  "}, rows[2]],
     "line 2, sample '.*': field \"response\" is empty"),
    (lambda rows: [rows[0], {"sample_ID": rows[1]["sample_ID"]}, rows[2]], 'line 2, sample .*missing field "response"'),
    (lambda rows: [rows[0], rows[0], rows[2]], "line 2, .*duplicate sample ID"),
])
def test_rpm_logprobs_refuses_bad_response_files(tmp_path, tiny_model_dir, bench_dir, mutate, message):
    bench = bench_dir / "user_de.jsonl"
    rows = mutate(_rows(bench, "response", lambda s: "a reply"))
    resp = write_jsonl(tmp_path / "resp.jsonl", rows)
    r = CliRunner().invoke(main, ["logprobs", "--estimator", str(tiny_model_dir), "--bench-file", str(bench),
                                  "--responses", str(resp), "--out", str(tmp_path / "o.npz"), "--quiet"])
    assert r.exit_code == 1 and str(resp) in r.output, r.output
    import re

    assert re.search(message, r.output), r.output
    assert not (tmp_path / "o.npz").exists()


def test_malformed_json_line_is_named(tmp_path, bench_dir):
    bad = tmp_path / "r.jsonl"
    bad.write_text('{"sample_ID": "a", "response": "x"}\n{"sample_ID": \n')
    with pytest.raises(inputs.InputFileError, match=r"r.jsonl, line 2: malformed JSON"):
        inputs.read_text_rows(bad, "response")


# ------------------------------------------------------------------ the embedded default (slow)


@pytest.mark.slow
def test_cached_prefix_equals_plain_forward_on_smollm2(smollm2_dir):
    d = smollm2_dir
    model, tok = load_model(d), load_tokenizer(d)
    model.eval()
    n = 3
    prompts = [[{"role": "system", "content": "Please complete the agent response."},
                {"role": "user", "content": f"User {k} loves lakes and cabins. " * (2 + k)}] for k in range(n)]
    conts = [f"## Agent Response\nThe lake at dawn, number {k}, is calm." for k in range(n)]
    m = score_matrix(model, tok, prompts, conts, batch_size=2, keep_token_logprobs=True, entropy=True)
    rows = [score_pairs(model, tok, [prompts[i]] * n, conts, batch_size=2) for i in range(n)]
    assert _max_diff(rows, m) < TOL

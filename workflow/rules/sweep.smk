# Controlled-shift validation (beyond the paper): the mini benchmark's severity knob sets the fraction of
# each OOD subset that is really shifted, so the true order of shift magnitudes is known. For each
# severity, one RPM is scored on one subset per shift type with the CoRL estimator; the divergence, the
# bound and R-EMID should rise with the severity. The ID split and ID test are drawn before the knob
# acts (rpm/bench/synth.py), so they are the same samples at every severity and the RPM's training set.
#
# The benchmark at each severity is the rule sweep_bench (data.smk); generation, reasoning and log-probs are
# the main rules reused (`use rule`) on results/sweep/severity_{severity}/ (SWEEP_DIR, SWEEP_SUBSETS and
# sweep_files in common.smk).

SWEEP = config["sweep"]
SWEEP_SEVERITIES = [f"{float(s):g}" for s in SWEEP["severities"]]
SWEEP_BASE = config["rpm"]["bases"][0]
SWEEP_RPM = f"{SWEEP_BASE}/{SWEEP['method']}"
if SWEEP["enabled"] and SWEEP["method"] not in methods_used():
    raise ValueError(
        f"config: sweep.method {SWEEP['method']!r} is not trained (rpm.methods: {config['rpm']['methods']})"
    )
unknown_subsets = sorted(set(SWEEP["subsets"]) - set(OOD_SUBSETS))
if unknown_subsets:
    raise ValueError(
        f"config: sweep.subsets {unknown_subsets} are not OOD subsets; choose from {list(OOD_SUBSETS)}"
    )


# The sweep's RPM on each severity's benchmark, always with transformers (rpm.generate.backend aside). The
# severities are nested, so each reuses the previous severity's rows for the samples it left unchanged
# (rpm/runtime/reuse.py): every distinct sample is generated once.
use rule rpm_generate as sweep_generate with:
    input:
        model=f"{RPM_DIR}/{SWEEP_RPM}/model",
        bench=sweep_files("bench"),
        previous=previous_severity_files("responses"),
    output:
        sweep_files("responses"),
    log:
        f"{LOGS}/sweep/generate_{{severity}}.log",
    benchmark:
        f"{BENCHMARKS}/sweep/generate_{{severity}}.tsv"
    priority: FEEDS_CRITICAL_PATH
    params:
        backend="transformers",
        max_new_tokens=max_new_tokens(SWEEP["method"]),
        reuse=lambda wildcards, input: repeat("--reuse", input.previous),


# The co-evolved (CoRL) reasoner's traces on each severity's benchmark.
use rule estimator_reason as sweep_reason with:
    input:
        reasoner=f"{EST_DIR}/coevolved",
        bench=sweep_files("bench"),
        previous=previous_severity_files("reasoning"),
    output:
        sweep_files("reasoning"),
    log:
        f"{LOGS}/sweep/reason_{{severity}}.log",
    benchmark:
        f"{BENCHMARKS}/sweep/reason_{{severity}}.tsv"
    priority: CRITICAL_PATH
    params:
        reasoner=REASONER["corl"],
        reuse=lambda wildcards, input: repeat("--reuse", input.previous),


# The CoRL estimator's log-prob matrices of the golden responses and the sweep's RPM at each severity. Rows
# whose prompt and scored continuations the previous severity left unchanged are copied from its files
# (rpm/metrics/row_reuse.py): ID test at every severity, and unshifted samples with unshifted negatives.
use rule logprobs as sweep_logprobs with:
    input:
        scorer=f"{EST_DIR}/coevolved",
        bench=sweep_files("bench"),
        reasoning=sweep_files("reasoning"),
        responses=sweep_files("responses"),
        previous_golden=previous_severity_files("logprobs/golden", "npz"),
        previous_rpm=previous_severity_files(f"logprobs/{SWEEP_RPM}", "npz"),
    output:
        golden=sweep_files("logprobs/golden", "npz"),
        rpms=sweep_files(f"logprobs/{SWEEP_RPM}", "npz"),
    log:
        f"{LOGS}/sweep/logprobs_{{severity}}.log",
    benchmark:
        f"{BENCHMARKS}/sweep/logprobs_{{severity}}.tsv"
    # In place of logprobs' constraint on {variant}, which these paths do not have (the global one).
    wildcard_constraints:
        severity=r"[0-9.]+",
    priority: CRITICAL_PATH
    params:
        scorer=SCORER["corl"],
        inputs=lambda wildcards, input: logprobs_inputs(
            input, [(SWEEP_RPM, os.path.dirname(input.responses[0]))]
        ),
        name="corl",
        negatives=negatives_option(SWEEP["negatives"]),
        reuse=lambda wildcards, input: reuse_dir_option(input.previous_golden),


rule sweep_bound:
    input:
        bench=sweep_files("bench"),
        responses=sweep_files("responses"),
        logprobs=sweep_files(f"logprobs/{SWEEP_RPM}", "npz"),
    output:
        table=f"{SWEEP_DIR}/severity_{{severity}}/bound.csv",
        replicates=f"{SWEEP_DIR}/severity_{{severity}}/bound_replicates.npz",
    log:
        f"{LOGS}/sweep/bound_{{severity}}.log",
    benchmark:
        f"{BENCHMARKS}/sweep/bound_{{severity}}.tsv"
    priority: CRITICAL_PATH
    threads: config["compute"]["threads"]
    params:
        bench_dir=lambda wildcards, input: os.path.dirname(input.bench[0]),
        responses_dir=lambda wildcards, input: os.path.dirname(input.responses[0]),
        logprobs_dir=lambda wildcards, input: os.path.dirname(input.logprobs[0]),
        subsets=repeat("--subset", SWEEP["subsets"]),
        embedder=config["metrics"]["embedder"],
        normalization=config["metrics"]["normalization"],
        seed=config["seed"],
        null_permutations=config["metrics"]["null_permutations"],
        n_boot=config["metrics"]["n_boot"],
    shell:
        "rpm bound --bench-dir {params.bench_dir} --responses-dir {params.responses_dir} "
        "--logprobs-dir {params.logprobs_dir} {params.subsets} --out {output.table} --sizes all "
        "--seeds {params.seed} --embedder {params.embedder} --normalization {params.normalization} "
        "--seed {params.seed} --null-permutations {params.null_permutations} "
        "--replicates {output.replicates} --n-boot {params.n_boot} > {log} 2>&1"


rule sweep_summary:
    input:
        tables=expand(
            f"{SWEEP_DIR}/severity_{{severity}}/bound.csv", severity=SWEEP_SEVERITIES
        ),
        replicates=expand(
            f"{SWEEP_DIR}/severity_{{severity}}/bound_replicates.npz",
            severity=SWEEP_SEVERITIES,
        ),
    output:
        table=report(
            f"{SWEEP_DIR}/sweep.csv",
            caption="../report/sweep.rst",
            category="5. Controlled shifts",
        ),
        spearman=report(
            f"{SWEEP_DIR}/sweep_spearman.csv",
            caption="../report/sweep.rst",
            category="5. Controlled shifts",
        ),
        png=report(
            f"{SWEEP_DIR}/sweep.png",
            caption="../report/sweep.rst",
            category="5. Controlled shifts",
        ),
        pdf=f"{SWEEP_DIR}/sweep.pdf",
        slopes=report(
            f"{SWEEP_DIR}/sweep_slopes.csv",
            caption="../report/sweep.rst",
            category="5. Controlled shifts",
        ),
    log:
        f"{LOGS}/sweep/summary.log",
    priority: CRITICAL_PATH
    params:
        runs=lambda wildcards, input: " ".join(
            f"--run {sev}={path} --replicates {sev}={reps}"
            for sev, path, reps in zip(
                SWEEP_SEVERITIES, input.tables, input.replicates
            )
        ),
        out_dir=lambda wildcards, output: os.path.dirname(output.table),
    shell:
        "rpm analyze sweep {params.runs} --out-dir {params.out_dir} > {log} 2>&1"

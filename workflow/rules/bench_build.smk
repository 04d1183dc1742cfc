# Optional: the RPGBench construction pipeline (Appendix A, Steps 1-4) against an LLM endpoint.
#
# Not part of rule all: ask for it by name, e.g.
#   snakemake --cores 2 results/bench_build/bench/stats.tsv
# Each step is one `rpm bench build` verb over files. The answer cache (results/bench_build/cache) is
# deliberately not a declared output (see judge.smk): Snakemake would empty it before a re-run, exactly
# when it is needed. With `endpoint.serve: MODEL` the step serves that prepared model (under models:)
# with `transformers serve` on loopback; its cache identity is the prepared model, not the port.

BB_DIR = "results/bench_build"
BB = config["bench_build"]

import rpm.construct.workflow as bb_workflow

BB_MODELS = bb_workflow.model_inputs(config)
BB_COMMON = bb_workflow.common_options(config)
BB_PERSONA_SEEDS = bb_workflow.persona_seeds(config)
BB_CONTEXT_SEEDS = bb_workflow.context_seeds(config)
# An LLM step's job: the answers come from a served model or an endpoint, so 4 GB and compute.runtime.
BB_RESOURCES = {
    "mem_mb": lambda wildcards, attempt: 4000 * attempt,
    "runtime": lambda wildcards, attempt: config["compute"]["runtime"] * attempt,
}


rule bench_build_characters:
    input:
        seeds=BB_PERSONA_SEEDS,
        character_seeds=BB["character_seeds"] or [],
        models=BB_MODELS,
    output:
        rows=f"{BB_DIR}/characters.jsonl",
        report=f"{BB_DIR}/reports/characters.json",
    log:
        main=f"{LOGS}/bench_build/characters.log",
        server=f"{LOGS}/bench_build/characters.server.log",
    benchmark:
        f"{BENCHMARKS}/bench_build/characters.tsv"
    threads: config["compute"]["threads"]
    resources:
        **BB_RESOURCES,
    params:
        common=BB_COMMON,
        max_personas=(
            f"--max-personas {BB['max_personas']}" if BB["max_personas"] else ""
        ),
        retriever=(
            f"--retriever-dir {BB['retriever_dir']}" if BB["retriever_dir"] else ""
        ),
        character_seeds=lambda wildcards, input: repeat(
            "--character-seeds", input.character_seeds
        ),
        num_domains=BB["num_domains"],
    shell:
        "rpm bench build characters --persona-seeds {input.seeds} --out {output.rows} --report {output.report} "
        "--num-domains {params.num_domains} {params.max_personas} {params.retriever} {params.character_seeds} "
        "{params.common} --server-log {log.server} > {log.main} 2>&1"


rule bench_build_personas:
    input:
        characters=f"{BB_DIR}/characters.jsonl",
        seeds=BB_PERSONA_SEEDS,
        models=BB_MODELS,
    output:
        rows=f"{BB_DIR}/personas.jsonl",
        report=f"{BB_DIR}/reports/personas.json",
    log:
        main=f"{LOGS}/bench_build/personas.log",
        server=f"{LOGS}/bench_build/personas.server.log",
    benchmark:
        f"{BENCHMARKS}/bench_build/personas.tsv"
    threads: config["compute"]["threads"]
    resources:
        **BB_RESOURCES,
    params:
        common=BB_COMMON,
        max_pairs=f"--max-pairs {BB['max_pairs']}" if BB["max_pairs"] else "",
    shell:
        "rpm bench build personas --characters {input.characters} --persona-seeds {input.seeds} "
        "--out {output.rows} --report {output.report} {params.max_pairs} {params.common} "
        "--server-log {log.server} > {log.main} 2>&1"


rule bench_build_dialogues:
    input:
        characters=f"{BB_DIR}/characters.jsonl",
        personas=f"{BB_DIR}/personas.jsonl",
        seeds=BB_CONTEXT_SEEDS,
        models=BB_MODELS,
    output:
        rows=f"{BB_DIR}/dialogues.jsonl",
        report=f"{BB_DIR}/reports/dialogues.json",
    log:
        main=f"{LOGS}/bench_build/dialogues.log",
        server=f"{LOGS}/bench_build/dialogues.server.log",
    benchmark:
        f"{BENCHMARKS}/bench_build/dialogues.tsv"
    threads: config["compute"]["threads"]
    resources:
        **BB_RESOURCES,
    params:
        common=BB_COMMON,
        seeds=lambda wildcards, input: repeat("--context-seeds", input.seeds),
        n_turn=BB["n_turn"],
        n_word=BB["n_word"],
    shell:
        "rpm bench build dialogues --characters {input.characters} --personas {input.personas} {params.seeds} "
        "--n-turn {params.n_turn} --n-word {params.n_word} --out {output.rows} --report {output.report} "
        "{params.common} --server-log {log.server} > {log.main} 2>&1"


rule bench_build_split:
    input:
        characters=f"{BB_DIR}/characters.jsonl",
        personas=f"{BB_DIR}/personas.jsonl",
        dialogues=f"{BB_DIR}/dialogues.jsonl",
    output:
        stats=f"{BB_DIR}/bench/stats.tsv",
        table2=f"{BB_DIR}/bench/table2.tsv",
        provenance=f"{BB_DIR}/bench/provenance.tsv",
        report=f"{BB_DIR}/reports/split.json",
    log:
        f"{LOGS}/bench_build/split.log",
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.stats),
        test_fraction=BB["test_fraction"],
        partial="--allow-partial" if BB["allow_partial"] else "",
        seed=config["seed"],
    shell:
        "rpm bench build split --characters {input.characters} --personas {input.personas} "
        "--dialogues {input.dialogues} --out {params.out_dir} --report {output.report} "
        "--test-fraction {params.test_fraction} {params.partial} --seed {params.seed} > {log} 2>&1"

# Stage 2, models: every base model as a plain HF directory (safetensors, tokenizer, rpm_model.json).


rule model_prepare:
    output:
        directory("results/models/{model}"),
    log:
        f"{LOGS}/model_prepare/{{model}}.log",
    benchmark:
        f"{BENCHMARKS}/model_prepare/{{model}}.tsv"
    threads: 2
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        spec=model_spec,
    shell:
        "rpm model prepare --spec {params.spec} --out {output} > {log} 2>&1"

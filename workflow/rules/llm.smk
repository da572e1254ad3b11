# R-GenIMA and the LLM rows of Table 1 (paper 4.2.2-4.2.3, 4.5.2): the base LLM per backbone,
# fine-tuning of connector + LLM per (model, data configuration, fold), and prediction.
#
# Model IDs (as in the evaluation tables): "<backbone>" (LLM SNP-only), "<backbone>_med3d"
# (LLM + Med3D) and "rgenima_<backbone>" (R-GenIMA: LLM + RiT). Which models run on which data
# configuration follows the paper's Table 1.
# Helper functions (llm_models, base_llm_path, embeddings_input, embeddings_arg, ...): rules/common.smk.

LLM = config["llm"]
LLM_DIR = "results/llm"
TABLE1_LLM_VARIANTS = {"gene_only": ["snp"], "image_gene": ["med3d", "rit"], "mixture": ["med3d", "rit"]}

LLM_RUNS = [(m, d) for d in DS["configs"] for m in llm_models(d)]

ALL_TARGETS += [f"{LLM_DIR}/{m}/{d}/fold{k}/predictions.tsv" for m, d in LLM_RUNS for k in FOLDS]


wildcard_constraints:
    backbone="|".join(LLM["backbones"]),
    model="|".join(sorted({m for m, _ in LLM_RUNS})),


rule build_demo_llm:
    """A small random-init LLM of the backbone's architecture and a locally trained tokenizer (demo model)."""
    input:
        gene_panel=config["genetics"]["gene_panel"],
    output:
        directory(f"{LLM_DIR}/base/{{backbone}}"),
    params:
        arch=lambda w: LLM["demo"]["arch"][w.backbone],
        size=[
            "--hidden-size", LLM["demo"]["hidden_size"], "--layers", LLM["demo"]["layers"],
            "--heads", LLM["demo"]["heads"], "--kv-heads", LLM["demo"]["kv_heads"],
            "--intermediate-size", LLM["demo"]["intermediate_size"],
        ],
        seed=config["seed"],
    log:
        f"results/logs/llm/build_demo_llm_{{backbone}}.log",
    benchmark:
        f"results/benchmarks/llm/build_demo_llm_{{backbone}}.tsv"
    conda:
        conda_env("train")
    shell:
        "rgenima build-demo-llm --output {output:q} --arch {params.arch:q} {params.size:q} "
        "--gene-panel {input.gene_panel:q} --seed {params.seed:q} > {log:q} 2>&1"


rule finetune:
    """Fine-tune connector + LLM on one fold's training samples (ZeRO-3 under torchrun when the job has GPUs)."""
    input:
        unpack(embeddings_input),
        base=lambda w: base_llm_path(llm_model_parts(w.model)[0]),
        samples="results/datasets/{dconfig}/fold{k}/samples.tsv",
        imputed="results/genetics/imputed/fold{k}.npz",
        snps="results/genetics/snps.tsv",
        deepspeed=LLM["deepspeed_config"],
    output:
        checkpoint=directory(f"{LLM_DIR}/{{model}}/{{dconfig}}/fold{{k}}/checkpoint"),
        history=report(f"{LLM_DIR}/{{model}}/{{dconfig}}/fold{{k}}/history.tsv", category="R-GenIMA",
                       subcategory="Fine-tuning loss", caption="../report/finetune_history.rst"),
        summary=f"{LLM_DIR}/{{model}}/{{dconfig}}/fold{{k}}/finetune.json",
    params:
        embeddings=embeddings_arg,
        settings=settings_json(config["train"]),
        connector=LLM["connector"],
        lora=["--lora"] if LLM["lora"] else [],
        seed=config["seed"],
    threads: LLM["finetune_threads"]
    resources:
        gpu=LLM["gpus_per_finetune"],
    log:
        f"results/logs/llm/finetune_{{model}}_{{dconfig}}_fold{{k}}.log",
    benchmark:
        f"results/benchmarks/llm/finetune_{{model}}_{{dconfig}}_fold{{k}}.tsv"
    conda:
        conda_env("train")
    shell:
        # One SLURM task sees all the job's GPUs; torchrun starts one process per GPU (ZeRO-3).
        # Without GPUs (the demo) the same command runs the plain PyTorch loop on the CPU.
        # Bash arrays keep every path one word, spaces and all.
        "if [ {resources.gpu:q} -gt 0 ]; then "
        "  launch=(torchrun --standalone --nproc_per_node {resources.gpu:q} -m rgenima_lib.cli); "
        "  ds=(--deepspeed {input.deepspeed:q}); "
        "else launch=(rgenima); ds=(); export OMP_NUM_THREADS={threads:q}; fi; "
        "\"${{launch[@]}}\" finetune --base {input.base:q} --samples {input.samples:q} --imputed {input.imputed:q} "
        "--snps {input.snps:q} {params.embeddings:q} --connector {params.connector:q} {params.lora:q} "
        "--settings {params.settings:q} \"${{ds[@]}}\" --seed {params.seed:q} --output {output.checkpoint:q} "
        "--history {output.history:q} --summary {output.summary:q} > {log:q} 2>&1"


rule predict:
    """Class probabilities by scoring the four answers, and the paper's strict greedy generation."""
    input:
        unpack(embeddings_input),
        checkpoint=rules.finetune.output.checkpoint,
        samples="results/datasets/{dconfig}/fold{k}/samples.tsv",
        imputed="results/genetics/imputed/fold{k}.npz",
        snps="results/genetics/snps.tsv",
    output:
        predictions=f"{LLM_DIR}/{{model}}/{{dconfig}}/fold{{k}}/predictions.tsv",
        summary=f"{LLM_DIR}/{{model}}/{{dconfig}}/fold{{k}}/predict.json",
    params:
        embeddings=embeddings_arg,
        bf16=["--bf16"] if config["train"]["bf16"] else [],
    threads: 1
    resources:
        gpu=LLM["gpus_per_predict"],
    log:
        f"results/logs/llm/predict_{{model}}_{{dconfig}}_fold{{k}}.log",
    benchmark:
        f"results/benchmarks/llm/predict_{{model}}_{{dconfig}}_fold{{k}}.tsv"
    conda:
        conda_env("train")
    shell:
        "OMP_NUM_THREADS={threads:q} rgenima predict --checkpoint {input.checkpoint:q} --samples {input.samples:q} "
        "--imputed {input.imputed:q} --snps {input.snps:q} {params.embeddings:q} {params.bf16:q} "
        "--output {output.predictions:q} --summary {output.summary:q} > {log:q} 2>&1"

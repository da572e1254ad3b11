# R-GenIMA and the LLM rows of Table 1 (paper 4.2.2-4.2.3, 4.5.2): the base LLM per backbone,
# fine-tuning of connector + LLM per (model, data configuration, fold), and prediction.
# Model IDs: rgenima_lib.model_ids; which models run on which data configuration (LLM_RUNS) and the
# helpers (base_llm_path, embeddings_input, embeddings_arg): rules/common.smk.


rule build_demo_llm:
    """A small random-init LLM of the backbone's architecture and a locally trained tokenizer (demo model)."""
    input:
        gene_panel=GEN["gene_panel"],
    output:
        directory(R("demo_llm")),
    params:
        arch=lambda w: demo_arch(LLM, w.backbone),
        size=[
            "--hidden-size", LLM["demo"]["hidden_size"], "--layers", LLM["demo"]["layers"],
            "--heads", LLM["demo"]["heads"], "--kv-heads", LLM["demo"]["kv_heads"],
            "--intermediate-size", LLM["demo"]["intermediate_size"],
        ],
        seed=config["seed"],
    log:
        log_path("llm", "build_demo_llm_{backbone}"),
    benchmark:
        benchmark_path("llm", "build_demo_llm_{backbone}")
    conda:
        conda_env("train")
    shell:
        "rgenima build-demo-llm --output {output:q} --arch {params.arch:q} {params.size:q} "
        "--gene-panel {input.gene_panel:q} --seed {params.seed:q} > {log:q} 2>&1"


rule resource_plan:
    """Per-GPU memory and time per epoch of fine-tuning a backbone; fails when the config cannot fit its GPUs."""
    input:
        base=lambda w: base_llm_path(w.backbone),
    output:
        table=R("llm_resource_plan_table"),
        plan=R("llm_resource_plan"),
    params:
        train=settings_json(train_settings()),
        plan=settings_json(LLM["plan"]),
        gpus=LLM["gpus_per_finetune"],
        attn=LLM["attn_implementation"],
    log:
        log_path("llm", "resource_plan_{backbone}"),
    benchmark:
        benchmark_path("llm", "resource_plan_{backbone}")
    conda:
        conda_env("train")
    shell:
        "rgenima plan --model {input.base:q} --name {wildcards.backbone:q} --train {params.train:q} "
        "--plan {params.plan:q} --gpus {params.gpus:q} --attn-implementation {params.attn:q} "
        "--output-tsv {output.table:q} --output-json {output.plan:q} > {log:q} 2>&1"


rule finetune:
    """Fine-tune connector + LLM on one fold's training samples (ZeRO-3 under torchrun when the job has GPUs)."""
    input:
        unpack(embeddings_input),
        base=lambda w: base_llm_path(llm_model_parts(w.model)[0]),
        samples=R("samples"),
        imputed=R("imputed"),
        snps=R("snps"),
        deepspeed=LLM["deepspeed_config"],
        # Nothing is trained before the plan says the configuration fits the GPUs.
        plan=lambda w: R("llm_resource_plan", backbone=llm_model_parts(w.model)[0]),
    output:
        checkpoint=directory(R("llm_checkpoint")),
        history=report(R("llm_history"), category="R-GenIMA", subcategory="Fine-tuning loss",
                       caption="../report/finetune_history.rst"),
        summary=R("llm_finetune_summary"),
    params:
        embeddings=embeddings_arg,
        settings=lambda w: settings_json(train_settings(w.dconfig)),
        connector=LLM["connector"],
        attn=LLM["attn_implementation"],
        lora=["--lora"] if LLM["lora"] else [],
        snp_separator=GEN["snp_separator"],
        snp_packing=GEN["snp_packing"],
        gene_input=LLM["gene_input"],
        seed=config["seed"],
    threads: LLM["finetune_threads"]
    resources:
        gpu=LLM["gpus_per_finetune"],
    log:
        log_path("llm", "finetune_{model}_{dconfig}_fold{k}"),
    benchmark:
        benchmark_path("llm", "finetune_{model}_{dconfig}_fold{k}")
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
        "--snps {input.snps:q} {params.embeddings:q} --snp-separator {params.snp_separator:q} "
        "--snp-packing {params.snp_packing:q} "
        "--connector {params.connector:q} {params.lora:q} --attn-implementation {params.attn:q} "
        "--settings {params.settings:q} \"${{ds[@]}}\" --seed {params.seed:q} --output {output.checkpoint:q} "
        "--gene-input {params.gene_input:q} --history {output.history:q} --summary {output.summary:q} "
        "> {log:q} 2>&1"


rule predict:
    """Class probabilities by scoring the four answers, and the paper's strict greedy generation."""
    input:
        unpack(embeddings_input),
        checkpoint=rules.finetune.output.checkpoint,
        samples=R("samples"),
        imputed=R("imputed"),
        snps=R("snps"),
    output:
        predictions=R("llm_predictions"),
        summary=R("llm_predict_summary"),
    params:
        embeddings=embeddings_arg,
        bf16=["--bf16"] if config["train"]["bf16"] else [],
        snp_separator=GEN["snp_separator"],
        snp_packing=GEN["snp_packing"],
    threads: 1
    resources:
        gpu=LLM["gpus_per_predict"],
    log:
        log_path("llm", "predict_{model}_{dconfig}_fold{k}"),
    benchmark:
        benchmark_path("llm", "predict_{model}_{dconfig}_fold{k}")
    conda:
        conda_env("train")
    shell:
        "OMP_NUM_THREADS={threads:q} rgenima predict --checkpoint {input.checkpoint:q} --samples {input.samples:q} "
        "--imputed {input.imputed:q} --snps {input.snps:q} {params.embeddings:q} --snp-separator {params.snp_separator:q} "
        "--snp-packing {params.snp_packing:q} "
        "{params.bf16:q} "
        "--output {output.predictions:q} --summary {output.summary:q} > {log:q} 2>&1"

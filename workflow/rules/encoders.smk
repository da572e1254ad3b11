# Encoders and baselines (paper 4.2.1, 4.5.1-4.5.2; docs/design.md, "Model notes"): stage-1 pretraining of RiT and Med3D
# per fold on the fold's training subjects only, the frozen tokens of every imaged subject, and the
# Table 1 baselines (MLP, BERT, BERT + Med3D / RiT with concatenation † or cross-modal attention ‡).
# Settings (ENC, BASE) and helpers: rules/common.smk.


rule pretrain_encoder:
    """Stage-1 4-way training of RiT / Med3D on fold k's training subjects (paper 4.5.2); its test-fold predictions."""
    input:
        index=lambda w: ENCODER_INDEX[w.encoder],
        folds=R("folds"),
    output:
        checkpoint=R("encoder_checkpoint"),
        history=R("encoder_history"),
        curve=report(R("encoder_curve"), category="Encoders", caption="../report/encoder_curve.rst"),
        predictions=R("encoder_predictions"),
    params:
        settings=lambda w: settings_json({**ENC[w.encoder], "embed_batch_size": ENC["embed_batch_size"]}),
        seed=config["seed"],
    threads: ENC["threads"]
    # the R-GenIMA chain (RiT -> tokens -> fine-tuning -> attribution) is the longest path: start it first
    priority: 10
    resources:
        mem_mb=ENC["mem_mb"],
    log:
        log_path("encoders", "pretrain_{encoder}_fold{k}"),
    benchmark:
        benchmark_path("encoders", "pretrain_{encoder}_fold{k}")
    conda:
        conda_env("train")
    shell:
        "rgenima pretrain-encoder --encoder {wildcards.encoder:q} --index {input.index:q} --folds {input.folds:q} "
        "--fold {wildcards.k:q} --settings {params.settings:q} --seed {params.seed:q} --threads {threads:q} "
        "--checkpoint {output.checkpoint:q} --history {output.history:q} --curve {output.curve:q} "
        "--predictions {output.predictions:q} > {log:q} 2>&1"


rule embed:
    """Frozen encoder tokens of every imaged subject (109 x d for RiT, 1 x d for Med3D), one file per fold."""
    input:
        checkpoint=rules.pretrain_encoder.output.checkpoint,
        index=lambda w: ENCODER_INDEX[w.encoder],
    output:
        R("embeddings"),
    params:
        batch=ENC["embed_batch_size"],
    threads: ENC["threads"]
    priority: 10
    resources:
        mem_mb=ENC["mem_mb"],
    log:
        log_path("encoders", "embed_{encoder}_fold{k}"),
    benchmark:
        benchmark_path("encoders", "embed_{encoder}_fold{k}")
    conda:
        conda_env("train")
    shell:
        "rgenima embed --checkpoint {input.checkpoint:q} --index {input.index:q} --batch-size {params.batch:q} "
        "--threads {threads:q} --output {output:q} > {log:q} 2>&1"


rule gene_tokens:
    """Frozen BERT gene tokens (one per gene block) of every sample text fold k's text baselines use."""
    input:
        samples=gene_token_samples,
        imputed=R("imputed"),
        snps=R("snps"),
    output:
        R("gene_tokens"),
    params:
        text_model=["--text-model", BASE["text_model"]] if BASE["text_model"] else [],
        max_length=BASE["max_length"],
        max_copies=BASE["max_copies"],
        snp_separator=GEN["snp_separator"],
        snp_packing=GEN["snp_packing"],
    threads: BASE["threads"]
    resources:
        mem_mb=4000,
    log:
        log_path("baselines", "gene_tokens_fold{k}"),
    benchmark:
        benchmark_path("baselines", "gene_tokens_fold{k}")
    conda:
        conda_env("train")
    shell:
        "HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 rgenima gene-tokens --samples {input.samples:q} "
        "--imputed {input.imputed:q} --snps {input.snps:q} {params.text_model:q} --max-length {params.max_length:q} "
        "--max-copies {params.max_copies:q} --snp-separator {params.snp_separator:q} "
        "--snp-packing {params.snp_packing:q} --threads {threads:q} "
        "--output {output:q} > {log:q} 2>&1"


rule train_baseline:
    """One Table 1 baseline on one data configuration and fold: fit on the train side, predict the test subjects."""
    input:
        unpack(baseline_inputs),
    output:
        predictions=R("baseline_predictions"),
        checkpoint=R("baseline_checkpoint"),
        history=R("baseline_history"),
    params:
        inputs=baseline_args,
        settings=settings_json({k: BASE[k] for k in ("model", "train", "val_fraction", "max_copies")}),
        seed=config["seed"],
    threads: BASE["threads"]
    resources:
        mem_mb=4000,
    log:
        log_path("baselines", "{model}_{dconfig}_fold{k}"),
    benchmark:
        benchmark_path("baselines", "{model}_{dconfig}_fold{k}")
    conda:
        conda_env("train")
    shell:
        "rgenima train-baseline --model {wildcards.model:q} --samples {input.samples:q} {params.inputs:q} "
        "--settings {params.settings:q} --seed {params.seed:q} --threads {threads:q} "
        "--checkpoint {output.checkpoint:q} --history {output.history:q} --predictions {output.predictions:q} "
        "> {log:q} 2>&1"

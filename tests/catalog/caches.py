"""Catalog cases of damaged cached intermediates read by a later rule.

Each file is first written whole by the project's own writer (``write_roi_patches``,
``write_wholebrain``, ``save_embeddings``, ``write_dump``), then damaged the way a
full disk, a killed copy or a stray edit damages it: cut short, or overwritten with
other bytes. The reader must stop naming the file, the subject where the file has
one, and the fix: delete the file so that the rule that writes it runs again.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from catalog.base import BadInput, Invocation, rgenima
from catalog.imaging import ROIS_TSV, SUBJECT, aparc_aseg_labels, intensity_volume, label_volume
from rgenima_lib.vocabulary import STAGES

OTHER = "011_S_0005"


def truncate(path: Path, keep: float = 0.5) -> None:
    """Cut a file to ``keep`` of its bytes (a copy or write that stopped part-way)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def roi_files(tmp: Path, subjects=(SUBJECT, OTHER), size: int = 4) -> Path:
    """results/imaging/rois/<subject>.{npy,json} of each subject, written by write_roi_patches."""
    from rgenima_lib.io import read_tsv
    from rgenima_lib.imaging.roi_extract import write_roi_patches

    out = tmp / "results" / "imaging" / "rois"
    labels = label_volume(aparc_aseg_labels())
    rois = read_tsv(ROIS_TSV)
    for subject in subjects:
        write_roi_patches(out / f"{subject}.npy", out / f"{subject}.json", intensity_volume(labels).astype(np.float32),
                          labels, rois, size, margin=2, clip=(0.5, 99.5), subject=subject)
    return out


def manifest(tmp: Path, subjects=(SUBJECT, OTHER)) -> Path:
    path = tmp / "results" / "cohort" / "manifest.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("subject\tstage\n" + "".join(f"{s}\t{STAGES[i % 4]}\n" for i, s in enumerate(subjects)))
    return path


def roi_index(tmp: Path, rois: Path) -> tuple[list[str], list[Path]]:
    index, counts = tmp / "results" / "imaging" / "roi_index.tsv", tmp / "results" / "imaging" / "qc" / "counts.tsv"
    infos = [rois / f"{s}.json" for s in (SUBJECT, OTHER)]
    return rgenima("roi-index", "--manifest", manifest(tmp), "--rois", ROIS_TSV, "--infos", *infos,
                   "--output", index, "--voxel-counts", counts), [index, counts]


# --- ROI patches ---------------------------------------------------------------------------------

def roi_npy_truncated_index(tmp: Path) -> Invocation:
    rois = roi_files(tmp)
    truncate(rois / f"{OTHER}.npy")
    command, outputs = roi_index(tmp, rois)
    return Invocation(command, outputs, message=[str(rois / f"{OTHER}.npy"), f"subject {OTHER}", "truncated",
                                                 f"rm '{rois / f'{OTHER}.npy'}' '{rois / f'{OTHER}.json'}'",
                                                 "rule roi_extract rebuilds it"])


def roi_npy_other_size_index(tmp: Path) -> Invocation:
    # A whole, valid .npy of another ROI size (S = 6) beside a sidecar written for S = 4.
    rois = roi_files(tmp)
    roi_files(tmp / "other", subjects=(OTHER,), size=6)
    (rois / f"{OTHER}.npy").write_bytes((tmp / "other" / "results" / "imaging" / "rois" / f"{OTHER}.npy").read_bytes())
    command, outputs = roi_index(tmp, rois)
    return Invocation(command, outputs, message=[str(rois / f"{OTHER}.npy"), f"subject {OTHER}",
                                                 "holds uint8[109, 6, 6, 6]", "says uint8[109, 4, 4, 4]",
                                                 "rule roi_extract rebuilds it"])


def roi_sidecar_truncated_index(tmp: Path) -> Invocation:
    rois = roi_files(tmp)
    truncate(rois / f"{SUBJECT}.json", keep=0.3)
    command, outputs = roi_index(tmp, rois)
    return Invocation(command, outputs, message=[str(rois / f"{SUBJECT}.json"), f"subject {SUBJECT}",
                                                 "not valid JSON", "rule roi_extract rebuilds it"])


def roi_npy_truncated_rit_training(tmp: Path) -> Invocation:
    # The index was made while the files were whole; the first subject's patches were cut afterwards.
    rois = roi_files(tmp)
    index = tmp / "results" / "imaging" / "roi_index.tsv"
    index.write_text("subject\trois\tinfo\n" + "".join(f"{s}\t{rois / s}.npy\t{rois / s}.json\n" for s in (SUBJECT, OTHER)))
    folds = tmp / "results" / "splits" / "folds.tsv"
    folds.parent.mkdir(parents=True)
    folds.write_text(f"subject\tfold\tstage\n{SUBJECT}\t1\tNC\n{OTHER}\t0\tAD\n")
    truncate(rois / f"{SUBJECT}.npy", keep=0.9)
    enc = tmp / "results" / "encoders" / "rit" / "fold0"
    outputs = [enc / "checkpoint.safetensors", enc / "history.tsv", enc / "curve.png", enc / "predictions.tsv"]
    settings = json.dumps({"model": {"dim": 8, "depth": 1, "heads": 2, "mlp_ratio": 4.0, "dropout": 0.1, "patch_rank": 1,
                                     "patch_dtype": "float32", "pool": "attention", "roi_volume": False},
                           "train": {"epochs": 1, "batch_size": 8, "lr": 3e-4, "weight_decay": 0.05, "patience": 8,
                                     "balance": "loss", "monitor": "loss", "grad_clip": 1.0, "warmup_epochs": 1,
                                     "eval_batch_size": 32},
                           "val_fraction": 0.2, "in_memory": False, "embed_batch_size": 4})
    command = rgenima("pretrain-encoder", "--encoder", "rit", "--index", index, "--folds", folds, "--fold", "0",
                      "--settings", settings, "--seed", "1", "--threads", "1", "--checkpoint", outputs[0],
                      "--history", outputs[1], "--curve", outputs[2], "--predictions", outputs[3])
    return Invocation(command, outputs, message=[str(rois / f"{SUBJECT}.npy"), f"subject {SUBJECT}", "truncated",
                                                 "rule roi_extract rebuilds it"])


def wholebrain_truncated_index(tmp: Path) -> Invocation:
    from rgenima_lib.imaging.wholebrain import write_wholebrain

    out = tmp / "results" / "imaging" / "wholebrain"
    brain = intensity_volume(label_volume(aparc_aseg_labels())).astype(np.float32)
    for s in (SUBJECT, OTHER):
        write_wholebrain(out / f"{s}.npy", brain, (16, 16, 16), clip=(0.5, 99.5), subject=s, source="brain.mgz")
    truncate(out / f"{SUBJECT}.npy", keep=0.7)
    index = tmp / "results" / "imaging" / "wholebrain_index.tsv"
    command = rgenima("wholebrain-index", "--manifest", manifest(tmp), "--volumes", out / f"{SUBJECT}.npy",
                      out / f"{OTHER}.npy", "--output", index)
    return Invocation(command, [index], message=[str(out / f"{SUBJECT}.npy"), f"subject {SUBJECT}", "truncated",
                                                 "rule wholebrain rebuilds it"])


# --- embeddings ----------------------------------------------------------------------------------

def embeddings(tmp: Path) -> Path:
    from rgenima_lib.models.embedding_cache import save_embeddings

    path = tmp / "results" / "embeddings" / "rit" / "fold0.safetensors"
    rng = np.random.default_rng(0)
    save_embeddings(path, [SUBJECT, OTHER], rng.normal(size=(2, 109, 8)), np.ones((2, 109), np.uint8),
                    {"encoder": "rit", "fold": 0})
    return path


# The config's whole `train` section, as the workflow passes it (the schema's defaults).
FINETUNE_SETTINGS = json.dumps({"lr": 2e-6, "epochs": 3, "batch_size_per_gpu": 16, "bf16": True, "grad_accum": 1,
                                "weight_decay": 0.0, "max_grad_norm": 1.0, "log_every": 10, "max_steps": None,
                                "gradient_checkpointing": False})


def finetune(tmp: Path, emb: Path | None, base: Path | None = None) -> tuple[list[str], list[Path]]:
    """argv of `rgenima finetune` (the data files exist; the command stops before it reads them)."""
    if base is None:
        base = tmp / "models" / "qwen"
        base.mkdir(parents=True)
        (base / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 64}))
    data = tmp / "results" / "datasets" / "image_gene" / "fold0"
    data.mkdir(parents=True, exist_ok=True)
    for name in ("samples.tsv", "imputed.npz", "snps.tsv"):
        (data / name).write_text("placeholder\n")
    out = tmp / "results" / "llm" / "rgenima_qwen" / "image_gene" / "fold0"
    outputs = [out / "checkpoint", out / "history.tsv", out / "summary.json"]
    command = rgenima("finetune", "--base", base, "--samples", data / "samples.tsv", "--imputed", data / "imputed.npz",
                      "--snps", data / "snps.tsv", *(["--embeddings", emb] if emb else []),
                      "--settings", FINETUNE_SETTINGS, "--seed", "0", "--output", outputs[0], "--history", outputs[1],
                      "--summary", outputs[2])
    return command, outputs


def embeddings_truncated_finetune(tmp: Path) -> Invocation:
    emb = embeddings(tmp)
    truncate(emb, keep=0.6)
    command, outputs = finetune(tmp, emb)
    return Invocation(command, outputs, message=[str(emb), "not a readable safetensors file",
                                                 f"rm '{emb}'", "rule embed rebuilds it"])


def embeddings_garbage_finetune(tmp: Path) -> Invocation:
    emb = embeddings(tmp)
    emb.write_bytes(np.random.default_rng(1).bytes(4096))
    command, outputs = finetune(tmp, emb)
    return Invocation(command, outputs, message=[str(emb), "not a readable safetensors file",
                                                 "rule embed rebuilds it"])


# --- attention dumps -----------------------------------------------------------------------------

def attention_dump(path: Path) -> Path:
    from rgenima_lib.attribution.dump_format import AttentionDump, write_dump

    rng = np.random.default_rng(0)
    n, g, r = 6, 5, 4
    write_dump(path, AttentionDump(
        subjects=np.array([f"011_S_{i:04d}" for i in range(n)]), genes=np.array([f"G{i}" for i in range(g)]),
        rois=np.array([f"R{i}" for i in range(r)]), gene_importance=rng.random((n, g)),
        roi_importance=rng.random((n, r)), roi_gene=rng.random((n, r, g)), label=np.array(list(STAGES) + ["NC", "AD"]),
        predicted=np.array(["NC"] * n), probabilities=np.full((n, 4), 0.25), sink_share=np.full(n, 0.1),
        roi_presence=np.ones((n, r), np.uint8), gene_tokens=np.full((n, g), 3), fold=np.zeros(n), meta={"model": "x"}))
    return path


def dump_truncated_bootstrap(tmp: Path) -> Invocation:
    dump = attention_dump(tmp / "results" / "attribution" / "rgenima_qwen" / "image_gene" / "fold0" / "dump.npz")
    truncate(dump, keep=0.8)
    out = tmp / "results" / "attribution" / "rgenima_qwen" / "image_gene" / "stable_genes.tsv"
    command = rgenima("bootstrap-genes", "--dumps", dump, "--n-boot", "10", "--top-k", "2", "--output", out)
    return Invocation(command, [out], message=[str(dump), "damaged attention dump", f"rm '{dump}'",
                                               "rule attribute rebuilds it"])


CASES = [
    BadInput("roi-npy-truncated-roi-index", "cached_intermediates",
             "a truncated ROI patch file `results/imaging/rois/<PTID>.npy` read by roi-index",
             "refused: names the file, the subject, the sizes, and `rm` of the .npy and .json so roi_extract reruns",
             roi_npy_truncated_index),
    BadInput("roi-npy-other-size-roi-index", "cached_intermediates",
             "a whole ROI .npy of another ROI size than its JSON sidecar says",
             "refused by roi-index's sidecar check: both shapes, the file, the subject, the rule to rerun",
             roi_npy_other_size_index),
    BadInput("roi-sidecar-truncated-roi-index", "cached_intermediates", "a truncated ROI sidecar `<PTID>.json`",
             "refused: names the sidecar, the subject and the rule roi_extract", roi_sidecar_truncated_index),
    BadInput("roi-npy-truncated-rit-training", "cached_intermediates",
             "a ROI .npy cut short after roi-index ran, read by RiT pretraining (pretrain-encoder)",
             "refused before training: names the file, the subject and the rule roi_extract",
             roi_npy_truncated_rit_training),
    BadInput("wholebrain-npy-truncated", "cached_intermediates",
             "a truncated whole-brain `results/imaging/wholebrain/<PTID>.npy` read by wholebrain-index",
             "refused: names the file, the subject and the rule wholebrain", wholebrain_truncated_index),
    BadInput("embeddings-truncated-finetune", "cached_intermediates",
             "a truncated safetensors embedding cache read by finetune",
             "refused: names the file and `rm` it so rule embed rebuilds it", embeddings_truncated_finetune),
    BadInput("embeddings-garbage-finetune", "cached_intermediates",
             "a safetensors embedding cache overwritten with other bytes",
             "refused: names the file and the rule embed", embeddings_garbage_finetune),
    BadInput("attention-dump-truncated-bootstrap", "cached_intermediates",
             "a truncated attention dump `.npz` read by bootstrap-genes",
             "refused: names the dump and `rm` it so rule attribute rebuilds it", dump_truncated_bootstrap),
]

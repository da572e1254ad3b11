"""``llm.gene_input: tokens`` end to end: fine-tune (CLI), checkpoint, predict (CLI), attribute."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from rgenima_lib.vocabulary import STAGES

D_VIS = 8
SETTINGS = {"lr": 1e-3, "epochs": 1, "batch_size_per_gpu": 4, "bf16": False, "grad_accum": 1, "weight_decay": 0.0,
            "max_grad_norm": 1.0, "log_every": 10, "max_steps": 2, "gradient_checkpointing": False}


def _write_fold(root, n_subjects=8):
    """A minimal fold: samples.tsv (two gene orders per training subject), genotypes of 2 genes (3 + 2 SNPs)."""
    from rgenima_lib.genetics.genotype_matrix import save_genotypes
    from rgenima_lib.models.embedding_cache import save_embeddings

    rng = np.random.default_rng(0)
    subjects = [f"{i:03d}_S_{i:04d}" for i in range(n_subjects)]
    snps = pd.DataFrame({"snp": [f"rs{i}" for i in range(5)], "chrom": "19", "pos": np.arange(5) * 100,
                         "a1": "A", "a2": "G", "gene": ["APOE"] * 3 + ["BIN1"] * 2, "block": [0] * 3 + [1] * 2})
    snps.to_csv(root / "snps.tsv", sep="\t", index=False)
    save_genotypes(root / "fold0.npz", rng.integers(0, 3, (n_subjects, 5)).astype(np.float32), subjects, snps["snp"])
    save_embeddings(root / "tokens.safetensors", subjects, rng.normal(size=(n_subjects, 3, D_VIS)),
                    np.ones((n_subjects, 3), np.uint8))
    rows = [{"sample": f"{s}/paired/{c}", "subject": s, "stage": STAGES[i % 4], "label": i % 4, "view": "paired",
             "copy": c, "perm_seed": -1 if c == 0 else 1000 + i, "with_image": True,
             "side": "test" if i >= 6 else "train"}
            for i, s in enumerate(subjects) for c in range(1 if i >= 6 else 2)]
    pd.DataFrame(rows).to_csv(root / "samples.tsv", sep="\t", index=False)
    return root


def test_finetune_predict_and_attribute_with_gene_tokens(tmp_path, demo_llm):
    from rgenima_lib.attribution.attribute import attribute_samples
    from rgenima_lib.cli import main
    from rgenima_lib.data.prompt_samples import load_attribution_prompts
    from rgenima_lib.io import read_tsv
    from rgenima_lib.models.mllm import RGenIMA

    data = _write_fold(tmp_path)
    common = ["--samples", str(data / "samples.tsv"), "--imputed", str(data / "fold0.npz"),
              "--snps", str(data / "snps.tsv"), "--embeddings", str(data / "tokens.safetensors")]
    ckpt = tmp_path / "ckpt"
    assert main(["finetune", "--base", str(demo_llm()), *common, "--gene-input", "tokens",
                 "--settings", json.dumps(SETTINGS), "--seed", "0", "--output", str(ckpt),
                 "--summary", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["steps"] == 2
    assert (ckpt / "gene_encoder.safetensors").is_file()
    meta = json.loads((ckpt / "rgenima.json").read_text())["config"]
    assert meta["gene_input"] == "tokens" and meta["gene_snps"] == [3, 2]

    # predict reads the genome form from the checkpoint.
    out = tmp_path / "pred.tsv"
    assert main(["predict", "--checkpoint", str(ckpt), *common, "--no-generate", "--output", str(out)]) == 0
    probs = read_tsv(out)[[f"prob_{s}" for s in STAGES]].to_numpy()
    assert probs.shape == (2, 4) and np.allclose(probs.sum(1), 1.0)

    # Attribution in other gene orders: each gene has exactly one token and a share of the answer row.
    model = RGenIMA.from_checkpoint(ckpt, attn_implementation="eager").eval()
    prompts = load_attribution_prompts(*(data / f for f in ("samples.tsv", "fold0.npz", "snps.tsv",
                                                            "tokens.safetensors")),
                                       gene_orders=2, gene_input="tokens")
    dump = attribute_samples(model, prompts.samples, prompts.spans, ["APOE", "BIN1"], ["a", "b", "c"],
                             extra_orders=prompts.extra_orders)
    np.testing.assert_array_equal(dump.gene_tokens, np.ones((2, 2)))
    assert (dump.gene_importance > 0).all()

"""The null machinery on pure noise: the enrichment test's P < 0.05 rate stays near 0.05, nothing is selected."""

from __future__ import annotations

import numpy as np

from rgenima_lib.attribution.null_control import false_positive_summary, null_findings, random_gene_set
from rgenima_lib.attribution.synthetic_dump import synthetic_dump

GENES = [f"G{i:03d}" for i in range(105)]
ROIS = [f"R{i:03d}" for i in range(109)]
GWAS = np.arange(105) < 45  # the panel lists its 45 GWAS genes first


def test_pure_noise_gives_a_false_positive_rate_near_alpha():
    rows = []
    for seed in range(30):
        dump = synthetic_dump(200, GENES, ROIS, seed=500 + seed)
        planted = random_gene_set(len(GENES), 9, seed)
        rows.append(null_findings(dump, GWAS, planted, scoring="deconfounded", seed=seed, n_boot=50, n_perm=200))
    import pandas as pd

    rows = pd.DataFrame(rows)
    assert (rows["enrichment_p"] < 0.05).mean() <= 0.15  # loose: 30 seeds, a discrete test
    assert rows["bh_rois_mean"].mean() <= 0.05 * 109
    assert rows["significance_genes"].mean() <= 0.5
    summary = false_positive_summary(rows, len(ROIS))
    assert list(summary.columns) == ["measure", "null", "deconfounded"]
    assert summary.loc[summary["measure"] == "seeds", "deconfounded"].iloc[0] == 30


def test_a_position_artefact_is_reported_as_enrichment_by_the_paper_scoring():
    dump = synthetic_dump(200, GENES, ROIS, seed=7)
    # Earlier genes get more share, as under causal attention with the canonical gene order.
    dump.gene_importance = (dump.gene_importance.astype(float) * np.linspace(2.0, 0.5, 105)).astype(np.float16)
    row = null_findings(dump, GWAS, random_gene_set(105, 9, 0), scoring="paper", n_boot=50, n_perm=200)
    assert row["enrichment_p"] < 1e-3 and row["stable_gwas"] > row["expected_gwas"]


def _write_fold(root, n_subjects: int = 8, d_vis: int = 4):
    """samples.tsv, imputed genotypes, snps.tsv and a token cache of one fold: (samples, imputed, snps, embeddings)."""
    import pandas as pd

    from rgenima_lib.genetics.genotype_matrix import save_genotypes
    from rgenima_lib.models.embedding_cache import save_embeddings

    rng = np.random.default_rng(0)
    subjects = [f"{i:03d}_S_{i:04d}" for i in range(n_subjects)]
    genes = ["APOE"] * 5 + ["BIN1"] * 4 + ["TOMM40"] * 3  # odd and even genes
    snps = pd.DataFrame({"snp": [f"rs{i}" for i in range(len(genes))], "chrom": "19", "pos": np.arange(len(genes)),
                         "a1": "A", "a2": "G", "gene": genes,
                         "block": pd.Series(genes).map({"APOE": 0, "BIN1": 1, "TOMM40": 2})})
    snps.to_csv(root / "snps.tsv", sep="\t", index=False)
    save_genotypes(root / "fold0.npz", rng.integers(0, 3, (n_subjects, len(genes))).astype(np.float32), subjects,
                   snps["snp"])
    save_embeddings(root / "tokens.safetensors", subjects, rng.normal(size=(n_subjects, 3, d_vis)),
                    np.ones((n_subjects, 3), np.uint8))
    pd.DataFrame([{"sample": f"{s}/paired/0", "subject": s, "stage": "NC", "label": 0, "view": "paired", "copy": 0,
                   "perm_seed": -1, "with_image": True, "side": "test" if i >= 5 else "train"}
                  for i, s in enumerate(subjects)]).to_csv(root / "samples.tsv", sep="\t", index=False)
    return root / "samples.tsv", root / "fold0.npz", root / "snps.tsv", root / "tokens.safetensors"


def test_null_models_read_the_snp_text_the_pipeline_writes(tmp_path):
    """Separator and packing as configured, resolved for the null model's own tokenizer, gene orders included."""
    from rgenima_lib.attribution.null_control import null_prompts, random_model
    from rgenima_lib.data.datasets import read_samples
    from rgenima_lib.genetics.augment import STREAMS, permutation_seed
    from rgenima_lib.genetics.serialize import GenomeTexts

    files = _write_fold(tmp_path)
    model = random_model(tmp_path / "llm", ["APOE", "BIN1", "TOMM40"], 4, seed=3, hidden_size=16, n_layers=1,
                         n_heads=2, n_kv_heads=1, intermediate_size=32)
    seeds = read_samples(files[0]).set_index("subject")["perm_seed"]
    written = {}
    for separator, packing in (("auto", "none"), ("auto", "pairs"), ("comma", "pairs")):
        prompts = null_prompts(model, *files, separator=separator, packing=packing, gene_orders=2, seed=4)
        pipeline = GenomeTexts.from_files(files[1], files[2], separator=separator, tokenizer=model.tokenizer,
                                          packing=packing)
        subjects = [s.subject for s in prompts.samples]
        assert len(subjects) == 3
        assert [s.genome_text for s in prompts.samples] == [pipeline(s, int(seeds[s])).text for s in subjects]
        assert [[g.text for g in orders] for orders in prompts.extra_orders] == [
            [pipeline(s, permutation_seed(4, s, k, stream=STREAMS["attribution"])).text for k in (1, 2)]
            for s in subjects]
        if separator == "auto":
            # The Qwen2-style demo tokenizer reads the dense form, not the spaced text the control used to write.
            assert pipeline.separator == "none" and ": " not in prompts.samples[0].genome_text
        written[separator, packing] = [s.genome_text for s in prompts.samples]
    assert written["auto", "pairs"] != written["auto", "none"]

"""SNP text at the paper's scale: tokens per SNP (compact vs verbose) and on-the-fly text speed.

The paper keeps 1,079 SNPs in 105 genes (about 10 per gene) after QC. This
benchmark simulates panel genotypes of that size (``simulate_panel_genotypes``,
valid SNPs only, i.e. what QC keeps), writes every subject's genome in both
formats, counts tokens with the bundled all-MiniLM-L6-v2 tokenizer, and times
rebuilding augmented samples' texts from (subject, permutation seed).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def run(out_dir, full: bool) -> dict:
    from rgenima_lib.synthetic.genotypes import simulate_panel_genotypes
    from rgenima_lib.genetics.augment import permutation_seed
    from rgenima_lib.genetics.genotype_matrix import impute_expected_dosage
    from rgenima_lib.genetics.serialize import GenomeLayout, GenomeTexts, load_tokenizer, serialize_genome, token_stats
    from rgenima_lib.io import read_tsv

    # make bench runs from the repository root; the checkout's config otherwise.
    panel_path = Path("config/gene_panel.tsv")
    if not panel_path.is_file():
        panel_path = Path(__file__).resolve().parents[2] / "config" / "gene_panel.tsv"
    panel = read_tsv(panel_path)
    n_subjects = 1998 if full else 200
    dosage, variants = simulate_panel_genotypes(panel, n_subjects, 1150, np.random.default_rng(20251129))
    keep = variants["planted"].to_numpy() == ""
    variants = variants[keep].reset_index(drop=True)
    dosage = dosage[:, keep]
    # Text order: panel gene order, position inside a gene.
    rank = variants["gene"].map({g: i for i, g in enumerate(panel["gene"])})
    order = np.lexsort((variants["pos"].to_numpy(), rank.to_numpy()))
    variants = variants.iloc[order].reset_index(drop=True)
    dosage = dosage[:, order]
    genes = [g for g in panel["gene"] if g in set(variants["gene"])]
    variants["block"] = variants["gene"].map({g: i for i, g in enumerate(genes)})
    layout = GenomeLayout.from_snps(variants)
    imputed, _, _ = impute_expected_dosage(dosage, np.ones(n_subjects, bool))

    tokenizer = load_tokenizer()
    result = {"n_subjects": n_subjects, "n_snps": layout.n_snps, "n_genes": layout.n_genes,
              "tokenizer": "all-MiniLM-L6-v2 (bundled)"}
    for style in ("compact", "verbose"):
        texts = [serialize_genome(r, layout, style=style).text for r in imputed[:200]]
        stats = token_stats(texts, layout.n_snps, tokenizer)
        result[f"{style}_tokens_per_snp"] = round(stats["tokens_per_snp"], 4)
        result[f"{style}_tokens_per_genome"] = round(stats["tokens_mean"], 1)
    result["verbose_over_compact"] = round(result["verbose_tokens_per_snp"] / result["compact_tokens_per_snp"], 2)
    # Synthetic rsIDs have 12 digits; real array rsIDs mostly 6-8: measure the verbose form with those too.
    real_ids = variants.assign(snp=[f"rs{n}" for n in np.random.default_rng(1).integers(10**5, 10**8, len(variants))])
    real_layout = GenomeLayout.from_snps(real_ids)
    texts = [serialize_genome(r, real_layout, style="verbose").text for r in imputed[:200]]
    result["verbose_real_length_ids_tokens_per_snp"] = round(
        token_stats(texts, layout.n_snps, tokenizer)["tokens_per_snp"], 4)

    subjects = [f"S{i:04d}" for i in range(n_subjects)]
    texts = GenomeTexts(imputed, subjects, layout)
    samples = [(s, permutation_seed(1, s, k)) for s in subjects for k in range(1, 31)]
    start = time.perf_counter()
    total = sum(len(texts(s, seed).text) for s, seed in samples)
    elapsed = time.perf_counter() - start
    result["augmented_samples"] = len(samples)
    result["text_rebuild_us_per_sample"] = round(1e6 * elapsed / len(samples), 1)
    result["mean_chars_per_text"] = round(total / len(samples), 1)
    return result

"""SNP text at the paper's scale: tokens per SNP per tokenizer, separator and packing, and on-the-fly text speed.

The paper keeps 1,079 SNPs in 105 genes (about 10 per gene) after QC. This
benchmark simulates panel genotypes of that size (``simulate_panel_genotypes``,
valid SNPs only, i.e. what QC keeps) and writes every subject's genome with
each genotype separator (``rgenima_lib.genetics.serialize.SEPARATORS``), one
symbol per SNP (packing ``none``, the paper's text) and two SNPs per symbol
(``pairs``, under the key ``pairs`` of each tokenizer). It counts tokens under
three tokenizers: the Qwen2-style and Llama-3-style demo tokenizers
(``rgenima_lib.models.demo_llm``, trained here exactly as ``build-demo-llm``
trains them) and the bundled all-MiniLM-L6-v2 WordPiece of the BERT baselines.
Per tokenizer: the packing and separator the pipeline's default (both ``auto``)
writes, and its tokens per SNP (``pipeline_default``). Per tokenizer and packing: the separator ``auto`` picks, tokens per SNP of
every separator and whether it is exact (``space`` unpacked is the text as it
was, the baseline), the tokens the gene headers alone cost (the floor of any
text that names the genes), and, for the two LLM tokenizers, the whole
prompt's length. Times (``paired_timings``): resolving ``auto`` per tokenizer,
and rebuilding augmented samples' texts from (subject, permutation seed) with
and without separator, and packed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_TEXTS = 200
"""Subjects whose texts are counted (the mean varies by well under 0.1 % beyond that)."""


def paper_scale_genomes(n_subjects: int):
    """(GenomeLayout, imputed dosage float[n_subjects, 1079]) of simulated panel genotypes in text order."""
    from rgenima_lib.genetics.genotype_matrix import impute_expected_dosage
    from rgenima_lib.genetics.serialize import GenomeLayout
    from rgenima_lib.io import read_tsv
    from rgenima_lib.synthetic.genotypes import simulate_panel_genotypes

    # make bench runs from the repository root; the checkout's config otherwise.
    panel_path = Path("config/gene_panel.tsv")
    if not panel_path.is_file():
        panel_path = Path(__file__).resolve().parents[2] / "config" / "gene_panel.tsv"
    panel = read_tsv(panel_path)
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
    imputed, _, _ = impute_expected_dosage(dosage, np.ones(n_subjects, bool))
    return GenomeLayout.from_snps(variants), imputed


def bench_tokenizers(genes) -> dict:
    """name -> tokenizer: the two demo LLM tokenizers (as ``build-demo-llm`` trains them) and the WordPiece."""
    from rgenima_lib.genetics.serialize import load_tokenizer
    from rgenima_lib.models.demo_llm import build_demo_tokenizer, default_corpus

    corpus = default_corpus(genes)
    return {"qwen2_style": build_demo_tokenizer(corpus, pre_tokenizer="qwen2"),
            "llama3_style": build_demo_tokenizer(corpus, pre_tokenizer="llama3"),
            "wordpiece_minilm": load_tokenizer()}


def measure_tokenizer(tokenizer, layout, rows: np.ndarray, llm: bool, packing: str = "none") -> dict:
    """Tokens per SNP of every separator, the one 'auto' picks, the header floor and (LLM) the prompt length.

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerFast
    layout : GenomeLayout
    rows : float[n_texts, n_snps]
        Imputed dosage of the subjects counted.
    llm : bool
        Also count whole prompts (needs the image anchor and a chat template).
    packing : {"none", "pairs"}
        Genotype symbols per SNP or per two SNPs of a gene.

    Returns
    -------
    dict
        ``<separator>_tokens_per_snp`` and ``<separator>_exact`` (``separator_cost``) of every separator,
        ``auto_separator``, ``auto_tokens_per_snp``, ``auto_over_space``, ``header_tokens_per_snp`` and, for
        an LLM, ``prompt_tokens_space`` and ``prompt_tokens_<auto>`` (one subject's whole prompt).
    """
    from rgenima_lib.genetics.serialize import (SEPARATORS, resolve_separator, separator_cost, serialize_genome,
                                                text_form, token_stats)

    auto = resolve_separator("auto", tokenizer, layout, packing)
    out = {"auto_separator": auto}
    texts = {}
    for name in SEPARATORS:
        texts[name] = [serialize_genome(r, layout, separator=name, packing=packing).text for r in rows]
        out[f"{name}_tokens_per_snp"] = round(token_stats(texts[name], layout.n_snps, tokenizer)["tokens_per_snp"], 4)
        out[f"{name}_exact"] = separator_cost(tokenizer, layout, name, packing=packing)["exact"]
    out["auto_tokens_per_snp"] = out[f"{auto}_tokens_per_snp"]
    out["auto_over_space"] = round(out["auto_tokens_per_snp"] / out["space_tokens_per_snp"], 3)
    head, joiner = text_form("compact", auto)
    headers = joiner.join(gene + head for gene in layout.genes)
    out["header_tokens_per_snp"] = round(len(tokenizer(headers, add_special_tokens=False)["input_ids"])
                                         / layout.n_snps, 4)
    if llm:
        from rgenima_lib.models.prompting import encode_prompt

        for name in ("space", auto):
            out[f"prompt_tokens_{name}"] = encode_prompt(tokenizer, texts[name][0], True).n_prompt
    return out


def run(out_dir, full: bool) -> dict:
    from rgenima_lib.bench.paired import paired_timings
    from rgenima_lib.genetics.augment import permutation_seed
    from rgenima_lib.genetics.serialize import (GenomeTexts, resolve_separator, resolve_text_form, serialize_genome,
                                                token_stats)

    n_subjects = 1998 if full else 200
    layout, imputed = paper_scale_genomes(n_subjects)
    tokenizers = bench_tokenizers(layout.genes)
    result = {"n_subjects": n_subjects, "n_texts": N_TEXTS, "n_snps": layout.n_snps, "n_genes": layout.n_genes,
              "targets_tokens_per_snp": {"qwen2_style": 1.1, "llama3_style": 1.5}}
    for name, tokenizer in tokenizers.items():
        llm = name != "wordpiece_minilm"
        result[name] = measure_tokenizer(tokenizer, layout, imputed[:N_TEXTS], llm=llm)
        pairs = measure_tokenizer(tokenizer, layout, imputed[:N_TEXTS], llm=llm, packing="pairs")
        # Packing is only ever what genetics.snp_packing says: this says what it costs or saves per tokenizer.
        pairs["auto_over_unpacked_auto"] = round(pairs["auto_tokens_per_snp"] / result[name]["auto_tokens_per_snp"], 3)
        result[name]["pairs"] = pairs
    # What the pipeline writes by default (genetics.snp_separator and snp_packing both auto) for each tokenizer.
    for name, tokenizer in tokenizers.items():
        separator, packing = resolve_text_form("auto", "auto", tokenizer, layout)
        measured = result[name] if packing == "none" else result[name]["pairs"]
        result[name]["pipeline_default"] = {"separator": separator, "packing": packing,
                                            "tokens_per_snp": measured["auto_tokens_per_snp"]}
    result["targets_met_by_default"] = {
        name: result[name]["pipeline_default"]["tokens_per_snp"] <= target
        for name, target in result["targets_tokens_per_snp"].items()}
    result["targets_met"] = {name: {packing: measured["auto_tokens_per_snp"] <= target
                                    for packing, measured in (("none", result[name]), ("pairs", result[name]["pairs"]))}
                             for name, target in result["targets_tokens_per_snp"].items()}

    # The rsID-and-alleles form, for comparison with a naive prompt (WordPiece, as before).
    verbose = [serialize_genome(r, layout, style="verbose").text for r in imputed[:N_TEXTS]]
    result["wordpiece_minilm"]["verbose_tokens_per_snp"] = round(
        token_stats(verbose, layout.n_snps, tokenizers["wordpiece_minilm"])["tokens_per_snp"], 4)

    result["resolve_auto_s"] = paired_timings(
        {name: (lambda t=tok: resolve_separator("auto", t, layout)) for name, tok in tokenizers.items()})

    subjects = [f"S{i:04d}" for i in range(n_subjects)]
    samples = [(s, permutation_seed(1, s, k)) for s in subjects for k in range(1, 31)]
    rebuilt = {name: GenomeTexts(imputed, subjects, layout, separator=name) for name in ("space", "none")}
    rebuilt["pairs_none"] = GenomeTexts(imputed, subjects, layout, separator="none", packing="pairs")
    result["augmented_samples"] = len(samples)
    result["text_rebuild_s"] = paired_timings(
        {name: (lambda t=texts: sum(len(t(s, seed).text) for s, seed in samples)) for name, texts in rebuilt.items()},
        ratios={"none_over_space": ("none", "space"), "pairs_none_over_none": ("pairs_none", "none")})
    result["mean_chars_per_text"] = {name: round(sum(len(t(s, seed).text) for s, seed in samples[:1000]) / 1000, 1)
                                     for name, t in rebuilt.items()}
    return result

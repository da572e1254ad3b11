"""``rgenima`` subcommands of the genetics stage: panel-extract, plink-qc, genotype-matrix,
impute-genotypes, snp-text-tokens."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rgenima_lib.cli.common import add_snp_text_args

log = logging.getLogger("rgenima")


# Where each command's stderr goes when the workflow runs it (the rule's log:), named in plink2 errors.
RULE_LOGS = {"panel-extract": "results/logs/genetics/panel_extract.log",
             "plink-qc": "results/logs/genetics/plink_qc.log"}


def _plink_kw(args) -> dict:
    rule_log = RULE_LOGS.get(getattr(args, "command", ""))
    return {"plink2": args.plink2, "threads": args.threads, "memory_mb": args.memory_mb,
            "log_hint": f"{rule_log} when run by the workflow" if rule_log else None}


def _manifest(path):
    from rgenima_lib.errors import InputDataError
    from rgenima_lib.io import read_tsv

    if not Path(path).is_file():
        raise InputDataError("manifest not found.", path=path, fix="run the manifest rule first.")
    return read_tsv(path, dtype={"subject": str})


def cmd_panel_extract(args: argparse.Namespace) -> None:
    from rgenima_lib.genetics.panel import read_gene_panel, read_reference_snps
    from rgenima_lib.genetics.plink_qc import extract_panel
    from rgenima_lib.io import write_json, write_tsv

    panel = read_gene_panel(args.gene_panel)
    reference = read_reference_snps(args.reference_snps)
    manifest = _manifest(args.manifest)
    sexes = None
    if "sex" in manifest.columns:
        sexes = dict(zip(manifest["subject"], manifest["sex"].fillna("").astype(str)))
    variants, summary = extract_panel(args.bfile, panel, int(round(args.window_kb * 1000)), manifest["subject"],
                                      args.out_prefix, reference=reference, assume_build=args.assume_build,
                                      min_gene_fraction=args.min_gene_fraction, sexes=sexes,
                                      max_sex_mismatch_fraction=args.max_sex_mismatch_fraction, **_plink_kw(args))
    for note in summary["notes"]:
        log.warning("%s", note)
    write_tsv(variants, args.variants)
    write_json(summary, args.summary)
    log.info("panel: %d of %d variants in %d genes (± %g kb), %d of %d samples -> %s",
             summary["panel_variants"], summary["input_variants"], variants["gene"].nunique(), args.window_kb,
             summary["samples_kept"], summary["input_samples"], args.out_prefix)


def cmd_plink_qc(args: argparse.Namespace) -> None:
    from rgenima_lib.genetics.panel import read_gene_panel
    from rgenima_lib.genetics.plink_qc import qc_report, read_variant_table, run_qc
    from rgenima_lib.io import write_tsv

    panel = read_gene_panel(args.gene_panel)
    variants = read_variant_table(args.variants)
    table = run_qc(args.panel_prefix, variants, args.out_prefix, geno=args.geno, maf=args.maf, hwe=args.hwe,
                   **_plink_kw(args))
    report = qc_report(table, panel)
    write_tsv(table, args.variants_out)
    write_tsv(report, args.report)
    total = report.iloc[-1]
    empty = report.loc[(report["gene"] != "TOTAL") & (report["left"] == 0), "gene"].tolist()
    if empty:
        log.warning("%d gene(s) without any SNP after QC, dropped from the SNP text (kept in the QC report): %s",
                    len(empty), ", ".join(empty))
    log.info("QC (--geno %g --maf %g --hwe %g): %d panel variants, removed %d alleles / %d geno / %d maf / %d hwe, "
             "%d left in %d genes", args.geno, args.maf, args.hwe, total["in"], total["removed_alleles"],
             total["removed_geno"], total["removed_maf"], total["removed_hwe"], total["left"],
             int((report["left"][:-1] > 0).sum()))


def cmd_genotype_matrix(args: argparse.Namespace) -> None:
    from rgenima_lib.genetics.genotype_matrix import gene_table, read_qc_genotypes, save_genotypes
    from rgenima_lib.genetics.panel import read_gene_panel
    from rgenima_lib.genetics.plink_qc import read_variant_table
    from rgenima_lib.io import write_tsv

    panel = read_gene_panel(args.gene_panel)
    manifest = _manifest(args.manifest)
    qc_variants = read_variant_table(args.qc_variants)
    subjects = manifest.loc[manifest["has_genotype"].astype(bool), "subject"].tolist()
    dosage, snps, subjects = read_qc_genotypes(args.qc_prefix, qc_variants[qc_variants["removed_by"] == ""],
                                               panel, subjects)
    save_genotypes(args.output, dosage, subjects, snps["snp"])
    write_tsv(snps, args.snps)
    write_tsv(gene_table(panel, snps), args.genes)
    log.info("genotype matrix: %d subjects x %d SNPs in %d genes, %.2f %% calls missing -> %s",
             dosage.shape[0], dosage.shape[1], snps["gene"].nunique(), 100 * (dosage < 0).mean(), args.output)


def cmd_impute_genotypes(args: argparse.Namespace) -> None:
    import numpy as np

    from rgenima_lib.data.splits import read_folds
    from rgenima_lib.genetics.genotype_matrix import impute_expected_dosage, load_genotypes, save_genotypes

    geno = load_genotypes(args.genotypes, rule="genotype_matrix")
    subjects = geno["subjects"].tolist()
    folds = read_folds(args.folds).set_index("subject")
    fold_of = folds["fold"].reindex(subjects)
    if fold_of.isna().any():
        from rgenima_lib.errors import InputDataError

        raise InputDataError("genotyped subjects missing from the splits.", path=args.folds,
                             subject=str(fold_of.index[fold_of.isna()][0]), fix="rerun the splits rule.")
    n_folds = int(folds["fold"].max()) + 1
    for k in range(n_folds):
        # Subject protocol: p from fold k's training subjects only. Paper protocol: from everyone, as
        # in the paper (its sample-level folds put every subject in training anyway).
        fit = (fold_of.to_numpy() != k) if args.protocol == "subject" else np.ones(len(subjects), bool)
        imputed, p, n_called = impute_expected_dosage(geno["dosage"], fit)
        save_genotypes(Path(args.out_dir) / f"fold{k}.npz", imputed, subjects, geno["snps"], maf_fit=p,
                       n_called_fit=n_called, fit_subjects=np.asarray(subjects)[fit], missing=geno["dosage"] < 0)
        log.info("fold %d: 2p imputation fitted on %d subjects (%s protocol), %d missing calls imputed",
                 k, int(fit.sum()), args.protocol, int((geno["dosage"] < 0).sum()))


def cmd_snp_text_tokens(args: argparse.Namespace) -> None:
    import numpy as np
    import pandas as pd

    from rgenima_lib.genetics.genotype_matrix import load_genotypes, read_snps
    from rgenima_lib.genetics.serialize import (SEPARATORS, GenomeLayout, load_tokenizer, resolve_text_form,
                                                serialize_genome, token_stats)
    from rgenima_lib.io import write_tsv

    geno = load_genotypes(args.imputed, rule="impute_genotypes")
    snps = read_snps(args.snps)
    layout = GenomeLayout.from_snps(snps)
    tokenizer = load_tokenizer(args.tokenizer)
    chosen, packing = resolve_text_form(args.snp_separator, args.snp_packing, tokenizer, layout)
    rows = geno["dosage"][: args.max_subjects]
    # "compact": the text as configured; then every separator unpacked and packed in pairs (exact or not), and the
    # verbose form, for comparison.
    forms = [("compact", "compact", chosen, packing),
             *((f"compact_{name}", "compact", name, "none") for name in SEPARATORS),
             *((f"compact_pairs_{name}", "compact", name, "pairs") for name in SEPARATORS),
             ("verbose", "verbose", chosen, "none")]
    records = []
    for form, style, separator, packing in forms:
        texts = [serialize_genome(r, layout, style=style, separator=separator, packing=packing).text for r in rows]
        records.append({"format": form, "separator": separator if style == "compact" else "",
                        "packing": packing if style == "compact" else "",
                        "tokenizer": args.tokenizer or "all-MiniLM-L6-v2 (bundled)",
                        "n_snps": layout.n_snps, "n_genes": layout.n_genes, **token_stats(texts, layout.n_snps,
                                                                                           tokenizer)})
    table = pd.DataFrame(records)
    table["ratio_to_compact"] = np.round(table["tokens_per_snp"] / table.loc[0, "tokens_per_snp"], 3)
    write_tsv(table.round(4), args.output)
    log.info("tokens per SNP: %s", ", ".join(f"{r.format} {r.tokens_per_snp:.3f}" for r in table.itertuples()))


def _add_plink_args(p) -> None:
    p.add_argument("--plink2", default="plink2", help="PLINK 2 executable")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--memory-mb", type=int, default=1024, help="plink2 workspace (MiB)")


def register(sub) -> None:
    """Add this stage's subcommands to the ``rgenima`` parser."""
    p = sub.add_parser("panel-extract", help="PLINK 2: keep the panel genes' variants (± window) of clinical subjects")
    p.add_argument("--bfile", required=True, help="PLINK 1 prefix of the input genotypes")
    p.add_argument("--gene-panel", required=True, help="config/gene_panel.tsv")
    p.add_argument("--manifest", required=True, help="results/cohort/manifest.tsv")
    p.add_argument("--window-kb", type=float, default=0.0, help="bases added around each gene body (kb)")
    p.add_argument("--out-prefix", required=True, help="prefix of the panel .bed/.bim/.fam")
    p.add_argument("--variants", required=True, help="TSV: every panel variant with its gene")
    p.add_argument("--summary", required=True, help="JSON: counts and notes")
    p.add_argument("--reference-snps", help="genome-build reference SNPs (default: config/build_reference_snps.tsv)")
    p.add_argument("--assume-build", choices=["GRCh37"],
                   help="go on as GRCh37 when the .bim holds no reference SNP (genetics.assume_build)")
    p.add_argument("--min-gene-fraction", type=float, default=0.5,
                   help="stop when fewer panel genes than this share hold a variant (genetics.min_gene_fraction)")
    p.add_argument("--max-sex-mismatch-fraction", type=float, default=0.02,
                   help=".fam vs clinical sex mismatches allowed (genetics.max_sex_mismatch_fraction)")
    _add_plink_args(p)
    p.set_defaults(func=cmd_panel_extract)

    p = sub.add_parser("plink-qc", help="PLINK 2: --geno, --maf, --hwe in turn; QC report per gene")
    p.add_argument("--panel-prefix", required=True)
    p.add_argument("--variants", required=True, help="panel-extract's variants TSV")
    p.add_argument("--gene-panel", required=True)
    p.add_argument("--geno", type=float, required=True, help="max missing call rate (paper 0.95; usual 0.05)")
    p.add_argument("--maf", type=float, required=True)
    p.add_argument("--hwe", type=float, required=True)
    p.add_argument("--out-prefix", required=True, help="prefix of the QC'd .bed/.bim/.fam")
    p.add_argument("--report", required=True, help="QC report TSV (per gene + TOTAL)")
    p.add_argument("--variants-out", required=True, help="per-variant TSV: plink2 statistics and removed_by")
    _add_plink_args(p)
    p.set_defaults(func=cmd_plink_qc)

    p = sub.add_parser("genotype-matrix", help="QC'd genotypes (pyplink) -> minor-allele dosage, snps.tsv, genes.tsv")
    p.add_argument("--qc-prefix", required=True)
    p.add_argument("--qc-variants", required=True)
    p.add_argument("--gene-panel", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--output", required=True, help="genotypes.npz (int8 dosage, -1 = missing)")
    p.add_argument("--snps", required=True, help="snps.tsv")
    p.add_argument("--genes", required=True, help="genes.tsv")
    p.set_defaults(func=cmd_genotype_matrix)

    p = sub.add_parser("impute-genotypes", help="2p imputation per fold, p from the fold's training subjects")
    p.add_argument("--genotypes", required=True)
    p.add_argument("--folds", required=True, help="results/splits/folds.tsv")
    p.add_argument("--protocol", choices=["subject", "paper"], default="subject")
    p.add_argument("--out-dir", required=True, help="writes fold<k>.npz for every fold")
    p.set_defaults(func=cmd_impute_genotypes)

    p = sub.add_parser("snp-text-tokens", help="tokens per SNP of the compact and verbose SNP text")
    p.add_argument("--imputed", required=True, help="an imputed fold<k>.npz")
    p.add_argument("--snps", required=True)
    p.add_argument("--tokenizer", help="local tokenizer folder (default: bundled all-MiniLM-L6-v2)")
    p.add_argument("--max-subjects", type=int, default=200)
    add_snp_text_args(p)
    p.add_argument("--output", required=True)
    p.set_defaults(func=cmd_snp_text_tokens)

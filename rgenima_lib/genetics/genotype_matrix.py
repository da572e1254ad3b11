"""The genotype matrix: subjects x SNPs minor-allele dosage, and fold-wise 2p imputation.

Paper 4.4.1: after QC, "missing values were imputed using the empirical
allele-frequency-based expected genotype", i.e. 2p with p the minor allele
frequency. The paper estimates p on the whole cohort; here p comes from the
training subjects of each fold only, so that no test subject's genotype enters
a fitted step (docs/design.md, "Subject-level splits"). Under ``split.protocol: paper`` (the paper's
own, leaky protocol) p comes from every genotyped subject, as in the paper.

The counted allele is the minor allele of the whole QC'd cohort: the same
frequency PLINK's ``--maf`` used, so that the coding of every SNP is fixed once
for all folds. It is label-free and does not change any fold's imputation.
"""

from __future__ import annotations

import logging
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from rgenima_lib.errors import InputDataError
from rgenima_lib.io import atomic_output

log = logging.getLogger("rgenima")

SNP_COLUMNS = ["snp", "chrom", "pos", "a1", "a2", "gene", "block", "maf", "f_miss"]
"""Columns of ``snps.tsv``: a1 = the counted (minor) allele, block = the gene's
index in the canonical gene order (panel order, genes with SNPs only)."""


def read_qc_genotypes(prefix, qc_variants: pd.DataFrame, panel: pd.DataFrame,
                      subjects=None) -> tuple[np.ndarray, pd.DataFrame, list[str]]:
    """Read the QC'd PLINK trio with pyplink as a minor-allele dosage matrix.

    Parameters
    ----------
    prefix : str or Path
        The QC'd trio (``plink_qc`` output).
    qc_variants : DataFrame
        ``run_qc``'s per-variant table (snp, gene, ...); supplies each SNP's gene.
    panel : DataFrame
        From ``read_gene_panel``: the canonical gene order.
    subjects : list of str, optional
        Row order (e.g. the manifest's genotyped subjects); every one must be in
        the ``.fam``. Default: the ``.fam`` order.

    Returns
    -------
    dosage : int8[n_subjects, n_snps]
        Copies of the minor allele (0/1/2), -1 = missing. Columns in text order:
        gene blocks in panel order, SNPs by position inside a block.
    snps : DataFrame, n_snps rows
        ``SNP_COLUMNS``.
    subjects : list of str, length n_subjects
    """
    from pyplink import PyPlink

    with PyPlink(str(prefix)) as bed:
        bim = bed.get_bim()
        fam = bed.get_fam()
        # pyplink counts the .bim column-5 allele (a1), -1 = missing.
        raw = np.empty((len(fam), len(bim)), dtype=np.int8)
        for j, (_, geno) in enumerate(tqdm(bed.iter_geno(), total=len(bim), desc="read genotypes",
                                           unit="SNP", disable=None)):
            raw[:, j] = geno
    iids = fam["iid"].astype(str).tolist()
    if subjects is None:
        subjects = iids
    row = {iid: i for i, iid in enumerate(iids)}
    absent = [s for s in subjects if s not in row]
    if absent:
        raise InputDataError(f"{len(absent)} genotyped subject(s) of the manifest are not in the QC'd .fam.",
                             path=f"{prefix}.fam", subject=absent[0],
                             fix="rerun panel_extract and plink_qc on the current manifest.")
    raw = raw[[row[s] for s in subjects]]

    gene_of = qc_variants.set_index("snp")["gene"]
    stats = qc_variants.set_index("snp")
    snps = pd.DataFrame({
        "snp": bim.index.astype(str), "chrom": bim["chrom"].astype(str).to_numpy(),
        "pos": bim["pos"].astype(np.int64).to_numpy(),
        "a1": bim["a1"].astype(str).to_numpy(), "a2": bim["a2"].astype(str).to_numpy(),
    })
    snps["gene"] = gene_of.reindex(snps["snp"]).to_numpy()
    if snps["gene"].isna().any():
        raise InputDataError("the QC'd .bim holds SNPs outside the panel table.", path=f"{prefix}.bim",
                             fix="rerun panel_extract and plink_qc together.")
    snps["f_miss"] = stats["f_miss"].reindex(snps["snp"]).to_numpy()

    called = raw >= 0
    n_called = called.sum(axis=0)
    if (n_called == 0).any():
        bad = snps["snp"][n_called == 0].iloc[0]
        raise InputDataError(f"SNP {bad} has no call among the subjects.", path=f"{prefix}.bed",
                             fix="rerun plink_qc (it removes SNPs without calls).")
    freq_a1 = np.where(called, raw, 0).sum(axis=0) / (2.0 * n_called)
    flip = freq_a1 > 0.5
    dosage = raw.copy()
    dosage[:, flip] = np.where(raw[:, flip] >= 0, 2 - raw[:, flip], -1)
    snps.loc[flip, ["a1", "a2"]] = snps.loc[flip, ["a2", "a1"]].to_numpy()
    snps["maf"] = np.where(flip, 1 - freq_a1, freq_a1)

    # Text order: gene blocks in panel order, genomic order inside a block.
    panel_index = snps["gene"].map({g: i for i, g in enumerate(panel["gene"])})
    order = np.lexsort((snps["pos"].to_numpy(), panel_index.to_numpy()))
    snps = snps.iloc[order].reset_index(drop=True)
    dosage = dosage[:, order]
    kept_genes = [g for g in panel["gene"] if g in set(snps["gene"])]
    block_of = {g: i for i, g in enumerate(kept_genes)}
    snps["block"] = snps["gene"].map(block_of).astype(int)
    return np.ascontiguousarray(dosage), snps[SNP_COLUMNS], list(subjects)


def gene_table(panel: pd.DataFrame, snps: pd.DataFrame) -> pd.DataFrame:
    """The genes in canonical text order with their SNP counts.

    Returns
    -------
    DataFrame, one row per panel gene in panel order: gene, chrom,
    start_grch37, end_grch37, gwas_ad, n_snps, block (index of the gene's block
    in the canonical text; -1 for a gene left without SNPs by QC, which has no
    block: it is dropped from the text, and reported in the QC report).
    """
    counts = snps.groupby("gene").size()
    genes = panel[["gene", "chrom", "start_grch37", "end_grch37", "gwas_ad"]].copy().reset_index(drop=True)
    genes["n_snps"] = counts.reindex(genes["gene"], fill_value=0).to_numpy()
    block = np.cumsum(genes["n_snps"].to_numpy() > 0) - 1
    genes["block"] = np.where(genes["n_snps"] > 0, block, -1)
    return genes


def impute_expected_dosage(dosage: np.ndarray, fit_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replace missing calls by the expected genotype 2p, p fitted on ``fit_rows`` only (paper 4.4.1).

    Parameters
    ----------
    dosage : int8[n_subjects, n_snps]
        Minor-allele counts, -1 = missing.
    fit_rows : bool[n_subjects]
        The subjects p is estimated from (a fold's training subjects).

    Returns
    -------
    imputed : float32[n_subjects, n_snps]
        Calls as they are, missing ones = 2p.
    p : float64[n_snps]
        Minor allele frequency among the called genotypes of ``fit_rows``;
        0 for a SNP with no call among them (so 2p = 0, the common homozygote;
        such SNPs are counted in the log).
    n_called : int64[n_snps]
        Called genotypes among ``fit_rows``.
    """
    dosage = np.asarray(dosage)
    fit_rows = np.asarray(fit_rows, dtype=bool)
    if fit_rows.shape != (dosage.shape[0],):
        raise ValueError(f"fit_rows must be bool[{dosage.shape[0]}], got shape {fit_rows.shape}")
    fit = dosage[fit_rows]
    called = fit >= 0
    n_called = called.sum(axis=0).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n_called > 0, np.where(called, fit, 0).sum(axis=0) / (2.0 * np.maximum(n_called, 1)), 0.0)
    if (n_called == 0).any():
        log.warning("%d SNP(s) have no call among the %d fitting subjects; imputed as 0",
                    int((n_called == 0).sum()), int(fit_rows.sum()))
    imputed = dosage.astype(np.float32)
    missing = dosage < 0
    imputed[missing] = np.broadcast_to(2 * p, dosage.shape)[missing].astype(np.float32)
    return imputed, p, n_called


def save_genotypes(path, dosage: np.ndarray, subjects, snps, **extra) -> None:
    """Write a genotype matrix as ``.npz`` (no pickles), atomically.

    Arrays: ``dosage`` (as given), ``subjects`` (str[n]), ``snps`` (str[m]),
    plus any ``extra`` arrays.
    """
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, dosage=dosage, subjects=np.asarray(subjects, dtype=str),
                     snps=np.asarray(snps, dtype=str), **extra)


GENOTYPE_ARRAYS = ("dosage", "subjects", "snps")
"""Arrays every ``save_genotypes`` file holds (imputed folds hold more)."""


def producing_rule(path) -> str:
    """The rule that writes a genotype ``.npz``: ``genotype_matrix`` for genotypes.npz, else ``impute_genotypes``."""
    name = Path(path).name
    return "impute_genotypes" if name.startswith("fold") or Path(path).parent.name == "imputed" else "genotype_matrix"


def load_genotypes(path, *, rule: str | None = None, required=GENOTYPE_ARRAYS) -> dict[str, np.ndarray]:
    """Read a ``save_genotypes`` file into a dict of arrays, refusing a damaged one.

    Every reader of ``genotypes.npz`` and of the imputed ``fold<k>.npz``
    (impute-genotypes, snp-text-tokens, the data sets, fine-tuning, the
    baselines) goes through here.

    Parameters
    ----------
    path : str or Path
    rule : str, optional
        The rule that writes the file, named in the fix (default: from the
        file name, ``producing_rule``).
    required : sequence of str
        Arrays that must be present.

    Raises
    ------
    InputDataError
        The file is missing, not a readable ``.npz`` (truncated, not a zip,
        a damaged member), lacks one of ``required``, or its arrays disagree
        in shape (dosage must be subjects x snps). Names the file and the rule
        to rerun.
    """
    rule = rule or producing_rule(path)
    fix = (f"delete it and rerun the rule that writes it ({rule}), e.g. "
           f"'snakemake --forcerun {rule} ...', so that every rule after it is rerun too.")
    if not Path(path).is_file():
        raise InputDataError("genotype matrix not found.", path=path, fix=f"run the rule {rule} first.")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not hasattr(loaded, "files"):
            raise InputDataError("not an .npz archive (a bare array or another file under this name).",
                                 path=path, fix=fix)
        with loaded as data:
            missing = [k for k in required if k not in data.files]
            if missing:
                raise InputDataError(
                    f"genotype matrix lacks the array(s) {', '.join(missing)} (it holds "
                    f"{', '.join(data.files) or 'nothing'}): written by another version or damaged.",
                    path=path, fix=fix)
            arrays = {k: data[k] for k in data.files}
    except InputDataError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise InputDataError(f"cannot read the genotype matrix ({type(exc).__name__}: {exc}); the file is "
                             "truncated or damaged (e.g. a disk that filled up, an interrupted copy).",
                             path=path, fix=fix) from exc
    if "dosage" in arrays:
        dosage = arrays["dosage"]
        shape_ok = dosage.ndim == 2
        if shape_ok and "subjects" in arrays:
            shape_ok = len(arrays["subjects"]) == dosage.shape[0]
        if shape_ok and "snps" in arrays:
            shape_ok = len(arrays["snps"]) == dosage.shape[1]
        if not shape_ok:
            raise InputDataError(
                f"genotype matrix arrays disagree: dosage has shape {dosage.shape}, "
                f"{len(arrays.get('subjects', []))} subjects and {len(arrays.get('snps', []))} SNPs.",
                path=path, fix=fix)
    return arrays


def read_snps(path) -> pd.DataFrame:
    """Read ``snps.tsv`` (IDs, alleles and genes as text)."""
    return pd.read_csv(path, sep="\t", dtype={c: str for c in ("snp", "chrom", "a1", "a2", "gene")},
                       keep_default_na=False)

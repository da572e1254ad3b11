"""A synthetic ADNI-like cohort with planted, known truth.

The generator writes what a user's ADNI export looks like after FreeSurfer:
an ADNIMERGE-style clinical table, a BIDS tree of T1 images, one FreeSurfer
subject folder per imaged subject, and a PLINK 1 binary trio of panel SNPs.
Beside them, ``truth.json`` records what was planted, so that every later stage
can be judged on recovering it:

* causal genes: a liability ``L = sum_g beta_g * z(d_g) + e`` (``d_g`` the
  dosage of the gene's driver SNP, standardised; ``e ~ N(0, noise_sd^2)``)
  orders subjects into NC < SMC < MCI < AD in the paper's proportions, so the
  genotype carries the stage only through these genes. APOE's driver is the
  real epsilon-4 SNP rs429358; rs7412 (epsilon-2) adds -beta_APOE / 2.
* stage ROIs: subjects of a stage lose a planted fraction of each of the
  stage's ROIs (shrunk from the boundary inwards, relabelled CSF).
* ROI-gene pairs: in the listed stages, each copy of the gene's driver allele
  removes a further fraction of the ROI, so the gene's genotype drives that
  ROI's atrophy.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from rgenima_lib.cohort import clinical as clin
from rgenima_lib.cohort.genotypes import APOE_SNPS, simulate_panel_genotypes, write_plink_bed
from rgenima_lib.cohort.layout import CohortLayout, bids_t1w_path
from rgenima_lib.errors import InputDataError
from rgenima_lib.io import write_json

EPSILON4_SNP = "rs429358"
EPSILON2_SNP = "rs7412"
MAX_ATROPHY = 0.6


def standardized_dosage(dosage: np.ndarray) -> np.ndarray:
    """Centre and scale allele counts per SNP; missing calls (-1) become 0 (the mean).

    Parameters
    ----------
    dosage : int8[n_subjects, n_snps], -1 for missing.

    Returns
    -------
    float64[n_subjects, n_snps]
    """
    d = dosage.astype(float)
    d[dosage < 0] = np.nan
    p = np.nanmean(d, axis=0) / 2.0
    sd = np.sqrt(2.0 * p * (1.0 - p))
    z = (d - 2.0 * p) / np.where(sd > 0, sd, 1.0)
    return np.nan_to_num(z, nan=0.0)


def choose_driver_snps(variants: pd.DataFrame, genes: list[str]) -> dict[str, str]:
    """One driver SNP per gene: APOE's is rs429358 (epsilon 4); elsewhere the valid SNP of highest frequency.

    Parameters
    ----------
    variants : DataFrame
        From ``simulate_panel_genotypes`` (columns snp, gene, freq_a1, planted).
    genes : list of str

    Returns
    -------
    dict gene -> rsID
    """
    valid = variants[variants["planted"] == ""]
    drivers = {}
    for gene in genes:
        if gene == "APOE":
            drivers[gene] = EPSILON4_SNP
            continue
        candidates = valid[valid["gene"] == gene]
        if candidates.empty:
            raise InputDataError(f"gene {gene} has no valid SNP to plant an effect on.",
                                 fix="choose a panel gene in synthetic.causal_genes / roi_gene_pairs.")
        drivers[gene] = str(candidates.sort_values(["freq_a1", "pos"], ascending=[False, True])["snp"].iloc[0])
    return drivers


def genetic_liability(dosage: np.ndarray, variants: pd.DataFrame, causal_genes: dict[str, float],
                      drivers: dict[str, str], noise_sd: float, rng: np.random.Generator) -> np.ndarray:
    """Disease liability from the causal genes' driver SNPs plus Gaussian noise.

    Parameters
    ----------
    dosage : int8[n_subjects, n_snps]
    variants : DataFrame, n_snps rows (column snp)
    causal_genes : dict gene -> beta (liability per standard deviation of dosage)
    drivers : dict gene -> rsID
    noise_sd : float
    rng : numpy.random.Generator

    Returns
    -------
    float64[n_subjects]
    """
    z = standardized_dosage(dosage)
    column = {snp: j for j, snp in enumerate(variants["snp"])}
    liability = rng.normal(0.0, noise_sd, dosage.shape[0])
    for gene, beta in causal_genes.items():
        liability += beta * z[:, column[drivers[gene]]]
        if gene == "APOE" and EPSILON2_SNP in column:
            liability -= 0.5 * beta * z[:, column[EPSILON2_SNP]]
    return liability


def stages_from_liability(liability: np.ndarray, counts: dict[str, int]) -> np.ndarray:
    """Cut subjects ordered by liability into NC < SMC < MCI < AD with the given counts.

    Returns
    -------
    str[n_subjects]
    """
    order = np.argsort(liability, kind="stable")
    stages = np.empty(liability.size, object)
    start = 0
    for stage in clin.STAGES:
        stages[order[start:start + counts[stage]]] = stage
        start += counts[stage]
    return stages.astype(str)


def atrophy_fractions(stages: np.ndarray, driver_dosage: dict[str, np.ndarray], rois: pd.DataFrame,
                      stage_atrophy: dict[str, dict[str, float]], roi_gene_pairs: list[dict],
                      rng: np.random.Generator, subject_sd: float = 0.3) -> np.ndarray:
    """Planted fraction of each ROI's volume lost, per subject.

    Parameters
    ----------
    stages : str[n_subjects]
    driver_dosage : dict gene -> int8[n_subjects] allele counts of the gene's driver SNP (-1 missing)
    rois : DataFrame
        ``config/rois.tsv`` (columns token, label_id, name), token order.
    stage_atrophy : dict stage -> {roi name: mean fraction lost}
    roi_gene_pairs : list of dict(gene, roi, per_allele, stages)
    rng : numpy.random.Generator
    subject_sd : float
        Between-subject spread of a stage's atrophy, relative to its mean.

    Returns
    -------
    float32[n_subjects, n_rois], in [0, MAX_ATROPHY], columns in token order.
    """
    index = {name: i for i, name in enumerate(rois["name"])}
    out = np.zeros((len(stages), len(rois)), np.float64)

    def column(name: str) -> int:
        if name not in index:
            raise InputDataError(f"ROI {name!r} is not in the ROI table.",
                                 fix="use a name from config/rois.tsv in the synthetic settings.")
        return index[name]

    for stage, roi_fracs in stage_atrophy.items():
        members = np.flatnonzero(stages == stage)
        for name, frac in roi_fracs.items():
            scale = np.clip(rng.normal(1.0, subject_sd, members.size), 0.2, 1.8)
            out[members, column(name)] += frac * scale
    for pair in roi_gene_pairs:
        d = np.clip(driver_dosage[pair["gene"]], 0, 2).astype(float)
        in_stage = np.isin(stages, pair["stages"])
        out[:, column(pair["roi"])] += pair["per_allele"] * d * in_stage
    return np.clip(out, 0.0, MAX_ATROPHY).astype(np.float32)


def _render_one(task):
    """Worker: render and write one subject's images (runs in a forked process)."""
    from rgenima_lib.cohort import phantom as ph

    ptid, index, seed, voxel_size_mm, atrophy, bids_dir, fs_dir = task
    rng = np.random.default_rng([seed, 2, index])
    images = ph.render_subject(ph.build_phantom(voxel_size_mm), atrophy, rng)
    ph.write_subject_images(images, bids_t1w_path(bids_dir, ptid), Path(fs_dir) / ptid)
    return ptid


def render_cohort_images(tasks: list[tuple], voxel_size_mm: float, n_jobs: int) -> None:
    """Render subjects' images, in ``n_jobs`` forked workers sharing one phantom."""
    from rgenima_lib.cohort import phantom as ph

    ph.build_phantom(voxel_size_mm)  # built once here; forked workers inherit the cache
    bar = tqdm(total=len(tasks), desc="render T1 + aparc+aseg", unit="subject", disable=None)
    if n_jobs <= 1:
        for task in tasks:
            _render_one(task)
            bar.update()
    else:
        with cf.ProcessPoolExecutor(n_jobs, mp_context=mp.get_context("fork")) as pool:
            for _ in pool.map(_render_one, tasks, chunksize=4):
                bar.update()
    bar.close()


def write_synthetic_cohort(out_dir: str | Path, gene_panel: pd.DataFrame, rois: pd.DataFrame, *,
                           n_subjects: int, voxel_size_mm: float, n_variants: int, seed: int,
                           image_fraction: float, genotype_fraction: float, noise_sd: float,
                           causal_genes: dict[str, float], stage_atrophy: dict[str, dict[str, float]],
                           roi_gene_pairs: list[dict], n_jobs: int = 1) -> dict:
    """Generate and write a whole synthetic cohort under ``out_dir`` (layout: ``CohortLayout``).

    Everything is written into a temporary sibling folder and moved into place
    at the end, so a killed run leaves no half-made cohort.

    Parameters
    ----------
    out_dir : path
    gene_panel : DataFrame
        ``config/gene_panel.tsv``.
    rois : DataFrame
        ``config/rois.tsv``.
    n_subjects, voxel_size_mm, n_variants, seed : cohort size, image resolution (mm),
        raw variant count, and the seed that drives every random choice.
    image_fraction, genotype_fraction : float
        Share of subjects with a T1 image / in the PLINK files (ADNI has
        genotyped subjects without usable MRI, which the mixture data set uses).
    noise_sd, causal_genes, stage_atrophy, roi_gene_pairs
        The planted truth (module docstring).
    n_jobs : int
        Worker processes for image rendering.

    Returns
    -------
    dict
        The planted truth, as written to ``truth.json``.
    """
    if n_subjects < len(clin.STAGES):
        raise InputDataError(f"n_subjects = {n_subjects} is too small for four stages.",
                             fix="set synthetic.n_subjects to at least 4 (the demo uses 60).")
    out_dir = Path(out_dir)
    rng = np.random.default_rng([seed, 0])
    dosage, variants = simulate_panel_genotypes(gene_panel, n_subjects, n_variants, np.random.default_rng([seed, 1]))
    pair_genes = [p["gene"] for p in roi_gene_pairs]
    drivers = choose_driver_snps(variants, list(dict.fromkeys([*causal_genes, *pair_genes])))
    column = {snp: j for j, snp in enumerate(variants["snp"])}
    liability = genetic_liability(dosage, variants, causal_genes, drivers, noise_sd, rng)
    counts = clin.stage_counts(n_subjects)
    stages = stages_from_liability(liability, counts)
    ptids = clin.make_ptids(n_subjects, rng)
    clinical = clin.make_clinical_table(ptids, stages, rng)
    driver_dosage = {g: dosage[:, column[s]] for g, s in drivers.items()}
    atrophy = atrophy_fractions(stages, driver_dosage, rois, stage_atrophy, roi_gene_pairs, rng)
    has_image = rng.random(n_subjects) < image_fraction
    has_genotype = rng.random(n_subjects) < genotype_fraction
    # Every stage keeps at least one imaged and one genotyped subject, so no class vanishes from a data set.
    for stage in clin.STAGES:
        first = np.flatnonzero(stages == stage)[:1]
        has_image[first] = True
        has_genotype[first] = True

    tmp_root = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp_root, ignore_errors=True)
    layout = CohortLayout(tmp_root)
    try:
        layout.clinical.parent.mkdir(parents=True)
        clinical.to_csv(layout.clinical, index=False)
        layout.genotypes.parent.mkdir(parents=True)
        fam = pd.DataFrame({
            "fid": ptids, "iid": ptids, "father": "0", "mother": "0",
            "sex": np.where(clinical["PTGENDER"] == "Female", 2, 1), "phenotype": -9,
        })[has_genotype]
        write_plink_bed(layout.genotypes, dosage[has_genotype], variants, fam)
        label_ids = rois["label_id"].to_numpy()
        tasks = []
        for i in np.flatnonzero(has_image):
            lost = {int(label_ids[j]): float(atrophy[i, j]) for j in np.flatnonzero(atrophy[i])}
            tasks.append((ptids[i], int(i), seed, voxel_size_mm, lost, layout.bids_dir, layout.freesurfer_dir))
        layout.bids_dir.mkdir()
        layout.freesurfer_dir.mkdir()
        render_cohort_images(tasks, voxel_size_mm, n_jobs)
        truth = _truth_record(seed, voxel_size_mm, counts, variants, causal_genes, drivers, noise_sd,
                              stage_atrophy, roi_gene_pairs, rois, has_image, has_genotype)
        write_json(truth, layout.truth)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp_root, out_dir)
    except BaseException:
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise
    return truth


def _truth_record(seed, voxel_size_mm, counts, variants, causal_genes, drivers, noise_sd,
                  stage_atrophy, roi_gene_pairs, rois, has_image, has_genotype) -> dict:
    """What was planted, in a JSON-ready dict."""
    label = dict(zip(rois["name"], rois["label_id"].astype(int)))
    freq = dict(zip(variants["snp"], variants["freq_a1"]))
    planted_qc = variants[variants["planted"] != ""]
    return {
        "seed": seed,
        "voxel_size_mm": voxel_size_mm,
        "n_subjects": int(sum(counts.values())),
        "stage_counts": counts,
        "n_with_image": int(has_image.sum()),
        "n_with_genotype": int(has_genotype.sum()),
        "liability_noise_sd": noise_sd,
        "causal_genes": [
            {"gene": g, "snp": drivers[g], "beta": float(b), "freq_a1": float(freq[drivers[g]])}
            for g, b in causal_genes.items()
        ],
        "apoe_snps": {snp: {k: v for k, v in spec.items()} for snp, spec in APOE_SNPS.items()},
        "stage_rois": {
            stage: [{"roi": r, "label_id": int(label[r]), "atrophy": float(f)} for r, f in fracs.items()]
            for stage, fracs in stage_atrophy.items()
        },
        "roi_gene_pairs": [
            {"roi": p["roi"], "label_id": int(label[p["roi"]]), "gene": p["gene"], "snp": drivers[p["gene"]],
             "per_allele_atrophy": float(p["per_allele"]), "stages": list(p["stages"])}
            for p in roi_gene_pairs
        ],
        "planted_qc_failures": {
            kind: sorted(planted_qc.loc[planted_qc["planted"] == kind, "snp"].tolist())
            for kind in sorted(planted_qc["planted"].unique())
        },
    }

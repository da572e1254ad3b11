"""The planted truth of the synthetic cohort: what genes and ROIs carry the stage, and how.

``truth.json`` (written by :func:`rgenima_lib.synthetic.cohort.write_synthetic_cohort`
from :func:`truth_record`) records what was planted, so that every later stage
can be judged on recovering it:

* causal genes: a liability ``L = sum_g beta_g * z(d_g) + e`` (``d_g`` the
  dosage of the gene's driver SNP, standardised; ``e ~ N(0, noise_sd^2)``)
  orders subjects into NC < SMC < MCI < AD in the paper's proportions, so the
  genotype carries the stage only through these genes. APOE's driver is the
  real epsilon-4 SNP rs429358; rs7412 (epsilon-2) adds -beta_APOE / 2.
* stage ROIs: subjects of a stage lose a planted fraction of each of the
  stage's ROIs (shrunk from the boundary inwards; the freed voxels become
  unlabelled, CSF-dark brain, so no other ROI token grows with atrophy).
* ROI-gene pairs: in the listed stages, each copy of the gene's driver allele
  removes a further fraction of the ROI, so the gene's genotype drives that
  ROI's atrophy.

``truth.json``'s ``stage_rois`` lists, per stage, *every* ROI whose expected
volume differs from NC's there: the stage's own ROIs and the ROIs of the
ROI-gene pairs active in it. Any other ROI's volume has the same distribution
in every stage; :mod:`rgenima_lib.attribution.leak_check` checks that on the
data.

Beside the planted truth, every subject has an anatomy of its own
(:func:`anatomical_reserve`): each grey-matter ROI keeps a random share of the
phantom's volume, independent of stage and genotype, so that ROI volumes vary
between subjects about as much as real ones do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rgenima_lib.synthetic.genotypes import APOE_SNPS
from rgenima_lib.errors import InputDataError
from rgenima_lib.vocabulary import STAGES

EPSILON4_SNP = "rs429358"
EPSILON2_SNP = "rs7412"
MAX_ATROPHY = 0.6
# The phantom is each subject's largest possible anatomy: a ROI keeps 1 - r of it,
# r ~ N(mean, sd) clipped to [0, 2 mean], with mean = 2.5 sd so that clipping is rare.
_RESERVE_SDS = 2.5
ANATOMY_KINDS = ("cortical", "subcortical")
CEREBELLAR_CORTEX = (8, 47)
"""Grey matter varies between subjects: the ROI kinds in ANATOMY_KINDS and the
cerebellar cortex. White matter, CSF spaces and the other large structures keep
the phantom's shape (removing a shell of white matter would leave a dark band
between it and the cortex)."""


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
    for stage in STAGES:
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


def anatomical_reserve(n_subjects: int, rois: pd.DataFrame, volume_cv: float,
                       rng: np.random.Generator) -> np.ndarray:
    """Share of each ROI's phantom volume a subject lacks by its own anatomy (not disease).

    Parameters
    ----------
    n_subjects : int
    rois : DataFrame
        ``config/rois.tsv`` (columns name, kind), token order.
    volume_cv : float
        Between-subject coefficient of variation of a grey-matter ROI's volume
        (sd / mean); about 0.1 for FreeSurfer volumes of healthy elderly.
    rng : numpy.random.Generator

    Returns
    -------
    float64[n_subjects, n_rois]
        r in [0, 2 * mean]; 0 for ROIs that are not grey matter (:data:`ANATOMY_KINDS`,
        :data:`CEREBELLAR_CORTEX`).
        A subject keeps ``1 - r`` of the phantom's volume, so
        sd(1 - r) / mean(1 - r) = volume_cv.
    """
    mean = _RESERVE_SDS * volume_cv / (1.0 + _RESERVE_SDS * volume_cv)
    sd = volume_cv * (1.0 - mean)
    reserve = np.clip(rng.normal(mean, sd, (n_subjects, len(rois))), 0.0, 2.0 * mean)
    varies = (rois["kind"].isin(ANATOMY_KINDS) | rois["label_id"].isin(CEREBELLAR_CORTEX)).to_numpy()
    return np.where(varies[None, :], reserve, 0.0)


def total_loss(reserve: np.ndarray, planted: np.ndarray, max_loss: float) -> np.ndarray:
    """Fraction of each ROI's phantom volume a subject lacks: its anatomy, then the planted atrophy.

    Parameters
    ----------
    reserve, planted : float[n_subjects, n_rois]
        From :func:`anatomical_reserve` and :func:`atrophy_fractions`.
    max_loss : float
        Upper clip (the renderer's limit).

    Returns
    -------
    float32[n_subjects, n_rois]
        ``1 - (1 - reserve) * (1 - planted)``: planted atrophy removes its
        fraction of what the subject has, so its relative effect does not
        depend on the subject's anatomy.
    """
    return np.clip(1.0 - (1.0 - reserve) * (1.0 - planted), 0.0, max_loss).astype(np.float32)


def stage_roi_lists(stages: np.ndarray, planted: np.ndarray, rois: pd.DataFrame,
                    stage_atrophy: dict[str, dict[str, float]], roi_gene_pairs: list[dict]) -> dict:
    """Every ROI whose expected volume changes in a stage, with its mean planted atrophy there.

    Parameters
    ----------
    stages : str[n_subjects]
    planted : float[n_subjects, n_rois]
        From :func:`atrophy_fractions`, columns in token order.
    rois : DataFrame
        ``config/rois.tsv`` (columns name, label_id), token order.
    stage_atrophy, roi_gene_pairs : the planted settings.

    Returns
    -------
    dict stage -> list of {roi, label_id, atrophy, planted_by}
        ``atrophy``: mean planted fraction over the stage's subjects;
        ``planted_by``: "stage" and / or the genes of the ROI-gene pairs
        acting on the ROI in that stage. Stages without planted ROIs are left out.
    """
    names = list(rois["name"])
    label = dict(zip(names, rois["label_id"].astype(int)))
    sources: dict[str, dict[str, list[str]]] = {}
    for stage, fracs in stage_atrophy.items():
        for roi in fracs:
            sources.setdefault(stage, {}).setdefault(roi, []).append("stage")
    for pair in roi_gene_pairs:
        for stage in pair["stages"]:
            sources.setdefault(stage, {}).setdefault(pair["roi"], []).append(pair["gene"])
    lists = {}
    for stage in STAGES:
        members = stages == stage
        if stage not in sources:
            continue
        lists[stage] = [
            {"roi": roi, "label_id": int(label[roi]),
             "atrophy": round(float(planted[members, names.index(roi)].mean()) if members.any() else 0.0, 4),
             "planted_by": by}
            for roi, by in sources[stage].items()]
    return lists


def truth_record(seed, voxel_size_mm, counts, variants, causal_genes, drivers, noise_sd,
                 stage_rois, roi_gene_pairs, rois, has_image, has_genotype, generator) -> dict:
    """What was planted, in a JSON-ready dict (the content of ``truth.json``).

    Parameters
    ----------
    seed, voxel_size_mm : the cohort's seed and image resolution (mm).
    counts : dict stage -> number of subjects
    variants : DataFrame
        From ``simulate_panel_genotypes`` (columns snp, freq_a1, planted).
    causal_genes : dict gene -> beta (as applied, after any effect scale)
    drivers : dict gene -> rsID, from :func:`choose_driver_snps`
    noise_sd : float
        Standard deviation of the liability noise.
    stage_rois : dict
        From :func:`stage_roi_lists`: every ROI whose volume changes in a stage.
    roi_gene_pairs : list of dict(gene, roi, per_allele, stages), as applied
    rois : DataFrame
        ``config/rois.tsv`` (columns name, label_id).
    has_image, has_genotype : bool[n_subjects]
    generator : dict
        The generator's other settings (purpose, effect scales, anatomical
        variance, genotype-only subjects), recorded as given.

    Returns
    -------
    dict
        seed, sizes, stage counts, the generator settings, the causal genes
        with their driver SNPs, the APOE SNPs, the stage ROIs, the ROI-gene
        pairs and the planted QC failures.
    """
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
        "generator": generator,
        "liability_noise_sd": noise_sd,
        "causal_genes": [
            {"gene": g, "snp": drivers[g], "beta": float(b), "freq_a1": float(freq[drivers[g]])}
            for g, b in causal_genes.items()
        ],
        "apoe_snps": {snp: {k: v for k, v in spec.items()} for snp, spec in APOE_SNPS.items()},
        "stage_rois": stage_rois,
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

"""A synthetic ADNI-like cohort with planted, known truth.

The generator writes what a user's ADNI export looks like after FreeSurfer:
an ADNIMERGE-style clinical table (:mod:`rgenima_lib.synthetic.clinical`), a
BIDS tree of T1 images and one FreeSurfer subject folder per imaged subject
(rendered from the phantom: :mod:`rgenima_lib.synthetic.anatomy`,
:mod:`~rgenima_lib.synthetic.render`, :mod:`~rgenima_lib.synthetic.write`), and
a PLINK 1 binary trio of panel SNPs. Beside them, ``truth.json`` records what
was planted (:mod:`rgenima_lib.synthetic.truth`), so that every later stage
can be judged on recovering it.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing as mp
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from rgenima_lib.genetics.plink_io import write_plink_bed
from rgenima_lib.synthetic.genotypes import simulate_panel_genotypes
from rgenima_lib.cohort.layout import CohortLayout, bids_t1w_path
from rgenima_lib.errors import InputDataError
from rgenima_lib.io import write_json
from rgenima_lib.synthetic import clinical as clin
from rgenima_lib.synthetic.anatomy import build_phantom
from rgenima_lib.synthetic.render import MAX_LOSS, render_subject
from rgenima_lib.synthetic.truth import (anatomical_reserve, atrophy_fractions, choose_driver_snps,
                                         genetic_liability, stage_roi_lists, stages_from_liability,
                                         total_loss, truth_record)
from rgenima_lib.synthetic.write import write_subject_images
from rgenima_lib.vocabulary import STAGES


def _render_one(task):
    """Worker: render and write one subject's images (runs in a forked process)."""
    ptid, index, seed, voxel_size_mm, atrophy, bids_dir, fs_dir = task
    rng = np.random.default_rng([seed, 2, index])
    images = render_subject(build_phantom(voxel_size_mm), atrophy, rng)
    write_subject_images(images, bids_t1w_path(bids_dir, ptid), Path(fs_dir) / ptid)
    return ptid


def render_cohort_images(tasks: list[tuple], voxel_size_mm: float, n_jobs: int) -> None:
    """Render subjects' images, in ``n_jobs`` forked workers sharing one phantom."""
    build_phantom(voxel_size_mm)  # built once here; forked workers inherit the cache
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


PURPOSES = ("realistic", "calibration")
"""``synthetic.purpose``: effect scales other than 1 are a positive control, and must say so."""


@dataclass(eq=False)
class CohortPlan:
    """Everything drawn for a synthetic cohort before any file is written.

    Attributes
    ----------
    ptids : list of str, n subjects
    stages : str[n]
    clinical : DataFrame, n rows (ADNIMERGE-style)
    dosage : int8[n, n_snps]; variants : DataFrame, n_snps rows
    drivers : dict gene -> rsID
    causal_genes : dict gene -> beta, as applied (after ``genetic_effect_scale``)
    stage_atrophy, roi_gene_pairs : the planted atrophy, as applied (after ``atrophy_scale``)
    planted : float32[n, n_rois]
        Planted atrophy fraction (stage + ROI-gene pairs).
    loss : float32[n, n_rois]
        What the renderer removes: the subject's anatomy, then the planted atrophy.
    has_image, has_genotype : bool[n]
    counts : dict stage -> number of subjects
    stage_rois : dict, from :func:`rgenima_lib.synthetic.truth.stage_roi_lists`
    generator : dict of the generator settings recorded in ``truth.json``
    """

    ptids: list
    stages: np.ndarray
    clinical: pd.DataFrame
    dosage: np.ndarray
    variants: pd.DataFrame
    drivers: dict
    causal_genes: dict
    stage_atrophy: dict
    roi_gene_pairs: list
    planted: np.ndarray
    loss: np.ndarray
    has_image: np.ndarray
    has_genotype: np.ndarray
    counts: dict
    stage_rois: dict
    generator: dict


def _check_purpose(purpose: str, genetic_effect_scale: float, atrophy_scale: float) -> None:
    """Refuse effect scales other than 1 unless the cohort is declared a calibration cohort."""
    if purpose not in PURPOSES:
        raise InputDataError(f"synthetic.purpose must be one of {PURPOSES}, got {purpose!r}.")
    if purpose == "realistic" and (genetic_effect_scale != 1.0 or atrophy_scale != 1.0):
        raise InputDataError(
            f"genetic_effect_scale = {genetic_effect_scale:g} and atrophy_scale = {atrophy_scale:g} make "
            "effects no real cohort has.",
            fix="set synthetic.purpose: calibration to mark the cohort as a positive control, or keep both at 1.")


def _imaging_floor(min_imaged_per_stage: int, image_fraction: float) -> int:
    """Stage size at which ``image_fraction`` is expected to image ``min_imaged_per_stage`` subjects."""
    if min_imaged_per_stage <= 0 or image_fraction <= 0:
        return 1
    return math.ceil(min_imaged_per_stage / image_fraction)


def _cut_stages(liability: np.ndarray, pools: list[np.ndarray], floors: list[int]) -> tuple[np.ndarray, dict]:
    """Stages by liability, cut separately within each pool of subjects (imageable, genotype-only).

    Returns
    -------
    stages : str[n]
    counts : dict stage -> number of subjects over all pools
    """
    stages = np.empty(liability.size, dtype=object)
    counts = dict.fromkeys(STAGES, 0)
    for pool, floor in zip(pools, floors):
        if pool.size == 0:
            continue
        pool_counts = clin.stage_counts(pool.size, min_per_stage=floor)
        stages[pool] = stages_from_liability(liability[pool], pool_counts)
        for stage, k in pool_counts.items():
            counts[stage] += k
    return stages.astype(str), counts


def _image_top_up(has_image: np.ndarray, stages: np.ndarray, imageable: np.ndarray, minimum: int) -> None:
    """Image more of a stage's imageable subjects until it has ``minimum`` (or all of them); in place."""
    for stage in STAGES:
        waiting = np.flatnonzero((stages == stage) & imageable & ~has_image)
        short = max(minimum - int((has_image & (stages == stage)).sum()), 0)
        has_image[waiting[:short]] = True


def plan_synthetic_cohort(gene_panel: pd.DataFrame, rois: pd.DataFrame, *, n_subjects: int, n_variants: int,
                          seed: int, image_fraction: float, genotype_fraction: float, noise_sd: float,
                          causal_genes: dict[str, float], stage_atrophy: dict[str, dict[str, float]],
                          roi_gene_pairs: list[dict], roi_volume_cv: float = 0.1, min_imaged_per_stage: int = 1,
                          n_genotype_only: int = 0, genetic_effect_scale: float = 1.0,
                          atrophy_scale: float = 1.0, purpose: str = "realistic") -> CohortPlan:
    """Draw a synthetic cohort's subjects, stages, genotypes and per-ROI volume losses.

    Parameters
    ----------
    gene_panel, rois : DataFrame
        ``config/gene_panel.tsv`` and ``config/rois.tsv`` (token order, with ``kind``).
    n_subjects : int
        Subjects who may have an image (drawn with ``image_fraction``).
    n_variants, seed, image_fraction, genotype_fraction, noise_sd, causal_genes, stage_atrophy,
    roi_gene_pairs : see :func:`write_synthetic_cohort`.
    roi_volume_cv : float
        Between-subject coefficient of variation of grey-matter ROI volumes
        (:func:`rgenima_lib.synthetic.truth.anatomical_reserve`).
    min_imaged_per_stage : int
        Every stage gets at least ``ceil(min / image_fraction)`` subjects (at most a
        quarter of the cohort), and at least ``min`` of them imaged where it has them.
    n_genotype_only : int
        Further subjects with genotype and clinical row but no image (cheap: nothing
        is rendered), stages cut within their own pool in the paper's proportions.
    genetic_effect_scale, atrophy_scale : float
        Multiply every causal beta, and every planted atrophy fraction; other than
        1 only with ``purpose = "calibration"``.
    purpose : "realistic" or "calibration"

    Returns
    -------
    CohortPlan
    """
    if n_subjects < len(STAGES):
        raise InputDataError(f"n_subjects = {n_subjects} is too small for four stages.",
                             fix="set synthetic.n_subjects to at least 4 (the demo uses 200).")
    _check_purpose(purpose, genetic_effect_scale, atrophy_scale)
    causal_genes = {g: b * genetic_effect_scale for g, b in causal_genes.items()}
    stage_atrophy = {s: {r: f * atrophy_scale for r, f in fr.items()} for s, fr in stage_atrophy.items()}
    roi_gene_pairs = [{**pair, "per_allele": pair["per_allele"] * atrophy_scale} for pair in roi_gene_pairs]
    n_total = n_subjects + n_genotype_only
    rng = np.random.default_rng([seed, 0])
    dosage, variants = simulate_panel_genotypes(gene_panel, n_total, n_variants, np.random.default_rng([seed, 1]))
    pair_genes = [p["gene"] for p in roi_gene_pairs]
    drivers = choose_driver_snps(variants, list(dict.fromkeys([*causal_genes, *pair_genes])))
    column = {snp: j for j, snp in enumerate(variants["snp"])}
    liability = genetic_liability(dosage, variants, causal_genes, drivers, noise_sd, rng)
    imageable = np.ones(n_total, bool)
    imageable[np.random.default_rng([seed, 3]).choice(n_total, n_genotype_only, replace=False)] = False
    floor = min(_imaging_floor(min_imaged_per_stage, image_fraction), n_subjects // len(STAGES))
    stages, counts = _cut_stages(liability, [np.flatnonzero(imageable), np.flatnonzero(~imageable)], [floor, 1])
    ptids = clin.make_ptids(n_total, rng)
    clinical = clin.make_clinical_table(ptids, stages, rng)
    driver_dosage = {g: dosage[:, column[s]] for g, s in drivers.items()}
    planted = atrophy_fractions(stages, driver_dosage, rois, stage_atrophy, roi_gene_pairs, rng)
    has_image = (rng.random(n_total) < image_fraction) & imageable
    has_genotype = (rng.random(n_total) < genotype_fraction) | ~imageable
    # Every stage keeps at least one imaged and one genotyped subject, so no class vanishes from a data set.
    _image_top_up(has_image, stages, imageable, max(min_imaged_per_stage, 1))
    for stage in STAGES:
        has_genotype[np.flatnonzero(stages == stage)[:1]] = True
    reserve = anatomical_reserve(n_total, rois, roi_volume_cv, np.random.default_rng([seed, 4]))
    generator = {"purpose": purpose, "genetic_effect_scale": genetic_effect_scale, "atrophy_scale": atrophy_scale,
                 "roi_volume_cv": roi_volume_cv, "min_imaged_per_stage": min_imaged_per_stage,
                 "n_genotype_only": n_genotype_only}
    return CohortPlan(ptids=ptids, stages=stages, clinical=clinical, dosage=dosage, variants=variants,
                      drivers=drivers, causal_genes=causal_genes, stage_atrophy=stage_atrophy,
                      roi_gene_pairs=roi_gene_pairs, planted=planted, loss=total_loss(reserve, planted, MAX_LOSS),
                      has_image=has_image, has_genotype=has_genotype, counts=counts,
                      stage_rois=stage_roi_lists(stages, planted, rois, stage_atrophy, roi_gene_pairs),
                      generator=generator)


def write_synthetic_cohort(out_dir: str | Path, gene_panel: pd.DataFrame, rois: pd.DataFrame, *,
                           voxel_size_mm: float, n_jobs: int = 1, **settings) -> dict:
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
    voxel_size_mm : float
        Image resolution (mm).
    n_jobs : int
        Worker processes for image rendering.
    **settings
        :func:`plan_synthetic_cohort`'s keywords: n_subjects, n_variants, seed,
        image_fraction and genotype_fraction (share of subjects with a T1 image /
        in the PLINK files; ADNI has genotyped subjects without usable MRI, which
        the mixture data set uses), noise_sd, causal_genes, stage_atrophy,
        roi_gene_pairs (the planted truth, :mod:`rgenima_lib.synthetic.truth`)
        and the generator knobs.

    Returns
    -------
    dict
        The planted truth, as written to ``truth.json``.
    """
    plan = plan_synthetic_cohort(gene_panel, rois, **settings)
    seed = settings["seed"]
    out_dir = Path(out_dir)
    tmp_root = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp_root, ignore_errors=True)
    layout = CohortLayout(tmp_root)
    try:
        layout.clinical.parent.mkdir(parents=True)
        plan.clinical.to_csv(layout.clinical, index=False)
        layout.genotypes.parent.mkdir(parents=True)
        fam = pd.DataFrame({
            "fid": plan.ptids, "iid": plan.ptids, "father": "0", "mother": "0",
            "sex": np.where(plan.clinical["PTGENDER"] == "Female", 2, 1), "phenotype": -9,
        })[plan.has_genotype]
        write_plink_bed(layout.genotypes, plan.dosage[plan.has_genotype], plan.variants, fam)
        label_ids = rois["label_id"].to_numpy()
        tasks = []
        for i in np.flatnonzero(plan.has_image):
            lost = {int(label_ids[j]): float(plan.loss[i, j]) for j in np.flatnonzero(plan.loss[i])}
            tasks.append((plan.ptids[i], int(i), seed, voxel_size_mm, lost, layout.bids_dir, layout.freesurfer_dir))
        layout.bids_dir.mkdir()
        layout.freesurfer_dir.mkdir()
        render_cohort_images(tasks, voxel_size_mm, n_jobs)
        truth = truth_record(seed, voxel_size_mm, plan.counts, plan.variants, plan.causal_genes, plan.drivers,
                             settings["noise_sd"], plan.stage_rois, plan.roi_gene_pairs, rois, plan.has_image,
                             plan.has_genotype, plan.generator)
        write_json(truth, layout.truth)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp_root, out_dir)
    except BaseException:
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise
    return truth

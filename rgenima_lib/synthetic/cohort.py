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
import multiprocessing as mp
import os
import shutil
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
from rgenima_lib.synthetic.render import render_subject
from rgenima_lib.synthetic.truth import (atrophy_fractions, choose_driver_snps, genetic_liability,
                                         stages_from_liability, truth_record)
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
        The planted truth (:mod:`rgenima_lib.synthetic.truth`).
    n_jobs : int
        Worker processes for image rendering.

    Returns
    -------
    dict
        The planted truth, as written to ``truth.json``.
    """
    if n_subjects < len(STAGES):
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
    for stage in STAGES:
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
        truth = truth_record(seed, voxel_size_mm, counts, variants, causal_genes, drivers, noise_sd,
                             stage_atrophy, roi_gene_pairs, rois, has_image, has_genotype)
        write_json(truth, layout.truth)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp_root, out_dir)
    except BaseException:
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise
    return truth

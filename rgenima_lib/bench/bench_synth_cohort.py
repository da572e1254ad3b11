"""Synthetic cohort generator: wall time with parallel rendering beside one worker, size on disk, labels present.

- ``timings``: a 10-subject 2 mm cohort written with one rendering worker (the baseline) and with
  one worker per CPU, interleaved in one process (``paired_timings``: warm-up, round-robin
  repetitions, median and spread, per-round ratio). On a loaded machine the parallel speed-up is
  what the other processes leave.
- ``cohort``: size on disk and ROIs present in the first subject of that cohort.
- ``full`` adds one run of the paper's scale (2,000 subjects, 1 mm, 1,500 raw variants), which
  takes tens of minutes and several GB of disk on a 2-core laptop.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import yaml

from rgenima_lib.bench.paired import paired_timings
from rgenima_lib.io import read_tsv
from rgenima_lib.synthetic.cohort import write_synthetic_cohort
from rgenima_lib.vocabulary import read_rois_table

REPO = Path(__file__).resolve().parents[2]


def _schema_defaults() -> dict:
    """The synthetic section's defaults, from the schema (the one place they are written)."""
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    props = schema["properties"]["synthetic"]["properties"]
    return {k: v["default"] for k, v in props.items() if "default" in v}


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_cohort(out_dir: Path, n_subjects: int, voxel_size_mm: float, n_variants: int, n_jobs: int) -> dict:
    """Write one cohort (seed 1, the schema's planted truth) into a fresh ``out_dir``; returns the truth."""
    settings = _schema_defaults()
    shutil.rmtree(out_dir, ignore_errors=True)
    return write_synthetic_cohort(
        out_dir, read_tsv(REPO / "config" / "gene_panel.tsv"), read_rois_table(REPO / "config" / "rois.tsv"),
        n_subjects=n_subjects, voxel_size_mm=voxel_size_mm, n_variants=n_variants, seed=1,
        image_fraction=settings["image_fraction"], genotype_fraction=settings["genotype_fraction"],
        noise_sd=settings["liability_noise_sd"], causal_genes=settings["causal_genes"],
        stage_atrophy=settings["stage_atrophy"], roi_gene_pairs=settings["roi_gene_pairs"], n_jobs=n_jobs)


def cohort_figures(out_dir: Path, truth: dict) -> dict:
    """Size on disk, imaged subjects and ROIs present in the first subject of a written cohort."""
    rois = read_rois_table(REPO / "config" / "rois.tsv")
    first = sorted((out_dir / "freesurfer").iterdir())[0]
    labels = np.unique(np.asarray(nib.load(first / "mri" / "aparc+aseg.mgz").dataobj))
    present = int(np.isin(rois["label_id"].to_numpy(), labels).sum())
    return {"n_with_image": truth["n_with_image"], "disk_mb": round(_folder_bytes(out_dir) / 2**20, 1),
            "rois_present_in_first_subject": f"{present}/{len(rois)}"}


def run(out_dir: Path, full: bool) -> dict:
    scratch = Path(out_dir) / "scratch_synth_cohort"
    jobs = os.cpu_count() or 1
    n, mm, variants = 10, 2.0, 400
    truths = {}

    def writer(n_jobs):
        def write():
            truths[n_jobs] = write_cohort(scratch, n, mm, variants, n_jobs)
        return write

    try:
        results = {"setting": {"n_subjects": n, "voxel_size_mm": mm, "n_variants": variants, "cpus": jobs},
                   "timings": paired_timings({"one_worker": writer(1), f"{jobs}_workers": writer(jobs)}, repeats=3,
                                             ratios={f"one_worker_over_{jobs}_workers": ("one_worker",
                                                                                         f"{jobs}_workers")})}
        results["cohort"] = cohort_figures(scratch, truths[jobs])
        results["cohort"]["seconds_per_imaged_subject"] = round(
            results["timings"][f"{jobs}_workers"]["median_s"] / max(truths[jobs]["n_with_image"], 1), 3)
        if full:
            start = time.perf_counter()
            truth = write_cohort(scratch, 2000, 1.0, 1500, jobs)
            seconds = time.perf_counter() - start
            results["paper_2000_subjects_1mm"] = {"n_jobs": jobs, "seconds_one_run": round(seconds, 1),
                                                  **cohort_figures(scratch, truth)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results

"""Synthetic cohort generator: wall time, size on disk and labels present.

Default: the demo cohort (60 subjects, 2 mm). ``full``: the paper's scale
(2,000 subjects, 1 mm, 1,500 raw variants), which takes tens of minutes and
several GB of disk on a 2-core laptop.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import yaml

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


def time_cohort(out_dir: Path, n_subjects: int, voxel_size_mm: float, n_variants: int, n_jobs: int) -> dict:
    """Generate one cohort, then report seconds, bytes and labels present in its first subject."""
    settings = _schema_defaults()
    rois = read_rois_table(REPO / "config" / "rois.tsv")
    panel = read_tsv(REPO / "config" / "gene_panel.tsv")
    shutil.rmtree(out_dir, ignore_errors=True)
    start = time.perf_counter()
    truth = write_synthetic_cohort(
        out_dir, panel, rois, n_subjects=n_subjects, voxel_size_mm=voxel_size_mm, n_variants=n_variants,
        seed=1, image_fraction=settings["image_fraction"], genotype_fraction=settings["genotype_fraction"],
        noise_sd=settings["liability_noise_sd"], causal_genes=settings["causal_genes"],
        stage_atrophy=settings["stage_atrophy"], roi_gene_pairs=settings["roi_gene_pairs"], n_jobs=n_jobs)
    seconds = time.perf_counter() - start
    first = sorted((out_dir / "freesurfer").iterdir())[0]
    labels = np.unique(np.asarray(nib.load(first / "mri" / "aparc+aseg.mgz").dataobj))
    present = int(np.isin(rois["label_id"].to_numpy(), labels).sum())
    result = {
        "n_subjects": n_subjects, "voxel_size_mm": voxel_size_mm, "n_variants": n_variants, "n_jobs": n_jobs,
        "n_with_image": truth["n_with_image"], "seconds": round(seconds, 1),
        "seconds_per_imaged_subject": round(seconds / max(truth["n_with_image"], 1), 3),
        "disk_mb": round(_folder_bytes(out_dir) / 2**20, 1),
        "rois_present_in_first_subject": f"{present}/{len(rois)}",
    }
    shutil.rmtree(out_dir, ignore_errors=True)
    return result


def run(out_dir: Path, full: bool) -> dict:
    scratch = Path(out_dir) / "scratch_synth_cohort"
    jobs = os.cpu_count() or 1
    results = {"demo_60_subjects_2mm": time_cohort(scratch, 60, 2.0, 400, jobs)}
    if full:
        results["paper_2000_subjects_1mm"] = time_cohort(scratch, 2000, 1.0, 1500, jobs)
    return results

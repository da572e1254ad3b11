"""``rgenima`` subcommands of the cohort stage: synth-cohort, manifest."""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path

from rgenima_lib.cohort.layout import DEFAULT_INTENSITY_IMAGE, DEFAULT_SUBJECT_ID_PATTERN, DEFAULT_WHOLEBRAIN_IMAGE
from rgenima_lib.errors import InputDataError
from rgenima_lib.io import load_settings

log = logging.getLogger("rgenima")


def cmd_synth_cohort(args: argparse.Namespace) -> None:
    from rgenima_lib.io import read_tsv
    from rgenima_lib.synthetic.cohort import write_synthetic_cohort
    from rgenima_lib.vocabulary import read_rois_table

    settings = load_settings(args.settings)
    # The generator knobs are optional here (the schema gives the workflow their defaults).
    knobs = {k: settings[k] for k in ("roi_volume_cv", "min_imaged_per_stage", "n_genotype_only",
                                       "genetic_effect_scale", "atrophy_scale", "purpose") if k in settings}
    truth = write_synthetic_cohort(
        args.out_dir, read_tsv(args.gene_panel), read_rois_table(args.rois),
        n_subjects=settings["n_subjects"], voxel_size_mm=settings["voxel_size_mm"],
        n_variants=settings["n_variants"], seed=args.seed, image_fraction=settings["image_fraction"],
        genotype_fraction=settings["genotype_fraction"], noise_sd=settings["liability_noise_sd"],
        causal_genes=settings["causal_genes"], stage_atrophy=settings["stage_atrophy"],
        roi_gene_pairs=settings["roi_gene_pairs"], n_jobs=args.jobs, **knobs)
    if truth["generator"]["purpose"] == "calibration":
        log.warning("synthetic cohort is a calibration cohort (genetic effects x %g, atrophy x %g): a positive "
                    "control, not a realistic cohort", truth["generator"]["genetic_effect_scale"],
                    truth["generator"]["atrophy_scale"])
    log.info("synthetic cohort: %d subjects (%s), %d with image, %d genotyped -> %s",
             truth["n_subjects"], ", ".join(f"{k} {v}" for k, v in truth["stage_counts"].items()),
             truth["n_with_image"], truth["n_with_genotype"], args.out_dir)


def cmd_manifest(args: argparse.Namespace) -> None:
    from rgenima_lib.cohort.clinical import read_clinical
    from rgenima_lib.cohort.manifest import build_manifest, manifest_summary, read_fam
    from rgenima_lib.io import atomic_output, write_tsv

    clinical = read_clinical(args.clinical)
    fam = None
    if args.fam:
        if not Path(args.fam).is_file():
            raise InputDataError(".fam file not found.", path=args.fam,
                                 fix="set data.genotypes to the PLINK prefix of your genotype files.")
        fam = read_fam(args.fam)
    manifest, excluded, notes = build_manifest(
        clinical, fam, bids_dir=Path(args.bids_dir) if args.bids_dir else None,
        freesurfer_dir=Path(args.freesurfer_dir) if args.freesurfer_dir else None,
        freesurfer_mode=args.freesurfer_mode, intensity_image=args.intensity_image,
        wholebrain_image=args.wholebrain_image, subject_id_pattern=args.subject_id_pattern,
        clinical_path=args.clinical, fam_path=args.fam or ".fam")
    # Counts only: no subject ID beyond the manifest goes to the log (the IDs are in --excluded).
    for note in notes:
        log.warning("%s", note)
    summary = manifest_summary(manifest)
    outputs = [args.output, *([args.summary] if args.summary else []), *([args.excluded] if args.excluded else [])]
    # All outputs or none: a refused write of the last must not leave the first behind.
    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(atomic_output(path)) for path in outputs]
        write_tsv(manifest, tmps[0])
        if args.summary:
            write_tsv(summary, tmps[1])
        if args.excluded:
            write_tsv(excluded, tmps[-1])
    log.info("manifest: %d subjects, %d excluded%s -> %s\n%s", len(manifest), len(excluded),
             f" (listed in {args.excluded})" if args.excluded else "", args.output, summary.to_string(index=False))


def register(sub) -> None:
    """Add this stage's subcommands to the ``rgenima`` parser."""
    p = sub.add_parser("synth-cohort", help="write a synthetic ADNI-like cohort with planted truth")
    p.add_argument("--gene-panel", required=True, help="config/gene_panel.tsv")
    p.add_argument("--rois", required=True, help="config/rois.tsv")
    p.add_argument("--out-dir", required=True, help="cohort root (clinical/, bids/, freesurfer/, genotypes/, truth.json)")
    p.add_argument("--settings", required=True, help="the config's 'synthetic' section: inline JSON or a YAML/JSON file")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--jobs", type=int, default=1, help="worker processes for image rendering")
    p.set_defaults(func=cmd_synth_cohort)

    p = sub.add_parser("manifest", help="one row per subject: stage, genotype and image availability")
    p.add_argument("--clinical", required=True, help="ADNIMERGE-style CSV (UTF-8, UTF-8 with BOM, cp1252 or latin-1)")
    p.add_argument("--fam", help="PLINK .fam of the genotypes")
    p.add_argument("--bids-dir", help="BIDS root: sub-<label>[/ses-<s>]/anat/*_T1w.nii[.gz] (docs/inputs.md)")
    p.add_argument("--freesurfer-dir", help="FreeSurfer SUBJECTS_DIR, one folder per PTID")
    p.add_argument("--freesurfer-mode", choices=["precomputed", "recon_all"],
                   help="freesurfer.mode (default: precomputed with --freesurfer-dir, else recon_all)")
    p.add_argument("--intensity-image", default=DEFAULT_INTENSITY_IMAGE,
                   help=f"imaging.intensity_image, under <subject>/mri/ (default {DEFAULT_INTENSITY_IMAGE})")
    p.add_argument("--wholebrain-image", default=DEFAULT_WHOLEBRAIN_IMAGE,
                   help=f"imaging.wholebrain.image, under <subject>/mri/ (default {DEFAULT_WHOLEBRAIN_IMAGE})")
    p.add_argument("--subject-id-pattern", default=DEFAULT_SUBJECT_ID_PATTERN,
                   help="cohort.subject_id_pattern: regular expression every subject ID must match "
                        f"(default {DEFAULT_SUBJECT_ID_PATTERN})")
    p.add_argument("--output", required=True, help="manifest.tsv")
    p.add_argument("--summary", help="counts per stage (TSV)")
    p.add_argument("--excluded", help="subjects not in the manifest and why (TSV: subject, reason, has_genotype)")
    p.set_defaults(func=cmd_manifest)

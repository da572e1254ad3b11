"""``rgenima`` subcommands of the imaging stage.

freesurfer-check, roi-extract, wholebrain, roi-index, wholebrain-index,
imaging-qc, roi-montage. Each reads explicit inputs and writes explicit outputs
atomically; bad input stops with the subject, the file and the fix.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rgenima_lib.errors import InputDataError

log = logging.getLogger("rgenima")


def _rois(path: str, n_rois: int | None):
    """The ROI table, checked against the configured ROI count (imaging.n_rois)."""
    from rgenima_lib.vocabulary import read_rois_table

    # n_rois None: any count (the index and QC follow whatever table the patches were cut with).
    return read_rois_table(path, n_rois=n_rois)


def _manifest_stages(path: str):
    import pandas as pd

    from rgenima_lib.io import read_tsv

    manifest = read_tsv(path, dtype={"subject": str})
    return pd.Series(manifest["stage"].to_numpy(), index=manifest["subject"].to_numpy())


def cmd_freesurfer_check(args: argparse.Namespace) -> None:
    from rgenima_lib.imaging.freesurfer import check_freesurfer
    from rgenima_lib.io import write_json

    found = check_freesurfer()
    write_json(found, args.output)
    log.info("FreeSurfer %s: recon-all %s, license %s", found["version"], found["recon_all"], found["license"])


def cmd_roi_extract(args: argparse.Namespace) -> None:
    import time

    from rgenima_lib.imaging.roi_extract import write_roi_patches
    from rgenima_lib.imaging.volumes import (align_labels, check_intensity, check_labels, check_parcellation,
                                             load_volume)
    from rgenima_lib.vocabulary import read_rois_columns

    start = time.perf_counter()
    # The table as plain columns: this job runs once per subject, and pandas alone would double its start-up.
    rois = read_rois_columns(args.rois, n_rois=args.n_rois)
    intensity_vol = load_volume(args.intensity, args.subject)
    labels_vol = load_volume(args.aparc_aseg, args.subject)
    intensity = check_intensity(intensity_vol, args.subject)
    # Which parcellation it is, before the grids: an aseg on another grid is first of all the wrong file.
    check_parcellation(labels_vol, check_labels(labels_vol, args.subject), rois["label_id"], args.subject)
    labels_vol, resampled = align_labels(labels_vol, intensity_vol, args.subject, args.grid_mismatch)
    labels = check_labels(labels_vol, args.subject)
    if resampled:
        log.warning("%s: labels resampled onto the intensity grid (nearest neighbour)", args.subject)
    result = write_roi_patches(
        args.output, args.info, intensity, labels, rois, args.roi_size, margin=args.margin, clip=tuple(args.clip),
        subject=args.subject,
        info_extra={"intensity": str(args.intensity), "aparc_aseg": str(args.aparc_aseg),
                    "labels_resampled": resampled, "voxel_volume_mm3": intensity_vol.voxel_volume_mm3,
                    "grid_shape": list(intensity.shape)})
    missing = [str(n) for n, p in zip(rois["name"], result.presence) if not p]
    if missing:
        log.warning("%s: %d ROI(s) missing, written as zero patches: %s", args.subject, len(missing),
                    ", ".join(missing))
    log.info("%s: %d/%d ROIs -> %s (%.1f MB) in %.2f s", args.subject, int(result.presence.sum()), len(rois["name"]),
             args.output, Path(args.output).stat().st_size / 1e6, time.perf_counter() - start)


def cmd_wholebrain(args: argparse.Namespace) -> None:
    from rgenima_lib.imaging.volumes import check_intensity, load_volume
    from rgenima_lib.imaging.wholebrain import write_wholebrain

    vol = load_volume(args.brain, args.subject)
    info = write_wholebrain(args.output, check_intensity(vol, args.subject), args.shape, clip=tuple(args.clip),
                            subject=args.subject, source=args.brain)
    log.info("%s: crop %s, window %s -> %s %s", args.subject, info["box"], info["window"], args.output, info["shape"])


def cmd_roi_index(args: argparse.Namespace) -> None:
    import pandas as pd
    from tqdm.auto import tqdm

    from rgenima_lib.imaging.qc import read_roi_info, voxel_count_table
    from rgenima_lib.imaging.roi_extract import check_roi_file
    from rgenima_lib.io import write_tsv

    rois = _rois(args.rois, None)
    stages = _manifest_stages(args.manifest)
    infos, rows = [], []
    for info_path in tqdm(args.infos, desc="roi index", unit="subject", disable=None):
        info = read_roi_info(info_path)
        npy = Path(info_path).with_suffix(".npy")
        # Every patch file is checked against its sidecar here, once, so a truncated file stops the run
        # with the file to delete instead of failing later inside RiT training.
        size = check_roi_file(npy, info, info_path)
        infos.append(info)
        rows.append({"subject": info["subject"], "stage": stages.get(info["subject"], ""), "rois": str(npy),
                     "info": str(info_path), "roi_size": info["roi_size"], "n_present": info["n_present"],
                     "n_missing": len(info["presence"]) - info["n_present"], "bytes": size})
    index = pd.DataFrame(rows, columns=["subject", "stage", "rois", "info", "roi_size", "n_present", "n_missing",
                                        "bytes"]).sort_values("subject", kind="stable")
    write_tsv(index, args.output)
    write_tsv(voxel_count_table(infos, rois), args.voxel_counts)
    log.info("roi index: %d subjects -> %s", len(index), args.output)


def cmd_wholebrain_index(args: argparse.Namespace) -> None:
    import pandas as pd

    from rgenima_lib.imaging.wholebrain import open_wholebrain
    from rgenima_lib.io import write_tsv

    from tqdm.auto import tqdm

    stages = _manifest_stages(args.manifest)
    rows = []
    for path in tqdm(args.volumes, desc="whole-brain index", unit="subject", disable=None):
        subject = Path(path).stem
        shape = open_wholebrain(path, subject=subject).shape
        rows.append({"subject": subject, "stage": stages.get(subject, ""), "wholebrain": str(path),
                     "shape": "x".join(map(str, shape)), "bytes": Path(path).stat().st_size})
    table = pd.DataFrame(rows, columns=["subject", "stage", "wholebrain", "shape", "bytes"])
    write_tsv(table.sort_values("subject", kind="stable"), args.output)
    log.info("whole-brain index: %d subjects -> %s", len(table), args.output)


def cmd_imaging_qc(args: argparse.Namespace) -> None:
    import json

    from rgenima_lib.imaging.qc import planted_atrophy_check, qc_flags, voxels_by_stage
    from rgenima_lib.io import read_tsv, write_tsv

    rois = _rois(args.rois, None)
    counts = read_tsv(args.voxel_counts, dtype={"subject": str})
    stages = _manifest_stages(args.manifest)
    flags = qc_flags(counts, rois, small_fraction=args.small_fraction, max_missing=args.max_missing,
                     max_small=args.max_small)
    flags.insert(1, "stage", flags["subject"].map(stages))
    write_tsv(flags, args.output)
    by_stage = voxels_by_stage(counts, stages, rois)
    write_tsv(by_stage, args.by_stage)
    n_flag = int(flags["flagged"].sum())
    log.info("imaging QC: %d of %d subjects flagged -> %s", n_flag, len(flags), args.output)
    for row in flags[flags["flagged"]].itertuples():
        log.warning("flagged %s: %s", row.subject, row.reason)
    if args.truth:
        if not args.planted_check:
            raise InputDataError("--truth needs --planted-check (where to write the comparison).")
        truth = json.loads(Path(args.truth).read_text())
        check = planted_atrophy_check(by_stage, truth["stage_rois"])
        write_tsv(check, args.planted_check)
        log.info("planted atrophy (mean voxels per stage vs NC):\n%s", check.to_string(index=False))


def cmd_roi_montage(args: argparse.Namespace) -> None:
    import numpy as np

    from rgenima_lib.imaging.qc import read_roi_info, roi_montage
    from rgenima_lib.imaging.roi_extract import open_roi_patches
    from rgenima_lib.io import read_tsv

    index = read_tsv(args.index, dtype={"subject": str, "stage": str})
    # One subject per stage first (the first by ID; NC and AD, the extremes, before MCI and SMC),
    # then more in ID order: a deterministic, varied pick.
    firsts = [index[index["stage"] == s].head(1) for s in ("NC", "AD", "MCI", "SMC")]
    order = [*[f.index[0] for f in firsts if len(f)], *index.index]
    picked = list(dict.fromkeys(order))[:args.n_subjects]
    panels, names = [], None
    for i in picked:
        row = index.loc[i]
        info = read_roi_info(row["info"])
        names = info["names"]
        panels.append((f"{row['subject']} ({row['stage']}), {info['n_present']}/{len(names)} ROIs",
                       open_roi_patches(row["rois"], subject=str(row["subject"])), np.asarray(info["presence"])))
    if not panels:
        raise InputDataError("the ROI index lists no subject.", path=args.index,
                             fix="check that the manifest has subjects with has_image.")
    roi_montage(args.output, panels, names)
    log.info("montage of %d subjects -> %s", len(panels), args.output)


def register(sub) -> None:
    """Add this stage's subcommands to the ``rgenima`` parser."""
    p = sub.add_parser("freesurfer-check", help="check recon-all, FREESURFER_HOME and the license before any job")
    p.add_argument("--output", required=True, help="JSON: where recon-all, the license and the version are")
    p.set_defaults(func=cmd_freesurfer_check)

    def clip(p):
        p.add_argument("--clip", type=float, nargs=2, default=[0.5, 99.5], metavar=("LOW", "HIGH"),
                       help="intensity window: percentiles of the brain voxels (default 0.5 99.5)")

    p = sub.add_parser("roi-extract", help="one subject's ROIs cropped and resampled to S^3 (uint8 .npy + JSON)")
    p.add_argument("--subject", required=True)
    p.add_argument("--aparc-aseg", required=True, help="mri/aparc+aseg.mgz")
    p.add_argument("--intensity", required=True, help="skull-stripped intensity on the same grid (mri/norm.mgz)")
    p.add_argument("--rois", required=True, help="config/rois.tsv (token order)")
    p.add_argument("--roi-size", type=int, required=True, help="S: patch edge in voxels (paper: 96)")
    p.add_argument("--n-rois", type=int, help="expected rows of the ROI table (paper: 109)")
    p.add_argument("--margin", type=int, default=2, help="voxels of context around each ROI box")
    clip(p)
    p.add_argument("--grid-mismatch", choices=["error", "resample_labels"], default="error",
                   help="labels and intensity on different grids: refuse, or resample labels (nearest neighbour)")
    p.add_argument("--output", required=True, help="<subject>.npy, uint8[n_roi, S, S, S]")
    p.add_argument("--info", required=True, help="<subject>.json sidecar: presence, voxel counts, boxes, window")
    p.set_defaults(func=cmd_roi_extract)

    p = sub.add_parser("wholebrain", help="one subject's skull-stripped volume, cropped and resized (Med3D input)")
    p.add_argument("--subject", required=True)
    p.add_argument("--brain", required=True, help="skull-stripped volume (mri/brain.mgz)")
    p.add_argument("--shape", type=int, nargs=3, required=True, metavar=("D0", "D1", "D2"))
    clip(p)
    p.add_argument("--output", required=True, help="<subject>.npy, uint8[D0, D1, D2]")
    p.set_defaults(func=cmd_wholebrain)

    p = sub.add_parser("roi-index", help="index of all subjects' ROI arrays and the voxel-count table")
    p.add_argument("--manifest", required=True)
    p.add_argument("--rois", required=True)
    p.add_argument("--infos", nargs="*", default=[], help="the subjects' ROI sidecars (<subject>.json)")
    p.add_argument("--output", required=True, help="roi_index.tsv")
    p.add_argument("--voxel-counts", required=True, help="roi_voxel_counts.tsv: voxels per ROI per subject")
    p.set_defaults(func=cmd_roi_index)

    p = sub.add_parser("wholebrain-index", help="index of all subjects' whole-brain arrays")
    p.add_argument("--manifest", required=True)
    p.add_argument("--volumes", nargs="*", default=[])
    p.add_argument("--output", required=True)
    p.set_defaults(func=cmd_wholebrain_index)

    p = sub.add_parser("imaging-qc", help="flag subjects with missing / implausibly small ROIs; voxels per stage")
    p.add_argument("--voxel-counts", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--rois", required=True)
    p.add_argument("--small-fraction", type=float, default=0.25)
    p.add_argument("--max-missing", type=int, default=3)
    p.add_argument("--max-small", type=int, default=5)
    p.add_argument("--output", required=True, help="imaging_qc.tsv: one row per subject")
    p.add_argument("--by-stage", required=True, help="roi_voxels_by_stage.tsv")
    p.add_argument("--truth", help="synthetic truth.json: also compare planted atrophied ROIs with NC")
    p.add_argument("--planted-check", help="planted_atrophy.tsv (with --truth)")
    p.set_defaults(func=cmd_imaging_qc)

    p = sub.add_parser("roi-montage", help="PNG montage of every ROI patch for a few subjects")
    p.add_argument("--index", required=True, help="roi_index.tsv")
    p.add_argument("--n-subjects", type=int, default=3)
    p.add_argument("--output", required=True)
    p.set_defaults(func=cmd_roi_montage)

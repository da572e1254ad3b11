"""Imaging QC: voxel counts per ROI per subject, flags for implausible parcellations, a montage of patches.

The voxel-count table is the equivalent of FreeSurfer's aseg/aparc stats
(``NVoxels``) for the 109 ROIs, read from the ROI sidecars, so QC never reloads
a volume. A subject is flagged when more than ``max_missing`` ROIs are absent,
or more than ``max_small`` are implausibly small: fewer voxels than
``small_fraction`` times the cohort's median for that ROI (a relative rule, so
it needs no per-ROI norms and works at any voxel size). Flagged subjects are
reported, not removed: whether to drop them is the user's call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from rgenima_lib.errors import InputDataError
from rgenima_lib.imaging.roi_extract import rebuild_fix
from rgenima_lib.io import save_figure
from rgenima_lib.vocabulary import STAGES


#: Sidecar fields every reader relies on.
ROI_INFO_KEYS = ("subject", "shape", "roi_size", "presence", "n_present", "voxel_counts", "label_ids")


def read_roi_info(path: str | Path) -> dict:
    """A subject's ROI sidecar (JSON written by ``write_roi_patches``).

    Raises
    ------
    InputDataError
        Missing, truncated or damaged file, or one without the fields the readers use
        (fix: delete it and its patches so that rule roi_extract rebuilds them).
    """
    path = Path(path)
    npy = path.with_suffix(".npy")
    if not path.is_file():
        raise InputDataError("ROI sidecar not found.", path=path, subject=path.stem,
                             fix="rerun the workflow: rule roi_extract writes it.")
    try:
        info = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputDataError(f"ROI sidecar is not valid JSON (truncated or damaged: {exc}).", path=path,
                             subject=path.stem, fix=rebuild_fix("roi_extract", path, npy)) from exc
    missing = [k for k in ROI_INFO_KEYS if not isinstance(info, dict) or k not in info]
    if missing:
        raise InputDataError(f"ROI sidecar lacks {', '.join(missing)}.", path=path, subject=path.stem,
                             fix=rebuild_fix("roi_extract", path, npy))
    return info


def voxel_count_table(infos: Sequence[dict], rois: pd.DataFrame) -> pd.DataFrame:
    """Voxels per ROI per subject (like FreeSurfer's aseg stats ``NVoxels``).

    Parameters
    ----------
    infos : list of dict
        ROI sidecars, one per subject.
    rois : DataFrame
        The ROI table (token, label_id, name), token order.

    Returns
    -------
    DataFrame
        One row per subject: ``subject``, ``voxel_volume_mm3``, then one int
        column per ROI name in token order.
    """
    names = [str(n) for n in rois["name"]]
    labels = [int(v) for v in rois["label_id"]]
    rows = []
    for info in infos:
        if info["label_ids"] != labels:
            raise InputDataError("ROI sidecar was written with a different ROI table (label order differs).",
                                 subject=info.get("subject"),
                                 fix="re-run roi_extract after changing config/rois.tsv (delete results/imaging/rois).")
        rows.append([info["subject"], float(info.get("voxel_volume_mm3", float("nan"))), *info["voxel_counts"]])
    table = pd.DataFrame(rows, columns=["subject", "voxel_volume_mm3", *names])
    return table.sort_values("subject", kind="stable").reset_index(drop=True)


def qc_flags(counts: pd.DataFrame, rois: pd.DataFrame, *, small_fraction: float, max_missing: int,
             max_small: int) -> pd.DataFrame:
    """Flag subjects with many missing or implausibly small ROIs.

    Parameters
    ----------
    counts : DataFrame
        From ``voxel_count_table``.
    rois : DataFrame
        The ROI table.
    small_fraction : float
        An ROI is implausibly small below this fraction of the cohort median of
        its voxel count (median over subjects where it is present).
    max_missing, max_small : int
        A subject is flagged above either count.

    Returns
    -------
    DataFrame
        subject, n_present, n_missing, n_small, missing_rois, small_rois, flagged, reason.
    """
    names = [str(n) for n in rois["name"]]
    v = counts[names].to_numpy(np.float64)  # [n_subjects, n_roi]
    present = v > 0
    median = np.nanmedian(np.where(present, v, np.nan), axis=0) if len(v) else np.zeros(len(names))
    median = np.nan_to_num(median, nan=0.0)
    small = present & (v < small_fraction * median[None, :])
    rows = []
    for i, subject in enumerate(counts["subject"]):
        missing = [names[j] for j in np.flatnonzero(~present[i])]
        tiny = [names[j] for j in np.flatnonzero(small[i])]
        reasons = []
        if len(missing) > max_missing:
            reasons.append(f"{len(missing)} ROIs missing (> {max_missing})")
        if len(tiny) > max_small:
            reasons.append(f"{len(tiny)} ROIs below {small_fraction:g} x cohort median (> {max_small})")
        rows.append({"subject": subject, "n_present": int(present[i].sum()), "n_missing": len(missing),
                     "n_small": len(tiny), "missing_rois": ",".join(missing), "small_rois": ",".join(tiny),
                     "flagged": bool(reasons), "reason": "; ".join(reasons)})
    return pd.DataFrame(rows, columns=["subject", "n_present", "n_missing", "n_small", "missing_rois",
                                       "small_rois", "flagged", "reason"])


def voxels_by_stage(counts: pd.DataFrame, stages: pd.Series, rois: pd.DataFrame) -> pd.DataFrame:
    """Mean voxel count of every ROI per stage, and its ratio to the NC mean.

    Parameters
    ----------
    counts : DataFrame
        From ``voxel_count_table``.
    stages : Series
        subject -> stage (NC / SMC / MCI / AD).
    rois : DataFrame

    Returns
    -------
    DataFrame
        token, label_id, name, stage, n_subjects, mean_voxels, sd_voxels,
        mean_mm3, ratio_to_nc; ROIs in token order, stages in paper order.
    """
    stage = counts["subject"].map(stages)
    rows = []
    for roi in rois.itertuples(index=False):
        col = counts[str(roi.name)].to_numpy(np.float64)
        mm3 = col * counts["voxel_volume_mm3"].to_numpy(np.float64)
        nc = col[(stage == "NC").to_numpy()]
        nc_mean = nc.mean() if nc.size else np.nan
        for s in STAGES:
            sel = (stage == s).to_numpy()
            if not sel.any():
                continue
            mean = col[sel].mean()
            rows.append({"token": int(roi.token), "label_id": int(roi.label_id), "name": str(roi.name), "stage": s,
                         "n_subjects": int(sel.sum()), "mean_voxels": round(float(mean), 2),
                         "sd_voxels": round(float(col[sel].std(ddof=1)) if sel.sum() > 1 else 0.0, 2),
                         "mean_mm3": round(float(mm3[sel].mean()), 2),
                         "ratio_to_nc": round(float(mean / nc_mean), 4) if nc_mean and nc_mean > 0 else np.nan})
    return pd.DataFrame(rows)


def planted_atrophy_check(by_stage: pd.DataFrame, stage_rois: dict[str, list[dict]]) -> pd.DataFrame:
    """For each ROI planted as atrophied in a stage (synthetic ``truth.json``), its mean voxels there vs NC.

    Parameters
    ----------
    by_stage : DataFrame
        From ``voxels_by_stage``.
    stage_rois : dict stage -> list of {roi, label_id, atrophy}
        ``truth["stage_rois"]``.

    Returns
    -------
    DataFrame
        stage, roi, planted_atrophy, mean_voxels_nc, mean_voxels_stage, ratio_to_nc, smaller.
    """
    table = by_stage.set_index(["name", "stage"])
    rows = []
    for stage, entries in stage_rois.items():
        for entry in entries:
            key_s, key_nc = (entry["roi"], stage), (entry["roi"], "NC")
            if key_s not in table.index or key_nc not in table.index:
                continue
            m_s, m_nc = float(table.loc[key_s, "mean_voxels"]), float(table.loc[key_nc, "mean_voxels"])
            rows.append({"stage": stage, "roi": entry["roi"], "planted_atrophy": float(entry["atrophy"]),
                         "n_subjects": int(table.loc[key_s, "n_subjects"]), "mean_voxels_nc": m_nc,
                         "mean_voxels_stage": m_s, "ratio_to_nc": round(m_s / m_nc, 4) if m_nc else np.nan,
                         "smaller": m_s < m_nc})
    return pd.DataFrame(rows)


def best_slice(patch: np.ndarray) -> np.ndarray:
    """The axial (last-axis) slice of a patch with the most signal: the crop's most informative view.

    Parameters
    ----------
    patch : uint8[S, S, S]

    Returns
    -------
    uint8[S, S]
    """
    sums = patch.reshape(-1, patch.shape[2]).sum(axis=0, dtype=np.int64)
    return patch[:, :, int(np.argmax(sums))]


def roi_montage(path: str | Path, subjects: Sequence[tuple[str, np.ndarray, np.ndarray]], names: Sequence[str],
                n_cols: int = 10) -> None:
    """Montage PNG of every ROI patch for a few subjects (one block per subject).

    Parameters
    ----------
    path : output PNG
    subjects : list of (title, patches uint8[n_roi, S, S, S], presence uint8[n_roi])
    names : ROI names in token order
    n_cols : tiles per row within a subject's block

    Notes
    -----
    Each tile is the patch's axial slice with the most signal, shown rotated so
    anterior is up (RAS voxel axes); missing ROIs are drawn as a crossed tile.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    n_roi = len(names)
    n_rows = int(np.ceil(n_roi / n_cols))
    n_sub = max(len(subjects), 1)
    stride = n_cols + 1  # one empty column between subjects' blocks
    fig, axes = plt.subplots(n_rows, stride * n_sub - 1, figsize=(1.05 * (stride * n_sub - 1), 1.15 * n_rows),
                             squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for s, (title, patches, presence) in enumerate(subjects):
        for k in range(n_roi):
            ax = axes[k // n_cols, s * stride + k % n_cols]
            if presence[k]:
                ax.imshow(np.rot90(best_slice(np.asarray(patches[k]))), cmap="gray", vmin=0, vmax=255,
                          interpolation="nearest")
            else:
                ax.plot([0, 1], [0, 1], color="red", lw=0.8)
                ax.plot([0, 1], [1, 0], color="red", lw=0.8)
                ax.set_xlim(0, 1)
                ax.set_ylim(0, 1)
            ax.set_title(f"{k} {names[k][:16]}", fontsize=4.5, pad=1.5)
        axes[0, s * stride].annotate(title, xy=(0, 1.45), xycoords="axes fraction", fontsize=9,
                                     fontweight="bold", ha="left", va="bottom")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.96, wspace=0.06, hspace=0.35)
    save_figure(fig, path, dpi=110)
    plt.close(fig)

"""Figure 1: bootstrap-stable ROIs of SMC, MCI and AD on the MNI152 brain (paper 2.3, Fig. 1).

One row per stage: a glass brain (left sagittal, coronal, right sagittal,
axial maximum-intensity projections, nilearn) with the stage's stable ROIs
drawn from a label volume in MNI space, or as markers at the ROI centroids of
``config/rois.tsv`` when no volume is given; beside it the ROI names with
their bootstrap selection frequency. Colour says how a ROI is shared:

- in all three stages (the paper's "core" ROIs),
- in two stages,
- in this stage only (stage-specific).

Where colours overlap in a projection the more shared category is drawn on
top. The label volume of the pipeline is the phantom's aparc+aseg at 2 mm
(:func:`rgenima_lib.synthetic.anatomy.build_phantom`), which is built on
MNI152 and the Desikan–Killiany atlas, so ROIs are drawn where they are in
MNI space (approximately, for the aseg structures DK lacks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from rgenima_lib.attribution.bootstrap import TARGET_STAGES
from rgenima_lib.io import save_figure

CATEGORY_COLORS = {"all stages": "#1f4e9c", "two stages": "#8e44ad", "this stage only": "#d35400"}
"""Sharing category -> colour (colour-blind-distinguishable blue / purple / orange)."""


def sharing_categories(stable: Mapping[str, Sequence[str]], stages=TARGET_STAGES) -> dict[str, dict[str, str]]:
    """For every stage, each stable ROI's sharing category.

    Parameters
    ----------
    stable : dict stage -> ROI names
    stages : sequence of str

    Returns
    -------
    dict stage -> {roi: "all stages" | "two stages" | "this stage only"}
    """
    count: dict[str, int] = {}
    for stage in stages:
        for roi in set(stable.get(stage, ())):
            count[roi] = count.get(roi, 0) + 1
    names = {len(stages): "all stages", 1: "this stage only"}
    return {stage: {roi: names.get(count[roi], "two stages") for roi in stable.get(stage, ())} for stage in stages}


def stable_rois_by_stage(rois_table: pd.DataFrame, stages=TARGET_STAGES) -> dict[str, list[str]]:
    """Stage -> stable ROI names, most frequent first, from a ``bootstrap_rois`` table."""
    out = {}
    for stage in stages:
        t = rois_table[(rois_table["stage"] == stage) & rois_table["stable"]]
        out[stage] = t.sort_values(["frequency", "score"], ascending=False, kind="stable")["roi"].tolist()
    return out


def _category_volume(labels_img, label_of: Mapping[str, int], categories: Mapping[str, str]):
    """A float image: 0 outside, 1 / 2 / 3 = this stage only / two stages / all stages."""
    import nibabel as nib

    data = np.asarray(labels_img.dataobj)
    code = {"this stage only": 1.0, "two stages": 2.0, "all stages": 3.0}
    out = np.zeros(data.shape, np.float32)
    for roi, cat in categories.items():
        out[data == label_of[roi]] = code[cat]
    return nib.Nifti1Image(out, labels_img.affine)


def plot_figure1(rois_table: pd.DataFrame, roi_info: pd.DataFrame, out_png: str | Path, out_pdf: str | Path | None = None,
                 *, labels_img=None, note: str = "", title: str | None = None, stages=TARGET_STAGES) -> dict:
    """Draw Figure 1 and save it as PNG (and PDF).

    Parameters
    ----------
    rois_table : DataFrame
        :func:`~rgenima_lib.attribution.bootstrap.bootstrap_rois` output (stage, roi, frequency,
        score, stable), optionally with the permutation columns (``q_bh``).
    roi_info : DataFrame
        ``config/rois.tsv`` (name, label_id, mni_x, mni_y, mni_z).
    out_png, out_pdf : path
    labels_img : nibabel image, optional
        Integer label volume in MNI space (FreeSurfer label numbers); None = centroid markers.
    note : str
        Printed under the title (e.g. "demo model, random init").
    title : str, optional
    stages : sequence of str

    Returns
    -------
    dict
        stage -> {roi: category}; what was drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from nilearn import plotting

    stable = stable_rois_by_stage(rois_table, stages)
    categories = sharing_categories(stable, stages)
    info = roi_info.set_index("name")
    freq = {(s, r): f for s, r, f in zip(rois_table["stage"], rois_table["roi"], rois_table["frequency"])}
    qval = ({(s, r): q for s, r, q in zip(rois_table["stage"], rois_table["roi"], rois_table["q_bh"])}
            if "q_bh" in rois_table else {})
    cmap = ListedColormap([CATEGORY_COLORS["this stage only"], CATEGORY_COLORS["two stages"],
                           CATEGORY_COLORS["all stages"]])

    n = len(stages)
    fig = plt.figure(figsize=(13.0, 2.9 * n + 1.1))
    top = 1 - 0.95 / fig.get_figheight()
    row_h = (top - 0.02) / n
    for i, stage in enumerate(stages):
        y0 = top - (i + 1) * row_h
        ax_brain = fig.add_axes([0.09, y0 + 0.01, 0.60, row_h - 0.02])
        ax_brain.set_axis_off()
        fig.text(0.015, y0 + row_h / 2, stage, fontsize=15, fontweight="bold", va="center")
        cats = categories[stage]
        display = plotting.plot_glass_brain(None, display_mode="lyrz", axes=ax_brain, annotate=False,
                                            black_bg=False, alpha=0.35)
        if cats and labels_img is not None:
            label_of = dict(zip(roi_info["name"], roi_info["label_id"].astype(int)))
            display.add_overlay(_category_volume(labels_img, label_of, cats), cmap=cmap, vmin=0.5, vmax=3.5,
                                transparency=0.9)
        elif cats:
            for cat, color in CATEGORY_COLORS.items():
                names = [r for r, c in cats.items() if c == cat]
                if names:
                    coords = info.loc[names, ["mni_x", "mni_y", "mni_z"]].to_numpy(float)
                    display.add_markers(coords, marker_color=color, marker_size=60)
        ax_list = fig.add_axes([0.71, y0 + 0.01, 0.28, row_h - 0.02])
        ax_list.set_axis_off()
        if not cats:
            ax_list.text(0.0, 0.5, "no stable ROI at this threshold", fontsize=10, style="italic", va="center")
            continue
        ax_list.text(0.0, 1.0, "stable ROI (selection frequency" + (", BH q)" if qval else ")"), fontsize=9,
                     color="0.35", va="top")
        step = min(0.9 / max(len(cats), 1), 0.11)
        rank = {cat: i for i, cat in enumerate(CATEGORY_COLORS)}
        listed = sorted(stable[stage], key=lambda roi: rank[cats[roi]])  # stable sort keeps frequency order
        for j, roi in enumerate(listed):
            y = 0.86 - j * step
            ax_list.add_patch(plt.Rectangle((0.0, y - step * 0.3), 0.03, step * 0.6, color=CATEGORY_COLORS[cats[roi]],
                                            transform=ax_list.transAxes, clip_on=False))
            extra = f"{freq[(stage, roi)]:.0%}" + (f", q={qval[(stage, roi)]:.2g}" if qval else "")
            ax_list.text(0.05, y, f"{roi}  ({extra})", fontsize=min(10.0, 95 * step), va="center")
    handles = [Line2D([], [], marker="s", ls="", color=c, markersize=10, label=k) for k, c in CATEGORY_COLORS.items()]
    fig.legend(handles=handles, loc="upper right", ncol=3, frameon=False, fontsize=10,
               bbox_to_anchor=(0.99, 1 - 0.2 / fig.get_figheight()))
    fig.text(0.015, 1 - 0.3 / fig.get_figheight(), title or "Stage-specific brain ROIs (bootstrap-stable)",
             fontsize=13, fontweight="bold", va="center")
    if note:
        fig.text(0.015, 1 - 0.62 / fig.get_figheight(), note, fontsize=10, color="#b03a2e", va="center",
                 style="italic")
    save_figure(fig, out_png, out_pdf)
    plt.close(fig)
    return categories

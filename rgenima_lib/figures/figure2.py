"""Figure 2: Manhattan-style ROI–gene stability landscapes of SMC, MCI and AD (paper 2.4, Fig. 2).

One panel per stage, restricted to that stage's bootstrap-stable ROIs
(paper 2.3): the ROIs are contiguous blocks along x (in token order, shaded
alternately), each holding one point per gene (panel order) at the pair's
stability score (paper eq. 17) on y, coloured by ROI; the two most stable
genes of each ROI are annotated. Pairs with an undefined stability (zero-width
interval) are not drawn.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rgenima_lib.attribution.bootstrap import TARGET_STAGES
from rgenima_lib.io import save_figure


def manhattan_layout(pairs: pd.DataFrame, rois: list[str], genes: list[str]) -> pd.DataFrame:
    """Pairs of ``rois`` with their x position: block of ROI i spans [i·(G+gap), i·(G+gap)+G).

    Parameters
    ----------
    pairs : DataFrame
        One stage's rows of :func:`~rgenima_lib.attribution.bootstrap.bootstrap_pairs`.
    rois : list of str
        Blocks, in this order.
    genes : list of str
        Order within a block.

    Returns
    -------
    DataFrame
        The selected pairs with ``block`` (ROI index) and ``x``.
    """
    gap = max(2, len(genes) // 10)
    block = {r: i for i, r in enumerate(rois)}
    pos = {g: i for i, g in enumerate(genes)}
    t = pairs[pairs["roi"].isin(block)].copy()
    t["block"] = t["roi"].map(block)
    t["x"] = t["block"] * (len(genes) + gap) + t["gene"].map(pos)
    return t.sort_values(["block", "x"])


def plot_figure2(pairs: pd.DataFrame, rois_table: pd.DataFrame, out_png: str | Path,
                 out_pdf: str | Path | None = None, *, roi_order: list[str] | None = None, n_annotate: int = 2,
                 note: str = "", title: str | None = None, stages=TARGET_STAGES) -> dict:
    """Draw Figure 2 and save it as PNG (and PDF).

    Parameters
    ----------
    pairs : DataFrame
        :func:`~rgenima_lib.attribution.bootstrap.bootstrap_pairs` (stage, roi, gene, stability).
    rois_table : DataFrame
        :func:`~rgenima_lib.attribution.bootstrap.bootstrap_rois` (stage, roi, stable).
    out_png, out_pdf : path
    roi_order : list of str, optional
        Block order (default: token order as in ``pairs``).
    n_annotate : int
        Genes annotated per ROI (paper 2).
    note, title : str
    stages : sequence of str

    Returns
    -------
    dict
        stage -> list of (roi, gene, stability) annotated.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    genes = list(dict.fromkeys(pairs["gene"]))
    order = roi_order or list(dict.fromkeys(pairs["roi"]))
    palette = plt.get_cmap("tab10").colors
    n = len(stages)
    fig, axes = plt.subplots(n, 1, figsize=(12.5, 3.4 * n + 0.9), squeeze=False)
    annotated = {}
    for ax, stage in zip(axes[:, 0], stages):
        stable = set(rois_table.loc[(rois_table["stage"] == stage) & rois_table["stable"], "roi"])
        rois = [r for r in order if r in stable]
        t = manhattan_layout(pairs[pairs["stage"] == stage], rois, genes).dropna(subset=["stability"])
        ax.set_title(stage, loc="left", fontsize=13, fontweight="bold")
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_ylabel("stability  (mean / 95% CI width)")
        annotated[stage] = []
        if t.empty:
            ax.text(0.5, 0.5, "no stable ROI at this threshold", transform=ax.transAxes, ha="center",
                    style="italic", fontsize=11)
            ax.set_xticks([])
            continue
        width = len(genes) + max(2, len(genes) // 10)
        ymax = float(t["stability"].max())
        ymin = min(0.0, float(t["stability"].min()))
        centres = []
        label_y = ymax * 1.12 if ymax > 0 else 0.9
        for i, roi in enumerate(rois):
            color = palette[i % len(palette)]
            block = t[t["roi"] == roi]
            x0 = i * width
            if i % 2 == 0:
                ax.axvspan(x0 - 0.5, x0 + len(genes) - 0.5, color="0.94", zorder=0, lw=0)
            ax.scatter(block["x"], block["stability"], s=11, color=color, zorder=2, lw=0)
            centres.append(x0 + (len(genes) - 1) / 2)
            best = block.sort_values(["stability", "gene"], ascending=[False, True]).head(n_annotate)
            # Labels sit in a row above the points, the left-most pair's on the left quarter of the block and
            # the other's on the right quarter, joined to their points: two labels of a block never collide.
            for k, row in enumerate(best.sort_values("x").itertuples()):
                annotated[stage].append((roi, row.gene, float(row.stability)))
                ax.scatter([row.x], [row.stability], s=34, facecolor="none", edgecolor="black", lw=0.8, zorder=3)
                slot = x0 + len(genes) * ((k + 0.5) / max(len(best), 1))
                ax.annotate(row.gene, (row.x, row.stability), xytext=(slot, label_y), textcoords="data",
                            ha="center", va="bottom", fontsize=8.5, fontstyle="italic", zorder=4,
                            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.35", "shrinkA": 1, "shrinkB": 3})
        ax.set_xticks(centres)
        tilt = len(rois) > 5  # six ROI names fit side by side at this width
        ax.set_xticklabels(rois, rotation=20 if tilt else 0, ha="right" if tilt else "center",
                           rotation_mode="anchor", fontsize=9)
        ax.set_xlim(-width * 0.15, (len(rois) - 1) * width + len(genes) + width * 0.15)
        ax.set_ylim(ymin, ymax * 1.3 if ymax > 0 else 1.0)
        ax.tick_params(axis="x", length=0)
    fig.suptitle(title or "ROI–gene association stability per stage (stable ROIs only; top 2 genes per ROI)",
                 x=0.01, ha="left", fontsize=13, fontweight="bold")
    if note:
        fig.text(0.01, 1 - 0.62 / fig.get_figheight(), note, fontsize=10, color="#b03a2e", style="italic")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.75 / fig.get_figheight()))
    save_figure(fig, out_png, out_pdf)
    plt.close(fig)
    return annotated

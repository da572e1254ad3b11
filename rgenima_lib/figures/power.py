"""The power figure: recovery of the planted genes and stage ROIs against cohort size (docs/interpretability.md).

Four panels (genes, stage ROIs × precision, recall), x = subjects (log scale), one colour per
selection (the paper's top-k, significance, stability) and one line style per effect level;
each point is the mean over replicates. Reads the table of
:func:`~rgenima_lib.attribution.power.power_simulation` only.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rgenima_lib.attribution.power import power_summary
from rgenima_lib.attribution.selection import SELECTIONS
from rgenima_lib.io import save_figure

_STYLES = ("-", "--", ":", "-.")


def plot_power(table: pd.DataFrame, png: str | Path, pdf: str | Path | None = None, *, note: str = "") -> None:
    """Draw precision and recall against N for genes and stage ROIs.

    Parameters
    ----------
    table : DataFrame
        :func:`~rgenima_lib.attribution.power.power_simulation` rows.
    png, pdf : path
    note : str
        A line under the title (model, settings).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = power_summary(table)
    effects = list(dict.fromkeys(summary["effect"]))
    colours = dict(zip(SELECTIONS, ("tab:grey", "tab:blue", "tab:orange")))
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), sharex=True, sharey=True)
    for row, what in enumerate(("genes", "stage ROIs")):
        for col, metric in enumerate(("recall", "precision")):
            ax = axes[row, col]
            for e_index, effect in enumerate(effects):
                for selection in SELECTIONS:
                    t = summary[(summary["what"] == what) & (summary["selection"] == selection)
                                & (summary["effect"] == effect)].sort_values("n_subjects")
                    if t.empty:
                        continue
                    ax.plot(t["n_subjects"], t[metric], _STYLES[e_index % len(_STYLES)], marker="o",
                            color=colours[selection], label=f"{selection}, {effect}")
            ax.set_xscale("log")
            ax.set_ylim(-0.03, 1.03)
            ax.set_title(f"{what}: {metric}")
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("subjects (N)")
    sizes = sorted(summary["n_subjects"].unique())
    for ax in axes[1]:
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.suptitle("Recovery of the planted genes and stage ROIs against cohort size" + (f"\n{note}" if note else ""),
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, png, pdf)
    plt.close(fig)

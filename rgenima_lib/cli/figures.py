"""``rgenima`` subcommands for the paper's figures: figure-1 and figure-2 (PNG + PDF).

Both read only the bootstrap tables derived from the attention dumps (never a
model), so they can be redrawn anywhere the dumps' tables are.
"""

from __future__ import annotations

# The ROI-table reader imports scipy and the phantom label image nibabel (about 1 s each): they are imported
# inside the command functions, so that every other subcommand, and the parser itself, starts without them.

import argparse
import logging

from rgenima_lib.cli.common import require_inputs
from rgenima_lib.io import read_note, read_tsv

log = logging.getLogger("rgenima")


def _read(path):
    require_inputs(path)
    table = read_tsv(path)
    if "stable" in table:
        table["stable"] = table["stable"].astype(bool)
    return table, read_note(path)


def _label_volume(kind: str):
    """The MNI label image Figure 1 draws ROIs from (None: centroid markers)."""
    if kind == "centroids":
        return None
    import nibabel as nib
    import numpy as np

    from rgenima_lib.synthetic.anatomy import build_phantom

    voxel = float(kind.removeprefix("phantom")) if kind != "phantom" else 2.0
    phantom = build_phantom(voxel)
    return nib.Nifti1Image(np.asarray(phantom.labels, dtype=np.int32), phantom.affine)


def _subtitle(model: str | None, caption: str | None) -> str:
    return " · ".join(x for x in (model, caption) if x)


def cmd_figure1(args: argparse.Namespace) -> None:
    from rgenima_lib.figures.figure1 import plot_figure1
    from rgenima_lib.vocabulary import read_rois_table

    rois, note = _read(args.rois)
    info = read_rois_table(args.roi_table, n_rois=None)
    drawn = plot_figure1(rois, info, args.png, args.pdf, labels_img=_label_volume(args.volume),
                         note=" · ".join(x for x in (note, _subtitle(args.model, args.caption)) if x),
                         title="Figure 1. Stage-specific brain ROIs (bootstrap-stable)")
    for stage, cats in drawn.items():
        log.info("figure-1 %s: %s", stage, ", ".join(f"{r} ({c})" for r, c in cats.items()) or "no stable ROI")


def cmd_figure2(args: argparse.Namespace) -> None:
    from rgenima_lib.figures.figure2 import plot_figure2
    from rgenima_lib.vocabulary import read_rois_table

    pairs, note = _read(args.pairs)
    rois, _ = _read(args.rois)
    order = read_rois_table(args.roi_table, n_rois=None)["name"].tolist() if args.roi_table else None
    drawn = plot_figure2(pairs, rois, args.png, args.pdf, roi_order=order, n_annotate=args.n_annotate,
                         note=" · ".join(x for x in (note, _subtitle(args.model, args.caption)) if x),
                         title=f"Figure 2. ROI–gene association stability (stable ROIs; top {args.n_annotate} "
                               "genes per ROI annotated)")
    for stage, items in drawn.items():
        log.info("figure-2 %s: %s", stage, ", ".join(f"{r}~{g} ({s:.3g})" for r, g, s in items) or "no stable ROI")


def register(sub) -> None:
    """Add this stage's subcommands to the ``rgenima`` parser."""
    p = sub.add_parser("figure-1", help="stage-specific ROIs on the MNI brain (paper Fig. 1)")
    p.add_argument("--rois", required=True, help="bootstrap-rois output")
    p.add_argument("--roi-table", required=True, help="config/rois.tsv (label ids, MNI centroids)")
    p.add_argument("--volume", default="phantom",
                   help="ROI shapes: 'phantom' (the MNI phantom's aparc+aseg, 2 mm; 'phantom1' for 1 mm) or "
                        "'centroids' (markers at rois.tsv centroids)")
    p.add_argument("--model", help="model id printed under the title")
    p.add_argument("--caption", help="one line printed under the title (settings)")
    p.add_argument("--png", required=True)
    p.add_argument("--pdf")
    p.set_defaults(func=cmd_figure1)

    p = sub.add_parser("figure-2", help="Manhattan-style ROI-gene stability per stage (paper Fig. 2)")
    p.add_argument("--pairs", required=True, help="bootstrap-roi-gene output")
    p.add_argument("--rois", required=True, help="bootstrap-rois output (which ROIs are stable)")
    p.add_argument("--roi-table", help="config/rois.tsv: block order (default: token order of --pairs)")
    p.add_argument("--n-annotate", type=int, default=2)
    p.add_argument("--model")
    p.add_argument("--caption")
    p.add_argument("--png", required=True)
    p.add_argument("--pdf")
    p.set_defaults(func=cmd_figure2)

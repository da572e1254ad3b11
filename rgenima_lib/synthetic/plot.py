"""Axial, coronal and sagittal cuts of a synthetic subject with its aparc+aseg overlaid.

The figure in the README is regenerated with::

    .venv/bin/python -m rgenima_lib.synthetic.plot docs/phantom_slices.png

which renders one subject with an AD-like atrophy pattern from the 1 mm
phantom and colours the labels from ``config/FreeSurferColorLUT.txt`` when it
is there.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from rgenima_lib.imaging.freesurfer_lut import read_freesurfer_lut
from rgenima_lib.io import save_figure
from rgenima_lib.synthetic.anatomy import build_phantom
from rgenima_lib.synthetic.render import render_subject
from rgenima_lib.synthetic.write import write_subject_images


def _label_colormap(label_ids: np.ndarray, lut_path: str | Path | None):
    """ListedColormap whose entry i is the colour of ``label_ids[i - 1]``.

    Colours come from a FreeSurferColorLUT when given, else from a fixed
    pseudo-random palette.
    """
    from matplotlib.colors import ListedColormap

    colours = np.random.default_rng(0).uniform(0.15, 1.0, (len(label_ids) + 1, 3))
    if lut_path is not None:
        lut = read_freesurfer_lut(lut_path).set_index("label_id")
        for i, label in enumerate(label_ids, start=1):
            if label in lut.index:
                colours[i] = lut.loc[label, ["r", "g", "b"]].to_numpy(float) / 255.0
    colours[0] = 0.0
    return ListedColormap(colours)


def plot_phantom_slices(t1_path: str | Path, aparc_aseg_path: str | Path,
                        out_png: str | Path, *, lut_path: str | Path | None = None,
                        title: str | None = None) -> None:
    """Save axial, coronal and sagittal cuts of a T1 with its aparc+aseg overlaid.

    Parameters
    ----------
    t1_path : str or Path
        Any image nibabel reads (``T1w.nii.gz``, ``orig.mgz``, ``norm.mgz``).
    aparc_aseg_path : str or Path
        ``aparc+aseg.mgz`` on the same grid.
    out_png : str or Path
        Written atomically.
    lut_path : str or Path, optional
        FreeSurferColorLUT.txt for FreeSurfer's own colours.
    title : str, optional
    """
    import matplotlib.pyplot as plt
    from nilearn import plotting

    t1 = nib.load(str(t1_path))
    t1 = nib.Nifti1Image(np.asarray(t1.dataobj, dtype=np.float32), t1.affine)
    seg = nib.load(str(aparc_aseg_path))
    labels = np.asarray(seg.dataobj).astype(np.int64)
    # plot_roi maps values through a continuous colormap: give each present
    # label a consecutive index so that index i takes colour i exactly.
    ids, index = np.unique(labels, return_inverse=True)
    ids, index = ids[ids > 0], index.reshape(labels.shape) - int((ids == 0).any())
    roi = nib.Nifti1Image((index + 1).astype(np.int32) * (labels > 0), seg.affine)
    cmap = _label_colormap(ids, lut_path)

    # Row heights follow each view's aspect ratio (3 cuts side by side).
    extent = nib.affines.voxel_sizes(seg.affine) * np.asarray(labels.shape)
    views = (("z", (-18, 2, 22), extent[1] / (3 * extent[0])),
             ("y", (-40, -20, 10), extent[2] / (3 * extent[0])),
             ("x", (-26, -4, 28), extent[2] / (3 * extent[1])))
    width, header = 13.0, 0.5
    heights = [width / 2 * ratio for _, _, ratio in views]
    fig = plt.figure(figsize=(width, sum(heights) + header), facecolor="black")
    total = sum(heights) + header
    vmax = float(np.percentile(t1.get_fdata(), 99.5))
    top = 1 - header / total
    for (mode, cuts, _), height in zip(views, heights):
        bottom = top - height / total
        for col, with_labels in enumerate((False, True)):
            axes = fig.add_axes([col * 0.5, bottom, 0.5, height / total])
            kwargs = dict(display_mode=mode, cut_coords=cuts, figure=fig, axes=axes,
                          annotate=True, draw_cross=False, black_bg=True, dim=0)
            if with_labels:
                plotting.plot_roi(roi, bg_img=t1, cmap=cmap, vmin=-0.5,
                                  vmax=len(ids) + 0.5, alpha=0.55, colorbar=False, **kwargs)
            else:
                plotting.plot_anat(t1, colorbar=False, vmin=0, vmax=vmax, **kwargs)
        top = bottom
    for col, text in enumerate((Path(t1_path).name, "aparc+aseg overlay")):
        fig.text(0.25 + 0.5 * col, 1 - 0.3 * header / total, text, color="white",
                 ha="center", va="center", fontsize=11)
    if title:
        fig.text(0.5, 1 - 0.75 * header / total, title, color="0.8", ha="center",
                 va="center", fontsize=9)
    save_figure(fig, Path(out_png), dpi=90, facecolor="black")
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Render one atrophied subject and save the slice figure (docs/phantom_slices.png)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("output", type=Path, help="PNG to write")
    parser.add_argument("--voxel-size", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--lut", type=Path, default=Path("config/FreeSurferColorLUT.txt"))
    args = parser.parse_args(argv)
    # An AD-like pattern: medial temporal lobe and temporo-parietal cortex.
    atrophy = {17: 0.35, 53: 0.3, 18: 0.3, 54: 0.25, 1006: 0.4, 2006: 0.35,
               1016: 0.3, 2016: 0.3, 1009: 0.2, 2009: 0.2, 1025: 0.2, 2025: 0.2}
    phantom = build_phantom(args.voxel_size)
    images = render_subject(phantom, atrophy, np.random.default_rng(args.seed))
    with tempfile.TemporaryDirectory() as tmp:
        t1w = Path(tmp) / "sub-demo_T1w.nii.gz"
        write_subject_images(images, t1w, Path(tmp) / "sub-demo")
        plot_phantom_slices(t1w, Path(tmp) / "sub-demo" / "mri" / "aparc+aseg.mgz",
                            args.output, lut_path=args.lut if args.lut.is_file() else None,
                            title=f"Synthetic subject ({args.voxel_size:g} mm phantom; "
                                  "hippocampus, amygdala, entorhinal, parahippocampal atrophy)")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

"""The words every stage shares: the four stages and the ROI table.

This module sits on the ground floor of the package (it imports only
:mod:`rgenima_lib.errors` and :mod:`rgenima_lib.io`), so that imaging, genetics,
the cohort, the models and the figures can all agree on these names without
importing each other.

Paper section 4.1 stages subjects as NC / SMC / MCI / AD and parcellates each
T1 into "109 ROIs (the maximal count in the dataset)"; each ROI becomes one
visual token. ``config/rois.tsv`` fixes the list and the token order (a
missing ROI is a zero patch plus a presence flag, never a shifted position);
:mod:`rgenima_lib.synthetic.rois_table` regenerates it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rgenima_lib.errors import InputDataError
from rgenima_lib.io import read_tsv

STAGES: tuple[str, ...] = ("NC", "SMC", "MCI", "AD")
"""The four classes, in the paper's order (also the order of every table)."""

N_ROIS = 109
"""ROIs per subject, hence visual tokens per RiT subject (paper 4.1, 4.2.1)."""

ROI_COLUMNS: list[str] = ["token", "label_id", "name", "hemisphere", "kind", "mni_x", "mni_y", "mni_z"]
"""Columns of ``config/rois.tsv``, in file order."""

ROI_HEMISPHERES = {"left", "right", "midline"}
"""Values of the ROI table's ``hemisphere`` column."""

ROI_KINDS = {"cortical", "subcortical", "other"}
"""Values of the ROI table's ``kind`` column: DK parcel, deep grey nucleus, anything else."""


def read_rois_table(path: str | Path, *, n_rois: int | None = N_ROIS) -> pd.DataFrame:
    """Read and validate config/rois.tsv.

    Parameters
    ----------
    path : str or Path
    n_rois : int or None
        Required number of rows (109); None accepts any count.

    Returns
    -------
    DataFrame
        Columns :data:`ROI_COLUMNS`; ``token`` = 0..n-1 in row order,
        ``label_id`` unique ints.

    Raises
    ------
    InputDataError
        Naming the file: missing file or columns, wrong count, duplicate
        labels or names, tokens out of order, unknown hemisphere or kind.
    """
    path = Path(path)
    fix = "regenerate it: python -m rgenima_lib.synthetic.rois_table config/rois.tsv"
    if not path.is_file():
        raise InputDataError("ROI table not found.", path=path, fix=fix)
    table = read_tsv(path)
    absent = [c for c in ROI_COLUMNS if c not in table.columns]
    if absent:
        raise InputDataError(f"missing columns {absent}.", path=path, fix=fix)
    problems = []
    if n_rois is not None and len(table) != n_rois:
        problems.append(f"has {len(table)} ROIs, expected {n_rois}")
    duplicated = sorted(set(table.loc[table["label_id"].duplicated(), "label_id"]))
    if duplicated:
        problems.append(f"duplicate label_id {duplicated}")
    if table["name"].duplicated().any():
        problems.append(f"duplicate names {sorted(set(table.loc[table['name'].duplicated(), 'name']))}")
    if not np.array_equal(table["token"].to_numpy(), np.arange(len(table))):
        problems.append("tokens are not 0..n-1 in row order")
    bad_hemi = sorted(set(table["hemisphere"]) - ROI_HEMISPHERES)
    bad_kind = sorted(set(table["kind"]) - ROI_KINDS)
    if bad_hemi or bad_kind:
        problems.append(f"unknown hemisphere {bad_hemi} or kind {bad_kind}")
    if problems:
        raise InputDataError("; ".join(problems) + ".", path=path, fix=fix)
    table["label_id"] = table["label_id"].astype(np.int64)
    return table[ROI_COLUMNS]

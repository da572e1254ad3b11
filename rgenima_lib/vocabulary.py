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

from typing import TYPE_CHECKING

import numpy as np

from rgenima_lib.errors import InputDataError

if TYPE_CHECKING:
    import pandas as pd

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


def read_rois_columns(path: str | Path, *, n_rois: int | None = N_ROIS) -> dict[str, list]:
    """Read and validate config/rois.tsv without pandas: one list per column.

    The per-subject ROI extraction job reads the table this way, so that it starts without importing
    pandas (docs/design.md, "Rule jobs start fast"); :func:`read_rois_table` frames the same columns.

    Parameters
    ----------
    path : str or Path
    n_rois : int or None
        Required number of rows (109); None accepts any count.

    Returns
    -------
    dict
        :data:`ROI_COLUMNS` -> list, in row order: ``token`` and ``label_id`` ints, ``mni_*`` floats,
        the rest str; ``token`` = 0..n-1, ``label_id`` unique.

    Raises
    ------
    InputDataError
        Naming the file: missing file or columns, a non-numeric entry, wrong count, duplicate
        labels or names, tokens out of order, unknown hemisphere or kind.
    """
    import csv

    path = Path(path)
    fix = "regenerate it: python -m rgenima_lib.synthetic.rois_table config/rois.tsv"
    if not path.is_file():
        raise InputDataError("ROI table not found.", path=path, fix=fix)
    with open(path, newline="") as handle:
        # Comment lines start with '#', as read_tsv skips them.
        rows = list(csv.reader((line for line in handle if not line.startswith("#") and line.strip()),
                               delimiter="\t"))
    header, body = (rows[0], rows[1:]) if rows else ([], [])
    absent = [c for c in ROI_COLUMNS if c not in header]
    if absent:
        raise InputDataError(f"missing columns {absent}.", path=path, fix=fix)
    kinds = {"token": int, "label_id": int, "mni_x": float, "mni_y": float, "mni_z": float}
    table: dict[str, list] = {}
    for column in ROI_COLUMNS:
        j = header.index(column)
        cast = kinds.get(column, str)
        try:
            table[column] = [cast(row[j]) for row in body]
        except (ValueError, IndexError) as exc:
            what = {int: "an integer", float: "a number"}.get(cast, "text")
            raise InputDataError(f"column {column!r} has an entry that is not {what} ({exc}).",
                                 path=path, fix=fix) from exc
    problems = []
    if n_rois is not None and len(body) != n_rois:
        problems.append(f"has {len(body)} ROIs, expected {n_rois}")
    for column, what in (("label_id", "label_id"), ("name", "names")):
        seen, repeated = set(), set()
        for value in table[column]:
            (repeated if value in seen else seen).add(value)
        if repeated:
            problems.append(f"duplicate {what} {sorted(repeated)}")
    if table["token"] != list(range(len(body))):
        problems.append("tokens are not 0..n-1 in row order")
    bad_hemi = sorted(set(table["hemisphere"]) - ROI_HEMISPHERES)
    bad_kind = sorted(set(table["kind"]) - ROI_KINDS)
    if bad_hemi or bad_kind:
        problems.append(f"unknown hemisphere {bad_hemi} or kind {bad_kind}")
    if problems:
        raise InputDataError("; ".join(problems) + ".", path=path, fix=fix)
    return table


def read_rois_table(path: str | Path, *, n_rois: int | None = N_ROIS) -> pd.DataFrame:
    """Read and validate config/rois.tsv (:func:`read_rois_columns`), as a DataFrame.

    Returns
    -------
    DataFrame
        Columns :data:`ROI_COLUMNS`; ``token`` = 0..n-1 in row order, ``label_id`` unique int64.
    """
    import pandas as pd

    table = pd.DataFrame(read_rois_columns(path, n_rois=n_rois), columns=ROI_COLUMNS)
    return table.astype({"token": np.int64, "label_id": np.int64})

"""FreeSurfer's colour table (``FreeSurferColorLUT.txt``): label number, name and colour.

The ROI table's names (``config/rois.tsv``) and the label colours of the phantom
figure come from it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rgenima_lib.errors import InputDataError


def read_freesurfer_lut(path: str | Path) -> pd.DataFrame:
    """Parse a FreeSurferColorLUT.txt.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    DataFrame
        Columns ``label_id`` (int), ``name`` (str), ``r``, ``g``, ``b``,
        ``a`` (int 0..255), one row per label, in file order.

    Raises
    ------
    InputDataError
        Missing file, or a line that is not ``id name r g b a``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError("FreeSurfer colour table not found.", path=path,
                             fix="copy FreeSurfer's FreeSurferColorLUT.txt there.")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 6:
            raise InputDataError(f"line {number} is not 'id name r g b a': {line!r}.",
                                 path=path)
        rows.append((int(fields[0]), fields[1], *map(int, fields[2:])))
    return pd.DataFrame(rows, columns=["label_id", "name", "r", "g", "b", "a"])

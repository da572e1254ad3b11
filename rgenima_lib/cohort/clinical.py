"""Clinical tables as users have them: reading, diagnosis codes, subject-ID checks, baseline stages.

ADNIMERGE (the ADNI merged clinical table) carries one row per subject and visit;
the baseline diagnosis ``DX_bl`` uses CN / SMC / EMCI / LMCI / AD. The paper
(section 4.1) stages subjects as NC / SMC / MCI / AD, with EMCI and LMCI pooled
into MCI (:data:`rgenima_lib.vocabulary.STAGES`). The synthetic cohort's
tables are made by :mod:`rgenima_lib.synthetic.clinical`.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima_lib.cohort.layout import DEFAULT_SUBJECT_ID_PATTERN
from rgenima_lib.errors import InputDataError

log = logging.getLogger("rgenima")

DX_TO_STAGE: dict[str, str] = {
    "CN": "NC", "NC": "NC", "SMC": "SMC",
    "EMCI": "MCI", "LMCI": "MCI", "MCI": "MCI",
    "AD": "AD", "DEMENTIA": "AD",
}
"""ADNIMERGE ``DX_bl`` codes (and the DX spellings of later ADNI phases) to stages."""

REQUIRED_CLINICAL_COLUMNS = ("PTID", "DX_bl")

BASELINE_VISCODES = frozenset({"bl", "m00", "m0"})
"""VISCODE values read as the baseline visit, compared case-insensitively after stripping.

ADNIMERGE marks baseline ``bl``; some ADNI tables and re-exports write month 0 as ``m00``
(``m0``), which is the same visit. Screening (``sc``) is *not* baseline: it precedes it by
weeks, and ADNIMERGE gives every subject a ``bl`` row (docs/inputs.md).
"""

# Never allowed, whatever the pattern: '#' starts a comment when a TSV is read back
# (rgenima_lib.io.read_tsv), whitespace / control characters split TSV fields and shell words,
# '/' and the names '.' / '..' would leave the subject's folder, a leading '-' reads as an option.
_NEVER_IN_ID = re.compile(r"[#/\s\x00-\x1f\x7f]")


def check_subject_ids(ids: pd.Series, *, path: str | Path, pattern: str = DEFAULT_SUBJECT_ID_PATTERN,
                      what: str = "PTID", line_of: pd.Series | None = None) -> None:
    """Refuse subject IDs that could break a path, a shell line or a TSV read back.

    Parameters
    ----------
    ids : Series of str, length n
        The IDs that would enter the manifest.
    path : str or Path
        Their file, for the message.
    pattern : str
        Regular expression every ID must match in full (``re.fullmatch``).
    what : str
        The column's name in that file (``PTID``, ``IID``).
    line_of : Series of int, length n, optional
        Line number of each ID in its file (header = line 1); by default the
        Series' index.

    Raises
    ------
    InputDataError
        The pattern is not a valid regular expression, or an ID does not match
        it, contains ``#``, ``/``, whitespace or a control character, starts
        with ``-`` or is ``.`` / ``..``. Names the line numbers and shows each
        ID with ``repr()``.
    """
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise InputDataError(f"subject ID pattern {pattern!r} is not a regular expression ({exc}).",
                             fix="correct cohort.subject_id_pattern (--subject-id-pattern).") from exc
    lines = ids.index.to_series() if line_of is None else line_of
    bad = [(int(line), ident) for line, ident in zip(lines, ids.astype(str))
           if regex.fullmatch(ident) is None or _NEVER_IN_ID.search(ident) or ident.startswith("-")
           or ident in (".", "..")]
    if bad:
        shown = "; ".join(f"line {line}: {ident!r}" for line, ident in bad[:10])
        more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
        raise InputDataError(
            f"{len(bad)} {what}(s) are not safe subject IDs (pattern {pattern!r}; '#', '/', whitespace, "
            f"a leading '-' are never allowed): {shown}{more}.", path=path,
            fix=f"rename these subjects in {Path(path).name} (and in the genotypes and image folders) to "
                "letters, digits, '.', '_' and '-' only, as ADNI PTIDs are (011_S_0002); or widen "
                "cohort.subject_id_pattern if the IDs are safe.")


def decode_table(raw: bytes, *, path: str | Path) -> tuple[str, str]:
    """Text of a table saved by any common tool, and the encoding it was in.

    Tries UTF-8 with a byte-order mark (Excel's "CSV UTF-8"), UTF-8, then
    Windows-1252 (Excel's "CSV" on Windows; a superset of latin-1's printable
    characters), then latin-1, which decodes any byte string.

    Returns
    -------
    text : str
    encoding : str
        ``"UTF-8 with BOM"``, ``"UTF-8"``, ``"cp1252"`` or ``"latin-1"``.

    Raises
    ------
    InputDataError
        The file is UTF-16 (Excel's "Unicode text"), which is not CSV.
    """
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputDataError("is UTF-16 text (Excel's 'Unicode Text'), not a CSV.", path=path,
                             fix="save it from Excel as 'CSV UTF-8 (comma delimited)'.")
    if raw.startswith(codecs.BOM_UTF8):
        try:
            return raw[len(codecs.BOM_UTF8):].decode("utf-8"), "UTF-8 with BOM"
        except UnicodeDecodeError:
            raw = raw[len(codecs.BOM_UTF8):]
    for encoding in ("utf-8", "cp1252"):
        try:
            return raw.decode(encoding), {"utf-8": "UTF-8"}.get(encoding, encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1"), "latin-1"


def read_clinical(path: str | Path) -> pd.DataFrame:
    """Read an ADNIMERGE-style CSV as users have it, every cell as text.

    Handles UTF-8 (with or without BOM), cp1252 and latin-1 (the encoding used
    is logged), header cells with stray spaces (matched after stripping, with
    a note in the log) and blank lines (skipped, line numbers kept).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    DataFrame
        One row per non-blank data line, every column str (blank cells NaN);
        the index, named ``line``, is the row's line number in the file as a
        user counts it (header = line 1).

    Raises
    ------
    InputDataError
        The file is missing, empty, has a header but no rows, is not
        parseable as CSV, or two header cells are the same after stripping.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError("clinical table not found.", path=path,
                             fix="set data.clinical in the config to your ADNIMERGE.csv export.")
    text, encoding = decode_table(path.read_bytes(), path=path)
    if not text.strip():
        raise InputDataError("the clinical table is empty.", path=path,
                             fix="export ADNIMERGE with its header (PTID, VISCODE, DX_bl, ...) and one row per visit.")
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, skip_blank_lines=False, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputDataError(f"not a readable CSV ({exc}).".replace("\n", " "), path=path,
                             fix="export the table as comma-separated values (CSV).") from exc
    log.info("%s: read as %s", path, encoding)
    stripped = [str(c).strip() for c in table.columns]
    changed = [f"{c!r} -> {s!r}" for c, s in zip(table.columns, stripped) if c != s]
    dup = sorted({c for c in stripped if stripped.count(c) > 1})
    if dup:
        raise InputDataError(f"header cell(s) {', '.join(map(repr, dup))} appear twice (after stripping spaces).",
                             path=path, fix="keep one column of each name.")
    if changed:
        log.warning("%s: header cells with stray spaces matched after stripping: %s", path, ", ".join(changed))
    table.columns = stripped
    # skip_blank_lines=False keeps one row per physical line, so position + 2 is the line number.
    table.index = pd.RangeIndex(2, 2 + len(table), name="line")
    table = table.dropna(how="all")
    if table.empty:
        raise InputDataError("the clinical table has a header but no data rows.", path=path,
                             fix="export ADNIMERGE with one row per subject and visit.")
    return table


def _line_numbers(table: pd.DataFrame) -> pd.Series:
    """Line number of each row: the ``line`` index of ``read_clinical``, else as if read from a CSV."""
    if table.index.name == "line":
        return table.index.to_series(index=table.index)
    return pd.Series(np.arange(2, 2 + len(table)), index=table.index)


def _lines(lines) -> str:
    lines = [int(v) for v in lines]
    return ", ".join(map(str, lines[:10])) + (f" (and {len(lines) - 10} more)" if len(lines) > 10 else "")


def baseline_stages(clinical: pd.DataFrame, *, path: str | Path = "clinical table",
                    subject_id_pattern: str = DEFAULT_SUBJECT_ID_PATTERN) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Baseline rows of a clinical table, with DX_bl mapped to the four stages.

    Parameters
    ----------
    clinical : DataFrame
        ADNIMERGE-style table (from ``read_clinical``, or any DataFrame whose
        rows are in file order); needs PTID and DX_bl; VISCODE, when present,
        selects the baseline rows (``BASELINE_VISCODES``, case-insensitive).
    path : str or Path
        The table's file name, for error messages.
    subject_id_pattern : str
        Regular expression every staged PTID must match (``check_subject_ids``).

    Returns
    -------
    table : DataFrame
        One row per staged subject, in file order: subject, dx_bl, stage, and
        age / sex when present.
    excluded : DataFrame
        Columns subject, reason: subjects with a baseline row but left out
        (``"blank DX_bl"``).

    Raises
    ------
    InputDataError
        A required column is missing; PTIDs are blank (names the lines); a
        subject has two baseline rows that disagree (identical rows are
        collapsed, with a note in the log); a diagnosis code is not one of
        ``DX_TO_STAGE``; a PTID is not a safe subject ID.
    """
    missing = [c for c in REQUIRED_CLINICAL_COLUMNS if c not in clinical.columns]
    if missing:
        raise InputDataError(
            f"missing column(s) {', '.join(missing)}; found {', '.join(map(str, clinical.columns))}.",
            path=path, fix="export ADNIMERGE with its PTID and DX_bl columns.")
    lines = _line_numbers(clinical)
    ptid = clinical["PTID"].astype("string").str.strip()
    blank = ptid.isna() | (ptid == "")
    if blank.any():
        raise InputDataError(
            f"{int(blank.sum())} row(s) have a blank PTID: line(s) {_lines(lines[blank])}.", path=path,
            fix="fill in the PTID of these rows, or delete them.")
    table = clinical.assign(PTID=ptid.astype(str), _line=lines)
    if "VISCODE" in table.columns:
        viscode = table["VISCODE"].astype("string").str.strip().str.lower()
        table = table[viscode.isin(BASELINE_VISCODES).fillna(False).to_numpy(bool)]
    used = [c for c in ("DX_bl", "AGE", "PTGENDER") if c in table.columns]
    table = table.assign(**{c: table[c].astype("string").str.strip() for c in used})
    repeated = table[table["PTID"].duplicated(keep=False)]
    if not repeated.empty:
        conflicting = [s for s, rows in repeated.groupby("PTID", sort=False)
                       if len(rows[used].drop_duplicates()) > 1]
        if conflicting:
            rows = repeated[repeated["PTID"] == conflicting[0]]
            raise InputDataError(
                f"duplicate baseline rows that disagree (lines {_lines(rows['_line'])}: "
                + "; ".join(f"{c} " + " vs ".join(map(repr, rows[c].fillna("").tolist()))
                            for c in used if rows[c].nunique(dropna=False) > 1)
                + f"); {len(conflicting)} subject(s) have such rows.", path=path, subject=conflicting[0],
                fix="keep one baseline (VISCODE 'bl') row per subject.")
        n_extra = int(table["PTID"].duplicated().sum())
        log.warning("%s: %d identical duplicate baseline row(s) collapsed (lines %s)", path, n_extra,
                    _lines(table.loc[table["PTID"].duplicated(), "_line"]))
        table = table[~table["PTID"].duplicated()]
    dx = table["DX_bl"]
    blank_dx = (dx.isna() | (dx == "")).to_numpy(bool)
    excluded = pd.DataFrame({"subject": table["PTID"][blank_dx].tolist(), "reason": "blank DX_bl"})
    table = table[~blank_dx]
    check_subject_ids(table["PTID"], path=path, pattern=subject_id_pattern, line_of=table["_line"])
    codes = table["DX_bl"].str.upper()
    unknown = ~codes.isin(list(DX_TO_STAGE))
    if unknown.any():
        first = table[unknown.to_numpy(bool)].iloc[0]
        raise InputDataError(
            f"unknown diagnosis code {first['DX_bl']!r} in DX_bl (line {int(first['_line'])}); known codes: "
            f"{', '.join(sorted(DX_TO_STAGE))}.", path=path, subject=first["PTID"],
            fix="correct the code, or extend DX_TO_STAGE in rgenima_lib/cohort/clinical.py if it is a valid ADNI code.")
    out = pd.DataFrame({"subject": table["PTID"].to_numpy(), "dx_bl": table["DX_bl"].to_numpy(object),
                        "stage": codes.map(DX_TO_STAGE).to_numpy(object)})
    if "AGE" in table.columns:
        out["age"] = pd.to_numeric(table["AGE"], errors="coerce").to_numpy(float)
    if "PTGENDER" in table.columns:
        out["sex"] = table["PTGENDER"].to_numpy(object)
    return out, excluded

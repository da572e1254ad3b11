"""Where a cohort's raw data lives: ADNI-like names for the clinical table, BIDS, FreeSurfer and PLINK files.

Also the one place that decides which BIDS T1 of a subject is used (``find_t1w``): the
manifest records it and rule ``recon_all`` reads the same file (``bids_t1w_path``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


DEFAULT_SUBJECT_ID_PATTERN = r"^[A-Za-z0-9._-]+$"
"""IDs allowed into the manifest (config ``cohort.subject_id_pattern``); every ADNI PTID matches."""

DEFAULT_INTENSITY_IMAGE = "norm.mgz"
"""Under ``<subject>/mri/``: the ROI intensity image, as the schema's ``imaging.intensity_image`` default."""
DEFAULT_WHOLEBRAIN_IMAGE = "brain.mgz"
"""Under ``<subject>/mri/``: the Med3D input, as the schema's ``imaging.wholebrain.image`` default."""


@dataclass(frozen=True)
class CohortLayout:
    """Where each part of a cohort lives under its root folder (ADNI-like names)."""

    root: Path

    @property
    def clinical(self) -> Path:
        return self.root / "clinical" / "ADNIMERGE.csv"

    @property
    def bids_dir(self) -> Path:
        return self.root / "bids"

    @property
    def freesurfer_dir(self) -> Path:
        return self.root / "freesurfer"

    @property
    def genotypes(self) -> Path:
        """PLINK prefix (``.bed``, ``.bim``, ``.fam`` appended)."""
        return self.root / "genotypes" / "adni_panel"

    @property
    def truth(self) -> Path:
        return self.root / "truth.json"


def bids_label(ptid: str) -> str:
    """BIDS subject label of an ADNI PTID (``011_S_0002`` -> ``011S0002``): BIDS labels are alphanumeric."""
    return "".join(ch for ch in ptid if ch.isalnum())


def bids_labels(ptid: str) -> tuple[str, ...]:
    """Subject labels a BIDS converter may have given a PTID, in the order they are looked for.

    ``011_S_0002`` -> ``("011S0002", "ADNI011S0002")``: the plain label, and Clinica's
    ADNI conversion (``adni-to-bids``), which prefixes ``ADNI``.
    """
    label = bids_label(ptid)
    return (label, f"ADNI{label}")


T1W_NAME = re.compile(r"^sub-(?P<sub>[A-Za-z0-9]+)(?P<entities>(?:_[A-Za-z0-9]+-[A-Za-z0-9]+)*)_T1w\.nii(?:\.gz)?$")

BASELINE_SESSIONS = frozenset({"bl", "baseline", "m0", "m00", "m000"})
"""Session labels read as baseline (case-insensitive): Clinica writes ``M000`` (older versions ``M00``)."""

_MONTH_SESSION = re.compile(r"^m(\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class T1wFile:
    """One ``*_T1w.nii[.gz]`` of a subject, with the BIDS entities that rank it."""

    path: Path
    session: str | None
    run: int | None
    acq: str | None

    def rank(self) -> tuple:
        """Sort key of ``find_t1w``'s rule: baseline session first, then lowest run, no acq first, .nii.gz first."""
        return (session_rank(self.session), -1 if self.run is None else self.run,
                (self.acq is not None, self.acq or ""), not self.path.name.endswith(".gz"), self.path.name)


def session_rank(session: str | None) -> tuple:
    """Order of BIDS sessions for choosing a baseline T1.

    No session, or a baseline label (``BASELINE_SESSIONS``), first; then
    month labels ``M<n>`` by month (``M006`` before ``M012``); then any other
    label, numbers by value (``ses-2`` before ``ses-10``), then by name.
    """
    if session is None or session.lower() in BASELINE_SESSIONS:
        return (0, 0, "")
    month = _MONTH_SESSION.match(session)
    if month:
        return (1, int(month.group(1)), "")
    return (2, int(session) if session.isdigit() else 10 ** 9, session)


def parse_t1w(path: Path, label: str) -> T1wFile | None:
    """A ``T1wFile`` if ``path`` is a T1w image of subject ``label`` (file name and folders agree), else None."""
    match = T1W_NAME.match(path.name)
    if match is None or match.group("sub") != label:
        return None
    entities = dict(tok.split("-", 1) for tok in match.group("entities").split("_") if tok)
    folder_session = path.parent.parent.name[4:] if path.parent.parent.name.startswith("ses-") else None
    if entities.get("ses") != folder_session:
        return None
    run = entities.get("run")
    return T1wFile(path, folder_session, int(run) if run is not None and run.isdigit() else None, entities.get("acq"))


def t1w_candidates(bids_dir: str | Path, ptid: str) -> list[T1wFile]:
    """Every T1w image of a PTID under a BIDS root, best first (see ``find_t1w``).

    Looks in ``sub-<label>/anat/`` and ``sub-<label>/ses-*/anat/`` for each of
    ``bids_labels(ptid)``, for ``.nii.gz`` and ``.nii`` files named
    ``sub-<label>[_ses-<s>][_<key>-<value>...]_T1w``.
    """
    found = []
    for label in bids_labels(ptid):
        subject_dir = Path(bids_dir) / f"sub-{label}"
        if not subject_dir.is_dir():
            continue
        for anat in [subject_dir / "anat", *sorted(subject_dir.glob("ses-*/anat"))]:
            for path in sorted(anat.glob(f"sub-{label}_*T1w.nii*")):
                parsed = parse_t1w(path, label) if path.is_file() else None
                if parsed is not None:
                    found.append(parsed)
    return sorted(found, key=T1wFile.rank)


def find_t1w(bids_dir: str | Path, ptid: str) -> tuple[T1wFile | None, int]:
    """The T1 of a PTID that the pipeline uses, and how many candidates there were.

    Rule (docs/inputs.md): the baseline session (no session, ``ses-M000`` /
    ``ses-M00`` / ``ses-bl``) first, else the lowest month, else the lowest
    other session; within it the lowest ``run-``, a file without ``acq-``
    before one with (then by acq label), ``.nii.gz`` before ``.nii``.

    Returns
    -------
    chosen : T1wFile or None
        None when the subject has no T1w image.
    n_candidates : int
    """
    candidates = t1w_candidates(bids_dir, ptid)
    return (candidates[0] if candidates else None), len(candidates)


def default_bids_t1w_path(bids_dir: str | Path, ptid: str) -> Path:
    """``bids_dir/sub-<label>/anat/sub-<label>_T1w.nii.gz``: where a new T1 of a PTID is written."""
    label = bids_label(ptid)
    return Path(bids_dir) / f"sub-{label}" / "anat" / f"sub-{label}_T1w.nii.gz"


def bids_t1w_path(bids_dir: str | Path, ptid: str) -> Path:
    """The T1 of a PTID that the manifest chose (``find_t1w``), or ``default_bids_t1w_path`` when there is none.

    Rule ``recon_all`` takes its input from here, so it reads the file the
    manifest's ``t1w`` column names; writers (the synthetic cohort) get the
    plain BIDS path for a subject that has no T1 yet.
    """
    chosen, _ = find_t1w(bids_dir, ptid)
    return chosen.path if chosen is not None else default_bids_t1w_path(bids_dir, ptid)

"""Where a cohort's raw data lives: ADNI-like names for the clinical table, BIDS, FreeSurfer and PLINK files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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


def bids_t1w_path(bids_dir: Path, ptid: str) -> Path:
    """``bids_dir/sub-<label>/anat/sub-<label>_T1w.nii.gz`` for a PTID."""
    label = bids_label(ptid)
    return Path(bids_dir) / f"sub-{label}" / "anat" / f"sub-{label}_T1w.nii.gz"

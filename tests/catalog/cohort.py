"""Catalog cases of the cohort stage: the clinical table, the .fam, subject IDs, BIDS and FreeSurfer folders."""

from __future__ import annotations

from pathlib import Path

from catalog.base import BadInput, Invocation, rgenima

CLINICAL_HEADER = "RID,PTID,VISCODE,DX_bl,AGE,PTGENDER\n"


def _manifest(tmp: Path, clinical_text: str, fam_text: str | None = None) -> tuple[list[str], list[Path]]:
    """argv of `rgenima manifest` on the given clinical table (and .fam), and its outputs."""
    clinical = tmp / "ADNIMERGE.csv"
    clinical.write_text(clinical_text)
    out, summary = tmp / "out" / "manifest.tsv", tmp / "out" / "manifest_summary.tsv"
    args = ["manifest", "--clinical", clinical, "--output", out, "--summary", summary]
    if fam_text is not None:
        fam = tmp / "panel.fam"
        fam.write_text(fam_text)
        args += ["--fam", fam]
    return rgenima(*args), [out, summary]


def unknown_dx_code(tmp: Path) -> Invocation:
    command, outputs = _manifest(tmp, CLINICAL_HEADER + "2,011_S_0002,bl,CN,74.3,Male\n3,011_S_0003,bl,XYZ,70.1,Female\n")
    return Invocation(command, outputs, message=["ADNIMERGE.csv", "011_S_0003", "'XYZ'", "Fix:"])


CASES = [
    BadInput("unknown-dx-code", "clinical", "a DX_bl code that is not CN / SMC / EMCI / LMCI / AD",
             "refused: names the table, the subject and the known codes", unknown_dx_code),
]

"""Catalog cases of the cohort stage: the clinical table, the .fam, subject IDs, BIDS and FreeSurfer folders.

Each case writes an input shaped like a real export (ADNIMERGE rows, a PLINK ``.fam``, Clinica's
BIDS tree, a FreeSurfer SUBJECTS_DIR) and runs ``rgenima manifest`` on it as rule manifest does.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from catalog.base import BadInput, Invocation, rgenima

CLINICAL_HEADER = "RID,PTID,VISCODE,DX_bl,AGE,PTGENDER\n"
ROWS = "2,011_S_0002,bl,CN,74.3,Male\n3,011_S_0003,bl,AD,81.0,Female\n"
FAM = "011_S_0002 011_S_0002 0 0 1 -9\n011_S_0003 011_S_0003 0 0 2 -9\n"


def _outputs(tmp: Path) -> dict[str, Path]:
    out = tmp / "out"
    return {"manifest": out / "manifest.tsv", "summary": out / "manifest_summary.tsv",
            "excluded": out / "manifest_excluded.tsv"}


def _manifest(tmp: Path, clinical: str | bytes, fam_text: str | None = None, *extra) -> tuple[list[str], list[Path]]:
    """argv of `rgenima manifest` on the given clinical table (and .fam), and its outputs."""
    path = tmp / "ADNIMERGE.csv"
    path.write_bytes(clinical if isinstance(clinical, bytes) else clinical.encode())
    outs = _outputs(tmp)
    args = ["manifest", "--clinical", path, "--output", outs["manifest"], "--summary", outs["summary"],
            "--excluded", outs["excluded"], *extra]
    if fam_text is not None:
        fam = tmp / "panel.fam"
        fam.write_text(fam_text)
        args += ["--fam", fam]
    return rgenima(*args), list(outs.values())


def _read(tmp: Path, name: str = "manifest") -> pd.DataFrame:
    return pd.read_csv(_outputs(tmp)[name], sep="\t", dtype={"subject": str}, keep_default_na=False)


def _write_mgz(path: Path, labels: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    vol = np.zeros((6, 6, 6), np.int32 if labels else np.uint8)
    vol[2:4, 2:4, 2:4] = 17
    nib.save(nib.MGHImage(vol, np.eye(4)), path)


def _write_t1(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.float32), np.eye(4)), path)


def _fs_subject(fs: Path, ptid: str, files=("aparc+aseg.mgz", "norm.mgz", "brain.mgz")) -> Path:
    for name in files:
        _write_mgz(fs / ptid / "mri" / name, labels=name == "aparc+aseg.mgz")
    (fs / ptid / "mri").mkdir(parents=True, exist_ok=True)
    return fs / ptid


# --- clinical ------------------------------------------------------------------------------------------------

def unknown_dx_code(tmp: Path) -> Invocation:
    command, outputs = _manifest(tmp, CLINICAL_HEADER + "2,011_S_0002,bl,CN,74.3,Male\n"
                                 "3,011_S_0003,bl,XYZ,70.1,Female\n")
    return Invocation(command, outputs, message=["ADNIMERGE.csv", "011_S_0003", "'XYZ'", "Fix:"])


def _stages_are(tmp: Path, expected: dict[str, str]):
    def check(proc: subprocess.CompletedProcess) -> None:
        got = _read(tmp).set_index("subject")["stage"].to_dict()
        assert got == expected, f"stages {got}, expected {expected}"
    return check


def cp1252_table(tmp: Path) -> Invocation:
    text = "RID,PTID,VISCODE,DX_bl,AGE,PTGENDER,SITE\n2,011_S_0002,bl,CN,74.3,Male,Montréal\n" \
           "3,011_S_0003,bl,LMCI,81.0,Female,Zürich\n"
    command, outputs = _manifest(tmp, text.encode("cp1252"))
    return Invocation(command, outputs, exit_code=0, message=["ADNIMERGE.csv: read as cp1252"],
                      check=_stages_are(tmp, {"011_S_0002": "NC", "011_S_0003": "MCI"}))


def utf8_bom_table(tmp: Path) -> Invocation:
    command, outputs = _manifest(tmp, b"\xef\xbb\xbf" + (CLINICAL_HEADER + ROWS).encode())
    return Invocation(command, outputs, exit_code=0, message=["read as UTF-8 with BOM"],
                      check=_stages_are(tmp, {"011_S_0002": "NC", "011_S_0003": "AD"}))


def one_blank_ptid(tmp: Path) -> Invocation:
    command, outputs = _manifest(tmp, CLINICAL_HEADER + ROWS + "4,,bl,EMCI,70.0,Male\n")
    return Invocation(command, outputs, message=["ADNIMERGE.csv", "1 row(s) have a blank PTID: line(s) 4.", "Fix:"])


def two_blank_ptids(tmp: Path) -> Invocation:
    command, outputs = _manifest(tmp, CLINICAL_HEADER + "2,,bl,CN,74.3,Male\n" + ROWS + "5, ,bl,AD,70.0,Male\n")
    return Invocation(command, outputs, message=["ADNIMERGE.csv", "2 row(s) have a blank PTID: line(s) 2, 5.", "Fix:"])


def viscode_upper_case(tmp: Path) -> Invocation:
    text = (CLINICAL_HEADER + "2,011_S_0002,BL,CN,74.3,Male\n3,011_S_0003,m00,AD,81.0,Female\n"
            "4,011_S_0003,M06,AD,81.5,Female\n")
    command, outputs = _manifest(tmp, text)
    return Invocation(command, outputs, exit_code=0,
                      check=_stages_are(tmp, {"011_S_0002": "NC", "011_S_0003": "AD"}))


def header_stray_spaces(tmp: Path) -> Invocation:
    command, outputs = _manifest(tmp, "RID, PTID,VISCODE,DX_bl ,AGE,PTGENDER\n" + ROWS)
    return Invocation(command, outputs, exit_code=0,
                      message=["header cells with stray spaces matched after stripping", "'DX_bl ' -> 'DX_bl'"],
                      check=_stages_are(tmp, {"011_S_0002": "NC", "011_S_0003": "AD"}))


def blank_dx_genotyped(tmp: Path) -> Invocation:
    command, outputs = _manifest(tmp, CLINICAL_HEADER + ROWS + "4,011_S_0004,bl,,70.0,Male\n",
                                 FAM + "011_S_0004 011_S_0004 0 0 1 -9\n")

    def check(proc: subprocess.CompletedProcess) -> None:
        assert "no clinical baseline row" not in proc.stdout and "011_S_0004" not in proc.stdout
        excluded = _read(tmp, "excluded")
        assert excluded[["subject", "reason"]].values.tolist() == [["011_S_0004", "blank DX_bl"]]
        assert list(_read(tmp)["subject"]) == ["011_S_0002", "011_S_0003"]
    return Invocation(command, outputs, exit_code=0, check=check,
                      message=["1 subject(s) excluded: blank DX_bl in", "(1 genotyped)"])


def orphan_genotype_ids(tmp: Path) -> Invocation:
    command, outputs = _manifest(tmp, CLINICAL_HEADER + ROWS, FAM + "941_S_9999 941_S_9999 0 0 1 -9\n")

    def check(proc: subprocess.CompletedProcess) -> None:
        assert "941_S_9999" not in proc.stdout, "an ID beyond the manifest was logged"
        assert _read(tmp, "excluded")["subject"].tolist() == ["941_S_9999"]
    return Invocation(command, outputs, exit_code=0, check=check,
                      message=["1 subject(s) excluded: in", "panel.fam but not in"])


def empty_clinical(tmp: Path) -> Invocation:
    command, outputs = _manifest(tmp, "")
    return Invocation(command, outputs, message=["ADNIMERGE.csv: the clinical table is empty.", "Fix:"])


def header_only_clinical(tmp: Path) -> Invocation:
    command, outputs = _manifest(tmp, CLINICAL_HEADER)
    return Invocation(command, outputs, message=["ADNIMERGE.csv: the clinical table has a header but no data rows",
                                                 "Fix:"])


def empty_fam(tmp: Path) -> Invocation:
    command, outputs = _manifest(tmp, CLINICAL_HEADER + ROWS, "")
    return Invocation(command, outputs, message=["panel.fam: the .fam is empty", "Fix:"])


def duplicate_identical(tmp: Path) -> Invocation:
    command, outputs = _manifest(tmp, CLINICAL_HEADER + ROWS + "2,011_S_0002,bl,CN,74.3,Male\n")
    return Invocation(command, outputs, exit_code=0,
                      message=["1 identical duplicate baseline row(s) collapsed (lines 4)"],
                      check=_stages_are(tmp, {"011_S_0002": "NC", "011_S_0003": "AD"}))


def duplicate_conflicting(tmp: Path) -> Invocation:
    command, outputs = _manifest(tmp, CLINICAL_HEADER + ROWS + "2,011_S_0002,bl,AD,74.3,Male\n")
    return Invocation(command, outputs, message=["ADNIMERGE.csv: subject 011_S_0002", "lines 2, 4",
                                                 "DX_bl 'CN' vs 'AD'", "Fix: keep one baseline"])


# --- subject IDs ----------------------------------------------------------------------------------------------

def _unsafe_id(ptid: str):
    def build(tmp: Path) -> Invocation:
        cell = '"' + ptid.replace('"', '""') + '"'
        command, outputs = _manifest(tmp, CLINICAL_HEADER + ROWS + f"4,{cell},bl,AD,70.0,Male\n",
                                     FAM + f"x {ptid.replace(' ', '')} 0 0 1 -9\n")

        def check(proc: subprocess.CompletedProcess) -> None:
            assert not (tmp / "owned").exists(), "a command inside a subject ID was executed"
        return Invocation(command, outputs, check=check,
                          message=["ADNIMERGE.csv", f"line 4: {ptid!r}", "not safe subject IDs", "Fix: rename"])
    return build


def custom_pattern(tmp: Path) -> Invocation:
    command, outputs = _manifest(tmp, CLINICAL_HEADER + ROWS, None, "--subject-id-pattern", r"^\d{3}_S_\d{3}$")
    return Invocation(command, outputs, message=["ADNIMERGE.csv", "line 2: '011_S_0002'", "line 3: '011_S_0003'",
                                                 r"pattern '^\\d{3}_S_\\d{3}$'", "cohort.subject_id_pattern"])


# --- BIDS -----------------------------------------------------------------------------------------------------

def _bids_manifest(tmp: Path, files: list[str]) -> tuple[list[str], list[Path]]:
    for rel in files:
        _write_t1(tmp / "bids" / rel)
    return _manifest(tmp, CLINICAL_HEADER + ROWS, None, "--bids-dir", tmp / "bids", "--freesurfer-mode", "recon_all")


def _t1w_is(tmp: Path, expected: dict[str, tuple[str, str, int]]):
    def check(proc: subprocess.CompletedProcess) -> None:
        m = _read(tmp).set_index("subject")
        for subject, (rel, session, n) in expected.items():
            got = (m.loc[subject, "t1w"], m.loc[subject, "t1w_session"], int(m.loc[subject, "t1w_candidates"]))
            want = (str(tmp / "bids" / rel) if rel else "", session, n)
            assert got == want, f"{subject}: {got}, expected {want}"
            assert bool(m.loc[subject, "has_image"]) == bool(rel)
    return check


def clinica_sessions(tmp: Path) -> Invocation:
    a = "sub-ADNI011S0002/ses-{0}/anat/sub-ADNI011S0002_ses-{0}_T1w.nii.gz"
    command, outputs = _bids_manifest(tmp, [a.format("M012"), a.format("M000"), a.format("M006")])
    return Invocation(command, outputs, exit_code=0, message=["1 subject(s) have several T1w images"],
                      check=_t1w_is(tmp, {"011_S_0002": (a.format("M000"), "M000", 3), "011_S_0003": ("", "", 0)}))


def runs_acq_nii(tmp: Path) -> Invocation:
    d = "sub-011S0003/ses-bl/anat/"
    files = [d + "sub-011S0003_ses-bl_run-02_T1w.nii", d + "sub-011S0003_ses-bl_acq-accel_run-01_T1w.nii.gz",
             d + "sub-011S0003_ses-bl_run-01_T1w.nii", "sub-011S0002/anat/sub-011S0002_T1w.nii"]
    command, outputs = _bids_manifest(tmp, files)
    return Invocation(command, outputs, exit_code=0,
                      check=_t1w_is(tmp, {"011_S_0002": (files[3], "", 1), "011_S_0003": (files[2], "bl", 3)}))


def no_baseline_session(tmp: Path) -> Invocation:
    a = "sub-ADNI011S0002/ses-{0}/anat/sub-ADNI011S0002_ses-{0}_T1w.nii.gz"
    command, outputs = _bids_manifest(tmp, [a.format("M024"), a.format("M006")])
    return Invocation(command, outputs, exit_code=0, message=["1 subject(s) have no baseline-session T1"],
                      check=_t1w_is(tmp, {"011_S_0002": (a.format("M006"), "M006", 2)}))


# --- FreeSurfer -----------------------------------------------------------------------------------------------

def _fs_manifest(tmp: Path, *, t1_only: bool = False, **folders) -> tuple[list[str], list[Path]]:
    fs = tmp / "freesurfer"
    _fs_subject(fs, "011_S_0002")
    for ptid, files in folders.items():
        _fs_subject(fs, ptid.replace("s", "_S_"), files)
    extra = []
    if t1_only:
        _write_t1(tmp / "bids" / "sub-011S0003" / "anat" / "sub-011S0003_T1w.nii.gz")
        extra = ["--bids-dir", tmp / "bids"]
    return _manifest(tmp, CLINICAL_HEADER + ROWS, FAM, "--freesurfer-dir", fs, "--freesurfer-mode", "precomputed",
                     *extra)


def _status_is(tmp: Path, expected: dict[str, str], summary: dict[str, int] | None = None):
    def check(proc: subprocess.CompletedProcess) -> None:
        m = _read(tmp).set_index("subject")
        got = m["image_status"].to_dict()
        assert got == expected, f"image_status {got}, expected {expected}"
        assert m["has_image"].astype(str).eq("True").to_dict() == {s: v == "ok" for s, v in expected.items()}
        if summary:
            row = _read(tmp, "summary").set_index("stage").loc["all"]
            assert {k: int(row[k]) for k in summary} == summary
    return check


def t1_only_precomputed(tmp: Path) -> Invocation:
    command, outputs = _fs_manifest(tmp, t1_only=True)
    return Invocation(command, outputs, exit_code=0,
                      message=["1 subject(s) without image (precomputed mode): t1w_only"],
                      check=_status_is(tmp, {"011_S_0002": "ok", "011_S_0003": "t1w_only"}, {"with_both": 1}))


def missing_norm(tmp: Path) -> Invocation:
    command, outputs = _fs_manifest(tmp, **{"011s0003": ("aparc+aseg.mgz", "brain.mgz")})
    return Invocation(command, outputs, exit_code=0, message=["no_intensity_image", "imaging.intensity_image"],
                      check=_status_is(tmp, {"011_S_0002": "ok", "011_S_0003": "no_intensity_image"}))


def incomplete_folder(tmp: Path) -> Invocation:
    command, outputs = _fs_manifest(tmp, **{"011s0003": ("orig.mgz", "norm.mgz")})
    return Invocation(command, outputs, exit_code=0, message=["incomplete FreeSurfer folders: 1"],
                      check=_status_is(tmp, {"011_S_0002": "ok", "011_S_0003": "freesurfer_incomplete"},
                                       {"freesurfer_incomplete": 1, "with_image": 1}))


def failed_recon_all(tmp: Path) -> Invocation:
    command, outputs = _fs_manifest(tmp, **{"011s0003": ("orig.mgz",)})
    scripts = tmp / "freesurfer" / "011_S_0003" / "scripts"
    scripts.mkdir()
    (scripts / "recon-all.error").write_text("ERROR: mri_ca_label exited with non-zero status\n")
    return Invocation(command, outputs, exit_code=0, message=["incomplete FreeSurfer folders: 1", "freesurfer_failed"],
                      check=_status_is(tmp, {"011_S_0002": "ok", "011_S_0003": "freesurfer_failed"},
                                       {"freesurfer_failed": 1}))


def unreadable_norm(tmp: Path) -> Invocation:
    command, outputs = _fs_manifest(tmp, **{"011s0003": ("aparc+aseg.mgz", "brain.mgz")})
    (tmp / "freesurfer" / "011_S_0003" / "mri" / "norm.mgz").write_bytes(b"truncated download")
    return Invocation(command, outputs, message=["011_S_0003/mri/norm.mgz", "subject 011_S_0003",
                                                 "not a readable image", "Fix: re-export or re-run FreeSurfer"])


CASES = [
    BadInput("unknown-dx-code", "clinical", "a DX_bl code that is not CN / SMC / EMCI / LMCI / AD",
             "refused: names the table, the subject and the known codes", unknown_dx_code),
    BadInput("clinical-cp1252", "clinical", "ADNIMERGE saved from Excel on Windows (cp1252: `Montréal`)",
             "read as cp1252, said in the log; stages as in the table", cp1252_table),
    BadInput("clinical-utf8-bom", "clinical", "ADNIMERGE saved as Excel's 'CSV UTF-8' (byte-order mark)",
             "read as UTF-8 with BOM, said in the log; the first column is `RID`", utf8_bom_table),
    BadInput("clinical-blank-ptid", "clinical", "one baseline row with a blank PTID",
             "refused: names the line (was: staged as a subject \"\")", one_blank_ptid),
    BadInput("clinical-blank-ptids", "clinical", "two rows with blank (or space-only) PTIDs",
             "refused: names both lines (was: TypeError)", two_blank_ptids),
    BadInput("clinical-viscode-case", "clinical", "VISCODE `BL` (upper case) and `m00`",
             "read as baseline (case-insensitive; `m00` = month 0); `sc` is not baseline", viscode_upper_case),
    BadInput("clinical-header-spaces", "clinical", "header cells with stray spaces (`DX_bl `, ` PTID`)",
             "matched after stripping, with a note in the log", header_stray_spaces),
    BadInput("clinical-blank-dx-genotyped", "clinical", "a genotyped subject whose DX_bl is blank",
             "excluded as \"blank DX_bl\" (a count in the log, the ID in manifest_excluded.tsv)", blank_dx_genotyped),
    BadInput("fam-orphan-ids", "clinical", ".fam IIDs without a clinical row",
             "excluded; the log gives their count only, manifest_excluded.tsv the IDs", orphan_genotype_ids),
    BadInput("clinical-empty", "clinical", "an empty clinical CSV (0 bytes)",
             "refused: names the file (was: pandas traceback)", empty_clinical),
    BadInput("clinical-header-only", "clinical", "a clinical CSV with a header and no rows",
             "refused: names the file", header_only_clinical),
    BadInput("fam-empty", "clinical", "an empty `.fam`", "refused: names the file (was: pandas traceback)", empty_fam),
    BadInput("clinical-duplicate-identical", "clinical", "a subject's baseline row twice, identical",
             "collapsed to one, the lines in the log (the rows carry the same facts)", duplicate_identical),
    BadInput("clinical-duplicate-conflicting", "clinical", "a subject's baseline row twice, CN and AD",
             "refused: names the subject, both lines and the differing values", duplicate_conflicting),
    *[BadInput(f"subject-id-{name}", "subject_ids", f"a PTID with {what}: `{ptid}`",
               "refused: names the line and shows the ID with repr(); nothing is executed", _unsafe_id(ptid))
      for name, what, ptid in [
          ("space", "a space", "011_S 0002"), ("quote", "a single quote", "011_S_0002'"),
          ("dollar-paren", "a command substitution", "x$(touch owned)"),
          ("backtick", "backticks", "x`touch owned`"), ("ifs", "`${IFS}`", "x${IFS}touch${IFS}owned"),
          ("hash", "`#` (a comment when the manifest is read back)", "011_S_0002#1")]],
    BadInput("subject-id-pattern", "subject_ids", "IDs that do not match a configured `cohort.subject_id_pattern`",
             "refused: names every line and the pattern", custom_pattern),
    BadInput("bids-clinica-sessions", "bids", "Clinica's ADNI BIDS: `sub-ADNI011S0002/ses-M000/anat/...`, "
             "three sessions", "found; ses-M000 chosen, 3 candidates in the manifest, a count in the log",
             clinica_sessions),
    BadInput("bids-run-acq-nii", "bids", "`run-` / `acq-` entities and uncompressed `.nii`, with and without sessions",
             "found; the lowest run without acq- is chosen", runs_acq_nii),
    BadInput("bids-no-baseline-session", "bids", "a subject whose T1s are from ses-M006 and ses-M024 only",
             "the earliest (M006) is used, said in the log and in `t1w_session`", no_baseline_session),
    BadInput("freesurfer-t1-only", "freesurfer", "precomputed mode with data.bids_dir: a subject with a T1 but no "
             "FreeSurfer folder", "kept out of image_gene (`image_status` t1w_only, counted in the log)",
             t1_only_precomputed),
    BadInput("freesurfer-no-norm", "freesurfer", "a FreeSurfer folder without `norm.mgz` (brain.mgz present)",
             "no image (`no_intensity_image`): the manifest and rule roi_extract both use imaging.intensity_image",
             missing_norm),
    BadInput("freesurfer-incomplete", "freesurfer", "a FreeSurfer folder without `aparc+aseg.mgz`",
             "reported as incomplete: count in the log and the summary, `freesurfer_incomplete` per subject",
             incomplete_folder),
    BadInput("freesurfer-failed", "freesurfer", "a failed recon-all (`scripts/recon-all.error`, no aparc+aseg)",
             "reported as incomplete: `freesurfer_failed` per subject, counted in the summary", failed_recon_all),
    BadInput("freesurfer-unreadable-norm", "freesurfer", "a truncated `norm.mgz`",
             "refused: names the file and the subject", unreadable_norm),
]

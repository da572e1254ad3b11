"""Catalog cases of the workflow as a whole: paths with spaces and shell syntax, started as users start it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from catalog.base import BIN, BadInput, Invocation

# A folder name a user could have, holding every piece of shell syntax that must never run.
AWKWARD_DIR = "ADNI export $(touch PWNED1) `touch PWNED2`; 'x' #1"
TARGETS = ["results/genetics/qc_report.tsv", "results/imaging/roi_index.tsv"]


def _awkward_workdir(tmp: Path) -> Path:
    from conftest import make_workdir

    work = tmp / AWKWARD_DIR
    work.mkdir()
    make_workdir(work)
    # The cohort itself also lies under a folder with spaces: every data path of the manifest carries them.
    (work / "config" / "awkward.yaml").write_text(
        "synthetic:\n  enabled: true\n  n_subjects: 12\n  voxel_size_mm: 3.0\n  n_variants: 300\n"
        "  out_dir: results/synthetic cohort (copy 1)\n"
        "freesurfer:\n  mode: precomputed\nimaging:\n  roi_size: 16\nseed: 7\n")
    return work


def data_stages_in_a_folder_with_spaces(tmp: Path) -> Invocation:
    work = _awkward_workdir(tmp)
    command = [str(BIN / "snakemake"), "--snakefile", str(work / "workflow" / "Snakefile"), "--directory", str(work),
               "--configfile", str(work / "config" / "awkward.yaml"), "--workflow-profile", "none", "--cores", "2",
               *TARGETS]

    def check(proc: subprocess.CompletedProcess) -> None:
        for target in TARGETS:
            assert (work / target).is_file(), f"{target} was not made:\n{proc.stdout[-3000:]}"
        ran = sorted(str(p) for p in tmp.rglob("PWNED*") if p.name.startswith("PWNED"))
        assert not ran, f"a command in the folder name ran: {ran}"

    return Invocation(command, exit_code=0, check=check, cwd=work)


CASES = [
    BadInput("folder-with-spaces-and-shell-syntax", "workflow",
             "a working directory and cohort folder whose names hold spaces, `$(...)`, backticks, `;`, quotes and `#`",
             "handled: the data stages (manifest, PLINK 2 QC, ROI extraction) run as usual, nothing in the name runs",
             data_stages_in_a_folder_with_spaces),
]

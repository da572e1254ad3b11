"""FreeSurfer recon-all (paper 4.4.1): the command line and a cheap check that FreeSurfer can run.

The rule ``recon_all`` runs, per subject, exactly what users run on a cluster::

    recon-all -all -s <PTID> -i <T1w.nii.gz> -sd <SUBJECTS_DIR>

(the paper used FreeSurfer 6.0). Before any such job starts, the local rule
``freesurfer_check`` calls ``check_freesurfer``: ``recon-all`` must be on PATH,
``FREESURFER_HOME`` set, and a license file found where FreeSurfer looks for it
(``$FS_LICENSE`` if set, else ``$FREESURFER_HOME/license.txt``, else the older
``$FREESURFER_HOME/.license``). A missing license otherwise surfaces only
minutes into every job, one cluster job at a time.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path
from typing import Mapping

from rgenima_lib.errors import InputDataError

LICENSE_URL = "https://surfer.nmr.mgh.harvard.edu/registration.html"


def recon_all_command(subject: str, t1: str | Path, subjects_dir: str | Path, extra: str = "") -> list[str]:
    """The recon-all command line for one subject.

    Parameters
    ----------
    subject : str
        FreeSurfer subject name (the PTID).
    t1 : path
        The subject's T1-weighted image.
    subjects_dir : path
        SUBJECTS_DIR; made absolute, because recon-all changes directory while it runs.
    extra : str
        Further flags (e.g. ``-openmp 4``), split like a shell would.

    Returns
    -------
    list of str
    """
    return ["recon-all", "-all", "-s", subject, "-i", str(Path(t1).resolve()),
            "-sd", str(Path(subjects_dir).resolve()), *shlex.split(extra)]


def check_freesurfer(env: Mapping[str, str] | None = None) -> dict:
    """Check that recon-all can run here: the program, FREESURFER_HOME and the license.

    Parameters
    ----------
    env : mapping, optional
        Environment to inspect (default ``os.environ``).

    Returns
    -------
    dict
        ``recon_all`` (path), ``freesurfer_home``, ``license`` (path), ``version``
        (first line of ``$FREESURFER_HOME/build-stamp.txt``, or "unknown").

    Raises
    ------
    InputDataError
        With what is missing and how to fix it.
    """
    env = os.environ if env is None else env
    recon_all = shutil.which("recon-all", path=env.get("PATH"))
    if recon_all is None:
        raise InputDataError(
            "FreeSurfer's recon-all is not on PATH.",
            fix="install FreeSurfer (the paper used 6.0), then `export FREESURFER_HOME=/path/to/freesurfer; "
                "source $FREESURFER_HOME/SetUpFreeSurfer.sh` before running Snakemake, or set "
                "freesurfer.mode: precomputed with data.freesurfer_subjects_dir pointing at finished recon-all runs.")
    home = env.get("FREESURFER_HOME")
    if not home or not Path(home).is_dir():
        raise InputDataError(
            f"FREESURFER_HOME is {'not set' if not home else repr(home) + ', which is not a folder'}.",
            fix="export FREESURFER_HOME=/path/to/freesurfer and source $FREESURFER_HOME/SetUpFreeSurfer.sh.")
    if env.get("FS_LICENSE"):
        license_path = Path(env["FS_LICENSE"])
        if not license_path.is_file():
            raise InputDataError("FS_LICENSE points to a file that does not exist.", path=license_path,
                                 fix=f"set FS_LICENSE to your FreeSurfer license.txt (free, from {LICENSE_URL}).")
    else:
        candidates = [Path(home) / "license.txt", Path(home) / ".license"]
        license_path = next((p for p in candidates if p.is_file()), None)
        if license_path is None:
            raise InputDataError(
                "no FreeSurfer license: FS_LICENSE is not set and there is no license.txt in FREESURFER_HOME.",
                path=candidates[0],
                fix=f"get a free license at {LICENSE_URL} and export FS_LICENSE=/path/to/license.txt "
                    "(or copy it to $FREESURFER_HOME/license.txt).")
    stamp = Path(home) / "build-stamp.txt"
    version = stamp.read_text().splitlines()[0].strip() if stamp.is_file() and stamp.read_text().strip() else "unknown"
    return {"recon_all": recon_all, "freesurfer_home": str(home), "license": str(license_path), "version": version}

"""Shared fixtures: repository paths and a small cohort built once per session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def run_snakemake(workdir: Path, *args: str, configfile: Path | None = None, check: bool = True,
                  timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the repository's workflow with the venv's Snakemake, results under ``workdir``.

    The workflow reads its config and writes ``results/`` relative to the working
    directory, so tests run it in a scratch copy holding config/ and workflow/.
    """
    cmd = [str(BIN / "snakemake"), "--snakefile", str(workdir / "workflow" / "Snakefile"),
           "--directory", str(workdir), "--workflow-profile", "none", "--cores", "2", *args]
    if configfile is not None:
        cmd[1:1] = ["--configfile", str(configfile)]
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-8000:]}")
    return proc


def make_workdir(tmp: Path) -> Path:
    """A scratch copy of the workflow, config and envs, so tests never write into the repository's results/."""
    shutil.copytree(REPO / "workflow", tmp / "workflow")
    shutil.copytree(REPO / "config", tmp / "config")
    shutil.copytree(REPO / "envs", tmp / "envs")
    return tmp


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    """A 16-subject synthetic cohort at 3 mm run through the workflow up to the manifest."""
    work = make_workdir(tmp_path_factory.mktemp("tiny"))
    cfg = work / "config" / "tiny.yaml"
    cfg.write_text(
        "synthetic:\n  enabled: true\n  n_subjects: 16\n  voxel_size_mm: 3.0\n  n_variants: 300\n"
        "freesurfer:\n  mode: precomputed\nimaging:\n  roi_size: 16\nseed: 7\n"
    )
    run_snakemake(work, "results/cohort/manifest.tsv", configfile=cfg)
    return work

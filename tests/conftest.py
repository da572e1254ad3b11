"""Shared fixtures: repository paths, the config tables, the demo LLM and a small cohort, each built once."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rgenima_lib.genetics.panel import read_gene_panel
from rgenima_lib.io import read_tsv
from rgenima_lib.vocabulary import read_rois_table

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
BIN = Path(sys.executable).parent
GENE_PANEL_TSV = REPO / "config" / "gene_panel.tsv"
ROIS_TSV = REPO / "config" / "rois.tsv"

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


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from the job stats table Snakemake prints (a dry run, or before a run)."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0] if "Job stats:" in output else ""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)
            if m.group(1) != "total"}


def read_png(path: Path) -> np.ndarray:
    """The RGB pixels of a PNG file as floats in [0, 1], shape (height, width, 3)."""
    import matplotlib.image

    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG file"
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4) and pixels.dtype == np.float32, pixels.shape
    return pixels[..., :3]


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


@pytest.fixture(scope="module")
def panel():
    """``config/gene_panel.tsv`` as the genetics stage reads it (checked, chromosomes as text)."""
    return read_gene_panel(GENE_PANEL_TSV)


@pytest.fixture(scope="module")
def panel_table():
    """``config/gene_panel.tsv`` as a plain table, as the simulator and the enrichment command read it."""
    return read_tsv(GENE_PANEL_TSV)


@pytest.fixture(scope="module")
def rois():
    """``config/rois.tsv``: the 109 ROIs in token order."""
    return read_rois_table(ROIS_TSV)


@pytest.fixture(scope="session")
def demo_llm(tmp_path_factory):
    """``demo_llm(**options)``: the folder of a demo LLM built by ``build_demo_llm``, once per set of options.

    The folder is shared by every test that asks for the same options, so a test reads it and never writes
    into it. Without options: 64 wide, 2 layers, an MLP 128 wide, seed 0.
    """
    from rgenima_lib.models.demo_llm import build_demo_llm

    built: dict[tuple, Path] = {}

    def make(**options) -> Path:
        options = {"hidden_size": 64, "n_layers": 2, "intermediate_size": 128, "seed": 0, **options}
        key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
        if key not in built:
            built[key] = build_demo_llm(tmp_path_factory.mktemp("demo_llm") / "llm", **options)
        return built[key]

    return make

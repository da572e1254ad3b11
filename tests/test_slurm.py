"""The workflow on a real single-node SLURM cluster, through the repository's own profile.

Starts munged, slurmctld and slurmd on this machine (slurm/ci/start-cluster.sh; needs root and
Debian's slurm-wlm + munge, installed when missing), derives a test profile from slurm/config.yaml
(conda off: the test uses the project's venv; every job on the test's CPU partition, GPU counts 0),
runs the tiny cohort's pipeline through `snakemake --profile`, and checks that every results table
equals the one of a local run with the same config and seed.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, make_workdir, run_snakemake

pytestmark = pytest.mark.e2e

PARTITION = "rgenima_ci"
# The data stages (cohort, imaging, genetics, datasets): every job type but the model-fitting ones,
# whose CPU time would make this test run for an hour on 2 cores.
TARGETS = ["results/datasets/leakage_audit.tsv", "results/imaging/qc/imaging_qc.tsv",
           "results/imaging/roi_index.tsv", "results/genetics/qc_report.tsv"]
TINY = ("synthetic:\n  enabled: true\n  n_subjects: 16\n  voxel_size_mm: 3.0\n  n_variants: 300\n"
        "freesurfer:\n  mode: precomputed\nimaging:\n  roi_size: 16\nseed: 7\n")


def derive_test_profile(dest: Path, partition: str) -> Path:
    """slurm/config.yaml with every job on ``partition``, no GPUs, no conda, squeue for status."""
    profile = yaml.safe_load((REPO / "slurm" / "config.yaml").read_text())
    profile.pop("software-deployment-method", None)
    profile.pop("conda-prefix", None)
    profile["default-resources"].update(slurm_partition=f"'{partition}'", slurm_account="''", mem_mb=1500,
                                        runtime=30)
    for resources in profile["set-resources"].values():
        resources.update(slurm_partition=f"'{partition}'", mem_mb=3000, cpus_per_task=1, runtime=30)
        resources.pop("gpu", None)
    profile.pop("set-threads", None)
    profile.update({"jobs": 2, "slurm-status-command": "squeue", "slurm-init-seconds-before-status-checks": 1,
                    "retries": 0, "latency-wait": 5})
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return dest


def result_tables(root: Path) -> list[Path]:
    skip = {"logs", "benchmarks", "bench"}
    return sorted(p.relative_to(root) for p in (root / "results").rglob("*.tsv")
                  if not skip & set(p.relative_to(root / "results").parts))


@pytest.fixture(scope="module")
def slurm_cluster():
    if os.geteuid() != 0:
        pytest.skip("a single-node SLURM cluster needs root (munged, slurmctld, slurmd)")
    proc = subprocess.run([str(REPO / "slurm" / "ci" / "start-cluster.sh"), PARTITION], capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"could not start SLURM here: {proc.stderr[-500:]}")
    return PARTITION


def test_profile_requests_gpus_for_gpu_rules():
    profile = yaml.safe_load((REPO / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["set-resources"]["finetune"]["gpu"] == 8
    for rule in ("pretrain_encoder", "predict", "attribute"):
        assert profile["set-resources"][rule]["gpu"] == 1


def test_demo_through_slurm_matches_local_run(tmp_path, slurm_cluster):
    local = make_workdir(tmp_path / "local")
    (local / "config" / "tiny.yaml").write_text(TINY)
    run_snakemake(local, *TARGETS, configfile=local / "config" / "tiny.yaml", timeout=3000)

    cluster = make_workdir(tmp_path / "cluster")
    (cluster / "config" / "tiny.yaml").write_text(TINY)
    profile = derive_test_profile(tmp_path / "profile", slurm_cluster)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--profile", str(profile), "--configfile", str(cluster / "config" / "tiny.yaml"),
         "--directory", str(cluster), "--snakefile", str(cluster / "workflow" / "Snakefile"), *TARGETS],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert "Submitted job" in proc.stdout or "SLURM run ID" in proc.stdout
    squeue = subprocess.run(["squeue", "--states=all", "--noheader", "-o", "%i %j %T"], capture_output=True,
                            text=True).stdout
    assert "COMPLETED" in squeue

    tables = result_tables(local)
    assert tables == result_tables(cluster)
    assert len(tables) > 10
    differ = [str(t) for t in tables if not filecmp.cmp(local / t, cluster / t, shallow=False)]
    assert differ == []
    shutil.rmtree(cluster / ".snakemake", ignore_errors=True)

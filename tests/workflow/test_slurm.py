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
import signal
import subprocess
import time
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
                            text=True, timeout=60).stdout
    assert "COMPLETED" in squeue

    tables = result_tables(local)
    assert tables == result_tables(cluster)
    assert len(tables) > 10
    differ = [str(t) for t in tables if not filecmp.cmp(local / t, cluster / t, shallow=False)]
    assert differ == []
    shutil.rmtree(cluster / ".snakemake", ignore_errors=True)


# The whole pipeline (`all`: encoders, baselines, both demo LLMs, evaluation, attribution, figures) on a
# 24-subject cohort: the demo's settings at a size whose every job takes seconds.
FULL_TINY = {
    "seed": 7,
    "synthetic": {"n_subjects": 24, "voxel_size_mm": 3.0, "n_variants": 300},
    "imaging": {"roi_size": 16, "wholebrain": {"shape": [32, 32, 32]}},
    "encoders": {"rit": {"train": {"epochs": 3}}, "med3d": {"train": {"epochs": 2}}},
    "evaluate": {"n_bootstrap": 20},
    "attribution": {"n_bootstrap": 50, "n_permutations": 1000, "gene_orders": 1},
}


def write_full_tiny_config(work: Path) -> Path:
    """config/demo.yaml with :data:`FULL_TINY` merged over it."""
    def merge(base: dict, extra: dict) -> dict:
        for key, value in extra.items():
            base[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
        return base

    cfg = merge(yaml.safe_load((work / "config" / "demo.yaml").read_text()), FULL_TINY)
    path = work / "config" / "full_tiny.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def comparable_tables(root: Path) -> list[Path]:
    """Every results TSV but the LLM training histories, whose `seconds` column is wall time."""
    return [t for t in result_tables(root) if t.name != "history.tsv"]


@pytest.mark.slow
def test_full_pipeline_through_slurm_killed_and_rerun_matches_local_run(tmp_path, slurm_cluster):
    """`all` through the profile, the Snakemake process killed mid-way, its jobs cancelled, rerun: same tables."""
    local = make_workdir(tmp_path / "local")
    run_snakemake(local, "all", configfile=write_full_tiny_config(local), timeout=3600)

    cluster = make_workdir(tmp_path / "cluster")
    configfile = write_full_tiny_config(cluster)
    profile = derive_test_profile(tmp_path / "profile", slurm_cluster)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    cmd = [str(BIN / "snakemake"), "--profile", str(profile), "--configfile", str(configfile),
           "--directory", str(cluster), "--snakefile", str(cluster / "workflow" / "Snakefile")]
    first_log = tmp_path / "first_run.log"
    # Kill when the first fine-tuning jobs are on the cluster: the head node "dies" with jobs in flight.
    with first_log.open("w") as out:
        head = subprocess.Popen([*cmd, "all"], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 2400
        while not list((cluster / "results" / "llm").glob("*/*/fold*/history.tsv")):
            assert head.poll() is None, first_log.read_text()[-6000:]
            assert time.monotonic() < deadline, "no fine-tuning job finished within 40 min"
            time.sleep(2)
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=120)
    # What a user does after losing the head node: cancel the orphaned jobs, remove the stale lock, rerun.
    subprocess.run(["scancel", "--partition", slurm_cluster], check=True, timeout=60)
    while subprocess.run(["squeue", "--noheader", "--partition", slurm_cluster, "--states=PENDING,RUNNING"],
                         capture_output=True, text=True, timeout=60).stdout.strip():
        time.sleep(1)
    # A dry run takes no lock; a real one is refused until --unlock.
    locked = subprocess.run([*cmd, "all"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            timeout=600)
    assert locked.returncode != 0 and "LockException" in locked.stdout and "--unlock" in locked.stdout
    subprocess.run([*cmd, "--unlock"], check=True, capture_output=True, env=env, timeout=600)
    rerun = subprocess.run([*cmd, "all"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                           timeout=3600)
    assert rerun.returncode == 0, rerun.stdout[-6000:]
    (tmp_path / "rerun.log").write_text(rerun.stdout)
    # the rerun picks up where the killed run stopped: fine-tuning onwards, not the data stages
    assert "rule finetune:" in rerun.stdout and "rule synth_cohort:" not in rerun.stdout

    tables = comparable_tables(local)
    assert tables == comparable_tables(cluster)
    assert any(t.parts[:2] == ("results", "tables") for t in tables)
    assert any(t.name == "predictions.tsv" and "llm" in t.parts for t in tables)
    differ = [str(t) for t in tables if not filecmp.cmp(local / t, cluster / t, shallow=False)]
    assert differ == []
    for figure in ("figure1.png", "figure2.png"):
        assert list((cluster / "results" / "figures").rglob(figure)), figure

# Imaging (paper 4.2.1, 4.4.1): FreeSurfer recon-all, ROI patches (109 x S^3), whole-brain input, imaging QC.

from rgenima_lib.cohort.layout import bids_t1w_path
from rgenima_lib.imaging.freesurfer import recon_all_command
from rgenima_lib.imaging.layout import freesurfer_file, freesurfer_job_inputs, imaging_subjects

FS_MODE = config["freesurfer"]["mode"]
IMG = config["imaging"]
IMAGING = "results/imaging"

if FS_MODE == "precomputed":
    if not DATA.get("freesurfer_subjects_dir"):
        raise WorkflowError(
            "config: freesurfer.mode is 'precomputed' but data.freesurfer_subjects_dir is not set. Point it at "
            "your SUBJECTS_DIR (one folder per PTID), or set freesurfer.mode: recon_all with data.bids_dir."
        )
    SUBJECTS_DIR = DATA["freesurfer_subjects_dir"]
else:
    if not DATA.get("bids_dir"):
        raise WorkflowError(
            "config: freesurfer.mode is 'recon_all' but data.bids_dir (the T1 images) is not set. Set it, or use "
            "freesurfer.mode: precomputed with data.freesurfer_subjects_dir."
        )
    SUBJECTS_DIR = config["freesurfer"]["subjects_dir"]

ALL_TARGETS += [
    f"{IMAGING}/roi_index.tsv",
    f"{IMAGING}/wholebrain_index.tsv",
    f"{IMAGING}/qc/imaging_qc.tsv",
    f"{IMAGING}/qc/roi_montage.png",
]


if FS_MODE == "recon_all":

    localrules:
        freesurfer_check,

    rule freesurfer_check:
        """Before any recon-all job: recon-all on PATH, FREESURFER_HOME, license (FS_LICENSE, then $FREESURFER_HOME/license.txt)."""
        output:
            f"{IMAGING}/freesurfer_check.json",
        log:
            "results/logs/imaging/freesurfer_check.log",
        benchmark:
            "results/benchmarks/imaging/freesurfer_check.tsv"
        conda:
            conda_env("imaging")
        shell:
            # On failure the message is also printed, not only logged: it is the one users must read.
            "rgenima freesurfer-check --output {output:q} > {log:q} 2>&1 || {{ cat {log:q} >&2; exit 1; }}"

    rule recon_all:
        """FreeSurfer recon-all per subject (paper 4.4.1: FreeSurfer 6.0, Desikan-Killiany + aseg)."""
        input:
            t1=lambda w: bids_t1w_path(Path(DATA["bids_dir"]), w.subject),
            # ancient: re-checking FreeSurfer later must not make every finished subject out of date.
            check=ancient(f"{IMAGING}/freesurfer_check.json"),
        output:
            subject_dir=protected(directory(f"{SUBJECTS_DIR}/{{subject}}")),
        wildcard_constraints:
            subject=r"[^/]+",
        params:
            # recon-all -all -s {subject} -i {T1} -sd {SUBJECTS_DIR} [extra_args], paths made absolute
            # because recon-all changes directory while it runs.
            command=lambda w, input: recon_all_command(
                w.subject, input.t1, SUBJECTS_DIR, config["freesurfer"]["extra_args"]
            ),
        threads: config["freesurfer"]["threads"]
        resources:
            mem_mb=config["freesurfer"]["mem_mb"],
            runtime=config["freesurfer"]["runtime_min"],
        log:
            "results/logs/imaging/recon_all/{subject}.log",
        benchmark:
            "results/benchmarks/imaging/recon_all/{subject}.tsv"
        shell:
            # A half-made subject folder (killed job) would make recon-all -i refuse or mix runs: start clean.
            "rm -rf {output.subject_dir:q} && {params.command:q} > {log:q} 2>&1"


rule roi_extract:
    """109 ROI patches of one subject, cropped and resampled to S^3 (paper 4.2.1)."""
    input:
        unpack(
            lambda w: freesurfer_job_inputs(
                SUBJECTS_DIR, w.subject, FS_MODE, ["aparc+aseg.mgz", IMG["intensity_image"]]
            )
        ),
        rois=IMG["rois_table"],
    output:
        npy=f"{IMAGING}/rois/{{subject}}.npy",
        info=f"{IMAGING}/rois/{{subject}}.json",
    wildcard_constraints:
        subject=r"[^/]+",
    params:
        aparc_aseg=lambda w: freesurfer_file(SUBJECTS_DIR, w.subject, "aparc+aseg.mgz"),
        intensity=lambda w: freesurfer_file(SUBJECTS_DIR, w.subject, IMG["intensity_image"]),
        size=IMG["roi_size"],
        n_rois=IMG["n_rois"],
        margin=IMG["crop_margin"],
        clip=IMG["clip_percentiles"],
        grid=IMG["grid_mismatch"],
    resources:
        mem_mb=2000,
    log:
        "results/logs/imaging/roi_extract/{subject}.log",
    benchmark:
        "results/benchmarks/imaging/roi_extract/{subject}.tsv"
    conda:
        conda_env("imaging")
    shell:
        "rgenima roi-extract --subject {wildcards.subject:q} --aparc-aseg {params.aparc_aseg:q} "
        "--intensity {params.intensity:q} --rois {input.rois:q} --roi-size {params.size:q} --n-rois {params.n_rois:q} "
        "--margin {params.margin:q} --clip {params.clip:q} --grid-mismatch {params.grid:q} "
        "--output {output.npy:q} --info {output.info:q} > {log:q} 2>&1"


rule wholebrain:
    """Whole-brain input of the Med3D baseline: skull-stripped, cropped, clipped, resized (paper 4.2.1, eq. 8)."""
    input:
        unpack(lambda w: freesurfer_job_inputs(SUBJECTS_DIR, w.subject, FS_MODE, [IMG["wholebrain"]["image"]])),
    output:
        f"{IMAGING}/wholebrain/{{subject}}.npy",
    wildcard_constraints:
        subject=r"[^/]+",
    params:
        brain=lambda w: freesurfer_file(SUBJECTS_DIR, w.subject, IMG["wholebrain"]["image"]),
        shape=IMG["wholebrain"]["shape"],
        clip=IMG["clip_percentiles"],
    resources:
        mem_mb=1000,
    log:
        "results/logs/imaging/wholebrain/{subject}.log",
    benchmark:
        "results/benchmarks/imaging/wholebrain/{subject}.tsv"
    conda:
        conda_env("imaging")
    shell:
        "rgenima wholebrain --subject {wildcards.subject:q} --brain {params.brain:q} --shape {params.shape:q} "
        "--clip {params.clip:q} --output {output:q} > {log:q} 2>&1"


rule roi_index:
    """Every imaged subject's ROI array and sidecar, and the voxel counts per ROI (aseg-stats-like)."""
    input:
        manifest=lambda w: checkpoints.manifest.get().output.manifest,
        rois=IMG["rois_table"],
        npys=lambda w: expand(
            f"{IMAGING}/rois/{{subject}}.npy",
            subject=imaging_subjects(checkpoints.manifest.get().output.manifest, FS_MODE),
        ),
        infos=lambda w: expand(
            f"{IMAGING}/rois/{{subject}}.json",
            subject=imaging_subjects(checkpoints.manifest.get().output.manifest, FS_MODE),
        ),
    output:
        index=report(f"{IMAGING}/roi_index.tsv", category="Imaging", caption="../report/roi_index.rst"),
        counts=report(
            f"{IMAGING}/qc/roi_voxel_counts.tsv", category="Imaging", caption="../report/roi_voxel_counts.rst"
        ),
    log:
        "results/logs/imaging/roi_index.log",
    benchmark:
        "results/benchmarks/imaging/roi_index.tsv"
    conda:
        conda_env("imaging")
    shell:
        "rgenima roi-index --manifest {input.manifest:q} --rois {input.rois:q} --infos {input.infos:q} "
        "--output {output.index:q} --voxel-counts {output.counts:q} > {log:q} 2>&1"


rule wholebrain_index:
    """Every imaged subject's whole-brain array (Med3D input)."""
    input:
        manifest=lambda w: checkpoints.manifest.get().output.manifest,
        volumes=lambda w: expand(
            f"{IMAGING}/wholebrain/{{subject}}.npy",
            subject=imaging_subjects(checkpoints.manifest.get().output.manifest, FS_MODE),
        ),
    output:
        report(f"{IMAGING}/wholebrain_index.tsv", category="Imaging", caption="../report/wholebrain_index.rst"),
    log:
        "results/logs/imaging/wholebrain_index.log",
    benchmark:
        "results/benchmarks/imaging/wholebrain_index.tsv"
    conda:
        conda_env("imaging")
    shell:
        "rgenima wholebrain-index --manifest {input.manifest:q} --volumes {input.volumes:q} --output {output:q} > {log:q} 2>&1"


rule imaging_qc:
    """Flags subjects with many missing / implausibly small ROIs; mean voxels per ROI and stage."""
    input:
        counts=f"{IMAGING}/qc/roi_voxel_counts.tsv",
        manifest="results/cohort/manifest.tsv",
        rois=IMG["rois_table"],
        truth=[str(Path(config["synthetic"]["out_dir"]) / "truth.json")] if config["synthetic"]["enabled"] else [],
    output:
        qc=report(f"{IMAGING}/qc/imaging_qc.tsv", category="Imaging", caption="../report/imaging_qc.rst"),
        by_stage=report(
            f"{IMAGING}/qc/roi_voxels_by_stage.tsv", category="Imaging", caption="../report/roi_voxels_by_stage.rst"
        ),
        planted=(
            [report(f"{IMAGING}/qc/planted_atrophy.tsv", category="Imaging", caption="../report/planted_atrophy.rst")]
            if config["synthetic"]["enabled"]
            else []
        ),
    params:
        small_fraction=IMG["qc"]["small_fraction"],
        max_missing=IMG["qc"]["max_missing"],
        max_small=IMG["qc"]["max_small"],
        truth=lambda w, input: ["--truth", input.truth, "--planted-check", f"{IMAGING}/qc/planted_atrophy.tsv"]
        if config["synthetic"]["enabled"]
        else [],
    log:
        "results/logs/imaging/imaging_qc.log",
    benchmark:
        "results/benchmarks/imaging/imaging_qc.tsv"
    conda:
        conda_env("imaging")
    shell:
        "rgenima imaging-qc --voxel-counts {input.counts:q} --manifest {input.manifest:q} --rois {input.rois:q} "
        "--small-fraction {params.small_fraction:q} --max-missing {params.max_missing:q} "
        "--max-small {params.max_small:q} --output {output.qc:q} --by-stage {output.by_stage:q} {params.truth:q} "
        "> {log:q} 2>&1"


rule roi_montage:
    """Montage of every ROI patch of a few subjects, for checking crops by eye."""
    input:
        index=f"{IMAGING}/roi_index.tsv",
    output:
        report(f"{IMAGING}/qc/roi_montage.png", category="Imaging", caption="../report/roi_montage.rst"),
    params:
        n=IMG["qc"]["montage_subjects"],
    log:
        "results/logs/imaging/roi_montage.log",
    benchmark:
        "results/benchmarks/imaging/roi_montage.tsv"
    conda:
        conda_env("imaging")
    shell:
        "rgenima roi-montage --index {input.index:q} --n-subjects {params.n:q} --output {output:q} > {log:q} 2>&1"

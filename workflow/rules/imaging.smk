# Imaging (paper 4.2.1, 4.4.1): FreeSurfer recon-all, ROI patches (109 x S^3), whole-brain input, imaging QC.
# Helpers (imaged_subjects, freesurfer_file, freesurfer_job_inputs, recon_all_command): rules/common.smk.


if FS_MODE == "recon_all":

    localrules:
        freesurfer_check,

    rule freesurfer_check:
        """Before any recon-all job: recon-all on PATH, FREESURFER_HOME, license (FS_LICENSE, then $FREESURFER_HOME/license.txt)."""
        output:
            R("freesurfer_check"),
        log:
            log_path("imaging", "freesurfer_check"),
        benchmark:
            benchmark_path("imaging", "freesurfer_check")
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
            check=ancient(R("freesurfer_check")),
        output:
            subject_dir=protected(directory(f"{SUBJECTS_DIR}/{{subject}}")),
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
            log_path("imaging", "recon_all/{subject}"),
        benchmark:
            benchmark_path("imaging", "recon_all/{subject}")
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
        npy=R("roi_patches"),
        info=R("roi_sidecar"),
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
        log_path("imaging", "roi_extract/{subject}"),
    benchmark:
        benchmark_path("imaging", "roi_extract/{subject}")
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
        R("wholebrain"),
    params:
        brain=lambda w: freesurfer_file(SUBJECTS_DIR, w.subject, IMG["wholebrain"]["image"]),
        shape=IMG["wholebrain"]["shape"],
        clip=IMG["clip_percentiles"],
    resources:
        mem_mb=1000,
    log:
        log_path("imaging", "wholebrain/{subject}"),
    benchmark:
        benchmark_path("imaging", "wholebrain/{subject}")
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
        npys=lambda w: [R("roi_patches", subject=s) for s in imaged_subjects(w)],
        infos=lambda w: [R("roi_sidecar", subject=s) for s in imaged_subjects(w)],
    output:
        index=report(R("roi_index"), category="Imaging", caption="../report/roi_index.rst"),
        counts=report(R("roi_voxel_counts"), category="Imaging", caption="../report/roi_voxel_counts.rst"),
    log:
        log_path("imaging", "roi_index"),
    benchmark:
        benchmark_path("imaging", "roi_index")
    conda:
        conda_env("imaging")
    shell:
        "rgenima roi-index --manifest {input.manifest:q} --rois {input.rois:q} --infos {input.infos:q} "
        "--output {output.index:q} --voxel-counts {output.counts:q} > {log:q} 2>&1"


rule wholebrain_index:
    """Every imaged subject's whole-brain array (Med3D input)."""
    input:
        manifest=lambda w: checkpoints.manifest.get().output.manifest,
        volumes=lambda w: [R("wholebrain", subject=s) for s in imaged_subjects(w)],
    output:
        report(R("wholebrain_index"), category="Imaging", caption="../report/wholebrain_index.rst"),
    log:
        log_path("imaging", "wholebrain_index"),
    benchmark:
        benchmark_path("imaging", "wholebrain_index")
    conda:
        conda_env("imaging")
    shell:
        "rgenima wholebrain-index --manifest {input.manifest:q} --volumes {input.volumes:q} --output {output:q} "
        "> {log:q} 2>&1"


rule imaging_qc:
    """Flags subjects with many missing / implausibly small ROIs; mean voxels per ROI and stage."""
    input:
        counts=R("roi_voxel_counts"),
        manifest=R("manifest"),
        rois=IMG["rois_table"],
        truth=[TRUTH] if SYNTHETIC else [],
    output:
        qc=report(R("imaging_qc"), category="Imaging", caption="../report/imaging_qc.rst"),
        by_stage=report(R("roi_voxels_by_stage"), category="Imaging", caption="../report/roi_voxels_by_stage.rst"),
        planted=(
            [report(R("planted_atrophy"), category="Imaging", caption="../report/planted_atrophy.rst")]
            if SYNTHETIC
            else []
        ),
    params:
        small_fraction=IMG["qc"]["small_fraction"],
        max_missing=IMG["qc"]["max_missing"],
        max_small=IMG["qc"]["max_small"],
        truth=lambda w, input: ["--truth", input.truth, "--planted-check", R("planted_atrophy")] if SYNTHETIC else [],
    log:
        log_path("imaging", "imaging_qc"),
    benchmark:
        benchmark_path("imaging", "imaging_qc")
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
        index=R("roi_index"),
    output:
        report(R("roi_montage"), category="Imaging", caption="../report/roi_montage.rst"),
    params:
        n=IMG["qc"]["montage_subjects"],
    log:
        log_path("imaging", "roi_montage"),
    benchmark:
        benchmark_path("imaging", "roi_montage")
    conda:
        conda_env("imaging")
    shell:
        "rgenima roi-montage --index {input.index:q} --n-subjects {params.n:q} --output {output:q} > {log:q} 2>&1"

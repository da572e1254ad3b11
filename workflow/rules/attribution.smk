# Interpretability (paper 2.2-2.4, 4.3; docs/design.md, "Attribution"): streaming attention rollout of every test subject into one
# attention dump per model and fold, then bootstrap stability of genes, stage ROIs and ROI-gene pairs, the
# permutation test of stage ROIs against NC, the GWAS enrichment test and, on the synthetic cohort, the
# planted-truth recovery. Everything after `attribute` reads the dumps only.
# Helpers (ATTR, attribution_dumps, bootstrap_args): rules/common.smk.


rule attribute:
    """Attribution (attribution.method; rollouts: SDPA outputs, attention rebuilt in row blocks) of one fold's test subjects -> dump.

    An R-GenIMA reads its RiT tokens; a gene-only LLM (attribution.genes_from: gene_only) has none, and its dump
    holds genes only. The gradient methods also read the fold's RiT and the ROI patches.
    """
    input:
        unpack(embeddings_input),
        unpack(attribution_encoder_input),
        checkpoint=R("llm_checkpoint"),
        samples=R("samples"),
        imputed=R("imputed"),
        snps=R("snps"),
        gene_panel=GEN["gene_panel"],
        rois=IMG["rois_table"],
    output:
        dump=R("attention_dump"),
        summary=R("attention_summary"),
    params:
        method=attribution_method,
        ig_steps=ATTR["ig_steps"],
        explain=ATTR["explain"],
        sink=ATTR["sink"],
        answer_rows=ATTR["answer_rows"],
        batch_size=ATTR["batch_size"],
        gene_orders=ATTR["gene_orders"],
        bf16=["--bf16"] if config["train"]["bf16"] else [],
        seed=config["seed"],
        limit=["--limit", ATTR["limit"]] if ATTR["limit"] else [],
        snp_separator=GEN["snp_separator"],
        snp_packing=GEN["snp_packing"],
        embeddings=embeddings_arg,
        rit=attribution_encoder_arg,
    threads: 2
    log:
        log_path("attribution", "attribute_{model}_{dconfig}_fold{k}"),
    benchmark:
        benchmark_path("attribution", "attribute_{model}_{dconfig}_fold{k}")
    conda:
        conda_env("analysis")
    shell:
        "rgenima attribute --checkpoint {input.checkpoint:q} --samples {input.samples:q} "
        "--imputed {input.imputed:q} --snps {input.snps:q} {params.embeddings:q} {params.rit:q} "
        "--snp-separator {params.snp_separator:q} --snp-packing {params.snp_packing:q} "
        "--gene-panel {input.gene_panel:q} --rois {input.rois:q} "
        "--fold {wildcards.k:q} --model {wildcards.model:q} --method {params.method:q} "
        "--ig-steps {params.ig_steps:q} --explain {params.explain:q} --sink {params.sink:q} "
        "--answer-rows {params.answer_rows:q} "
        "--gene-orders {params.gene_orders:q} "
        "--seed {params.seed:q} --batch-size {params.batch_size:q} {params.bf16:q} {params.limit:q} "
        "--threads {threads:q} --output {output.dump:q} --summary {output.summary:q} > {log:q} 2>&1"


use rule attribute as attribute_method with:
    output:
        dump=R("method_dump"),
        summary=R("method_summary"),
    log:
        log_path("attribution", "attribute_{model}_{dconfig}_{method}_fold{k}"),
    benchmark:
        benchmark_path("attribution", "attribute_{model}_{dconfig}_{method}_fold{k}")


rule faithfulness:
    """Deletion test of every attribution method against random deletion, on the first fold's first test subjects."""
    input:
        checkpoint=R("llm_checkpoint", k=FOLDS[0]),
        samples=R("samples", k=FOLDS[0]),
        imputed=R("imputed", k=FOLDS[0]),
        snps=R("snps"),
        embeddings=R("embeddings", encoder="rit", k=FOLDS[0]),
        gene_panel=GEN["gene_panel"],
        rois=IMG["rois_table"],
        rit_checkpoint=R("encoder_checkpoint", encoder="rit", k=FOLDS[0]),
        roi_index=R("roi_index"),
    output:
        table=R("faithfulness"),
        markdown=report(R("faithfulness_md"), category="Interpretability", subcategory="{model} ({dconfig})",
                        caption="../report/attribution_faithfulness.rst"),
    params:
        methods=ATTR["faithfulness_methods"],
        subjects=ATTR["faithfulness_subjects"],
        ks=ATTR["faithfulness_k"],
        n_random=ATTR["faithfulness_random"],
        ig_steps=ATTR["ig_steps"],
        seed=config["seed"],
        snp_separator=GEN["snp_separator"],
        snp_packing=GEN["snp_packing"],
    threads: 2
    log:
        log_path("attribution", "faithfulness_{model}_{dconfig}"),
    benchmark:
        benchmark_path("attribution", "faithfulness_{model}_{dconfig}")
    conda:
        conda_env("analysis")
    shell:
        "rgenima faithfulness --checkpoint {input.checkpoint:q} --samples {input.samples:q} "
        "--imputed {input.imputed:q} --snps {input.snps:q} --embeddings {input.embeddings:q} "
        "--gene-panel {input.gene_panel:q} --rois {input.rois:q} --rit-checkpoint {input.rit_checkpoint:q} "
        "--roi-index {input.roi_index:q} --methods {params.methods:q} --subjects {params.subjects:q} "
        "--ks {params.ks:q} --n-random {params.n_random:q} --ig-steps {params.ig_steps:q} --seed {params.seed:q} "
        "--snp-separator {params.snp_separator:q} --snp-packing {params.snp_packing:q} --threads {threads:q} "
        "--output {output.table:q} "
        "--markdown {output.markdown:q} > {log:q} 2>&1"


rule bootstrap_genes:
    """Stable genes (paper 2.2): top-k by mean importance in more than half of B subject resamples."""
    input:
        dumps=attribution_dumps,
        gene_panel=GEN["gene_panel"],
    output:
        genes=report(R("stable_genes"), category="Interpretability", subcategory="{model} ({dconfig})",
                     caption="../report/attribution_genes.rst"),
    params:
        common=bootstrap_args(),
        top_k=ATTR["top_genes"],
        threshold=ATTR["stable_frequency"],
        score=ATTR["gene_score"],
    log:
        log_path("attribution", "bootstrap_genes_{model}_{dconfig}"),
    benchmark:
        benchmark_path("attribution", "bootstrap_genes_{model}_{dconfig}")
    conda:
        conda_env("analysis")
    shell:
        "rgenima bootstrap-genes --dumps {input.dumps:q} {params.common:q} --top-k {params.top_k:q} "
        "--threshold {params.threshold:q} --score {params.score:q} --gene-panel {input.gene_panel:q} "
        "--output {output.genes:q} > {log:q} 2>&1"


rule bootstrap_rois:
    """Stable ROIs per stage (paper 2.3) beside a label-permutation test against NC with BH FDR."""
    input:
        dumps=attribution_dumps,
    output:
        rois=report(R("stable_rois"), category="Interpretability", subcategory="{model} ({dconfig})",
                    caption="../report/attribution_rois.rst"),
    params:
        common=bootstrap_args(),
        top_k=ATTR["top_rois"],
        threshold=ATTR["stable_frequency"],
        score=ATTR["roi_score"],
        n_perm=ATTR["n_permutations"],
        alternative=ATTR["permutation_alternative"],
        alpha=ATTR["fdr_alpha"],
    log:
        log_path("attribution", "bootstrap_rois_{model}_{dconfig}"),
    benchmark:
        benchmark_path("attribution", "bootstrap_rois_{model}_{dconfig}")
    conda:
        conda_env("analysis")
    shell:
        "rgenima bootstrap-rois --dumps {input.dumps:q} {params.common:q} --top-k {params.top_k:q} "
        "--threshold {params.threshold:q} --score {params.score:q} --n-perm {params.n_perm:q} "
        "--alternative {params.alternative:q} --alpha {params.alpha:q} --output {output.rois:q} > {log:q} 2>&1"


rule bootstrap_roi_gene:
    """ROI-gene pairs per stage (paper 4.3, eqs. 13-17): bootstrap mean, 95% CI, stability = mean / CI width."""
    input:
        dumps=attribution_dumps,
        rois=rules.bootstrap_rois.output.rois,
    output:
        pairs=R("roi_gene"),
        top=report(R("roi_gene_top"), category="Interpretability", subcategory="{model} ({dconfig})",
                   caption="../report/attribution_roi_gene.rst"),
    params:
        common=bootstrap_args(),
        n_top=ATTR["top_pairs"],
    log:
        log_path("attribution", "bootstrap_roi_gene_{model}_{dconfig}"),
    benchmark:
        benchmark_path("attribution", "bootstrap_roi_gene_{model}_{dconfig}")
    conda:
        conda_env("analysis")
    shell:
        "rgenima bootstrap-roi-gene --dumps {input.dumps:q} {params.common:q} --rois-table {input.rois:q} "
        "--top {output.top:q} --n-top {params.n_top:q} --output {output.pairs:q} > {log:q} 2>&1"


rule attribution_select:
    """Genes and stage ROIs chosen by significance (BH) and by stability selection, beside the fixed top-k."""
    input:
        dumps=attribution_dumps,
    output:
        table=R("selection"),
    params:
        methods=ATTR["selection"],
        gene_score=ATTR["gene_score"],
        roi_score=ATTR["roi_score"],
        alpha=ATTR["fdr_alpha"],
        n_subsamples=ATTR["stability_subsamples"],
        threshold=ATTR["stability_threshold"],
        expected_false=ATTR["stability_expected_false"],
        seed=config["seed"],
    log:
        log_path("attribution", "select_{model}_{dconfig}"),
    benchmark:
        benchmark_path("attribution", "select_{model}_{dconfig}")
    conda:
        conda_env("analysis")
    shell:
        "rgenima attribution-select --dumps {input.dumps:q} --methods {params.methods:q} "
        "--gene-score {params.gene_score:q} --roi-score {params.roi_score:q} --alpha {params.alpha:q} "
        "--n-subsamples {params.n_subsamples:q} --stability-threshold {params.threshold:q} "
        "--expected-false {params.expected_false:q} --seed {params.seed:q} --output {output.table:q} > {log:q} 2>&1"


rule pair_association:
    """ROI-gene pairs as a data association: within each stage, genotype against ROI volume, BH over the pairs."""
    input:
        genotypes=R("genotypes"),
        snps=R("snps"),
        volumes=R("roi_voxel_counts"),
        manifest=R("manifest"),
        gene_panel=GEN["gene_panel"],
        rois=IMG["rois_table"],
    output:
        pairs=R("pair_association"),
        top=report(R("pair_association_top"), category="Interpretability", subcategory="ROI-gene association",
                   caption="../report/attribution_pair_association.rst"),
    params:
        covariates=ATTR["pair_covariates"],
        gene_test=ATTR["pair_gene_test"],
        min_minor_count=ATTR["pair_min_minor_count"],
        alpha=ATTR["fdr_alpha"],
        n_top=ATTR["top_pairs"],
    log:
        log_path("attribution", "pair_association"),
    benchmark:
        benchmark_path("attribution", "pair_association")
    conda:
        conda_env("analysis")
    shell:
        "rgenima pair-association --genotypes {input.genotypes:q} --snps {input.snps:q} --volumes {input.volumes:q} "
        "--manifest {input.manifest:q} --gene-panel {input.gene_panel:q} --rois {input.rois:q} "
        "--covariates {params.covariates:q} --gene-test {params.gene_test:q} "
        "--min-minor-count {params.min_minor_count:q} --alpha {params.alpha:q} --output {output.pairs:q} "
        "--top {output.top:q} --n-top {params.n_top:q} > {log:q} 2>&1"


rule null_control:
    """False-positive table: random-init models on real test prompts, labels permuted, both scorings side by side."""
    input:
        samples=R("samples", dconfig=ATTR_DCONFIG, k=0),
        imputed=R("imputed", k=0),
        snps=R("snps"),
        embeddings=R("embeddings", encoder="rit", k=0),
        gene_panel=GEN["gene_panel"],
        rois=IMG["rois_table"],
    output:
        rows=R("null_control_rows"),
        table=R("null_control"),
        markdown=report(R("null_control_md"), category="Interpretability", subcategory="Null control",
                        caption="../report/attribution_null_control.rst"),
    params:
        n_seeds=ATTR["null_control"]["n_seeds"],
        gene_orders=ATTR["null_control"]["gene_orders"],
        n_perm=ATTR["null_control"]["n_permutations"],
        limit=["--limit", ATTR["null_control"]["limit"]] if ATTR["null_control"]["limit"] else [],
        n_boot=ATTR["n_bootstrap"],
        top_genes=ATTR["top_genes"],
        top_rois=ATTR["top_rois"],
        threshold=ATTR["stable_frequency"],
        alpha=ATTR["fdr_alpha"],
        seed=config["seed"],
        snp_separator=GEN["snp_separator"],
        snp_packing=GEN["snp_packing"],
    threads: 2
    log:
        log_path("attribution", "null_control"),
    benchmark:
        benchmark_path("attribution", "null_control")
    conda:
        conda_env("analysis")
    shell:
        "rgenima null-control --samples {input.samples:q} --imputed {input.imputed:q} --snps {input.snps:q} "
        "--embeddings {input.embeddings:q} --gene-panel {input.gene_panel:q} --rois {input.rois:q} "
        "--snp-separator {params.snp_separator:q} --snp-packing {params.snp_packing:q} "
        "--n-seeds {params.n_seeds:q} --seed {params.seed:q} --gene-orders {params.gene_orders:q} {params.limit:q} "
        "--n-boot {params.n_boot:q} --n-perm {params.n_perm:q} --top-genes {params.top_genes:q} "
        "--top-rois {params.top_rois:q} --threshold {params.threshold:q} --alpha {params.alpha:q} "
        "--threads {threads:q} --output {output.rows:q} --summary {output.table:q} "
        "--markdown {output.markdown:q} > {log:q} 2>&1"


rule power:
    """Recovery of the planted genes and ROIs against N and effect size (simulated cohorts, a linear model)."""
    input:
        gene_panel=GEN["gene_panel"],
        rois=IMG["rois_table"],
    output:
        table=R("power"),
        markdown=R("power_md"),
        png=report(R("power_figure", ext="png"), category="Interpretability", subcategory="Power",
                   caption="../report/attribution_power.rst"),
        pdf=R("power_figure", ext="pdf"),
    params:
        synthetic=settings_json(config["synthetic"]),
        sizes=ATTR["power"]["sizes"],
        effects=ATTR["power"]["effects"],
        replicates=ATTR["power"]["replicates"],
        n_variants=ATTR["power"]["n_variants"],
        gene_score=ATTR["gene_score"],
        n_boot=ATTR["n_bootstrap"],
        top_genes=ATTR["top_genes"],
        top_rois=ATTR["top_rois"],
        alpha=ATTR["fdr_alpha"],
        seed=config["seed"],
    log:
        log_path("attribution", "power"),
    benchmark:
        benchmark_path("attribution", "power")
    conda:
        conda_env("analysis")
    shell:
        "rgenima power --gene-panel {input.gene_panel:q} --rois {input.rois:q} --synthetic {params.synthetic:q} "
        "--sizes {params.sizes:q} --effects {params.effects:q} --replicates {params.replicates:q} "
        "--n-variants {params.n_variants:q} --gene-score {params.gene_score:q} --n-boot {params.n_boot:q} "
        "--top-genes {params.top_genes:q} --top-rois {params.top_rois:q} --alpha {params.alpha:q} "
        "--seed {params.seed:q} --output {output.table:q} --markdown {output.markdown:q} --png {output.png:q} "
        "--pdf {output.pdf:q} > {log:q} 2>&1"


rule enrichment:
    """One-sided Fisher exact test of the stable genes against the panel's AD-GWAS genes (paper 2.2)."""
    input:
        genes=rules.bootstrap_genes.output.genes,
        gene_panel=GEN["gene_panel"],
    output:
        table=R("enrichment"),
        markdown=report(R("enrichment_md"), category="Interpretability", subcategory="{model} ({dconfig})",
                        caption="../report/attribution_enrichment.rst"),
    log:
        log_path("attribution", "enrichment_{model}_{dconfig}"),
    benchmark:
        benchmark_path("attribution", "enrichment_{model}_{dconfig}")
    conda:
        conda_env("analysis")
    shell:
        "rgenima enrichment --genes {input.genes:q} --gene-panel {input.gene_panel:q} --output {output.table:q} "
        "--markdown {output.markdown:q} > {log:q} 2>&1"


if SYNTHETIC:

    rule attribution_recovery:
        """Planted-truth recovery: causal genes, stage ROIs and ROI-gene pairs found again, and the cohort's leak check."""
        input:
            truth=TRUTH,
            # attribution.genes_from: the genes of this model, or of its backbone's gene-only LLM
            genes=gene_recovery_input("stable_genes"),
            gene_selections=gene_recovery_input("selection"),
            rois=rules.bootstrap_rois.output.rois,
            pairs=rules.bootstrap_roi_gene.output.pairs,
            selections=rules.attribution_select.output.table,
            associations=rules.pair_association.output.pairs,
            dumps=attribution_dumps,
            gene_dumps=gene_attribution_dumps,
            # the leak check: never-planted ROI volumes must not tell a stage from NC
            voxel_counts=R("roi_voxel_counts"),
            manifest=R("manifest"),
        output:
            table=R("recovery"),
            markdown=report(R("recovery_md"), category="Interpretability", subcategory="{model} ({dconfig})",
                            caption="../report/attribution_recovery.rst"),
        params:
            top_n=ATTR["top_pairs"],
            top_genes=ATTR["top_genes"],
            top_rois=ATTR["top_rois"],
            leak_bound=ATTR["leak_auc_bound"],
            leak_action=ATTR["leak_action"],
        log:
            log_path("attribution", "recovery_{model}_{dconfig}"),
        benchmark:
            benchmark_path("attribution", "recovery_{model}_{dconfig}")
        conda:
            conda_env("analysis")
        shell:
            "rgenima attribution-recovery --truth {input.truth:q} --genes {input.genes:q} --rois {input.rois:q} "
            "--pairs {input.pairs:q} --selections {input.selections:q} --gene-selections {input.gene_selections:q} "
            "--associations {input.associations:q} "
            "--dumps {input.dumps:q} --gene-dumps {input.gene_dumps:q} --top-n {params.top_n:q} --top-genes {params.top_genes:q} "
            "--top-rois {params.top_rois:q} --voxel-counts {input.voxel_counts:q} --manifest {input.manifest:q} "
            "--leak-bound {params.leak_bound:q} --leak-action {params.leak_action:q} --output {output.table:q} "
            "--markdown {output.markdown:q} > {log:q} 2>&1"

    rule method_recovery:
        """Every method of attribution.compare_methods on the same model: its planted-truth recovery, side by side."""
        input:
            truth=TRUTH,
            dumps=method_dumps,
        output:
            table=R("method_recovery"),
            markdown=report(R("method_recovery_md"), category="Interpretability", subcategory="{model} ({dconfig})",
                            caption="../report/attribution_method_recovery.rst"),
        params:
            methods=ATTR["compare_methods"],
            selections=[m for m in ATTR["selection"] if m != "top_k"],
            top_n=ATTR["top_pairs"],
            top_genes=ATTR["top_genes"],
            top_rois=ATTR["top_rois"],
            gene_score=ATTR["gene_score"],
            roi_score=ATTR["roi_score"],
            alpha=ATTR["fdr_alpha"],
            seed=config["seed"],
        log:
            log_path("attribution", "method_recovery_{model}_{dconfig}"),
        benchmark:
            benchmark_path("attribution", "method_recovery_{model}_{dconfig}")
        conda:
            conda_env("analysis")
        shell:
            "rgenima method-recovery --truth {input.truth:q} --methods {params.methods:q} --dumps {input.dumps:q} "
            "--selections {params.selections:q} --top-genes {params.top_genes:q} --top-rois {params.top_rois:q} "
            "--top-n {params.top_n:q} --gene-score {params.gene_score:q} --roi-score {params.roi_score:q} "
            "--alpha {params.alpha:q} --seed {params.seed:q} --output {output.table:q} "
            "--markdown {output.markdown:q} > {log:q} 2>&1"

    rule power_llm_check:
        """The power simulation's linear model beside an LLM's gene ranking on the same subjects (one N: the cohort's)."""
        input:
            truth=TRUTH,
            dumps=attribution_dumps,
            genotypes=R("genotypes"),
            snps=R("snps"),
        output:
            table=R("power_llm_check"),
            markdown=report(R("power_llm_check_md"), category="Interpretability", subcategory="Power",
                            caption="../report/attribution_power_llm_check.rst"),
        params:
            gene_score=ATTR["gene_score"],
            seed=config["seed"],
        log:
            log_path("attribution", "power_llm_check_{model}_{dconfig}"),
        benchmark:
            benchmark_path("attribution", "power_llm_check_{model}_{dconfig}")
        conda:
            conda_env("analysis")
        shell:
            "rgenima power-llm-check --dumps {input.dumps:q} --genotypes {input.genotypes:q} --snps {input.snps:q} "
            "--truth {input.truth:q} --gene-score {params.gene_score:q} --seed {params.seed:q} "
            "--output {output.table:q} --markdown {output.markdown:q} > {log:q} 2>&1"

    rule validate:
        """The positive control (config/validate.yaml, docs/validation.md): every attributed model's recovery table."""
        input:
            validation_targets,

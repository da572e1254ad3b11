"""``rgenima`` subcommands of the interpretability stage (paper 2.2–2.4, 4.3).

attribute           checkpoint + a fold's test samples -> attention dump (streaming rollout)
bootstrap-genes     dumps of all folds -> stable genes (paper 2.2)
bootstrap-rois      dumps -> stable ROIs per stage + permutation test vs NC with BH FDR (paper 2.3)
bootstrap-roi-gene  dumps -> ROI-gene bootstrap mean, CI, stability per stage (paper 4.3)
enrichment          stable genes x GWAS flag of the panel -> one-sided Fisher test (paper 2.2)
attribution-select  dumps -> genes and stage ROIs chosen by significance and by stability selection
pair-association    genotypes + ROI volumes -> within-stage genotype-volume test of every ROI-gene pair
attribution-recovery  the above vs the synthetic cohort's truth.json (planted-truth recovery)
method-recovery     every attribution method's recovery of truth.json, side by side
null-control        random-init models on real prompts, labels permuted -> false-positive table
power               simulated cohorts over N and effect size, a linear model -> recovery table + figure
power-llm-check     that linear model's gene ranking beside an LLM's on the same subjects
faithfulness        checkpoints + a fold's first test subjects -> deletion curves of every method vs random

Tables are TSV; when the model is the demo LLM their first line is the
comment ``# demo model, random init`` (``read_tsv`` skips it) and Markdown
versions start with it.
"""

from __future__ import annotations

# The library modules these commands call import torch and transformers (attribute) or scipy and statsmodels
# (the tests): they are imported inside the command functions, so that every other subcommand, and the parser
# itself, starts without paying for them (torch alone takes about 2 s).

import argparse
import json
import logging
import time
from pathlib import Path

from rgenima_lib.attribution.methods import METHODS
from rgenima_lib.cli.common import add_snp_text_args, quiet_libraries, require_inputs
from rgenima_lib.errors import InputDataError
from rgenima_lib.io import markdown_table, read_note, read_tsv, write_json, write_markdown, write_noted_tsv

log = logging.getLogger("rgenima")


def load_pooled(paths):
    """Pool the folds' dumps of one model."""
    from rgenima_lib.attribution.dump_format import concat_dumps, read_dump

    require_inputs(*paths)
    return concat_dumps([read_dump(p) for p in paths])


# ----------------------------------------------------------------------------- attribute
def image_inputs(method: str, rit_checkpoint, roi_index, embeddings, device):
    """The RiT and ROI patches (gradient methods) or the cached RiT rollout (``rollout``) a method needs."""
    from rgenima_lib.attribution.end_to_end import ImageInputs
    from rgenima_lib.models.embedding_cache import load_encoder_rollout
    from rgenima_lib.train.encoder import build_encoder, checkpoint_info, load_checkpoint, roi_loader

    if method == "rollout_tokens":
        return None
    if method == "rollout":
        return ImageInputs(None, None, load_encoder_rollout(embeddings))
    require_inputs(rit_checkpoint, roi_index)
    encoder = build_encoder(checkpoint_info(rit_checkpoint))
    load_checkpoint(encoder, rit_checkpoint)
    return ImageInputs(encoder.eval().to(device), roi_loader(read_tsv(roi_index, dtype={"subject": str})))


def cmd_attribute(args: argparse.Namespace) -> None:
    import torch

    from rgenima_lib.attribution.attribute import attribute_samples
    from rgenima_lib.attribution.dump_format import write_dump
    from rgenima_lib.vocabulary import read_rois_table
    from rgenima_lib.data.prompt_samples import load_attribution_prompts
    from rgenima_lib.models.demo_llm import model_note
    from rgenima_lib.models.mllm import RGenIMA

    quiet_libraries()
    require_inputs(args.checkpoint, args.samples, args.imputed, args.snps, *([args.embeddings] if args.embeddings else []),
                   args.gene_panel, args.rois)
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    # SDPA: scoring needs no weights and the rollout pass rebuilds them block by block beside SDPA's output.
    # bf16 weights on CUDA halve a 7B model's memory; the rollout itself accumulates in float32 either way.
    dtype = torch.bfloat16 if (args.bf16 and torch.cuda.is_available()) else torch.float32
    model = RGenIMA.from_checkpoint(args.checkpoint, dtype=dtype, attn_implementation="sdpa").eval()
    if torch.cuda.is_available():
        model.to("cuda")
    # A gene-only LLM reads no ROI tokens: its dump holds genes only, over every test subject.
    if (model.connector is None) != (args.embeddings is None):
        raise InputDataError("--embeddings goes with a model that reads ROI tokens (an R-GenIMA), and only with one.",
                             path=args.checkpoint, fix="give the RiT token cache for an R-GenIMA, none for an "
                                                       "SNP-only model.")
    genes = read_tsv(args.gene_panel)["gene"].astype(str).tolist()
    rois = read_rois_table(args.rois, n_rois=None)["name"].tolist() if args.embeddings else []
    prompts = load_attribution_prompts(args.samples, args.imputed, args.snps, args.embeddings, args.limit,
                                       gene_orders=args.gene_orders, seed=args.seed,
                                       gene_input=model.mllm_config.gene_input, separator=args.snp_separator,
                                       tokenizer=model.tokenizer, packing=args.snp_packing)
    note = model_note(args.checkpoint)
    # A gene-only LLM reads no ROI tokens: there is no RiT to compose with or to run.
    image = image_inputs(args.method, args.rit_checkpoint, args.roi_index, args.embeddings,
                         next(model.parameters()).device) if args.embeddings else None
    dump = attribute_samples(model, prompts.samples, prompts.spans, genes, rois, fold=args.fold, sink=args.sink,
                             answer_rows=args.answer_rows, batch_size=args.batch_size,
                             extra_orders=prompts.extra_orders, method=args.method, image=image,
                             ig_steps=args.ig_steps, explain=args.explain,
                             meta={"model": args.model or "", "checkpoint": str(args.checkpoint), "note": note})
    write_dump(args.output, dump)
    seconds = time.perf_counter() - start
    summary = {"n_subjects": dump.n_subjects, "fold": args.fold, "model": args.model or "", "note": note,
               "method": args.method, "seconds_per_subject": seconds / dump.n_subjects,
               **({"completeness": dump.meta["completeness"]} if "completeness" in dump.meta else {}),
               "sink": args.sink, "answer_rows": args.answer_rows, "n_layers": dump.meta["n_layers"],
               "gene_orders": args.gene_orders,
               "sink_share_mean": float(dump.sink_share.astype(float).mean()),
               "sink_share_max": float(dump.sink_share.astype(float).max()),
               "accuracy": float((dump.predicted == dump.label).mean()),
               "dump_bytes": Path(args.output).stat().st_size, "seconds": seconds}
    if args.summary:
        write_json(summary, args.summary)
    log.info("attribute: %d subjects, sink share %.3f (mean), %.1f s%s -> %s", dump.n_subjects,
             summary["sink_share_mean"], seconds, f" ({note})" if note else "", args.output)


# ----------------------------------------------------------------------------- bootstrap
def cmd_bootstrap_genes(args: argparse.Namespace) -> None:
    import numpy as np

    from rgenima_lib.attribution.bootstrap import bootstrap_genes

    dump = load_pooled(args.dumps)
    table = bootstrap_genes(dump.gene_importance, dump.genes, n_boot=args.n_boot, top_k=args.top_k,
                            threshold=args.threshold, n_draw=args.n_draw, seed=args.seed, tokens=dump.gene_tokens,
                            score=args.score)
    tokens = dump.gene_tokens.astype(float).mean(0)
    summed = dump.gene_importance.astype(float).mean(0)
    log.info("bootstrap-genes: correlation of mean summed importance with tokens per gene: %.2f (score: %s)",
             float(np.corrcoef(summed, tokens)[0, 1]) if tokens.std() > 0 else float("nan"), args.score)
    if args.gene_panel:
        panel = read_tsv(args.gene_panel)
        table["gwas_ad"] = table["gene"].map(dict(zip(panel["gene"], panel["gwas_ad"].astype(int)))).fillna(0)
        table["gwas_ad"] = table["gwas_ad"].astype(int)
    write_noted_tsv(table, args.output, dump.note)
    log.info("bootstrap-genes: %d subjects, B=%d, top %d: %d stable genes (%s)", dump.n_subjects, args.n_boot,
             args.top_k, int(table["stable"].sum()), ", ".join(table.loc[table["stable"], "gene"]))


def cmd_bootstrap_rois(args: argparse.Namespace) -> None:
    from rgenima_lib.attribution.bootstrap import bootstrap_rois, stage_roi_score
    from rgenima_lib.attribution.permutation import stage_permutation_tests

    dump = load_pooled(args.dumps)
    score = stage_roi_score(args.score, dump.method)
    table = bootstrap_rois(dump.roi_importance, dump.label, dump.rois, n_boot=args.n_boot, top_k=args.top_k,
                           threshold=args.threshold, score=score, n_draw=args.n_draw, seed=args.seed)
    perm = stage_permutation_tests(dump.roi_importance, dump.label, dump.rois, n_perm=args.n_perm,
                                   alternative=args.alternative, alpha=args.alpha, seed=args.seed)
    table = table.merge(perm.drop(columns=["n_stage"]), on=["stage", "roi"], how="left")
    write_noted_tsv(table, args.output, dump.note)
    for stage, t in table.groupby("stage", sort=False):
        log.info("bootstrap-rois %s: %d subjects, %d stable ROIs (%s); %d ROIs with BH q < %.2g", stage,
                 int(t["n_subjects"].iloc[0]), int(t["stable"].sum()), ", ".join(t.loc[t["stable"], "roi"]),
                 int(t["significant"].fillna(False).astype(bool).sum()), args.alpha)


def cmd_bootstrap_roi_gene(args: argparse.Namespace) -> None:
    from rgenima_lib.attribution.bootstrap import bootstrap_pairs, top_pairs

    dump = load_pooled(args.dumps)
    table = bootstrap_pairs(dump.roi_gene, dump.label, dump.rois, dump.genes, n_boot=args.n_boot,
                            n_draw=args.n_draw, seed=args.seed, chunk=args.chunk)
    write_noted_tsv(table, args.output, dump.note, float_format="%.6g")
    if args.top:
        stable = None
        if args.rois_table:
            rois = read_tsv(args.rois_table)
            stable = {s: set(t.loc[t["stable"].astype(bool), "roi"]) for s, t in rois.groupby("stage")}
        write_noted_tsv(top_pairs(table, args.n_top, stable), args.top, dump.note, float_format="%.6g")
    log.info("bootstrap-roi-gene: %d subjects, %d pairs per stage, B=%d", dump.n_subjects,
             len(dump.rois) * len(dump.genes), args.n_boot)


def cmd_enrichment(args: argparse.Namespace) -> None:
    import pandas as pd

    from rgenima_lib.attribution.enrichment import gwas_enrichment

    require_inputs(args.genes, args.gene_panel)
    genes = read_tsv(args.genes)
    note = read_note(args.genes)
    panel = read_tsv(args.gene_panel)
    stable = dict(zip(genes["gene"], genes["stable"].astype(bool)))
    res = gwas_enrichment(panel["gene"], [stable.get(g, False) for g in panel["gene"]],
                          panel["gwas_ad"].astype(int) == 1)
    table = pd.DataFrame([{
        "universe": res.universe, "n_stable": res.n_stable, "n_gwas": res.n_gwas,
        "stable_gwas": res.stable_gwas, "stable_not_gwas": res.stable_not_gwas,
        "gwas_not_stable": res.gwas_not_stable, "neither": res.neither, "odds_ratio": res.odds_ratio,
        "p_value": res.p_value, "alternative": "greater",
        "stable_gwas_genes": ", ".join(res.stable_gwas_genes),
        "stable_other_genes": ", ".join(res.stable_other_genes)}])
    write_noted_tsv(table, args.output, note)
    if args.markdown:
        md = ("One-sided Fisher exact test (alternative = greater) of the stable genes against the AD-GWAS "
              f"genes within the {res.universe}-gene panel (paper 2.2: P = 0.027, OR = 5.58).\n\n"
              "| | GWAS | not GWAS |\n| --- | --- | --- |\n"
              f"| stable | {res.stable_gwas} | {res.stable_not_gwas} |\n"
              f"| not stable | {res.gwas_not_stable} | {res.neither} |\n\n"
              f"P = {res.p_value:.4g}, odds ratio = {res.odds_ratio:.3g}. "
              f"Stable GWAS genes: {', '.join(res.stable_gwas_genes) or 'none'}; "
              f"other stable genes: {', '.join(res.stable_other_genes) or 'none'}.\n")
        write_markdown(md, args.markdown, note)
    log.info("enrichment: %d stable of %d, %d GWAS among them (%d GWAS in the panel): P = %.4g, OR = %.3g",
             res.n_stable, res.universe, res.stable_gwas, res.n_gwas, res.p_value, res.odds_ratio)


def cmd_select(args: argparse.Namespace) -> None:
    import pandas as pd

    from rgenima_lib.attribution.bootstrap import stage_roi_score
    from rgenima_lib.attribution.selection import select_genes, select_stage_rois

    dump = load_pooled(args.dumps)
    methods = [m for m in args.methods if m != "top_k"]
    options = {"alpha": args.alpha, "n_subsamples": args.n_subsamples, "expected_false": args.expected_false,
               "threshold": args.stability_threshold, "seed": args.seed}
    if not methods:
        table = pd.DataFrame(columns=["what", "stage", "item", "selection", "selected"])
    else:
        parts = [select_genes(dump.gene_importance, dump.genes, methods=methods, tokens=dump.gene_tokens,
                              score=args.gene_score, **options)]
        if len(dump.rois):  # a gene-only LLM's dump has no ROIs
            parts.append(select_stage_rois(dump.roi_importance, dump.label, dump.rois, methods=methods,
                                           score=stage_roi_score(args.roi_score, dump.method), **options))
        table = pd.concat(parts, ignore_index=True)
    write_noted_tsv(table, args.output, dump.note, float_format="%.6g")
    for (what, stage, method), t in table.groupby(["what", "stage", "selection"], sort=False):
        log.info("attribution-select %s %s %s: %d selected (%s)", what, stage, method, int(t["selected"].sum()),
                 ", ".join(t.loc[t["selected"].astype(bool), "item"]))


def cmd_pair_association(args: argparse.Namespace) -> None:
    import pandas as pd

    from rgenima_lib.attribution.pair_association import pair_association, top_associations
    from rgenima_lib.genetics.genotype_matrix import impute_expected_dosage, load_genotypes, read_snps
    from rgenima_lib.vocabulary import read_rois_table

    require_inputs(args.genotypes, args.snps, args.volumes, args.manifest, args.gene_panel, args.rois)
    geno = load_genotypes(args.genotypes)
    snps = read_snps(args.snps).set_index("snp").reindex(geno["snps"])
    volumes = read_tsv(args.volumes, dtype={"subject": str}).set_index("subject")
    manifest = read_tsv(args.manifest, dtype={"subject": str}).set_index("subject")
    genes = read_tsv(args.gene_panel)["gene"].astype(str).tolist()
    rois = read_rois_table(args.rois, n_rois=None)["name"].tolist()
    subjects = [s for s in geno["subjects"] if s in volumes.index and s in manifest.index]
    if not subjects:
        raise InputDataError("no subject has both a genotype and ROI volumes.", path=args.volumes,
                             fix="check that the imaging and genetics stages ran on the same cohort.")
    row = {s: i for i, s in enumerate(geno["subjects"])}
    scale = volumes.loc[subjects, "voxel_volume_mm3"].to_numpy(float)[:, None] if "voxel_volume_mm3" in volumes else 1.0
    covariates = None
    if args.covariates:
        cov = manifest.loc[subjects, args.covariates]
        covariates = pd.get_dummies(cov, drop_first=True, dtype=float).fillna(cov.mean(numeric_only=True)).to_numpy()
    table = pair_association(geno["dosage"][[row[s] for s in subjects]], snps["gene"].astype(str).to_numpy(),
                             snps.index.to_numpy(), genes, volumes.loc[subjects, rois].to_numpy(float) * scale,
                             rois, manifest.loc[subjects, "stage"].astype(str).to_numpy(), covariates=covariates,
                             gene_test=args.gene_test, alpha=args.alpha, min_minor_count=args.min_minor_count)
    write_noted_tsv(table, args.output, float_format="%.6g")
    if args.top:
        write_noted_tsv(top_associations(table, args.n_top), args.top, float_format="%.6g")
    for stage, t in table.groupby("stage", sort=False):
        log.info("pair-association %s: %d subjects, %d of %d pairs with BH q < %.2g", stage,
                 int(t["n_subjects"].iloc[0]), int(t["significant"].sum()), len(t), args.alpha)


def _accuracy_line(what: str, dump) -> str:
    """One Markdown line: a model's pooled test accuracy and balanced accuracy beside chance."""
    from rgenima_lib.evaluate.metrics import classification_metrics, label_indices

    m = classification_metrics(label_indices(dump.label), label_indices(dump.predicted))
    chance = max((dump.label == s).mean() for s in set(dump.label.tolist()))
    log.info("recovery: %s test accuracy %.3f, balanced accuracy %.3f (%d subjects)", what, m["accuracy"],
             m["balanced_accuracy"], dump.n_subjects)
    return (f"{what} test accuracy (answer scoring, {dump.n_subjects} test subjects pooled over folds): "
            f"{m['accuracy']:.1%}, balanced accuracy {m['balanced_accuracy']:.1%}; chance (majority stage) "
            f"{chance:.1%}, balanced 25.0%.\n\n")


def cmd_recovery(args: argparse.Namespace) -> None:
    import pandas as pd

    from rgenima_lib.attribution.leak_check import leak_check
    from rgenima_lib.attribution.recovery import leak_rows, recovery_table

    require_inputs(args.truth, args.genes, args.rois, args.pairs, *(args.dumps or []), *(args.gene_dumps or []),
                   args.selections, args.gene_selections, args.associations)
    truth = json.loads(Path(args.truth).read_text())
    genes, rois, pairs = read_tsv(args.genes), read_tsv(args.rois), read_tsv(args.pairs)
    for t in (genes, rois):
        t["stable"] = t["stable"].astype(bool)
    selections = read_tsv(args.selections) if args.selections else None
    if args.gene_selections:  # the genes of another model (attribution.genes_from: gene_only)
        gene_rows = read_tsv(args.gene_selections)
        selections = pd.concat([selections[selections["what"] != "genes"] if selections is not None else None,
                                gene_rows[gene_rows["what"] == "genes"]], ignore_index=True)
    table = recovery_table(truth, genes, rois, pairs, top_n=args.top_n, selections=selections,
                           associations=read_tsv(args.associations) if args.associations else None,
                           top_genes=args.top_genes, top_rois=args.top_rois)
    leaks = pd.DataFrame()
    if args.voxel_counts:
        require_inputs(args.voxel_counts, args.manifest)
        manifest = read_tsv(args.manifest, dtype={"subject": str})
        leak = leak_check(read_tsv(args.voxel_counts, dtype={"subject": str}),
                          manifest.set_index("subject")["stage"], truth, args.leak_bound)
        table = pd.concat([table, leak_rows(leak)], ignore_index=True)
        leaks = leak[leak["leak"]]
        for row in leak.itertuples():
            log.info("leak check %s vs NC: best never-planted ROI %s, AUC %.3f (chance %.3f, bound %.2f)",
                     row.stage, row.best_roi, row.best_auc, row.chance_best_auc, row.bound)
        for row in leaks.itertuples():
            log.warning("LEAK: never-planted ROI %s tells %s from NC with AUC %.3f (> bound %.2f and chance %.3f): "
                        "truth.json misses an effect or the cohort leaks one; its 'false positives' may be real",
                        row.best_roi, row.stage, row.best_auc, row.bound, row.chance_best_auc)
    note = read_note(args.genes)
    write_noted_tsv(table, args.output, note)
    header = ""
    if args.dumps:
        header = _accuracy_line("Model", load_pooled(args.dumps))
    if args.gene_dumps and sorted(args.gene_dumps) != sorted(args.dumps or []):
        header += _accuracy_line("Gene model (causal genes' rows)", load_pooled(args.gene_dumps))
    if args.markdown:
        cols = ["what", "stage", "selection", "precision_cap", "n_planted", "n_found", "true_positives", "precision", "recall",
                "mean_rank_planted", "mean_rank_random"]
        text = header + markdown_table(table.loc[table["what"] != "never-planted ROIs", cols])
        if args.voxel_counts:
            text += ("\n\nLeak check (never-planted ROI volumes, stage vs NC; flagged above the bound and the "
                     "chance level):\n\n" + markdown_table(leak))
        write_markdown(text, args.markdown, note)
    for row in table[table["what"] != "never-planted ROIs"].itertuples():
        log.info("recovery %s %s %s: precision %.2f (cap %.2f) recall %.2f (planted mean rank %.1f vs random %.1f)",
                 row.what, row.stage, row.selection, row.precision, row.precision_cap, row.recall,
                 row.mean_rank_planted, row.mean_rank_random)
    if len(leaks) and args.leak_action == "error":
        raise InputDataError(f"the synthetic cohort leaks: never-planted ROIs tell {', '.join(leaks['stage'])} "
                             "from NC beyond attribution.leak_auc_bound.",
                             fix="fix the generator or truth.json (docs/synthetic_cohort.md, 'Leak check'), or set "
                                 "attribution.leak_action: warn to only flag it.")


def cmd_method_recovery(args: argparse.Namespace) -> None:
    from rgenima_lib.attribution.method_comparison import method_recovery
    from rgenima_lib.evaluate.metrics import classification_metrics, label_indices

    require_inputs(args.truth, *args.dumps)
    if len(args.dumps) % len(args.methods):
        raise ValueError(f"{len(args.dumps)} dumps for {len(args.methods)} methods: give each method's folds, in order")
    per = len(args.dumps) // len(args.methods)
    dumps = {m: load_pooled(args.dumps[i * per:(i + 1) * per]) for i, m in enumerate(args.methods)}
    for m, d in dumps.items():
        if d.method != m:
            raise ValueError(f"the dumps given for {m} were written by {d.method}: {args.dumps}")
    truth = json.loads(Path(args.truth).read_text())
    table = method_recovery(truth, dumps, top_genes=args.top_genes, top_rois=args.top_rois, top_pairs=args.top_n,
                            selections=args.selections, gene_score=args.gene_score, roi_score=args.roi_score,
                            alpha=args.alpha, seed=args.seed)
    # every method attributes the same model's answers: one accuracy, stated beside the table
    first = next(iter(dumps.values()))
    m = classification_metrics(label_indices(first.label), label_indices(first.predicted))
    table.insert(2, "accuracy", m["accuracy"])
    table.insert(3, "balanced_accuracy", m["balanced_accuracy"])
    note = first.note.rsplit("; attribution:", 1)[0]
    write_noted_tsv(table, args.output, note, float_format="%.6g")
    if args.markdown:
        cols = ["method", "what", "stage", "selection", "n_planted", "n_found", "true_positives", "precision",
                "recall", "mean_rank_planted", "mean_rank_random"]
        write_markdown("Every attribution method on the same model and test subjects; top_k ranks the observed "
                       f"score (k = {args.top_genes} genes, {args.top_rois} ROIs per stage, {args.top_n} pairs per "
                       "stage).\n\n" + markdown_table(table[cols]), args.markdown, note)
    for row in table.itertuples():
        log.info("method-recovery %s %s %s %s: precision %.2f recall %.2f (planted mean rank %.1f vs random %.1f)",
                 row.method, row.what, row.stage, row.selection, row.precision, row.recall, row.mean_rank_planted,
                 row.mean_rank_random)


def cmd_null_control(args: argparse.Namespace) -> None:
    import tempfile

    import pandas as pd
    import torch

    from rgenima_lib.attribution.null_control import (false_positive_summary, null_findings, null_prompts,
                                                      random_gene_set, random_model, random_model_dumps)
    from rgenima_lib.models.embedding_cache import load_embeddings
    from rgenima_lib.vocabulary import read_rois_table

    quiet_libraries()
    require_inputs(args.samples, args.imputed, args.snps, args.embeddings, args.gene_panel, args.rois)
    if args.threads:
        torch.set_num_threads(args.threads)
    panel = read_tsv(args.gene_panel)
    genes = panel["gene"].astype(str).tolist()
    gwas = panel["gwas_ad"].astype(int).to_numpy() == 1
    rois = read_rois_table(args.rois, n_rois=None)["name"].tolist()
    visual_dim = int(load_embeddings(args.embeddings)[1].shape[-1])
    llm = {"hidden_size": args.hidden_size, "n_layers": args.layers, "n_heads": args.heads,
           "n_kv_heads": args.kv_heads, "intermediate_size": args.intermediate_size}
    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="null-control-") as work:
        for seed in range(args.seed, args.seed + args.n_seeds):
            model = random_model(Path(work) / f"llm{seed}", genes, visual_dim, seed=seed, **llm)
            # Each seed's demo tokenizer is trained on its own corpus: the text is resolved for the one that reads it.
            prompts = null_prompts(model, args.samples, args.imputed, args.snps, args.embeddings,
                                   separator=args.snp_separator, packing=args.snp_packing, limit=args.limit,
                                   gene_orders=args.gene_orders, seed=args.seed)
            dumps = random_model_dumps(model, prompts, genes, rois, seed=seed, gene_orders=args.gene_orders)
            planted = random_gene_set(len(genes), args.planted_size, seed)
            for scoring, dump in dumps.items():
                rows.append(null_findings(dump, gwas, planted, scoring=scoring, seed=seed, n_boot=args.n_boot,
                                          n_perm=args.n_perm, top_genes=args.top_genes, top_rois=args.top_rois,
                                          threshold=args.threshold, alpha=args.alpha))
                log.info("null-control seed %d %s: enrichment P %.3g, BH-significant ROIs %.1f per stage", seed,
                         scoring, rows[-1]["enrichment_p"], rows[-1]["bh_rois_mean"])
    rows = pd.DataFrame(rows)
    summary = false_positive_summary(rows, len(rois), args.alpha)
    note = (f"null control: {args.n_seeds} random-init models, {len(prompts.samples)} real test prompts, labels "
            f"permuted by subject; gene orders 1 (paper) and {args.gene_orders} (deconfounded)")
    write_noted_tsv(rows, args.output, note, float_format="%.6g")
    write_noted_tsv(summary, args.summary, note, float_format="%.4g")
    if args.markdown:
        write_markdown(markdown_table(summary), args.markdown, note)
    log.info("null-control: %d seeds x %d subjects in %.0f s", args.n_seeds, len(prompts.samples),
             time.perf_counter() - start)


def cmd_power(args: argparse.Namespace) -> None:
    from rgenima_lib.attribution.power import power_simulation, power_summary
    from rgenima_lib.figures.power import plot_power
    from rgenima_lib.io import load_settings
    from rgenima_lib.vocabulary import read_rois_table

    require_inputs(args.gene_panel, args.rois)
    start = time.perf_counter()
    synthetic = load_settings(args.synthetic)
    missing = [k for k in ("causal_genes", "stage_atrophy") if k not in synthetic]
    if missing:
        raise InputDataError(f"the synthetic settings lack {', '.join(missing)}.", path=args.synthetic,
                             fix="pass the config's synthetic section (the rule does).")
    table = power_simulation(read_tsv(args.gene_panel), read_rois_table(args.rois, n_rois=None), synthetic,
                             sizes=args.sizes, effects=args.effects, replicates=args.replicates,
                             n_variants=args.n_variants, seed=args.seed, gene_score=args.gene_score,
                             n_boot=args.n_boot, top_genes=args.top_genes, top_rois=args.top_rois, alpha=args.alpha)
    note = (f"simulated cohorts, multinomial logistic regression on SNP dosages and ROI volumes; "
            f"{args.replicates} replicates; gene score {args.gene_score}")
    write_noted_tsv(table, args.output, note, float_format="%.4g")
    summary = power_summary(table)
    if args.markdown:
        write_markdown(markdown_table(summary), args.markdown, note)
    plot_power(table, args.png, args.pdf, note=note)
    for row in summary.itertuples():
        log.info("power %s N=%d %s %s: precision %.2f recall %.2f", row.effect, row.n_subjects, row.what,
                 row.selection, row.precision, row.recall)
    log.info("power: %.0f s", time.perf_counter() - start)


def cmd_power_llm_check(args: argparse.Namespace) -> None:
    import numpy as np

    from rgenima_lib.attribution.power import dump_gene_ranking, linear_gene_ranking, ranking_agreement
    from rgenima_lib.genetics.genotype_matrix import impute_expected_dosage, load_genotypes, read_snps

    require_inputs(args.truth, args.genotypes, args.snps, *args.dumps)
    dump = load_pooled(args.dumps)
    geno = load_genotypes(args.genotypes)
    row = {s: i for i, s in enumerate(np.asarray(geno["subjects"]).astype(str))}
    missing = [s for s in dump.subjects if s not in row]
    if missing:
        raise InputDataError(f"{len(missing)} attributed subjects have no genotypes, e.g. {missing[0]}.",
                             path=args.genotypes, fix="pass the genotype matrix the attributed model was trained from.")
    snps = read_snps(args.snps)
    column = {s: j for j, s in enumerate(np.asarray(geno["snps"]).astype(str))}
    absent = [s for s in snps["snp"] if s not in column]
    if absent:
        raise InputDataError(f"{len(absent)} SNPs of snps.tsv are not in the genotype matrix, e.g. {absent[0]}.",
                             path=args.genotypes, fix="pass the snps.tsv written with this genotype matrix.")
    dosage = np.asarray(geno["dosage"])[np.ix_([row[s] for s in dump.subjects], [column[s] for s in snps["snp"]])]
    # missing calls (-1) as 2p over the attributed subjects: the ranking's model cross-fits on them all
    dosage, _, _ = impute_expected_dosage(dosage, np.ones(len(dosage), bool))
    linear = linear_gene_ranking(dosage, snps["gene"].to_numpy(), dump.label, list(dump.genes),
                                 gene_score=args.gene_score, seed=args.seed)
    llm = dump_gene_ranking(dump, args.gene_score)
    causal = [c["gene"] for c in json.loads(Path(args.truth).read_text()).get("causal_genes", [])]
    table = ranking_agreement(llm, linear, causal, k=args.top_k or len(causal))
    a = table.attrs
    note = (f"{dump.n_subjects} subjects; the power simulation's linear model (2-fold cross-fitted, SNP dosages) "
            f"beside the LLM's {dump.method} ranking; gene score {args.gene_score}")
    write_noted_tsv(table, args.output, note)
    summary = (f"Spearman rank correlation {a['spearman']:.2f} over {a['n_genes']} genes; top-{a['k']} overlap "
               f"{a['top_k_overlap']:.2f}; planted genes' mean rank {a['causal_mean_rank_llm']:.1f} (LLM) vs "
               f"{a['causal_mean_rank_linear']:.1f} (linear model, accuracy {linear.attrs['accuracy']:.3f}); "
               f"random {(a['n_genes'] + 1) / 2:.1f}.")
    if args.markdown:
        write_markdown(summary + "\n\n" + markdown_table(table[table["causal"] | (table["linear_rank"] <= a["k"])
                                                                 | (table["llm_rank"] <= a["k"])]),
                       args.markdown, note)
    log.info("power-llm-check: %s", summary)


# ----------------------------------------------------------------------------- faithfulness
def cmd_faithfulness(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from rgenima_lib.attribution.attribute import attribute_samples
    from rgenima_lib.attribution.end_to_end import ImageInputs
    from rgenima_lib.attribution.faithfulness import deletion_drops, faithfulness_table
    from rgenima_lib.attribution.methods import METHOD_LABELS
    from rgenima_lib.data.prompt_samples import load_attribution_prompts
    from rgenima_lib.models.demo_llm import model_note
    from rgenima_lib.models.embedding_cache import load_encoder_rollout
    from rgenima_lib.models.mllm import RGenIMA
    from rgenima_lib.vocabulary import read_rois_table

    quiet_libraries()
    require_inputs(args.checkpoint, args.samples, args.imputed, args.snps, args.embeddings, args.gene_panel,
                   args.rois, args.rit_checkpoint, args.roi_index)
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = RGenIMA.from_checkpoint(args.checkpoint, attn_implementation="eager").eval()
    genes = read_tsv(args.gene_panel)["gene"].astype(str).tolist()
    rois = read_rois_table(args.rois, n_rois=None)["name"].tolist()
    prompts = load_attribution_prompts(args.samples, args.imputed, args.snps, args.embeddings, args.subjects,
                                       gene_input=model.mllm_config.gene_input, separator=args.snp_separator,
                                       tokenizer=model.tokenizer, packing=args.snp_packing)
    gradient = image_inputs("integrated_gradients", args.rit_checkpoint, args.roi_index, None, "cpu")
    image = ImageInputs(gradient.encoder, gradient.load, load_encoder_rollout(args.embeddings))
    scores, seconds = {}, {}
    for method in args.methods:
        start = time.perf_counter()
        dump = attribute_samples(model, prompts.samples, prompts.spans, genes, rois, method=method, image=image,
                                 ig_steps=args.ig_steps)
        seconds[method] = (time.perf_counter() - start) / dump.n_subjects
        scores[method] = (dump.roi_importance.astype(np.float32), dump.gene_importance.astype(np.float32))
        log.info("faithfulness: %s attributed %d subjects, %.2f s per subject", method, dump.n_subjects,
                 seconds[method])
    drops = deletion_drops(model, image, prompts.samples, prompts.spans, genes, scores, ks=args.ks,
                           n_random=args.n_random, seed=args.seed)
    table = faithfulness_table(drops)
    table.insert(1, "seconds_per_subject", table["method"].map(seconds))
    note = "; ".join(p for p in (model_note(args.checkpoint), "drop in the true-class probability") if p)
    write_noted_tsv(table, args.output, note, float_format="%.6g")
    if args.markdown:
        labels = "\n".join(f"- `{m}`: {METHOD_LABELS[m]}" for m in args.methods)
        cols = ["method", "what", "k", "n_subjects", "drop", "random_drop", "difference", "difference_low",
                "difference_high", "verdict", "verdict_all_k", "seconds_per_subject"]
        write_markdown(f"Deletion test, {len(prompts.samples)} test subjects, {args.n_random} random draws per "
                       f"subject and k; drop = p(true class) before minus after removing the top-k ROIs / genes.\n\n"
                       f"{labels}\n\n{markdown_table(table[cols])}", args.markdown, note)
    for row in table[table["k"] == table.groupby(["method", "what"])["k"].transform("max")].itertuples():
        log.info("faithfulness %s %s k=%d: drop %.4f vs random %.4f (%s)", row.method, row.what, row.k, row.drop,
                 row.random_drop, row.verdict)


# ----------------------------------------------------------------------------- parser
def _bootstrap_args(p) -> None:
    p.add_argument("--dumps", nargs="+", required=True, help="attention dumps of every fold of one model")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap iterations B (paper 1,000)")
    p.add_argument("--n-draw", type=int, help="subjects per resample (default: all; the paper draws 1,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", required=True)


def _method_args(p) -> None:
    p.add_argument("--method", choices=METHODS, default="rollout",
                   help="attribution method (docs/interpretability.md); rollout_tokens is the paper's")
    p.add_argument("--rit-checkpoint", help="the fold's RiT checkpoint (every method but rollout and rollout_tokens)")
    p.add_argument("--roi-index", help="results/imaging/roi_index.tsv (the ROI patches; with --rit-checkpoint)")
    p.add_argument("--ig-steps", type=int, default=32, help="integrated gradients' path points (Gauss-Legendre)")


def register(sub) -> None:
    """Add this stage's subcommands to the ``rgenima`` parser."""
    p = sub.add_parser("attribute", help="attribution of a fold's test subjects (attribution.method) -> attention dump")
    p.add_argument("--checkpoint", required=True, help="R-GenIMA (LLM + RiT connector) or SNP-only LLM checkpoint")
    p.add_argument("--samples", required=True, help="datasets/{config}/fold{k}/samples.tsv")
    p.add_argument("--imputed", required=True, help="the fold's imputed genotypes (fold{k}.npz)")
    p.add_argument("--snps", required=True, help="snps.tsv")
    p.add_argument("--embeddings", help="the fold's RiT token cache (R-GenIMA); none for an SNP-only LLM")
    add_snp_text_args(p)
    p.add_argument("--gene-panel", required=True, help="config/gene_panel.tsv (gene order of the dump)")
    p.add_argument("--rois", required=True, help="config/rois.tsv (ROI order of the dump)")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--model", help="model id recorded in the dump")
    _method_args(p)
    p.add_argument("--sink", choices=["exclude", "keep", "per_layer"], default="exclude",
                   help="first-token attention sink: exclude and renormalise (default), keep, or drop per layer")
    p.add_argument("--answer-rows", choices=["label", "prompt_end"], default="label",
                   help="rows rolled out for the answer: those predicting the label token(s), or the prompt's last")
    p.add_argument("--gene-orders", type=int, default=1,
                   help="1: attribute the canonical gene order (paper); K > 1: average over K seeded permutations")
    p.add_argument("--explain", choices=["predicted", "label"], default="predicted",
                   help="the stage whose answer is explained: the model's prediction, or the subject's own stage")
    p.add_argument("--seed", type=int, default=0, help="seeds the gene-order permutations")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--bf16", action="store_true", help="bf16 weights on CUDA (ignored on CPU)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--limit", type=int, help="first N test samples (smoke runs)")
    p.add_argument("--output", required=True, help="dump (.npz)")
    p.add_argument("--summary", help="JSON: subjects, sink share, accuracy, size, seconds")
    p.set_defaults(func=cmd_attribute)

    p = sub.add_parser("bootstrap-genes", help="stable genes: top-k in > threshold of B resamples (paper 2.2)")
    _bootstrap_args(p)
    p.add_argument("--top-k", type=int, default=45)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--score", choices=["sum", "per_token"], default="sum",
                   help="rank the share summed over the gene's tokens (paper) or per token")
    p.add_argument("--gene-panel", help="adds the panel's gwas_ad flag")
    p.set_defaults(func=cmd_bootstrap_genes)

    p = sub.add_parser("bootstrap-rois", help="stable ROIs per stage + permutation test vs NC, BH FDR (paper 2.3)")
    _bootstrap_args(p)
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--score", choices=["mean", "contrast", "abs_contrast"], default="mean",
                   help="rank by the stage mean (paper) or by stage mean minus NC mean")
    p.add_argument("--n-perm", type=int, default=10000,
                   help="label permutations (1,000 floor p at 1/1001: too coarse for BH over 109 ROIs)")
    p.add_argument("--alternative", choices=["two-sided", "greater", "less"], default="two-sided")
    p.add_argument("--alpha", type=float, default=0.05, help="BH FDR level")
    p.set_defaults(func=cmd_bootstrap_rois)

    p = sub.add_parser("bootstrap-roi-gene", help="ROI-gene bootstrap mean, 95%% CI, stability per stage (paper 4.3)")
    _bootstrap_args(p)
    p.add_argument("--chunk", type=int, default=None,
                   help="pairs per matrix product (bounds memory; default: as many as fit 128 MB of data and means)")
    p.add_argument("--rois-table", help="bootstrap-rois output: --top lists pairs of stable ROIs only")
    p.add_argument("--top", help="TSV of the most stable pairs per stage")
    p.add_argument("--n-top", type=int, default=20)
    p.set_defaults(func=cmd_bootstrap_roi_gene)

    p = sub.add_parser("enrichment", help="one-sided Fisher test: stable genes vs AD-GWAS genes (paper 2.2)")
    p.add_argument("--genes", required=True, help="bootstrap-genes output")
    p.add_argument("--gene-panel", required=True, help="config/gene_panel.tsv (universe, gwas_ad)")
    p.add_argument("--output", required=True)
    p.add_argument("--markdown")
    p.set_defaults(func=cmd_enrichment)

    p = sub.add_parser("attribution-recovery", help="planted-truth recovery on the synthetic cohort")
    p.add_argument("--truth", required=True, help="results/synthetic/truth.json")
    p.add_argument("--genes", required=True)
    p.add_argument("--rois", required=True)
    p.add_argument("--pairs", required=True)
    p.add_argument("--dumps", nargs="*", help="dumps, for the model's accuracy")
    p.add_argument("--gene-dumps", nargs="*", help="dumps of the model that gave --genes, for its accuracy")
    p.add_argument("--top-n", type=int, default=20, help="top pairs per stage counted as found")
    p.add_argument("--selections", help="attribution-select output: one more row per selection")
    p.add_argument("--gene-selections", help="attribution-select output whose gene rows replace those of --selections")
    p.add_argument("--associations", help="pair-association output: the pairs' data-association row")
    p.add_argument("--top-genes", type=int, help="k of the paper's gene rule, for its precision cap")
    p.add_argument("--top-rois", type=int, help="k of the stage-ROI rule, for its precision cap")
    p.add_argument("--voxel-counts", help="imaging/qc/roi_voxel_counts.tsv, for the cohort's leak check")
    p.add_argument("--manifest", help="cohort/manifest.tsv (subject, stage), with --voxel-counts")
    p.add_argument("--leak-bound", type=float, default=0.65,
                   help="attribution.leak_auc_bound: never-planted ROI AUC above which a stage is flagged")
    p.add_argument("--leak-action", choices=["warn", "error"], default="warn",
                   help="attribution.leak_action: flag and warn, or fail, when a stage leaks")
    p.add_argument("--output", required=True)
    p.add_argument("--markdown")
    p.set_defaults(func=cmd_recovery)

    p = sub.add_parser("method-recovery", help="planted-truth recovery of every attribution method, side by side")
    p.add_argument("--truth", required=True, help="results/synthetic/truth.json")
    p.add_argument("--methods", nargs="+", required=True, help="the methods, in the order of --dumps")
    p.add_argument("--dumps", nargs="+", required=True, help="each method's dumps of every fold, method by method")
    p.add_argument("--selections", nargs="*", choices=["significance", "stability"], default=["significance"],
                   help="selections beside the observed-score top-k")
    p.add_argument("--top-genes", type=int, required=True)
    p.add_argument("--top-rois", type=int, required=True)
    p.add_argument("--top-n", type=int, required=True, help="pairs per stage counted as found")
    p.add_argument("--gene-score", choices=["sum", "per_token"], default="per_token")
    p.add_argument("--roi-score", choices=["mean", "contrast", "abs_contrast"], default="contrast")
    p.add_argument("--alpha", type=float, default=0.05, help="BH level of the significance selection")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", required=True)
    p.add_argument("--markdown")
    p.set_defaults(func=cmd_method_recovery)

    p = sub.add_parser("power-llm-check", help="the power model's gene ranking beside an LLM's, same subjects")
    p.add_argument("--dumps", nargs="+", required=True, help="the LLM's attention dumps of every fold")
    p.add_argument("--genotypes", required=True, help="genetics/genotypes.npz")
    p.add_argument("--snps", required=True, help="genetics/snps.tsv")
    p.add_argument("--truth", required=True, help="results/synthetic/truth.json (the planted genes)")
    p.add_argument("--gene-score", choices=["sum", "per_token"], default="per_token")
    p.add_argument("--top-k", type=int, help="top genes compared (default: the number of planted genes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", required=True)
    p.add_argument("--markdown")
    p.set_defaults(func=cmd_power_llm_check)

    p = sub.add_parser("attribution-select", help="genes and stage ROIs by significance / stability selection")
    p.add_argument("--dumps", nargs="+", required=True, help="attention dumps of every fold of one model")
    p.add_argument("--methods", nargs="+", choices=["top_k", "significance", "stability"],
                   default=["significance", "stability"], help="top_k is the bootstrap rules' (ignored here)")
    p.add_argument("--gene-score", choices=["sum", "per_token"], default="sum")
    p.add_argument("--roi-score", choices=["mean", "contrast", "abs_contrast"], default="mean",
                   help="contrast is two-sided (abs_contrast) for a signed method's dumps")
    p.add_argument("--alpha", type=float, default=0.05, help="BH level of the significance selection")
    p.add_argument("--n-subsamples", type=int, default=100, help="half-subsamples of the stability selection")
    p.add_argument("--expected-false", type=float, default=1.0, help="E[V] bound that sets q per subsample")
    p.add_argument("--stability-threshold", type=float, default=0.9, help="selection frequency, in (0.5, 1]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", required=True)
    p.set_defaults(func=cmd_select)

    p = sub.add_parser("null-control", help="random-init models on real prompts, labels permuted: false positives")
    p.add_argument("--samples", required=True, help="datasets/{config}/fold{k}/samples.tsv")
    p.add_argument("--imputed", required=True)
    p.add_argument("--snps", required=True)
    p.add_argument("--embeddings", required=True, help="the fold's RiT token cache")
    p.add_argument("--gene-panel", required=True, help="config/gene_panel.tsv (gene order, gwas_ad)")
    p.add_argument("--rois", required=True)
    add_snp_text_args(p)
    p.add_argument("--n-seeds", type=int, default=5, help="random-init models (one per seed)")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--gene-orders", type=int, default=4, help="K of the deconfounded scoring")
    p.add_argument("--limit", type=int, help="first N test samples")
    p.add_argument("--planted-size", type=int, default=9, help="size of the random 'planted' gene set")
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--n-perm", type=int, default=2000)
    p.add_argument("--top-genes", type=int, default=45)
    p.add_argument("--top-rois", type=int, default=10)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--intermediate-size", type=int, default=256)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--output", required=True, help="TSV: one row per seed and scoring")
    p.add_argument("--summary", required=True, help="TSV: the false-positive table, scorings side by side")
    p.add_argument("--markdown")
    p.set_defaults(func=cmd_null_control)

    p = sub.add_parser("power", help="recovery of the planted genes and ROIs against N and effect size")
    p.add_argument("--gene-panel", required=True)
    p.add_argument("--rois", required=True)
    p.add_argument("--synthetic", required=True, help="the config's synthetic section (JSON text or a YAML file)")
    p.add_argument("--sizes", nargs="+", type=int, default=[200, 500, 1000, 2000])
    p.add_argument("--effects", nargs="+", choices=["demo", "gwas"], default=["demo", "gwas"])
    p.add_argument("--replicates", type=int, default=2)
    p.add_argument("--n-variants", type=int, default=1500)
    p.add_argument("--gene-score", choices=["sum", "per_token"], default="per_token")
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--top-genes", type=int, default=45)
    p.add_argument("--top-rois", type=int, default=10)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", required=True, help="TSV: one row per effect, N, replicate, what, selection")
    p.add_argument("--markdown", help="means over replicates")
    p.add_argument("--png", required=True)
    p.add_argument("--pdf")
    p.set_defaults(func=cmd_power)

    p = sub.add_parser("pair-association", help="within-stage genotype-ROI volume association of every pair")
    p.add_argument("--genotypes", required=True, help="genetics/genotypes.npz (QC'd dosage, not imputed)")
    p.add_argument("--snps", required=True, help="snps.tsv (gene of each SNP)")
    p.add_argument("--volumes", required=True, help="imaging/qc/roi_voxel_counts.tsv")
    p.add_argument("--manifest", required=True, help="cohort/manifest.tsv (stage, covariates)")
    p.add_argument("--gene-panel", required=True)
    p.add_argument("--rois", required=True)
    p.add_argument("--covariates", nargs="*", default=[], help="manifest columns adjusted for (e.g. age sex)")
    p.add_argument("--gene-test", choices=["min_snp", "burden"], default="min_snp")
    p.add_argument("--min-minor-count", type=int, default=10, help="minor alleles a SNP needs within the stage")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--output", required=True)
    p.add_argument("--top", help="TSV of the best-ranked pairs per stage")
    p.add_argument("--n-top", type=int, default=20)
    p.set_defaults(func=cmd_pair_association)

    p = sub.add_parser("faithfulness", help="deletion curves of each attribution method against random deletion")
    p.add_argument("--checkpoint", required=True, help="R-GenIMA checkpoint folder (LLM + RiT connector)")
    p.add_argument("--samples", required=True)
    p.add_argument("--imputed", required=True)
    p.add_argument("--snps", required=True)
    p.add_argument("--embeddings", required=True, help="the fold's RiT token cache (with the RiT rollout)")
    p.add_argument("--gene-panel", required=True)
    p.add_argument("--rois", required=True)
    p.add_argument("--rit-checkpoint", required=True)
    p.add_argument("--roi-index", required=True)
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--subjects", type=int, default=8, help="first N test subjects with images")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 2, 5, 10, 20], help="removal sizes")
    p.add_argument("--n-random", type=int, default=3, help="random draws per subject and k")
    p.add_argument("--ig-steps", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int)
    add_snp_text_args(p)
    p.add_argument("--output", required=True, help="TSV")
    p.add_argument("--markdown")
    p.set_defaults(func=cmd_faithfulness)

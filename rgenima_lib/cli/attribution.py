"""``rgenima`` subcommands of the interpretability stage (paper 2.2–2.4, 4.3).

attribute           checkpoint + a fold's test samples -> attention dump (streaming rollout)
bootstrap-genes     dumps of all folds -> stable genes (paper 2.2)
bootstrap-rois      dumps -> stable ROIs per stage + permutation test vs NC with BH FDR (paper 2.3)
bootstrap-roi-gene  dumps -> ROI-gene bootstrap mean, CI, stability per stage (paper 4.3)
enrichment          stable genes x GWAS flag of the panel -> one-sided Fisher test (paper 2.2)
attribution-recovery  the above vs the synthetic cohort's truth.json (planted-truth recovery)

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

import numpy as np
import pandas as pd

from rgenima_lib.attribution.dump_format import concat_dumps, read_dump
from rgenima_lib.cli.common import quiet_libraries, require_inputs
from rgenima_lib.errors import InputDataError
from rgenima_lib.io import markdown_table, read_note, read_tsv, write_json, write_markdown, write_noted_tsv

log = logging.getLogger("rgenima")


def load_pooled(paths):
    """Pool the folds' dumps of one model."""
    require_inputs(*paths)
    return concat_dumps([read_dump(p) for p in paths])


# ----------------------------------------------------------------------------- attribute
def cmd_attribute(args: argparse.Namespace) -> None:
    import torch

    from rgenima_lib.attribution.attribute import attribute_samples
    from rgenima_lib.attribution.dump_format import write_dump
    from rgenima_lib.vocabulary import read_rois_table
    from rgenima_lib.data.prompt_samples import load_attribution_prompts
    from rgenima_lib.models.demo_llm import model_note
    from rgenima_lib.models.mllm import RGenIMA

    quiet_libraries()
    require_inputs(args.checkpoint, args.samples, args.imputed, args.snps, args.embeddings, args.gene_panel, args.rois)
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    # Eager attention for this pass only: sdpa / flash kernels never materialise the weights. bf16 weights on
    # CUDA halve a 7B model's memory; the rollout itself accumulates in float32 either way.
    dtype = torch.bfloat16 if (args.bf16 and torch.cuda.is_available()) else torch.float32
    model = RGenIMA.from_checkpoint(args.checkpoint, dtype=dtype, attn_implementation="eager").eval()
    if torch.cuda.is_available():
        model.to("cuda")
    if model.connector is None:
        raise InputDataError("the checkpoint has no connector: an SNP-only model has no ROI tokens to attribute.",
                             path=args.checkpoint, fix="attribute an R-GenIMA (LLM + RiT) model.")
    genes = read_tsv(args.gene_panel)["gene"].astype(str).tolist()
    rois = read_rois_table(args.rois, n_rois=None)["name"].tolist()
    prompts = load_attribution_prompts(args.samples, args.imputed, args.snps, args.embeddings, args.limit,
                                       gene_orders=args.gene_orders, seed=args.seed)
    note = model_note(args.checkpoint)
    dump = attribute_samples(model, prompts.samples, prompts.spans, genes, rois, fold=args.fold, sink=args.sink,
                             answer_rows=args.answer_rows, batch_size=args.batch_size,
                             extra_orders=prompts.extra_orders,
                             meta={"model": args.model or "", "checkpoint": str(args.checkpoint), "note": note})
    write_dump(args.output, dump)
    seconds = time.perf_counter() - start
    summary = {"n_subjects": dump.n_subjects, "fold": args.fold, "model": args.model or "", "note": note,
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
    from rgenima_lib.attribution.bootstrap import bootstrap_rois
    from rgenima_lib.attribution.permutation import stage_permutation_tests

    dump = load_pooled(args.dumps)
    table = bootstrap_rois(dump.roi_importance, dump.label, dump.rois, n_boot=args.n_boot, top_k=args.top_k,
                           threshold=args.threshold, score=args.score, n_draw=args.n_draw, seed=args.seed)
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


def cmd_recovery(args: argparse.Namespace) -> None:
    from rgenima_lib.attribution.recovery import recovery_table

    require_inputs(args.truth, args.genes, args.rois, args.pairs, *(args.dumps or []))
    truth = json.loads(Path(args.truth).read_text())
    genes, rois, pairs = read_tsv(args.genes), read_tsv(args.rois), read_tsv(args.pairs)
    for t in (genes, rois):
        t["stable"] = t["stable"].astype(bool)
    table = recovery_table(truth, genes, rois, pairs, top_n=args.top_n)
    note = read_note(args.genes)
    write_noted_tsv(table, args.output, note)
    header = ""
    if args.dumps:
        dump = load_pooled(args.dumps)
        acc = float((dump.predicted == dump.label).mean())
        header = (f"Model test accuracy (answer scoring, {dump.n_subjects} test subjects pooled over folds): "
                  f"{acc:.1%}; chance (majority stage) "
                  f"{max((dump.label == s).mean() for s in set(dump.label.tolist())):.1%}.\n\n")
    if args.markdown:
        cols = ["what", "stage", "n_planted", "n_found", "true_positives", "precision", "recall",
                "mean_rank_planted", "mean_rank_random"]
        write_markdown(header + markdown_table(table[cols]), args.markdown, note)
    for row in table.itertuples():
        log.info("recovery %s %s: precision %.2f recall %.2f (planted mean rank %.1f vs random %.1f)", row.what,
                 row.stage, row.precision, row.recall, row.mean_rank_planted, row.mean_rank_random)


# ----------------------------------------------------------------------------- parser
def _bootstrap_args(p) -> None:
    p.add_argument("--dumps", nargs="+", required=True, help="attention dumps of every fold of one model")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap iterations B (paper 1,000)")
    p.add_argument("--n-draw", type=int, help="subjects per resample (default: all; the paper draws 1,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", required=True)


def register(sub) -> None:
    """Add this stage's subcommands to the ``rgenima`` parser."""
    p = sub.add_parser("attribute", help="streaming attention rollout of a fold's test subjects -> attention dump")
    p.add_argument("--checkpoint", required=True, help="R-GenIMA checkpoint folder (LLM + RiT connector)")
    p.add_argument("--samples", required=True, help="datasets/{config}/fold{k}/samples.tsv")
    p.add_argument("--imputed", required=True, help="the fold's imputed genotypes (fold{k}.npz)")
    p.add_argument("--snps", required=True, help="snps.tsv")
    p.add_argument("--embeddings", required=True, help="the fold's RiT token cache")
    p.add_argument("--gene-panel", required=True, help="config/gene_panel.tsv (gene order of the dump)")
    p.add_argument("--rois", required=True, help="config/rois.tsv (ROI order of the dump)")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--model", help="model id recorded in the dump")
    p.add_argument("--sink", choices=["exclude", "keep", "per_layer"], default="exclude",
                   help="first-token attention sink: exclude and renormalise (default), keep, or drop per layer")
    p.add_argument("--answer-rows", choices=["label", "prompt_end"], default="label",
                   help="rows rolled out for the answer: those predicting the label token(s), or the prompt's last")
    p.add_argument("--gene-orders", type=int, default=1,
                   help="1: attribute the canonical gene order (paper); K > 1: average over K seeded permutations")
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
    p.add_argument("--score", choices=["mean", "contrast"], default="mean",
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
    p.add_argument("--top-n", type=int, default=20, help="top pairs per stage counted as found")
    p.add_argument("--output", required=True)
    p.add_argument("--markdown")
    p.set_defaults(func=cmd_recovery)

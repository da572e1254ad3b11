"""Power: how many subjects recover the planted genes and ROIs, by cohort size and effect size.

A simulation over N and an effect-size level, with a cheap model in place of the LLM
(docs/interpretability.md, "Power"). Each replicate:

1. draws a cohort with the synthetic generator's own functions: SNP dosages per panel gene
   (as many SNPs per gene as :func:`~rgenima_lib.synthetic.genotypes.snps_per_gene` gives,
   Hardy–Weinberg, no LD), the liability of the causal genes' driver SNPs
   (:func:`~rgenima_lib.synthetic.truth.genetic_liability`), stages cut from it in the paper's
   proportions (:func:`~rgenima_lib.synthetic.truth.stages_from_liability`) and the planted
   ROI atrophy (:func:`~rgenima_lib.synthetic.truth.atrophy_fractions`); ROI volumes are a
   base volume times (1 − atrophy) times a between-subject log-normal spread;
2. fits a multinomial logistic regression (L2) on the standardised SNP dosages and log ROI
   volumes in 2-fold cross-fitting, so every subject is attributed by the model that did not
   see it, as the LLM's test subjects are;
3. attributes each test subject as |w · (x − mean)|, the term's share of the logit: a gene gets
   the sum (or per-SNP mean, ``gene_score``) over its SNPs of the true class's centred
   coefficients; a stage's ROIs the stage-versus-NC coefficient difference;
4. applies the same selections as the pipeline (the paper's top-k bootstrap, significance,
   stability) and scores precision and recall of the planted genes and stage ROIs.

Why this model: the LLM is too slow on CPU for hundreds of fits, and a linear model on the
same features is what the LLM's attribution can at best reproduce when the planted effects are
additive (they are: a liability sum, and per-stage atrophy). Its recovery is therefore an upper
bound on the LLM's at the same N. :func:`dump_gene_ranking` ranks genes from an attention dump
so that the LLM's ranking can be set beside this one at one N.

Effect levels (``EFFECT_LEVELS``): ``demo`` keeps the synthetic settings; ``gwas`` keeps APOE's
beta (ε4 is strong in AD GWAS: OR ≈ 3 per allele) and scales the other genes' betas and all
atrophy by the level's factors (GWAS loci besides APOE have OR ≈ 1.1–1.2).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rgenima_lib.attribution.bootstrap import TARGET_STAGES, bootstrap_genes, bootstrap_rois
from rgenima_lib.attribution.selection import gene_scores, significance_select, stability_select
from rgenima_lib.synthetic.clinical import stage_counts
from rgenima_lib.synthetic.genotypes import APOE_SNPS, VALID_FREQ_BETA, VALID_FREQ_RANGE, snps_per_gene
from rgenima_lib.synthetic.truth import atrophy_fractions, choose_driver_snps, genetic_liability, stages_from_liability
from rgenima_lib.vocabulary import STAGES

EFFECT_LEVELS: dict[str, dict[str, float]] = {
    "demo": {"gene_scale": 1.0, "atrophy_scale": 1.0},
    "gwas": {"gene_scale": 0.3, "atrophy_scale": 0.5},
}
"""Factors on the non-APOE gene betas and on every planted atrophy fraction."""

VOLUME_SD = 0.1
"""Between-subject spread of an ROI's log volume (about 10 %, as healthy subcortical volumes)."""

POWER_COLUMNS = ["effect", "n_subjects", "replicate", "what", "selection", "n_planted", "n_found",
                 "true_positives", "precision", "recall", "accuracy"]


def scaled_effects(synthetic: dict, gene_scale: float, atrophy_scale: float):
    """(causal genes, stage atrophy, ROI-gene pairs) of the synthetic settings with the level's factors.

    APOE's beta is kept; every other beta, each stage's atrophy fraction and each pair's per-allele
    fraction are multiplied.
    """
    causal = {g: float(b) * (1.0 if g == "APOE" else gene_scale) for g, b in synthetic["causal_genes"].items()}
    atrophy = {s: {r: float(f) * atrophy_scale for r, f in fr.items()} for s, fr in synthetic["stage_atrophy"].items()}
    pairs = [{**p, "per_allele": float(p["per_allele"]) * atrophy_scale} for p in synthetic.get("roi_gene_pairs", [])]
    return causal, atrophy, pairs


def simulate_variants(panel: pd.DataFrame, n_variants: int, rng: np.random.Generator) -> pd.DataFrame:
    """SNP table (snp, gene, pos, freq_a1, planted = '') with APOE's two real SNPs first in its block."""
    counts = snps_per_gene((panel["end_grch37"] - panel["start_grch37"]).to_numpy(), n_variants)
    rows = []
    lo, hi = VALID_FREQ_RANGE
    for gene, k in zip(panel["gene"], counts):
        names = list(APOE_SNPS) if gene == "APOE" else []
        freqs = [APOE_SNPS[s]["freq"] for s in names]
        extra = int(k) - len(names)
        draws = rng.beta(*VALID_FREQ_BETA, size=4 * extra + 8)
        freqs += draws[(draws >= lo) & (draws <= hi)][:extra].tolist()
        freqs += [lo] * (int(k) - len(freqs))  # a short draw (rare) is padded at the range's floor
        names += [f"{gene}_snp{i}" for i in range(len(names), int(k))]
        rows += [{"snp": s, "gene": gene, "pos": i, "freq_a1": f, "planted": ""} for i, (s, f) in
                 enumerate(zip(names, freqs))]
    return pd.DataFrame(rows)


def simulate_cohort(n_subjects: int, panel: pd.DataFrame, rois: pd.DataFrame, synthetic: dict, *, gene_scale: float,
                    atrophy_scale: float, n_variants: int, rng: np.random.Generator) -> dict:
    """One cohort: dosages, stages and ROI log volumes from the generator's liability and atrophy functions.

    Returns
    -------
    dict
        dosage int8[N, M], variants (DataFrame, M rows), stages str[N], log_volume float64[N, R],
        causal (list of gene), stage_rois (dict stage -> list of ROI).
    """
    causal, atrophy, pairs = scaled_effects(synthetic, gene_scale, atrophy_scale)
    variants = simulate_variants(panel, n_variants, rng)
    freq = variants["freq_a1"].to_numpy()
    dosage = rng.binomial(2, freq, size=(n_subjects, len(freq))).astype(np.int8)
    genes = sorted(set(causal) | {p["gene"] for p in pairs})
    drivers = choose_driver_snps(variants, genes)
    liability = genetic_liability(dosage, variants, causal, drivers, float(synthetic.get("liability_noise_sd", 1.0)),
                                  rng)
    stages = stages_from_liability(liability, stage_counts(n_subjects))
    column = {s: j for j, s in enumerate(variants["snp"])}
    fractions = atrophy_fractions(stages, {g: dosage[:, column[drivers[g]]] for g in genes}, rois, atrophy, pairs, rng)
    base = np.log(rng.lognormal(8.0, 1.0, len(rois)))
    log_volume = base + np.log1p(-fractions.astype(np.float64)) + rng.normal(0.0, VOLUME_SD, fractions.shape)
    return {"dosage": dosage, "variants": variants, "stages": stages, "log_volume": log_volume,
            "causal": list(causal), "stage_rois": {s: list(fr) for s, fr in atrophy.items()}}


def cross_fitted_attributions(x: np.ndarray, y: np.ndarray, *, c: float = 1.0, seed: int = 0):
    """Per test subject, the signed logit terms of every class, from 2-fold cross-fitted logistic regressions.

    Parameters
    ----------
    x : float[N, P]
    y : int[N]
        Class index (0..3).
    c : float
        Inverse L2 strength of scikit-learn's ``LogisticRegression``.
    seed : int
        Fold assignment.

    Returns
    -------
    terms : float32[N, K, P]
        Centred coefficient of class k times the standardised feature (the fold's training mean and sd).
    predicted : int[N]
    """
    from sklearn.linear_model import LogisticRegression

    n, p = x.shape
    fold = np.random.default_rng([seed, 40]).permutation(n) % 2
    terms = np.zeros((n, len(STAGES), p), np.float32)
    predicted = np.zeros(n, np.int64)
    for k in (0, 1):
        train, test = fold != k, fold == k
        mean, sd = x[train].mean(0), x[train].std(0)
        sd = np.where(sd > 0, sd, 1.0)
        model = LogisticRegression(C=c, max_iter=300).fit((x[train] - mean) / sd, y[train])
        w = np.zeros((len(STAGES), p))
        w[model.classes_] = model.coef_
        w -= w.mean(0)  # the softmax's coefficients are fixed up to a shift per feature
        z = (x[test] - mean) / sd
        terms[test] = (w[None] * z[:, None, :]).astype(np.float32)
        predicted[test] = model.classes_[model.predict_proba(z).argmax(1)]
    return terms, predicted


def gene_terms(terms: np.ndarray, y: np.ndarray, snp_gene: np.ndarray, genes) -> tuple[np.ndarray, np.ndarray]:
    """Per subject and gene, the summed |logit term| of its true class over the gene's SNPs.

    Parameters
    ----------
    terms : float[N, K, M]
        :func:`cross_fitted_attributions` over the M SNP columns.
    y : int[N]
    snp_gene : str[M]
    genes : sequence of str, length G

    Returns
    -------
    importance : float32[N, G]
    tokens : float32[N, G]
        SNPs per gene (the ``per_token`` score's denominator, as an LLM's tokens per gene).
    """
    gene_index = {g: i for i, g in enumerate(genes)}
    member = np.zeros((len(snp_gene), len(genes)), np.float32)
    member[np.arange(len(snp_gene)), [gene_index[g] for g in snp_gene]] = 1.0
    own = np.abs(terms[np.arange(len(y)), y])
    return own @ member, np.broadcast_to(member.sum(0), (len(y), len(genes)))


def linear_gene_ranking(dosage: np.ndarray, snp_gene: np.ndarray, stages, genes, *, gene_score: str = "per_token",
                        seed: int = 0) -> pd.DataFrame:
    """The power simulation's model on a real data set: genes ranked by its cross-fitted attributions.

    Parameters
    ----------
    dosage : float[N, M]
        Minor-allele dosages, missing calls already imputed
        (:func:`~rgenima_lib.genetics.genotype_matrix.impute_expected_dosage`).
    snp_gene : str[M]
    stages : str[N]
    genes : sequence of str
    gene_score : {"sum", "per_token"}
    seed : int

    Returns
    -------
    DataFrame
        gene, mean_score, rank (1 = highest); and the model's accuracy in ``attrs["accuracy"]``.
    """
    x = np.asarray(dosage, np.float64)
    if np.isnan(x).any() or (x < 0).any():
        raise ValueError("dosage holds missing calls (NaN or -1): impute them before ranking")
    y = np.array([STAGES.index(s) for s in stages])
    terms, predicted = cross_fitted_attributions(x, y, seed=seed)
    importance, tokens = gene_terms(terms, y, np.asarray(snp_gene), genes)
    score = gene_scores(importance, tokens, gene_score).astype(np.float64).mean(0)
    table = pd.DataFrame({"gene": list(genes), "mean_score": score})
    table = table.sort_values(["mean_score", "gene"], ascending=[False, True], kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    table.attrs["accuracy"] = float((predicted == y).mean())
    return table


def ranking_agreement(llm: pd.DataFrame, linear: pd.DataFrame, causal, k: int) -> pd.DataFrame:
    """How well the LLM's gene ranking agrees with the linear model's on the same subjects.

    Parameters
    ----------
    llm, linear : DataFrame
        gene, rank (:func:`dump_gene_ranking`, :func:`linear_gene_ranking`).
    causal : sequence of str
        The planted genes.
    k : int
        Top-k compared (e.g. the number of planted genes).

    Returns
    -------
    DataFrame
        One row per gene (gene, causal, llm_rank, linear_rank), with the summary in ``attrs``:
        ``spearman`` (rank correlation over all genes), ``top_k_overlap`` (shared genes among both
        top k, over k), and the causal genes' mean rank under each.
    """
    from scipy.stats import spearmanr

    merged = llm[["gene", "rank"]].rename(columns={"rank": "llm_rank"}).merge(
        linear[["gene", "rank"]].rename(columns={"rank": "linear_rank"}), on="gene", how="inner")
    merged.insert(1, "causal", merged["gene"].isin(set(causal)))
    top_llm = set(merged.nsmallest(k, "llm_rank")["gene"])
    top_linear = set(merged.nsmallest(k, "linear_rank")["gene"])
    merged = merged.sort_values("linear_rank", kind="stable").reset_index(drop=True)
    c = merged[merged["causal"]]
    merged.attrs.update({"spearman": float(spearmanr(merged["llm_rank"], merged["linear_rank"]).statistic),
                         "top_k_overlap": len(top_llm & top_linear) / k, "k": k,
                         "causal_mean_rank_llm": float(c["llm_rank"].mean()),
                         "causal_mean_rank_linear": float(c["linear_rank"].mean()), "n_genes": len(merged)})
    return merged


def _precision_recall(planted, found) -> dict:
    planted, found = set(planted), set(found)
    tp = len(planted & found)
    return {"n_planted": len(planted), "n_found": len(found), "true_positives": tp,
            "precision": tp / len(found) if found else np.nan, "recall": tp / len(planted) if planted else np.nan}


def recover_planted(cohort: dict, genes, rois, *, gene_score: str = "per_token", top_genes: int = 45,
                    top_rois: int = 10, n_boot: int = 200, alpha: float = 0.05, seed: int = 0) -> list[dict]:
    """Fit, attribute and select on one cohort; one row per (genes / stage ROIs, selection).

    Returns
    -------
    list of dict
        what, selection, n_planted, n_found, true_positives, precision, recall, accuracy (ROI rows pool
        the stages' counts).
    """
    variants, stages = cohort["variants"], cohort["stages"]
    x = np.column_stack([cohort["dosage"].astype(np.float64), cohort["log_volume"]])
    y = np.array([STAGES.index(s) for s in stages])
    terms, predicted = cross_fitted_attributions(x, y, seed=seed)
    accuracy = float((predicted == y).mean())
    n_snps = len(variants)
    importance, tokens = gene_terms(terms[:, :, :n_snps], y, variants["gene"].to_numpy(), genes)
    rows = []
    top = bootstrap_genes(importance, genes, n_boot=n_boot, top_k=top_genes, seed=seed, tokens=tokens,
                          score=gene_score)
    found = {"top_k": top.loc[top["stable"], "gene"].tolist()}
    score = gene_scores(importance, tokens, gene_score)
    for name, table in (("significance", significance_select(score, alpha=alpha)),
                        ("stability", stability_select(score, seed=seed))):
        found[name] = list(np.asarray(genes)[table["selected"].to_numpy(bool)])
    rows += [{"what": "genes", "selection": m, **_precision_recall(cohort["causal"], f)} for m, f in found.items()]
    pooled = {m: {"n_planted": 0, "n_found": 0, "true_positives": 0} for m in ("top_k", "significance", "stability")}
    nc = STAGES.index("NC")
    for stage in TARGET_STAGES:
        planted = cohort["stage_rois"].get(stage, [])
        mask = stages == stage
        if not planted or mask.sum() < 4:
            continue
        s = STAGES.index(stage)
        xs = np.abs(terms[mask, s, n_snps:] - terms[mask, nc, n_snps:])
        boot = bootstrap_rois(xs, np.full(mask.sum(), stage), rois, stages=(stage,), n_boot=n_boot, top_k=top_rois,
                              seed=seed)
        chosen = {"top_k": boot.loc[boot["stable"], "roi"].tolist(),
                  "significance": list(np.asarray(rois)[significance_select(xs, alpha=alpha)["selected"]]),
                  "stability": list(np.asarray(rois)[stability_select(xs, seed=seed)["selected"]])}
        for m, f in chosen.items():
            pr = _precision_recall(planted, f)
            for k in pooled[m]:
                pooled[m][k] += pr[k]
    for m, c in pooled.items():
        rows.append({"what": "stage ROIs", "selection": m, **c,
                     "precision": c["true_positives"] / c["n_found"] if c["n_found"] else np.nan,
                     "recall": c["true_positives"] / c["n_planted"] if c["n_planted"] else np.nan})
    return [{**r, "accuracy": accuracy} for r in rows]


def power_simulation(panel: pd.DataFrame, rois: pd.DataFrame, synthetic: dict, *, sizes=(200, 500, 1000, 2000),
                     effects=("demo", "gwas"), replicates: int = 2, n_variants: int = 1500, seed: int = 0,
                     **options) -> pd.DataFrame:
    """Recovery over cohort sizes, effect levels and replicates.

    Parameters
    ----------
    panel : DataFrame
        ``config/gene_panel.tsv`` (gene, start_grch37, end_grch37).
    rois : DataFrame
        ``config/rois.tsv`` (name, token order).
    synthetic : dict
        The config's ``synthetic`` section (causal_genes, stage_atrophy, roi_gene_pairs, liability_noise_sd).
    sizes : sequence of int
    effects : sequence of str
        Keys of :data:`EFFECT_LEVELS`.
    replicates : int
    n_variants : int
        SNPs over the panel (paper about 1,500).
    seed : int
    **options
        Passed to :func:`recover_planted`.

    Returns
    -------
    DataFrame
        :data:`POWER_COLUMNS`, one row per effect, N, replicate, what and selection.
    """
    genes = panel["gene"].astype(str).tolist()
    names = rois["name"].astype(str).tolist()
    rows = []
    for e_index, effect in enumerate(effects):
        level = EFFECT_LEVELS[effect]
        for n in sizes:
            for rep in range(replicates):
                rng = np.random.default_rng([seed, 41, e_index, int(n), rep])
                cohort = simulate_cohort(int(n), panel, rois, synthetic, n_variants=n_variants, rng=rng, **level)
                for row in recover_planted(cohort, genes, names, seed=rep, **options):
                    rows.append({"effect": effect, "n_subjects": int(n), "replicate": rep, **row})
    return pd.DataFrame(rows, columns=POWER_COLUMNS)


def power_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean precision and recall (and model accuracy) over replicates, per effect, N, what and selection."""
    return (table.groupby(["effect", "n_subjects", "what", "selection"], sort=False)
            [["precision", "recall", "n_found", "accuracy"]].mean().reset_index())


def dump_gene_ranking(dump, score: str = "per_token") -> pd.DataFrame:
    """Genes of an attention dump ranked by mean score over its subjects (to set beside the power model's).

    Parameters
    ----------
    dump : AttentionDump
    score : {"sum", "per_token"}

    Returns
    -------
    DataFrame
        gene, mean_score, rank (1 = highest), rows by rank.
    """
    x = gene_scores(dump.gene_importance, dump.gene_tokens, score).astype(np.float64).mean(0)
    table = pd.DataFrame({"gene": np.asarray(dump.genes, dtype=str), "mean_score": x})
    table = table.sort_values(["mean_score", "gene"], ascending=[False, True], kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table

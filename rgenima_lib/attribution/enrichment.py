"""Enrichment of the stable genes for AD GWAS loci: one-sided Fisher exact test (paper 2.2).

Universe: the genes of the panel (105). The 2 × 2 table crosses "stable"
(bootstrap-selected in > 50% of iterations) with "GWAS" (``gwas_ad = 1`` in
``config/gene_panel.tsv``: genome-wide significant AD loci)::

                    GWAS    not GWAS
    stable           a         b
    not stable       c         d

``scipy.stats.fisher_exact(..., alternative="greater")``: P is the
hypergeometric upper tail P(X ≥ a); the odds ratio is the sample one,
a·d / (b·c). The paper's counts (9 stable genes, 7 of them GWAS, 44 GWAS
genes among 105) give P = 0.0272 and OR = 5.58.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import fisher_exact


@dataclass
class Enrichment:
    """Result of :func:`gwas_enrichment` (counts of the 2 × 2 table, P, OR)."""

    universe: int
    n_stable: int
    n_gwas: int
    stable_gwas: int        # a
    stable_not_gwas: int    # b
    gwas_not_stable: int    # c
    neither: int            # d
    odds_ratio: float
    p_value: float
    stable_gwas_genes: list
    stable_other_genes: list

    def table(self) -> np.ndarray:
        """int[2, 2]: rows stable / not stable, columns GWAS / not GWAS."""
        return np.array([[self.stable_gwas, self.stable_not_gwas], [self.gwas_not_stable, self.neither]])

    def as_dict(self) -> dict:
        return asdict(self)


def fisher_from_counts(universe: int, n_stable: int, stable_gwas: int, n_gwas: int) -> tuple[float, float]:
    """(odds ratio, one-sided P) of the 2 × 2 table given by its margins and overlap.

    Parameters
    ----------
    universe : int
        Genes tested (105).
    n_stable : int
        Stable genes.
    stable_gwas : int
        Stable genes that are GWAS loci.
    n_gwas : int
        GWAS loci in the universe.
    """
    a = stable_gwas
    b = n_stable - a
    c = n_gwas - a
    d = universe - a - b - c
    if min(a, b, c, d) < 0:
        raise ValueError(f"impossible counts: universe {universe}, stable {n_stable}, overlap {a}, GWAS {n_gwas}")
    res = fisher_exact([[a, b], [c, d]], alternative="greater")
    return float(res.statistic), float(res.pvalue)


def gwas_enrichment(genes, stable, gwas) -> Enrichment:
    """Fisher test of stable genes vs GWAS genes within ``genes`` (the universe).

    Parameters
    ----------
    genes : sequence of str, length U
        The universe (the panel).
    stable : bool[U]
    gwas : bool[U]

    Returns
    -------
    Enrichment
    """
    genes = np.asarray(genes, dtype=object)
    stable = np.asarray(stable, dtype=bool)
    gwas = np.asarray(gwas, dtype=bool)
    if not (len(genes) == len(stable) == len(gwas)):
        raise ValueError("genes, stable and gwas must have the same length")
    a = int((stable & gwas).sum())
    odds, p = fisher_from_counts(len(genes), int(stable.sum()), a, int(gwas.sum()))
    return Enrichment(universe=len(genes), n_stable=int(stable.sum()), n_gwas=int(gwas.sum()), stable_gwas=a,
                      stable_not_gwas=int((stable & ~gwas).sum()), gwas_not_stable=int((~stable & gwas).sum()),
                      neither=int((~stable & ~gwas).sum()), odds_ratio=odds, p_value=p,
                      stable_gwas_genes=genes[stable & gwas].tolist(),
                      stable_other_genes=genes[stable & ~gwas].tolist())

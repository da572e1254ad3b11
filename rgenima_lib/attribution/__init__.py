"""Interpretability (paper 2.2–2.4, 4.3; docs/design.md, "Attribution").

Streaming attention rollout, attention dumps, bootstrap stability, permutation tests,
GWAS enrichment and planted-truth recovery."""

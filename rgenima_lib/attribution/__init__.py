"""Interpretability (paper 2.2–2.4, 4.3; DESIGN 7): streaming attention rollout, attention dumps, bootstrap
stability, permutation tests, GWAS enrichment and planted-truth recovery."""

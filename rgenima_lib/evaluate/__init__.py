"""Evaluation (paper 2.1, Tables 1–5): metrics per fold from prediction tables, mean ± sd over
folds, bootstrap confidence intervals, the tables as TSV + Markdown, confusion matrices."""

"""Genetics stage (paper 4.4.1-4.4.2): panel extraction and QC with PLINK 2, the
genotype matrix with fold-wise imputation, SNP text for the prompt, and
gene-order permutation augmentation."""

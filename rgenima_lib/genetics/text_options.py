"""The names the SNP-text settings may take (``genetics.snp_separator``, ``genetics.snp_packing``).

Kept apart from :mod:`rgenima_lib.genetics.serialize`, with no imports, because every ``rgenima``
subcommand that reads SNP text offers them as flag choices, and building the parser must not
import numpy or pandas (docs/design.md, "Rule jobs start fast").
"""

PACKINGS = ("none", "pairs")
"""What ``genetics.snp_packing`` may say: one symbol per SNP (the paper's text) or one per two SNPs of a gene."""

PACKING_SETTINGS = ("auto", *PACKINGS)
"""What ``genetics.snp_packing`` may say: ``auto`` (the packing and separator with the fewest exact tokens for the
tokenizer that reads the text) or a packing name."""

DEFAULT_PACKING = "none"
"""The packing of the library calls that name none: the paper's one symbol per SNP."""

SEPARATORS = {"none": "", "space": " ", "comma": ","}
"""Genotype separators by setting name, in the order :func:`resolve_separator` prefers them on a tie."""

SEPARATOR_SETTINGS = ("auto", *SEPARATORS)
"""What ``genetics.snp_separator`` may say: ``auto`` (chosen per tokenizer) or a separator name."""

DEFAULT_SEPARATOR = "space"
"""The separator of the library calls that name none (the BERT baselines' text, as before)."""

"""What every subcommand shares: input checks and quiet libraries."""

from __future__ import annotations

import os
from pathlib import Path

from rgenima_lib.errors import InputDataError


def require_inputs(*paths, fix: str = "run the upstream rule first, or check the path.") -> None:
    """Stop with a clear error when an input file or folder does not exist (None entries are skipped)."""
    for path in paths:
        if path and not Path(path).exists():
            raise InputDataError("input not found.", path=path, fix=fix)


def add_snp_text_args(p, default_separator: str = "auto") -> None:
    """``--snp-separator`` and ``--snp-packing`` (``genetics.snp_separator`` and ``snp_packing``): the SNP text."""
    from rgenima_lib.genetics.text_options import DEFAULT_PACKING, PACKING_SETTINGS, SEPARATOR_SETTINGS

    p.add_argument("--snp-separator", choices=SEPARATOR_SETTINGS, default=default_separator,
                   help="genotype separator; auto: the cheapest exact one for the tokenizer that reads the text")
    p.add_argument("--snp-packing", choices=PACKING_SETTINGS, default=DEFAULT_PACKING,
                   help="genotype symbols: one per SNP (none, the paper), one per two SNPs of a gene (pairs), "
                        "or auto: the packing with the fewest exact tokens for the tokenizer that reads the text")


def quiet_libraries() -> None:
    """Offline, and no loading bars from transformers in the rule's log."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

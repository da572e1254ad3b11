"""R-GenIMA: ROI-wise vision transformer + SNP prompts + LLM for AD staging.

The library every Snakemake rule calls through the ``rgenima`` console script.
Functions take arrays and tables and return arrays and tables; only
``rgenima_lib.cli`` (one module per rule family) knows about files and command-line arguments.
"""

__version__ = "0.1.0"

#!/usr/bin/env bash
# Run by Snakemake (--sdm conda) inside the new genetics env, from the workflow's working directory
# (the repository root; set RGENIMA_REPO otherwise): install the project for the `rgenima` command,
# without its dependencies, which the env file pins.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation -e "${RGENIMA_REPO:-.}"

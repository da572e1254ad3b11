#!/usr/bin/env bash
# Post-deploy script of every env here (each <env>.post-deploy.sh links to it). Snakemake runs it
# inside the new env (--sdm conda) from the workflow's working directory, the repository root
# (set RGENIMA_REPO otherwise): it installs the project for the `rgenima` command without its
# dependencies, which the env file pins. A `pip: [-e ..]` entry cannot do this: Snakemake builds
# the env from a copy of the file under .snakemake/conda/, where the relative path is lost.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation -e "${RGENIMA_REPO:-.}"

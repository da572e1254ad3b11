"""The ``rgenima`` command: one subcommand per workflow step, explicit inputs and outputs.

Snakemake rules call these through ``shell:``; each can equally be run, tested and
profiled by hand. A subcommand parses its flags, reads its inputs, calls one
library function and writes its outputs; nothing else lives here. Bad input ends in
one line naming the file, the subject and the fix, and exit status 2, with no
partial output left behind.

One module per rule family registers its subcommands (``FAMILIES``). Every rule job
starts this command and builds the whole parser, so a family module imports the
library it calls inside each command function, not at its top: ``import torch``
alone takes about 2 s, and the demo starts the command some 400 times. Library
modules import each other at module level.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from rgenima_lib.errors import InputDataError

log = logging.getLogger("rgenima")

FAMILIES: tuple[str, ...] = ("cohort", "genetics", "data", "imaging", "encoders", "llm", "evaluate", "attribution",
                             "figures")
"""The rule families, in workflow order: ``rgenima_lib.cli.<family>`` each has ``register(subparsers)``."""


def build_parser() -> argparse.ArgumentParser:
    """The ``rgenima`` parser with every family's subcommands."""
    parser = argparse.ArgumentParser(prog="rgenima", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    for family in FAMILIES:
        importlib.import_module(f"rgenima_lib.cli.{family}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # torch's CPU allocator backs its large tensors (>= 2 MB) with transparent huge pages when this is set
    # (read at the first allocation). A batch of ROI patches is 114 MB at S = 32; in 4 kB pages its fresh
    # allocation is mostly page faults (docs/design.md, "Rule jobs start fast").
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        args.func(args)
    except InputDataError as exc:
        print(f"rgenima {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0

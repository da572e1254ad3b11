"""The ``rgenima`` command: one subcommand per pipeline stage, explicit inputs and outputs.

Snakemake rules call these through ``shell:``; each can equally be run, tested
and profiled by hand. Bad input ends in one line naming the file, the subject
and the fix, and exit status 2, with no partial output left behind.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import pkgutil
import sys

from rgenima_lib.errors import InputDataError

log = logging.getLogger("rgenima")



def stage_command_modules() -> list[str]:
    """Every ``rgenima_lib.<stage>.commands`` module, in name order.

    Each stage family registers its own subcommands there, so adding a stage
    never touches another stage's code.
    """
    import rgenima_lib

    return sorted(
        f"rgenima_lib.{info.name}.commands"
        for info in pkgutil.iter_modules(rgenima_lib.__path__)
        if info.ispkg and importlib.util.find_spec(f"rgenima_lib.{info.name}.commands") is not None
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rgenima", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")

    for module in stage_command_modules():
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        args.func(args)
    except InputDataError as exc:
        print(f"rgenima {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

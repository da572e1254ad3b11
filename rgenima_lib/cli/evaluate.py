"""``rgenima evaluate``: Tables 1–5 (TSV + Markdown), fold metrics, bootstrap CIs, confusion matrices."""

from __future__ import annotations

# evaluate.tables imports scipy and matplotlib (about 2 s): it is imported inside the command function, so that
# every other subcommand, and the parser itself, starts without paying for it.

import argparse
import logging

log = logging.getLogger("rgenima")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from rgenima_lib.evaluate.tables import Run, read_predictions, write_tables

    runs = [Run(config, model, args.protocol, int(fold), read_predictions(path), path)
            for config, model, fold, path in args.prediction]
    summary = write_tables(runs, args.out_dir, note=args.note, n_boot=args.n_bootstrap, seed=args.seed)
    for row in summary.itertuples():
        log.info("%-16s %-34s %-9s accuracy %.3f  macro-F1 %.3f  (%d folds, %d subjects)", row.config,
                 row.method + (" [generated]" if row.decoding == "generated" else ""), row.protocol,
                 row.accuracy_mean, row.macro_f1_mean, row.n_folds, row.n_subjects)
    log.info("tables -> %s", args.out_dir)


def register(sub) -> None:
    """Add the evaluation subcommand to the ``rgenima`` parser."""
    p = sub.add_parser("evaluate", help="Tables 1-5 from predictions: metrics per fold, mean ± sd, bootstrap CI")
    p.add_argument("--prediction", nargs=4, action="append", required=True,
                   metavar=("CONFIG", "MODEL", "FOLD", "PATH"),
                   help="one predictions TSV: data configuration, model ID, fold, path (repeat)")
    p.add_argument("--protocol", default="subject", choices=["subject", "paper"],
                   help="split protocol of these predictions (paper = leaky, marked in every table)")
    p.add_argument("--note", default="", help="heading of every table, e.g. 'synthetic demo cohort'")
    p.add_argument("--n-bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_evaluate)

"""``rgenima`` subcommands of the data stage: splits, build-datasets, leakage-audit, sample-text."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rgenima_lib.cli.common import add_snp_text_args
from rgenima_lib.io import markdown_table

log = logging.getLogger("rgenima")


def cmd_splits(args: argparse.Namespace) -> None:
    from rgenima_lib.data.splits import fold_summary, make_subject_folds
    from rgenima_lib.errors import InputDataError
    from rgenima_lib.io import read_tsv, write_tsv

    if not Path(args.manifest).is_file():
        raise InputDataError("manifest not found.", path=args.manifest, fix="run the manifest rule first.")
    manifest = read_tsv(args.manifest, dtype={"subject": str})
    folds, notes = make_subject_folds(manifest, args.n_folds, args.seed)
    for note in notes:
        log.warning("%s", note)
    write_tsv(folds, args.output)
    summary = fold_summary(folds)
    if args.summary:
        write_tsv(summary, args.summary)
    log.info("%d subjects in %d subject-level folds -> %s\n%s", len(folds), args.n_folds, args.output,
             summary[summary["stage"] == "all"].to_string(index=False))


def cmd_build_datasets(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    from rgenima_lib.data.datasets import build_dataset, dataset_meta
    from rgenima_lib.data.splits import read_folds
    from rgenima_lib.io import write_json, write_tsv

    folds = read_folds(args.folds)
    n_folds = int(folds["fold"].max()) + 1
    for k in tqdm(range(n_folds), desc=f"data set {args.config}", unit="fold", disable=None):
        samples = build_dataset(folds, args.config, k, protocol=args.protocol, n_permutations=args.n_permutations,
                                seed=args.seed, paired_fraction=args.paired_fraction)
        meta = dataset_meta(samples, config=args.config, fold=k, protocol=args.protocol,
                            n_permutations=args.n_permutations, seed=args.seed, paired_fraction=args.paired_fraction)
        out = Path(args.out_dir) / f"fold{k}"
        write_tsv(samples, out / "samples.tsv")
        write_json(meta, out / "meta.json")
        c = meta["counts"]
        log.info("%s fold %d (%s protocol%s): train %d samples of %d subjects, test %d samples of %d subjects",
                 args.config, k, args.protocol, ", LEAKY" if meta["leaky"] else "", c["train"]["samples"],
                 c["train"]["subjects"], c["test"]["samples"], c["test"]["subjects"])


def cmd_leakage_audit(args: argparse.Namespace) -> None:
    from rgenima_lib.data.audit import audit_table
    from rgenima_lib.data.datasets import PROTOCOLS, build_dataset, read_samples
    from rgenima_lib.data.splits import read_folds
    from rgenima_lib.io import write_tsv

    folds = read_folds(args.folds)
    n_folds = int(folds["fold"].max()) + 1
    splits = []
    for protocol in PROTOCOLS:
        for config in args.configs:
            for k in range(n_folds):
                if protocol == args.protocol:
                    # The data sets the pipeline trains on, as written.
                    samples = read_samples(Path(args.datasets_dir) / config / f"fold{k}" / "samples.tsv")
                else:
                    # The other protocol, built the same way in memory, for the side-by-side comparison.
                    samples = build_dataset(folds, config, k, protocol=protocol, n_permutations=args.n_permutations,
                                            seed=args.seed, paired_fraction=args.paired_fraction)
                splits.append(((protocol, config, k), samples))
    table = audit_table(splits, args.protocol)
    write_tsv(table, args.output)
    if args.markdown:
        from rgenima_lib.io import atomic_output

        with atomic_output(args.markdown) as tmp:
            tmp.write_text(markdown_table(table[table["fold"] == "sum"], float_format=None))
    log.info("leakage audit (all folds):\n%s", table[table["fold"] == "sum"].to_string(index=False))


def cmd_sample_text(args: argparse.Namespace) -> None:
    from rgenima_lib.data.datasets import read_samples
    from rgenima_lib.errors import InputDataError
    from rgenima_lib.genetics.serialize import GenomeTexts

    samples = read_samples(args.samples).set_index("sample")
    if args.sample not in samples.index:
        raise InputDataError(f"no sample {args.sample!r}.", path=args.samples,
                             fix="pick an ID from its 'sample' column.")
    row = samples.loc[args.sample]
    tokenizer = None
    if args.tokenizer:
        from rgenima_lib.genetics.serialize import load_tokenizer

        tokenizer = load_tokenizer(args.tokenizer)
    texts = GenomeTexts.from_files(args.imputed, args.snps, style=args.style, separator=args.snp_separator,
                                   tokenizer=tokenizer, packing=args.snp_packing)
    print(texts(row["subject"], int(row["perm_seed"])).text)


def register(sub) -> None:
    """Add this stage's subcommands to the ``rgenima`` parser."""
    p = sub.add_parser("splits", help="subject-level, stage-stratified K folds from the manifest")
    p.add_argument("--manifest", required=True)
    p.add_argument("--n-folds", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--output", required=True, help="folds.tsv")
    p.add_argument("--summary", help="test subjects per fold and stage (TSV)")
    p.set_defaults(func=cmd_splits)

    p = sub.add_parser("build-datasets", help="sample tables of one data configuration for every fold")
    p.add_argument("--folds", required=True)
    p.add_argument("--config", required=True, choices=["gene_only", "image_gene", "mixture"])
    p.add_argument("--protocol", choices=["subject", "paper"], default="subject")
    p.add_argument("--n-permutations", type=int, required=True, help="gene-order permutations per training subject")
    p.add_argument("--paired-fraction", type=float, default=0.5, help="mixture: share of paired samples")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out-dir", required=True, help="writes fold<k>/samples.tsv and fold<k>/meta.json")
    p.set_defaults(func=cmd_build_datasets)

    p = sub.add_parser("leakage-audit", help="subjects on both sides of every split, both protocols")
    p.add_argument("--folds", required=True)
    p.add_argument("--datasets-dir", required=True, help="results/datasets (the configured protocol's data sets)")
    p.add_argument("--configs", nargs="+", required=True)
    p.add_argument("--protocol", choices=["subject", "paper"], required=True, help="the protocol in use")
    p.add_argument("--n-permutations", type=int, required=True)
    p.add_argument("--paired-fraction", type=float, default=0.5)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--markdown", help="the per-configuration totals as a Markdown table")
    p.set_defaults(func=cmd_leakage_audit)

    p = sub.add_parser("sample-text", help="print one sample's SNP text (rebuilt from its permutation seed)")
    p.add_argument("--samples", required=True, help="a samples.tsv")
    p.add_argument("--sample", required=True, help="sample ID")
    p.add_argument("--imputed", required=True, help="the fold's imputed genotypes (fold<k>.npz)")
    p.add_argument("--snps", required=True)
    p.add_argument("--style", choices=["compact", "verbose"], default="compact")
    add_snp_text_args(p, default_separator="space")
    p.add_argument("--tokenizer", help="local tokenizer folder the text is written for (needed by auto)")
    p.set_defaults(func=cmd_sample_text)

"""Catalog cases of the genetics stage: the PLINK trio, its sexes, its genome build, the cached genotype matrix.

Every genotype file is the simulator's 40-subject trio on the 105 panel genes (GRCh37, ADNI-style PTIDs,
``.fam`` sex from the clinical sex), then damaged the way real exports are: a truncated copy, a renamed
.pgen, a ``.fam`` that lost a line, another genome build. ``rgenima panel-extract`` refuses them before
plink2 runs; the inputs it accepts run through the real plink2.
"""

from __future__ import annotations

import json
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from catalog.base import REPO, BadInput, Invocation, rgenima

OUT_FILES = ("panel.bed", "panel.bim", "panel.fam", "panel_variants.tsv", "extract_summary.json")


@lru_cache(maxsize=None)
def _cohort(n_subjects: int = 40, seed: int = 21):
    """(dosage, variants, PTIDs, clinical sex) of a simulated cohort on the whole panel."""
    from rgenima_lib.synthetic import genotypes as gt
    from rgenima_lib.io import read_tsv

    raw = read_tsv(REPO / "config" / "gene_panel.tsv")
    dosage, variants = gt.simulate_panel_genotypes(raw, n_subjects, 300, np.random.default_rng(seed))
    ids = [f"011_S_{i:04d}" for i in range(n_subjects)]
    sex = np.where(np.arange(n_subjects) % 3 == 0, "Female", "Male")
    return dosage, variants, ids, sex


def _reference() -> pd.DataFrame:
    from rgenima_lib.genetics.panel import read_reference_snps

    return read_reference_snps(REPO / "config" / "build_reference_snps.tsv").set_index("rsid")


def _write(tmp: Path, *, n_subjects: int = 40, variants: pd.DataFrame | None = None) -> Path:
    """Write the cohort's trio as ``tmp/adni.{bed,bim,fam}`` and the manifest; return the prefix."""
    from rgenima_lib.genetics import plink_io
    from rgenima_lib.synthetic import genotypes as gt

    dosage, sim_variants, ids, sex = _cohort(n_subjects)
    fam = pd.DataFrame({"fid": ids, "iid": ids, "father": "0", "mother": "0",
                        "sex": np.where(sex == "Female", 2, 1), "phenotype": -9})
    plink_io.write_plink_bed(tmp / "adni", dosage, sim_variants if variants is None else variants, fam)
    pd.DataFrame({"subject": ids, "sex": sex}).to_csv(tmp / "manifest.tsv", sep="\t", index=False)
    return tmp / "adni"


def _extract(tmp: Path, *extra: str) -> tuple[list[str], list[Path]]:
    """argv of ``rgenima panel-extract`` on ``tmp/adni`` and its outputs."""
    out = tmp / "out"
    command = rgenima("panel-extract", "--bfile", tmp / "adni", "--gene-panel", REPO / "config" / "gene_panel.tsv",
                      "--manifest", tmp / "manifest.tsv", "--out-prefix", out / "panel",
                      "--variants", out / "panel_variants.tsv", "--summary", out / "extract_summary.json",
                      "--memory-mb", "640", *extra)
    return command, [out / name for name in OUT_FILES]


def _moved_to(variants: pd.DataFrame, build: str) -> pd.DataFrame:
    """The reference SNPs of the simulated trio moved to their ``build`` positions."""
    from rgenima_lib.genetics.panel import BUILD_COLUMNS

    ref = _reference()
    out = variants.copy()
    hit = out["snp"].isin(ref.index)
    out.loc[hit, "pos"] = ref.loc[out.loc[hit, "snp"], BUILD_COLUMNS[build]].astype(int).to_numpy()
    return out.sort_values(["chrom", "pos"], key=lambda c: c.astype(int), ignore_index=True)


# ---------------------------------------------------------------- genotypes: the trio


def _damaged_trio(tmp: Path, suffix: str, damage: Callable[[Path], object], message: list[str]) -> Invocation:
    """Write the trio, pass its ``suffix`` file (``.bed``, ``.bim``, ``.fam``) to ``damage``, and expect
    ``panel-extract`` to refuse it with ``message``."""
    damage(_write(tmp).with_suffix(suffix))
    command, outputs = _extract(tmp)
    return Invocation(command, outputs, message=message)


def _add_bim_line(bim: Path) -> None:
    last = bim.read_text().splitlines()[-1].split("\t")
    last[1], last[3] = "rs90000000001", str(int(last[3]) + 1)
    bim.write_text(bim.read_text() + "\t".join(last) + "\n")


def _delete_fam_line(fam: Path) -> None:
    lines = fam.read_text().splitlines(keepends=True)
    fam.write_text("".join(lines[:20] + lines[21:]))  # 39 samples: still 10 bytes per variant


def bed_truncated(tmp: Path) -> Invocation:
    return _damaged_trio(tmp, ".bed", lambda bed: bed.write_bytes(bed.read_bytes()[:-7]),
                         ["adni.bed", ".bed holds 2996 bytes", "adni.fam lists 40 samples",
                          "adni.bim lists 300 variants", "3003 bytes", "truncated", "Fix:"])


def bed_is_a_pgen(tmp: Path) -> Invocation:
    return _damaged_trio(tmp, ".bed", lambda bed: bed.write_bytes(bytes([0x6C, 0x1B, 0x10]) + bed.read_bytes()[3:]),
                         ["adni.bed", "not a PLINK 1 variant-major .bed", "0x6c 0x1b 0x10", "PLINK 2 .pgen",
                          "plink2 --pfile", "Fix:"])


def bed_sample_major(tmp: Path) -> Invocation:
    return _damaged_trio(tmp, ".bed", lambda bed: bed.write_bytes(bytes([0x6C, 0x1B, 0x00]) + bed.read_bytes()[3:]),
                         ["not a PLINK 1 variant-major .bed", "sample-major", "plink --bfile <prefix> --make-bed",
                          "Fix:"])


def bim_line_added(tmp: Path) -> Invocation:
    return _damaged_trio(tmp, ".bim", _add_bim_line,
                         ["adni.bed", "adni.bim lists 301 variants", "adni.fam lists 40 samples",
                          "the size fits 300 variants", "Fix:"])


def fam_lines_added(tmp: Path) -> Invocation:
    extra = "011_S_9999 011_S_9999 0 0 1 -9\n"
    return _damaged_trio(tmp, ".fam", lambda fam: fam.write_text(fam.read_text() + extra),
                         ["adni.fam lists 41 samples", "adni.bim lists 300 variants", "3303 bytes",
                          "fits 37 to 40 samples per variant", "Fix:"])


def fam_line_deleted(tmp: Path) -> Invocation:
    return _damaged_trio(tmp, ".fam", _delete_fam_line, ["adni.bed", "non-zero padding bits", "first variant",
                                                         "39 samples in adni.fam", "a .fam line deleted?", "Fix:"])


def fam_empty(tmp: Path) -> Invocation:
    return _damaged_trio(tmp, ".fam", lambda fam: fam.write_text(""), ["adni.fam", ".fam holds no samples", "Fix:"])


def bim_empty(tmp: Path) -> Invocation:
    return _damaged_trio(tmp, ".bim", lambda bim: bim.write_text("\n"), ["adni.bim", ".bim holds no variants", "Fix:"])


def sex_mismatches(tmp: Path) -> Invocation:
    _write(tmp)
    manifest = pd.read_csv(tmp / "manifest.tsv", sep="\t")
    flip = manifest.index[:5]
    manifest.loc[flip, "sex"] = np.where(manifest.loc[flip, "sex"] == "Male", "Female", "Male")
    manifest.to_csv(tmp / "manifest.tsv", sep="\t", index=False)
    command, outputs = _extract(tmp)
    return Invocation(command, outputs, message=["adni.fam", "subject 011_S_0000", "5 of 40 subjects (12.5 %)",
                                                 "011_S_0000 (.fam female, clinical male)", "011_S_0004",
                                                 "max_sex_mismatch_fraction = 0.02", "Fix:"])


def sex_mismatch_below_threshold(tmp: Path) -> Invocation:
    _write(tmp, n_subjects=60)
    manifest = pd.read_csv(tmp / "manifest.tsv", sep="\t")
    manifest.loc[1, "sex"] = "Female"  # 1 of 60 = 1.7 %
    manifest.to_csv(tmp / "manifest.tsv", sep="\t", index=False)
    command, outputs = _extract(tmp)

    def check(proc: subprocess.CompletedProcess) -> None:
        assert all(p.is_file() for p in outputs), proc.stdout[-2000:]
        assert "011_S_0001 (.fam male, clinical female)" in proc.stdout

    return Invocation(command, outputs, exit_code=0, check=check,
                      message=["WARNING", "1 of 60 subjects (1.7 %) have another sex in the .fam", "going on"])


# ---------------------------------------------------------------- genotypes: the cached matrix


def _genotype_matrix(tmp: Path) -> Path:
    from rgenima_lib.genetics.genotype_matrix import save_genotypes

    dosage, variants, ids, _ = _cohort()
    path = tmp / "results" / "genetics" / "genotypes.npz"
    save_genotypes(path, dosage, ids, variants["snp"])
    pd.DataFrame({"subject": ids, "fold": np.arange(len(ids)) % 2, "stage": "NC", "has_genotype": True,
                  "has_image": True}).to_csv(tmp / "folds.tsv", sep="\t", index=False)
    return path


def _impute(tmp: Path, path: Path) -> tuple[list[str], list[Path]]:
    out = tmp / "results" / "genetics" / "imputed"
    return (rgenima("impute-genotypes", "--genotypes", path, "--folds", tmp / "folds.tsv", "--out-dir", out),
            [out / "fold0.npz", out / "fold1.npz"])


def genotypes_npz_truncated(tmp: Path) -> Invocation:
    path = _genotype_matrix(tmp)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    command, outputs = _impute(tmp, path)
    return Invocation(command, outputs, message=["genotypes.npz", "cannot read the genotype matrix",
                                                 "truncated or damaged", "rerun the rule that writes it (genotype_matrix)",
                                                 "--forcerun genotype_matrix", "Fix:"])


def genotypes_npz_missing_arrays(tmp: Path) -> Invocation:
    path = _genotype_matrix(tmp)
    with np.load(path) as data:
        dosage = data["dosage"]
    with open(path, "wb") as fh:
        np.savez(fh, dosage=dosage)
    command, outputs = _impute(tmp, path)
    return Invocation(command, outputs, message=["genotypes.npz", "lacks the array(s) subjects, snps",
                                                 "(genotype_matrix)", "Fix:"])


def imputed_npz_truncated(tmp: Path) -> Invocation:
    from rgenima_lib.genetics.genotype_matrix import save_genotypes

    dosage, variants, ids, _ = _cohort()
    imputed = tmp / "results" / "genetics" / "imputed" / "fold0.npz"
    save_genotypes(imputed, dosage.astype(np.float32), ids, variants["snp"])
    imputed.write_bytes(imputed.read_bytes()[:100])
    snps = tmp / "snps.tsv"
    snps.write_text("snp\tchrom\tpos\ta1\ta2\tgene\tblock\tmaf\tf_miss\n")
    out = tmp / "results" / "genetics" / "snp_text_tokens.tsv"
    return Invocation(rgenima("snp-text-tokens", "--imputed", imputed, "--snps", snps, "--output", out), [out],
                      message=["fold0.npz", "cannot read the genotype matrix", "(impute_genotypes)", "Fix:"])


# ---------------------------------------------------------------- genome build


def grch37_file(tmp: Path) -> Invocation:
    _write(tmp)
    command, outputs = _extract(tmp)

    def check(proc: subprocess.CompletedProcess) -> None:
        summary = json.loads(outputs[-1].read_text())
        assert summary["genome_build"]["build"] == "GRCh37" and summary["genes_with_variants"] == 105

    return Invocation(command, outputs, exit_code=0, check=check,
                      message=["genome build GRCh37 confirmed: 8 of 8 reference SNPs found", "sit at their GRCh37"])


def grch38_file(tmp: Path) -> Invocation:
    _write(tmp, variants=_moved_to(_cohort()[1], "GRCh38"))
    command, outputs = _extract(tmp)
    return Invocation(command, outputs, message=[
        "adni.bim", "the genotypes look like GRCh38 (hg38), not GRCh37", "8 of the 8 reference SNPs",
        "rs6656401 at chr1:207518704 (its GRCh38 position; GRCh37: chr1:207692049)", "--update-map", "Fix:"])


def hg18_file(tmp: Path) -> Invocation:
    _write(tmp, variants=_moved_to(_cohort()[1], "NCBI36"))
    command, outputs = _extract(tmp)
    return Invocation(command, outputs, message=[
        "adni.bim", "look like NCBI36 (hg18), not GRCh37", "rs6656401 at chr1:205758672 (its NCBI36 position; GRCh37: chr1:207692049)", "liftOver", "Fix:"])


def _without_reference_ids(variants: pd.DataFrame) -> pd.DataFrame:
    ref = _reference()
    out = variants.copy()
    hit = out["snp"].isin(ref.index)
    out.loc[hit, "snp"] = [f"kgp{i}" for i in range(int(hit.sum()))]
    return out


def no_reference_snps(tmp: Path) -> Invocation:
    _write(tmp, variants=_without_reference_ids(_cohort()[1]))
    command, outputs = _extract(tmp)
    return Invocation(command, outputs, message=["adni.bim", "cannot tell the genome build",
                                                 "none of the 31 reference SNPs", "genetics.assume_build: GRCh37",
                                                 "Fix:"])


def no_reference_snps_other_build_assumed_grch37(tmp: Path) -> Invocation:
    shifted = _without_reference_ids(_cohort()[1])
    shifted["pos"] += 3_000_000  # every position off its gene body, as another build would put it
    _write(tmp, variants=shifted)
    command, outputs = _extract(tmp, "--assume-build", "GRCh37")
    return Invocation(command, outputs, message=[
        "adni.bim", "of the 105 panel genes (± 0 bp) hold no variant",
        "this is what genotypes on another genome build look like", "No reference SNP was found",
        "genetics.min_gene_fraction", "Fix:"])


def grch37_on_other_chromosomes(tmp: Path) -> Invocation:
    other = _cohort()[1].copy()
    other["chrom"] = np.where(np.arange(len(other)) % 2 == 0, "13", "23")  # 23 = X in PLINK's numbering
    other = _without_reference_ids(other).sort_values(["chrom", "pos"], ignore_index=True)
    other["snp"] = [f"rs9{i:011d}" for i in range(len(other))]
    _write(tmp, variants=other)
    command, outputs = _extract(tmp)

    def check(proc: subprocess.CompletedProcess) -> None:
        assert "liftOver" not in proc.stdout and "look like" not in proc.stdout, proc.stdout[-2000:]

    return Invocation(command, outputs, check=check, message=[
        "adni.bim", "none of the 300 variants is on a chromosome of the panel genes", "chromosome(s) 13, X",
        "1-12, 14-22", "not a genome-build problem", "Fix:"])


def chrpos_ids(tmp: Path, build: str) -> pd.DataFrame:
    variants = _moved_to(_cohort()[1], build)
    variants["snp"] = [f"chr{c}:{p}:{a2}:{a1}" for c, p, a1, a2 in
                       zip(variants["chrom"], variants["pos"], variants["a1"], variants["a2"])]
    return variants


def grch37_chrpos_ids(tmp: Path) -> Invocation:
    _write(tmp, variants=chrpos_ids(tmp, "GRCh37"))
    command, outputs = _extract(tmp)

    def check(proc: subprocess.CompletedProcess) -> None:
        summary = json.loads(outputs[-1].read_text())
        assert summary["genome_build"] == {"build": "GRCh37", "reference_snps_found": 8, "reference_snps": 31,
                                           "at_position_of": {"GRCh37": 8, "GRCh38": 0, "NCBI36": 0}}

    return Invocation(command, outputs, exit_code=0, check=check, message=["genome build GRCh37 confirmed"])


def grch38_chrpos_ids(tmp: Path) -> Invocation:
    _write(tmp, variants=chrpos_ids(tmp, "GRCh38"))
    command, outputs = _extract(tmp)
    return Invocation(command, outputs, message=["look like GRCh38 (hg38)", "rs6656401 (ID chr1:207518704:", "Fix:"])


CASES = [
    BadInput("bed-truncated", "genotypes", "a `.bed` cut short (an interrupted copy)",
             "refused before plink2: names the byte count, both line counts and both files, says truncated",
             bed_truncated),
    BadInput("bed-is-a-pgen", "genotypes", "a PLINK 2 `.pgen` renamed `.bed` (magic 0x6c 0x1b 0x10)",
             "refused: 'not a PLINK 1 variant-major .bed', says it is a .pgen and how to convert it", bed_is_a_pgen),
    BadInput("bed-sample-major", "genotypes", "a sample-major PLINK 1.0 `.bed` (magic 0x6c 0x1b 0x00)",
             "refused: 'not a PLINK 1 variant-major .bed', says sample-major and the plink 1.9 rewrite",
             bed_sample_major),
    BadInput("bim-line-added", "genotypes", "a `.bim` with one line more than the `.bed` holds",
             "refused: names the `.bim` and `.fam` counts and that the size fits 300 variants", bim_line_added),
    BadInput("fam-line-added", "genotypes", "a `.fam` with one sample more (41: the bytes per variant change)",
             "refused: names both counts and that the size fits 37-40 samples per variant", fam_lines_added),
    BadInput("fam-line-deleted", "genotypes", "a `.fam` that lost a line in the middle (39 of 40: size unchanged)",
             "refused: non-zero padding bits, names the first variant and a deleted `.fam` line", fam_line_deleted),
    BadInput("panel-fam-empty", "genotypes", "an empty `.fam`", "refused: '.fam holds no samples'", fam_empty),
    BadInput("panel-bim-empty", "genotypes", "an empty `.bim`", "refused: '.bim holds no variants'", bim_empty),
    BadInput("sex-mismatches", "genotypes", "`.fam` sex against PTGENDER: 5 of 40 subjects differ",
             "refused above genetics.max_sex_mismatch_fraction (0.02): names up to 10 subjects and both sexes",
             sex_mismatches),
    BadInput("sex-mismatch-below-threshold", "genotypes", "`.fam` sex against PTGENDER: 1 of 60 subjects differs",
             "handled: a warning with the count and the subject, the extraction runs (real plink2)",
             sex_mismatch_below_threshold),
    BadInput("genotypes-npz-truncated", "genotypes", "a cached `genotypes.npz` cut in half",
             "refused by impute-genotypes: names the file and the rule to rerun (genotype_matrix)",
             genotypes_npz_truncated),
    BadInput("genotypes-npz-missing-arrays", "genotypes", "a `genotypes.npz` holding only `dosage`",
             "refused: names the missing arrays and the rule genotype_matrix", genotypes_npz_missing_arrays),
    BadInput("imputed-npz-truncated", "genotypes", "a truncated imputed `fold0.npz` read by snp-text-tokens",
             "refused: names the file and the rule impute_genotypes", imputed_npz_truncated),
    BadInput("grch37-file", "genome_build", "a GRCh37 trio carrying 8 reference SNPs",
             "handled: 'genome build GRCh37 confirmed: 8 of 8 reference SNPs', 105 genes extracted", grch37_file),
    BadInput("grch38-file", "genome_build", "the same trio on GRCh38 (reference SNPs at their GRCh38 positions)",
             "refused: names GRCh38, 8 of 8 SNPs, three found/expected positions, lift over + plink2 --update-map",
             grch38_file),
    BadInput("hg18-file", "genome_build", "the same trio on NCBI36 / hg18",
             "refused: names NCBI36 (hg18) with examples and the lift-over fix", hg18_file),
    BadInput("no-reference-snps", "genome_build", "a trio whose IDs hold none of the 31 reference SNPs",
             "refused: cannot tell the build; says genetics.assume_build: GRCh37", no_reference_snps),
    BadInput("other-build-assumed-grch37", "genome_build",
             "no reference SNP, positions of another build, genetics.assume_build: GRCh37",
             "refused by the gene-coverage check: how many genes are empty, 'what another genome build looks like'",
             no_reference_snps_other_build_assumed_grch37),
    BadInput("grch37-other-chromosomes", "genome_build", "a GRCh37 trio with variants on chromosomes 13 and X only",
             "refused: names the file's and the panel's chromosomes, says it is not a build problem",
             grch37_on_other_chromosomes),
    BadInput("grch37-chrpos-ids", "genome_build", "a GRCh37 trio with IDs like `chr19:45411941:T:C`",
             "handled: reference SNPs found by chromosome and position, GRCh37 confirmed", grch37_chrpos_ids),
    BadInput("grch38-chrpos-ids", "genome_build", "a GRCh38 trio with IDs like `chr1:207518704:C:T`",
             "refused: GRCh38 named, the ID quoted", grch38_chrpos_ids),
]

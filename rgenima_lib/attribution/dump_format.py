"""The attention-dump file: per test subject gene, ROI and ROI–gene rollout shares, labels and predictions.

One file per model, data configuration and fold (rule ``attribute``, written by
:mod:`rgenima_lib.attribution.attribute`); the bootstrap, the enrichment test and
Figures 1–2 are rebuilt from these files alone.

File layout (``.npz``, compressed, no pickles): ``subjects`` str[n],
``genes`` str[G] (panel order), ``rois`` str[R] (token order),
``gene_importance`` float16[n, G], ``roi_importance`` float16[n, R],
``roi_gene`` float16[n, R, G], ``label`` / ``predicted`` str[n],
``probabilities`` float16[n, 4] (NC, SMC, MCI, AD), ``sink_share``
float16[n], ``roi_presence`` uint8[n, R], ``gene_tokens`` uint16[n, G]
(tokens per gene block), ``fold`` int16[n], ``meta`` (a JSON string: the attribution
``method`` (:mod:`rgenima_lib.attribution.methods`; ``rollout_tokens`` when absent, the files
written before there were methods), model, note, sink policy, answer rows, layers, ...). Every
method fills the same arrays; a method that defines no ROI–gene association writes zeros there. A gene missing from the SNP text
(no SNPs left after QC) and an absent ROI get importance 0.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from rgenima_lib.attribution.methods import LEGACY_METHOD
from rgenima_lib.vocabulary import STAGES
from rgenima_lib.errors import InputDataError
from rgenima_lib.io import atomic_output

# No torch here: reading and pooling dumps (bootstrap, figures) must not pay for it.

DUMP_FORMAT = "rgenima-attention-dump/1"
_ARRAYS = ("subjects", "genes", "rois", "gene_importance", "roi_importance", "roi_gene", "label", "predicted",
           "probabilities", "sink_share", "roi_presence", "gene_tokens", "fold")


@dataclass
class AttentionDump:
    """Per-subject attribution arrays of one or more folds (the module docstring describes the fields).

    Attributes
    ----------
    subjects : str[n]
    genes : str[G]
    rois : str[R]
    gene_importance : float16[n, G]
    roi_importance : float16[n, R]
    roi_gene : float16[n, R, G]
    label, predicted : str[n]
    probabilities : float16[n, 4]
    sink_share : float16[n]
    roi_presence : uint8[n, R]
    gene_tokens : uint16[n, G]
    fold : int16[n]
    meta : dict
    """

    subjects: np.ndarray
    genes: np.ndarray
    rois: np.ndarray
    gene_importance: np.ndarray
    roi_importance: np.ndarray
    roi_gene: np.ndarray
    label: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray
    sink_share: np.ndarray
    roi_presence: np.ndarray
    gene_tokens: np.ndarray
    fold: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        n, g, r = len(self.subjects), len(self.genes), len(self.rois)
        expected = {"gene_importance": (n, g), "roi_importance": (n, r), "roi_gene": (n, r, g),
                    "label": (n,), "predicted": (n,), "probabilities": (n, len(STAGES)), "sink_share": (n,),
                    "roi_presence": (n, r), "gene_tokens": (n, g), "fold": (n,)}
        bad = {k: getattr(self, k).shape for k, shape in expected.items() if getattr(self, k).shape != shape}
        if bad:
            raise ValueError(f"dump arrays disagree with {n} subjects, {g} genes, {r} ROIs: {bad}")

    @property
    def n_subjects(self) -> int:
        return len(self.subjects)

    @property
    def method(self) -> str:
        """The attribution method that filled the arrays."""
        return str(self.meta.get("method", LEGACY_METHOD))

    @property
    def note(self) -> str:
        """What every table and figure made from the dump says first: the method, and the demo note if any.

        E.g. 'demo model, random init; attribution: rollout'.
        """
        return "; ".join(p for p in (str(self.meta.get("note", "")), f"attribution: {self.method}") if p)

    def stage_mask(self, stage: str) -> np.ndarray:
        """bool[n]: subjects whose true label is ``stage``."""
        return self.label == stage

    def nbytes(self) -> int:
        """Bytes of the arrays in memory (uncompressed)."""
        return sum(getattr(self, k).nbytes for k in _ARRAYS)


def write_dump(path: str | Path, dump: AttentionDump) -> None:
    """Write ``dump`` as a compressed ``.npz`` atomically (float16 attributions, no pickles)."""
    arrays = {
        "subjects": np.asarray(dump.subjects, dtype=str), "genes": np.asarray(dump.genes, dtype=str),
        "rois": np.asarray(dump.rois, dtype=str),
        "gene_importance": np.asarray(dump.gene_importance, dtype=np.float16),
        "roi_importance": np.asarray(dump.roi_importance, dtype=np.float16),
        "roi_gene": np.asarray(dump.roi_gene, dtype=np.float16),
        "label": np.asarray(dump.label, dtype=str), "predicted": np.asarray(dump.predicted, dtype=str),
        "probabilities": np.asarray(dump.probabilities, dtype=np.float16),
        "sink_share": np.asarray(dump.sink_share, dtype=np.float16),
        "roi_presence": np.asarray(dump.roi_presence, dtype=np.uint8),
        "gene_tokens": np.asarray(dump.gene_tokens, dtype=np.uint16),
        "fold": np.asarray(dump.fold, dtype=np.int16),
        "meta": np.asarray(json.dumps({"format": DUMP_FORMAT, **dump.meta}, sort_keys=True, default=str)),
    }
    for key in ("gene_importance", "roi_importance", "roi_gene"):
        if not np.isfinite(arrays[key]).all():
            raise ValueError(f"{key} holds NaN or values beyond float16")
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def read_dump(path: str | Path) -> AttentionDump:
    """Read one dump written by :func:`write_dump`.

    Raises
    ------
    InputDataError
        Missing, truncated or damaged file (not a zip, a member that does not decompress,
        arrays that disagree); the fix: delete it so that rule ``attribute`` rebuilds it.
    """
    path = Path(path)
    # Snakemake reruns a job only when its output is missing: a damaged dump must be deleted to be rebuilt.
    fix = f"delete it (rm '{path}') and rerun the workflow: rule attribute rebuilds it."
    if not path.is_file():
        raise InputDataError("attention dump not found.", path=path, fix="rerun the workflow: rule attribute writes it.")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "meta" not in data.files:
                raise InputDataError("not an attention dump (no meta).", path=path, fix=fix)
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != DUMP_FORMAT:
                raise InputDataError(f"not a {DUMP_FORMAT} file ({meta.get('format')!r}).", path=path, fix=fix)
            missing = [k for k in _ARRAYS if k not in data.files]
            if missing:
                raise InputDataError(f"attention dump lacks {', '.join(missing)}.", path=path, fix=fix)
            return AttentionDump(**{k: data[k] for k in _ARRAYS}, meta=meta)
    except InputDataError:
        raise
    # A truncated .npz is a zip without its central directory (BadZipFile); a damaged member fails to
    # inflate (zlib.error, EOFError) or to parse (ValueError, also AttentionDump's shape check).
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as exc:
        raise InputDataError(f"damaged attention dump ({type(exc).__name__}: {exc}).", path=path, fix=fix) from exc


def concat_dumps(dumps: Sequence[AttentionDump]) -> AttentionDump:
    """Pool the folds of one model: every test subject once (subject-level folds).

    Raises
    ------
    ValueError
        Different gene or ROI lists, or a subject in two dumps.
    """
    if not dumps:
        raise ValueError("no dumps to pool")
    first = dumps[0]
    for d in dumps[1:]:
        if not (np.array_equal(d.genes, first.genes) and np.array_equal(d.rois, first.rois)):
            raise ValueError("dumps list different genes or ROIs; they come from different panels or ROI tables")
    if len({d.method for d in dumps}) > 1:
        raise ValueError(f"dumps of different attribution methods ({sorted({d.method for d in dumps})}) cannot be pooled")
    subjects = np.concatenate([d.subjects for d in dumps])
    if len(set(subjects.tolist())) != len(subjects):
        raise ValueError("a subject appears in two dumps: pooled folds must not overlap (subject-level folds)")
    merged = {k: np.concatenate([getattr(d, k) for d in dumps]) for k in _ARRAYS if k not in ("genes", "rois")}
    notes = sorted({str(d.meta.get("note", "")) for d in dumps if d.meta.get("note")})
    meta = {**first.meta, "folds": sorted({int(f) for d in dumps for f in np.unique(d.fold)}),
            "note": "; ".join(notes)}
    return AttentionDump(genes=first.genes, rois=first.rois, **merged, meta=meta)

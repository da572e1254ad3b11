"""Cache of frozen encoder tokens: one safetensors file per encoder and fold (docs/design.md, "Data flow").

After stage-1 pretraining (paper 4.5.2) the encoder is frozen, so its output per subject
never changes: computing it once and reading it in every stage-2 epoch saves re-running a
679M-weight Conv3D per step. File layout:

- ``tokens``: float16[n_subjects, n_tokens, d] (109 × 768 for RiT, 1 × 512 for Med3D);
  float16 halves the file, and tokens are LayerNorm outputs of order 1, well inside its range.
- ``presence``: uint8[n_subjects, n_tokens] (1 = ROI present; a missing ROI's row is zero).
- ``rollout`` (RiT only): float16[n_subjects, n_tokens, n_tokens], the encoder's own attention
  rollout (:func:`~rgenima_lib.models.rit.rollout_matrix`; row r: the share of each input ROI in
  token r), which the end-to-end rollout attribution composes with the LLM's.
- metadata (safetensors string map): ``format`` = ``rgenima-embeddings/1``, ``subjects``
  (JSON list, row order), ``info`` (JSON: encoder, fold, init source, config, ...).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rgenima_lib.errors import InputDataError
from rgenima_lib.io import atomic_output

FORMAT = "rgenima-embeddings/1"


def save_embeddings(path: str | Path, subjects: list[str], tokens: np.ndarray, presence: np.ndarray,
                    info: dict | None = None, rollout: np.ndarray | None = None) -> None:
    """Write a token cache atomically.

    Parameters
    ----------
    path : str or Path
        ``.safetensors`` destination.
    subjects : list of str, length n
        Subject IDs in row order (unique).
    tokens : float[n, T, d]
        Stored as float16.
    presence : bool or int[n, T]
        Stored as uint8 (0 / 1).
    info : dict, optional
        JSON-serialisable provenance (encoder, fold, init source, config).
    rollout : float[n, T, T], optional
        The encoder's attention rollout per subject, stored as float16 (rows sum to 1).
    """
    from safetensors.numpy import save_file

    tokens = np.asarray(tokens)
    presence = np.asarray(presence)
    subjects = [str(s) for s in subjects]
    if tokens.ndim != 3 or presence.shape != tokens.shape[:2] or len(subjects) != tokens.shape[0]:
        raise ValueError(f"shapes disagree: {len(subjects)} subjects, tokens {tokens.shape}, "
                         f"presence {presence.shape}")
    if len(set(subjects)) != len(subjects):
        raise ValueError("duplicate subject IDs")
    arrays = {"tokens": np.ascontiguousarray(tokens, dtype=np.float16),
              "presence": np.ascontiguousarray(presence != 0, dtype=np.uint8)}
    if not np.isfinite(arrays["tokens"]).all():
        raise ValueError("tokens overflow float16 or hold NaN")
    if rollout is not None:
        rollout = np.asarray(rollout)
        if rollout.shape != tokens.shape[:2] + tokens.shape[1:2]:
            raise ValueError(f"rollout {rollout.shape} does not match tokens {tokens.shape}")
        arrays["rollout"] = np.ascontiguousarray(rollout, dtype=np.float16)
    metadata = {"format": FORMAT, "subjects": json.dumps(subjects), "info": json.dumps(info or {}, sort_keys=True)}
    with atomic_output(path) as tmp:
        save_file(arrays, str(tmp), metadata=metadata)


def writer_rule(path: str | Path) -> str:
    """The workflow rule that writes a cache at ``path``: gene_tokens for the baselines' gene tokens, else embed."""
    return "gene_tokens" if "gene_tokens" in Path(path).parts else "embed"


def _rebuild_fix(path: Path) -> str:
    # Snakemake does not rerun a job whose output exists and is newer than its inputs: the damaged
    # file has to go for its rule to run again.
    return f"delete it (rm '{path}') and rerun the workflow: rule {writer_rule(path)} rebuilds it."


def _metadata(path: Path) -> dict:
    from safetensors import safe_open

    if not path.is_file():
        raise InputDataError("embedding cache not found.", path=path,
                             fix=f"rerun the workflow: rule {writer_rule(path)} writes it.")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # SafetensorError: truncated ("not fully covered"), garbage ("header too large"), empty
        raise InputDataError(f"not a readable safetensors file ({exc}).", path=path, fix=_rebuild_fix(path)) from exc
    if meta.get("format") != FORMAT:
        raise InputDataError(f"not an {FORMAT} file (format {meta.get('format')!r}).", path=path,
                             fix=_rebuild_fix(path))
    return meta


def load_embeddings(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read a token cache.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    subjects : list of str, length n
    tokens : float16[n, T, d]
    presence : uint8[n, T]

    Raises
    ------
    InputDataError
        Missing, truncated or damaged file, or one whose arrays and subject list disagree; the fix
        names the rule that rebuilds it (embed, or gene_tokens for the gene-token cache).
    """
    from safetensors import safe_open

    path = Path(path)
    meta = _metadata(path)
    try:
        subjects = json.loads(meta["subjects"])
        with safe_open(str(path), framework="numpy") as f:
            tokens, presence = f.get_tensor("tokens"), f.get_tensor("presence")
    except Exception as exc:  # KeyError (a tensor or field missing), JSON or safetensors errors
        raise InputDataError(f"damaged embedding cache ({type(exc).__name__}: {exc}).", path=path,
                             fix=_rebuild_fix(path)) from exc
    if tokens.ndim != 3 or presence.shape != tokens.shape[:2] or len(subjects) != tokens.shape[0]:
        raise InputDataError(f"arrays disagree: {len(subjects)} subjects, tokens {tokens.shape}, presence "
                             f"{presence.shape}.", path=path, fix=_rebuild_fix(path))
    return subjects, tokens, presence


def load_encoder_rollout(path: str | Path) -> dict[str, np.ndarray]:
    """The encoder rollout stored with a RiT token cache: subject -> float16[T, T].

    Raises
    ------
    InputDataError
        A cache written without it (an older embed rule, or Med3D); the fix reruns rule embed.
    """
    from safetensors import safe_open

    path = Path(path)
    meta = _metadata(path)
    with safe_open(str(path), framework="numpy") as f:
        if "rollout" not in f.keys():
            raise InputDataError("embedding cache holds no encoder rollout (written before it was cached).",
                                 path=path, fix=_rebuild_fix(path))
        rollout = f.get_tensor("rollout")
    return dict(zip(json.loads(meta["subjects"]), rollout))


def embedding_info(path: str | Path) -> dict:
    """The provenance dict stored with a cache (encoder, fold, init source, ...)."""
    meta = _metadata(Path(path))
    return json.loads(meta.get("info", "{}"))


def select_subjects(subjects: list[str], tokens: np.ndarray, presence: np.ndarray, wanted: list[str],
                    *, path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a cache for ``wanted`` subjects, in that order.

    Subjects absent from the cache (no image: the mixture configuration's gene-only
    samples) get zero tokens and presence 0, never a shifted row.

    Returns
    -------
    tokens : float16[len(wanted), T, d]
    presence : uint8[len(wanted), T]
    """
    index = {s: i for i, s in enumerate(subjects)}
    out_t = np.zeros((len(wanted),) + tokens.shape[1:], tokens.dtype)
    out_p = np.zeros((len(wanted),) + presence.shape[1:], np.uint8)
    rows = [index.get(s, -1) for s in wanted]
    have = np.array([r >= 0 for r in rows], bool)
    if have.any():
        src = np.array([r for r in rows if r >= 0])
        out_t[have] = tokens[src]
        out_p[have] = presence[src]
    return out_t, out_p

"""File helpers shared by all stages: atomic writes and table I/O.

Every output is written under a temporary name in the destination folder and
renamed into place only when complete, so a killed job never leaves a file
that looks finished (docs/design.md, "Atomic outputs").
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import pandas as pd


@contextlib.contextmanager
def atomic_output(path: str | Path, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path that becomes ``path`` only if the block succeeds.

    Parameters
    ----------
    path : str or Path
        Final destination (file, or folder when ``directory=True``).
    directory : bool
        Create the temporary path as an empty folder.

    Notes
    -----
    On any exception the temporary path is removed and ``path`` is left as it
    was before (absent, for a Snakemake output).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.tmp-"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=path.suffix, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        # mkstemp/mkdtemp create owner-only files; outputs get the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, (0o777 if directory else 0o666) & ~umask)
        if directory and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_tsv(table: pd.DataFrame, path: str | Path, **kwargs) -> None:
    """Write ``table`` as tab-separated text, atomically, without the index."""
    with atomic_output(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, **kwargs)


def read_tsv(path: str | Path, **kwargs) -> pd.DataFrame:
    """Read a tab-separated table with ``#`` comment lines allowed."""
    # pandas is imported here, not at the top: every rule job starts `rgenima`, and most never read a table.
    import pandas as pd

    return pd.read_csv(path, sep="\t", comment="#", **kwargs)


def write_json(obj, path: str | Path) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def load_settings(text: str | None) -> dict:
    """A config section handed to a command: inline JSON (what rules pass), or a YAML / JSON file path.

    Returns an empty dict for ``None`` or an empty string.
    """
    if not text:
        return {}
    if text.lstrip().startswith("{"):
        return json.loads(text)
    import yaml

    return yaml.safe_load(Path(text).read_text()) or {}


def write_noted_tsv(table: pd.DataFrame, path: str | Path, note: str = "", float_format: str | None = None) -> None:
    """TSV with a note (e.g. "demo model, random init") as a leading ``#`` line, atomically; ``read_tsv`` skips it."""
    with atomic_output(path) as tmp:
        with open(tmp, "w") as fh:
            if note:
                fh.write(f"# {note}\n")
            table.to_csv(fh, sep="\t", index=False, float_format=float_format)


def read_note(path: str | Path) -> str:
    """The ``# note`` line a noted TSV starts with ('' if none)."""
    with open(path) as fh:
        first = fh.readline()
    return first[1:].strip() if first.startswith("#") else ""


def markdown_table(table: pd.DataFrame, float_format: str | None = "{:.4g}") -> str:
    """A DataFrame as a GitHub Markdown table; floats through ``float_format`` (None: ``str``), ``|`` escaped."""
    def cell(value) -> str:
        if float_format and isinstance(value, float):
            return float_format.format(value)
        return str(value).replace("|", "\\|")

    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *rows]) + "\n"


def write_markdown(text: str, path: str | Path, note: str = "") -> None:
    """Markdown text with the note in italics on its first line, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text((f"_{note}_\n\n" if note else "") + text)


def save_figure(fig, png: str | Path, pdf: str | Path | None = None, *, dpi: int = 200,
                facecolor: str | None = None) -> None:
    """Write a matplotlib figure as PNG (and PDF) atomically, without the metadata that changes between runs.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    png, pdf : path
        Outputs; ``pdf`` None writes the PNG only.
    dpi : int
        PNG resolution.
    facecolor : str, optional
        Background colour (default: the figure's own).
    """
    extra = {} if facecolor is None else {"facecolor": facecolor}
    with atomic_output(png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None}, **extra)
    if pdf is not None:
        with atomic_output(pdf) as tmp:
            fig.savefig(tmp, format="pdf", metadata={"Creator": None, "Producer": None, "CreationDate": None}, **extra)

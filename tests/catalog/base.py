"""What a catalog case is, and how every case is run and judged the same way.

A case builds one bad (or awkward but valid) input under a scratch folder and
says which command a user would run on it. The runner then checks what every
bad input must give: the stated exit status, a message that names the file,
the subject or row and the fix, and no output of that command left behind
(not even a half-written temporary file).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]

# Every command a case starts ends within this many seconds, or the case fails saying so.
CASE_TIMEOUT_S = 300


def rgenima(*args: str | os.PathLike) -> list[str]:
    """The argv of one ``rgenima`` subcommand, as a rule would start it."""
    return [str(BIN / "rgenima"), *map(str, args)]


@dataclass
class Invocation:
    """The command a case runs and what must hold afterwards.

    Parameters
    ----------
    command : list of str
        Full argv (see ``rgenima``).
    outputs : list of Path
        The command's outputs: none may exist afterwards when it is refused.
    message : list of str
        Substrings the combined stdout + stderr must contain (file, subject or
        row, the fix). Matched case-sensitively.
    exit_code : int
        2 for ``InputDataError`` (refused), 0 for an input that is handled.
    check : callable, optional
        ``check(proc)`` with more assertions, e.g. on what a handled input gave.
    cwd : Path, optional
    env : dict, optional
        Added to the environment.
    """

    command: list[str]
    outputs: list[Path] = field(default_factory=list)
    message: list[str] = field(default_factory=list)
    exit_code: int = 2
    check: Callable[[subprocess.CompletedProcess], None] | None = None
    cwd: Path | None = None
    env: dict[str, str] | None = None


@dataclass
class BadInput:
    """One catalog case.

    Parameters
    ----------
    id : str
        pytest ID, unique in the catalog.
    input_class : str
        The test function it belongs to (``genotypes``, ``clinical``, ...).
    what : str
        The input, one line for the docs table.
    behaviour : str
        What the pipeline does with it, one line ("refused: names ...", "read as ...").
    build : callable
        ``build(tmp_path) -> Invocation``: writes the input under ``tmp_path``.
    """

    id: str
    input_class: str
    what: str
    behaviour: str
    build: Callable[[Path], Invocation]


def run_case(case: BadInput, tmp_path: Path) -> subprocess.CompletedProcess:
    """Build and run one case, and assert exit status, message and absent outputs."""
    inv = case.build(tmp_path)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(inv.env or {})}
    try:
        proc = subprocess.run(inv.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              cwd=inv.cwd or tmp_path, env=env, timeout=CASE_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{case.id}: {inv.command[:3]} did not end within {CASE_TIMEOUT_S} s") from exc
    text = proc.stdout
    assert proc.returncode == inv.exit_code, (
        f"{case.id}: exit status {proc.returncode}, expected {inv.exit_code}:\n{text[-4000:]}")
    for needle in inv.message:
        assert needle in text, f"{case.id}: message lacks {needle!r}:\n{text[-4000:]}"
    if inv.exit_code != 0:
        assert "Traceback" not in text, f"{case.id}: a traceback instead of a clear error:\n{text[-4000:]}"
        for out in inv.outputs:
            assert not Path(out).exists(), f"{case.id}: refused, but left the output {out}"
            leftovers = sorted(Path(out).parent.glob(f".{Path(out).name}.tmp-*")) if Path(out).parent.exists() else []
            assert not leftovers, f"{case.id}: refused, but left temporary files {leftovers}"
    if inv.check is not None:
        inv.check(proc)
    return proc


def markdown_table(cases: list[BadInput]) -> str:
    """The docs table of the catalog: input, what the pipeline does, the test that proves it."""
    lines = ["| input | what the pipeline does | test |", "| --- | --- | --- |"]
    for case in cases:
        test = f"`tests/workflow/test_bad_input_catalog.py::test_{case.input_class}[{case.id}]`"
        lines.append(f"| {case.what} | {case.behaviour} | {test} |")
    return "\n".join(lines) + "\n"

"""One error type for bad input, so every stage reports it the same way."""

from __future__ import annotations

from pathlib import Path


class InputDataError(ValueError):
    """Bad input data: names the file, the subject (when known) and the fix.

    Parameters
    ----------
    problem : str
        What is wrong, in one sentence.
    path : str or Path, optional
        The offending file.
    subject : str, optional
        The subject the problem belongs to.
    fix : str, optional
        What the user should do about it.
    """

    def __init__(self, problem: str, *, path: str | Path | None = None,
                 subject: str | None = None, fix: str | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        self.subject = subject
        self.fix = fix
        parts = []
        if self.path:
            parts.append(f"{self.path}")
        if subject:
            parts.append(f"subject {subject}")
        head = ": ".join(parts)
        message = f"{head}: {problem}" if head else problem
        if fix:
            message += f" Fix: {fix}"
        super().__init__(message)

"""The bad-input catalog: one parametrised test per input class, every case judged by the same runner.

Cases live in ``tests/catalog/<family>.py`` (a ``CASES`` list each); see
``tests/catalog/base.py`` for what a case is and what the runner asserts. The
table in ``docs/bad_inputs.md`` is generated from the cases:

    .venv/bin/python tests/workflow/test_bad_input_catalog.py --write-docs
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, home of catalog/ and conftest.py

import catalog  # noqa: E402
from catalog.base import REPO, BadInput, markdown_table, run_case  # noqa: E402

DOCS = REPO / "docs" / "bad_inputs.md"
BEGIN, END = "<!-- catalog table: begin (generated) -->", "<!-- catalog table: end -->"


def collect_cases() -> list[BadInput]:
    """Every case of every ``catalog`` module, in module then list order."""
    cases = []
    for info in sorted(pkgutil.iter_modules(catalog.__path__), key=lambda i: i.name):
        if info.name != "base":
            cases += importlib.import_module(f"catalog.{info.name}").CASES
    ids = [c.id for c in cases]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicated, f"catalog case IDs used twice: {duplicated}"
    return cases


CASES = collect_cases()


def _make_test(input_class: str):
    cases = [c for c in CASES if c.input_class == input_class]

    @pytest.mark.parametrize("case", cases, ids=[c.id for c in cases])
    def test(case: BadInput, tmp_path: Path) -> None:
        run_case(case, tmp_path)

    test.__name__ = f"test_{input_class}"
    test.__doc__ = f"Bad inputs of class {input_class!r}: exit status, message, no output left."
    return test


for _input_class in sorted({c.input_class for c in CASES}):
    globals()[f"test_{_input_class}"] = _make_test(_input_class)


def write_docs_table() -> str:
    text = DOCS.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{markdown_table(CASES)}{END}{tail}"


def test_docs_table_is_current() -> None:
    """docs/bad_inputs.md holds the table of exactly these cases."""
    assert DOCS.read_text() == write_docs_table(), (
        "docs/bad_inputs.md is out of date: run .venv/bin/python tests/workflow/test_bad_input_catalog.py --write-docs")


if __name__ == "__main__" and "--write-docs" in sys.argv:
    DOCS.write_text(write_docs_table())
    print(f"wrote {DOCS} ({len(CASES)} cases)")

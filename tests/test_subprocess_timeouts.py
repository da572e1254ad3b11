"""Every subprocess a test starts ends within a bound, so a hung child is a readable failure, not a hung suite."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
WAITING_CALLS = {"run", "check_output", "check_call", "call", "communicate", "wait"}


def calls_without_timeout(path: Path) -> list[str]:
    """``file:line`` of every ``subprocess.<run|check_output|check_call|call>(...)`` and ``.communicate()`` /
    ``.wait()`` call without a ``timeout=`` argument."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        func = node.func
        is_subprocess = isinstance(func.value, ast.Name) and func.value.id == "subprocess"
        if func.attr in {"run", "check_output", "check_call", "call"} and not is_subprocess:
            continue
        if func.attr not in WAITING_CALLS:
            continue
        if not any(kw.arg == "timeout" for kw in node.keywords):
            found.append(f"{path.relative_to(TESTS.parent)}:{node.lineno}")
    return found


def test_every_subprocess_call_in_the_tests_has_a_timeout() -> None:
    missing = [hit for path in sorted(TESTS.rglob("*.py")) for hit in calls_without_timeout(path)]
    assert not missing, f"subprocess calls without timeout=: {missing}"

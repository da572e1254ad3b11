"""Nothing from the data reaches a shell unquoted: every rule's shell command, formatted by Snakemake itself.

Two checks over every ``shell:`` directive of the workflow:

* every placeholder carries ``:q`` (a parameter that stands for several words is a
  list, which ``:q`` quotes item by item);
* formatted with Snakemake's own formatter, with every placeholder set to a value full of
  shell syntax (command substitution, backticks, ``;``, quotes, ``${IFS}``, ``#``,
  spaces), and run with bash, no command hidden in a value is executed.

The manifest refuses such subject IDs in the first place (tests/catalog/cohort.py);
these tests prove the workflow would not execute them even if one got through.
"""

from __future__ import annotations

import ast
import os
import re
import stat
import string
import subprocess
from pathlib import Path

import pytest
from snakemake.utils import format as snakemake_format

from conftest import REPO

RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk")) + [REPO / "workflow" / "Snakefile"]

# Each piece would create a file named PWNED* if a shell ever ran it as code.
EVIL = "x$(touch PWNED1)`touch PWNED2`;touch PWNED3 'a b' \"c\" ${IFS}touch${IFS}PWNED4 #z"
SHELL_PREFIX = "set -euo pipefail; "  # what Snakemake puts before every shell command under bash


def shell_directives(path: Path) -> list[tuple[str, str]]:
    """(rule name, shell command string) of every ``shell:`` directive in a rule file."""
    lines = path.read_text().split("\n")
    found, rule = [], "?"
    i = 0
    while i < len(lines):
        line = lines[i]
        match = re.match(r"\s*(?:rule|checkpoint)\s+(\w+)\s*:", line)
        if match:
            rule = match.group(1)
        if line.strip() == "shell:":
            indent = len(line) - len(line.lstrip())
            literal = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                stripped = lines[i].strip()
                if stripped and not stripped.startswith("#"):
                    literal.append(stripped)
                i += 1
            found.append((rule, ast.literal_eval("(" + "\n".join(literal) + ")")))
            continue
        i += 1
    return found


DIRECTIVES = [(f"{path.name}:{rule}", cmd) for path in RULE_FILES for rule, cmd in shell_directives(path)]


def test_every_rule_file_was_read() -> None:
    """The parser finds the shell directives (a parser that found none would make the checks below vacuous)."""
    names = {name.split(":")[1] for name, _ in DIRECTIVES}
    assert {"manifest", "roi_extract", "recon_all", "finetune", "figure_1", "evaluate", "plink_qc"} <= names
    assert len(DIRECTIVES) >= 30


@pytest.mark.parametrize("name,command", DIRECTIVES, ids=[n for n, _ in DIRECTIVES])
def test_every_placeholder_is_quoted(name: str, command: str) -> None:
    fields = [(field, spec) for _, field, spec, _ in string.Formatter().parse(command) if field is not None]
    assert fields, f"{name}: no placeholder found"
    unquoted = [field for field, spec in fields if not (spec or "").endswith("q")]
    assert not unquoted, f"{name}: placeholders without :q: {unquoted}"


class _EvilNamespace:
    """Stands for input / output / params / wildcards / resources / log: every attribute is hostile."""

    def __getattr__(self, name: str):
        return [EVIL, EVIL + " 2"]

    def __format__(self, spec: str) -> str:
        return format(EVIL, spec)


@pytest.mark.parametrize("name,command", DIRECTIVES, ids=[n for n, _ in DIRECTIVES])
def test_no_command_in_a_value_is_executed(name: str, command: str, tmp_path: Path) -> None:
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for program in ("rgenima", "torchrun", "recon-all", "plink2"):
        stub = stubs / program
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    evil = _EvilNamespace()
    formatted = snakemake_format(command, input=evil, output=evil, params=evil, wildcards=evil, resources=evil,
                                 log=evil, threads=EVIL)
    assert "PWNED1" in formatted  # the value really is in the command line
    env = {**os.environ, "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["bash", "-c", SHELL_PREFIX + formatted], cwd=tmp_path, env=env, capture_output=True,
                   text=True, timeout=60)
    executed = sorted(p.name for p in tmp_path.rglob("PWNED*") if p.name.startswith("PWNED"))
    assert not executed, f"{name}: a command inside a value ran (created {executed}):\n{formatted}"

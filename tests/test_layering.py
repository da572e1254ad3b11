"""The package's layering: every module imports only from its own package or lower floors, with no circles.

Floors, lowest first (docs/design.md):

    0  errors, io, vocabulary, result_paths, model_ids, settings
    1  imaging, genetics
    2  cohort
    3  synthetic
    4  data
    5  models
    6  train
    7  attribution, evaluate
    8  figures
    9  cli, bench

Imports are read with ``ast`` from every module under ``rgenima_lib/``, at module
level and inside functions alike (a function-level import is still a dependency;
it only runs later). Two packages on the same floor may not import each other.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "rgenima_lib"

FLOORS: dict[str, int] = {
    "errors": 0, "io": 0, "vocabulary": 0, "result_paths": 0, "model_ids": 0, "settings": 0,
    "imaging": 1, "genetics": 1,
    "cohort": 2,
    "synthetic": 3,
    "models": 4,
    "data": 5,  # above models: data.prompt_samples builds the models' PromptSample inputs
    "train": 6,
    "attribution": 7, "evaluate": 7,
    "figures": 8,
    "cli": 9, "bench": 9, "docgen": 9,
}
"""Floor of each top-level module or subpackage of ``rgenima_lib``."""

# Upward imports that exist today in code being reorganised; each is (importing file, imported
# module) with the reason. The test fails on any import not listed here, and on an entry that no
# longer occurs (remove it then), so the list can only shrink.
KNOWN_UPWARD: dict[tuple[str, str], str] = {}

# Import circles that exist today, each as the sorted tuple of its modules, with the reason.
KNOWN_CIRCLES: dict[tuple[str, ...], str] = {}

# Modules outside cli/ that may build an argparse parser: developer commands that regenerate a
# committed file, and the benchmark runner (a command of its own, on the cli floor).
ARGPARSE_ALLOWED: dict[str, str] = {
    "rgenima_lib/docgen.py": "python -m rgenima_lib.docgen config > docs/config.md regenerates the config reference",
    "rgenima_lib/synthetic/plot.py": "python -m rgenima_lib.synthetic.plot docs/phantom_slices.png",
    "rgenima_lib/synthetic/rois_table.py": "python -m rgenima_lib.synthetic.rois_table config/rois.tsv",
    "rgenima_lib/bench/__main__.py": "python -m rgenima_lib.bench (make bench)",
    "rgenima_lib/bench/bench_llm.py": "python -m rgenima_lib.bench.bench_llm --gpu, and its CPU worker processes",
    "rgenima_lib/bench/bench_gene_learning.py": "python -m rgenima_lib.bench.bench_gene_learning --task ... reruns "
                                                "one measurement of docs/models.md",
    "rgenima_lib/bench/gpu_check.py": "python -m rgenima_lib.bench.gpu_check (make gpu-check), a script run on a GPU node",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


MODULES = {_module_name(p): p for p in _files()}


def _resolve(name: str) -> str | None:
    """The longest prefix of a dotted name that is a module of the package (None outside it)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _imports(path: Path, source_text: str | None = None) -> list[tuple[int, str]]:
    """(line, imported package module) for every import in ``path`` (or ``source_text``), at any depth."""
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    found = []
    text = path.read_text() if source_text is None else source_text
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from pkg import sub` imports the submodule when there is one.
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source
                       for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = _resolve(target) if target.split(".")[0] == "rgenima_lib" else None
            if resolved is not None and resolved != module:
                found.append((node.lineno, resolved))
    return found


def _unit(module: str) -> str:
    """The floor unit of a module: its subpackage, or itself for a top-level module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _package(module: str) -> str:
    """The package a module belongs to: its subpackage, or '' for the top-level modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and MODULES[module].name == "__init__.py") else ""


def _floor(module: str) -> int:
    unit = _unit(module)
    return 0 if unit == "__init__" else FLOORS[unit]


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _upward_imports() -> list[tuple[str, int, str, str]]:
    """(file, line, imported module, message) for every import that breaks the layering."""
    found = []
    for module, path in MODULES.items():
        for line, target in _imports(path):
            if _package(module) == _package(target):
                continue
            if _floor(target) < _floor(module):
                continue
            found.append((_rel(path), line, target,
                          f"{_rel(path)}:{line}: {module} ({_unit(module)}, floor {_floor(module)}) imports "
                          f"{target} ({_unit(target)}, floor {_floor(target)})"))
    return found


def _circles() -> list[tuple[tuple[str, ...], list[str]]]:
    """Strongly connected module groups (Tarjan), each with the file:line of the imports inside it."""
    edges: dict[str, dict[str, list[str]]] = {m: {} for m in MODULES}
    for module, path in MODULES.items():
        for line, target in _imports(path):
            edges[module].setdefault(target, []).append(f"{_rel(path)}:{line}")
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                members = tuple(sorted(group))
                where = [f"{loc} -> {w}" for u in members for w, locs in sorted(edges[u].items())
                         if w in members for loc in locs]
                groups.append((members, where))

    for v in sorted(MODULES):
        if v not in index:
            visit(v)
    return groups


def test_every_package_has_a_floor():
    units = {_unit(m) for m in MODULES} - {"__init__"}
    missing = sorted(units - set(FLOORS))
    assert not missing, (f"rgenima_lib.{missing} have no floor: add them to FLOORS here and to the layering "
                         "in docs/design.md")


def test_the_import_reader_sees_every_kind_of_import():
    text = ("from rgenima_lib.vocabulary import STAGES\n"
            "from rgenima_lib.synthetic import anatomy\n"
            "import rgenima_lib.io\n"
            "from . import truth\n"
            "import numpy\n"
            "def f():\n"
            "    from rgenima_lib.models.rit import RiT\n")
    found = _imports(PACKAGE / "synthetic" / "example.py", text)
    assert found == [(1, "rgenima_lib.vocabulary"), (2, "rgenima_lib.synthetic.anatomy"), (3, "rgenima_lib.io"),
                     (4, "rgenima_lib.synthetic.truth"), (7, "rgenima_lib.models.rit")]


def test_no_upward_imports():
    new = [message for file, _, target, message in _upward_imports() if (file, target) not in KNOWN_UPWARD]
    assert not new, ("imports from a higher floor or a sibling package on the same floor (move the shared "
                     "code down, e.g. into rgenima_lib.vocabulary):\n" + "\n".join(new))


def test_no_import_circles():
    new = [f"{' <-> '.join(members)}:\n    " + "\n    ".join(where)
           for members, where in _circles() if members not in KNOWN_CIRCLES]
    assert not new, "modules that import each other, directly or around a circle:\n" + "\n".join(new)


def test_known_violations_still_occur():
    upward = {(file, target) for file, _, target, _ in _upward_imports()}
    circles = {members for members, _ in _circles()}
    gone = [f"{file} -> {target}" for file, target in KNOWN_UPWARD if (file, target) not in upward]
    gone += [" <-> ".join(members) for members in KNOWN_CIRCLES if members not in circles]
    assert not gone, "fixed, so remove from KNOWN_UPWARD / KNOWN_CIRCLES in this file: " + "; ".join(gone)


def test_only_the_cli_defines_argument_parsers():
    hits = [f"{_rel(path)}:{n}" for path in _files()
            if path.relative_to(PACKAGE).parts[0] != "cli" and _rel(path) not in ARGPARSE_ALLOWED
            for n, line in enumerate(path.read_text().splitlines(), start=1)
            if re.search(r"\bargparse\b|ArgumentParser", line)]
    assert not hits, ("command-line parsing belongs in rgenima_lib/cli/ (one module per rule family): "
                      + ", ".join(hits))
    stale = [path for path in ARGPARSE_ALLOWED
             if not (REPO / path).is_file() or "ArgumentParser" not in (REPO / path).read_text()]
    assert not stale, f"no parser any more, so remove from ARGPARSE_ALLOWED: {stale}"


def test_no_private_names_imported_across_modules():
    hits = []
    for path in _files():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("rgenima_lib")):
                hits += [f"{_rel(path)}:{node.lineno}: {alias.name}" for alias in node.names
                         if alias.name.startswith("_")]
    assert not hits, "make these names public where they are defined, or keep them in one module:\n" + "\n".join(hits)


def test_building_the_command_line_imports_no_heavy_library():
    """Every rule job starts `rgenima` and builds its whole parser (docs/design.md, "Rule jobs start fast")."""
    import subprocess
    import sys

    heavy = ("numpy", "pandas", "scipy", "torch", "transformers", "nibabel", "matplotlib")
    code = ("import sys; from rgenima_lib.cli import build_parser; build_parser(); "
            f"print(' '.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                         timeout=120)
    assert out.stdout.split() == [], f"building the parser imported {out.stdout.split()}"

"""The docs as a map of the code: each check fails when the code moves and the docs do not.

- ``docs/paper_map.md`` names only rules, ``rgenima`` commands and ``rgenima_lib`` names that exist, and
  every rule of the workflow;
- every relative link (and its ``#anchor``) in README.md and docs/*.md points at something that exists;
- every ``docs/<page>.md, "<section>"`` reference in the repository names a heading of that page;
- ``docs/config.md`` is the generator's output for the schema as it is now.
"""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest
import yaml

from rgenima_lib.docgen import REGENERATE, SCHEMA_PATH, config_reference, main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAPER_MAP = DOCS / "paper_map.md"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
WORKFLOW_FILES = [ROOT / "workflow" / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]

RULE = re.compile(r"^[ \t]*(?:(?:rule|checkpoint)[ \t]+(\w+)[ \t]*:|use[ \t]+rule[ \t]+\w+[ \t]+as[ \t]+(\w+))",
                  re.MULTILINE)
COMMAND = re.compile(r"`rgenima ([a-z0-9][a-z0-9-]*)`")
DOTTED = re.compile(r"`(rgenima_lib(?:\.\w+)+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
SECTION_REF = re.compile(r'docs/(\w+)\.md, "([^"]+)"')
MAP_HEADER = "| paper | rule | command | library |"


# --- helpers ---------------------------------------------------------------------------------------------------


def without_code_blocks(text: str) -> str:
    """Markdown text with its fenced code blocks removed (their '#' lines are shell comments, not headings)."""
    return FENCE.sub("", text)


def headings(path: Path) -> list[str]:
    """The heading texts of a Markdown file, outside code blocks."""
    return [m.group(1).strip() for m in re.finditer(r"^#{1,6}[ \t]+(.+?)[ \t]*#*$",
                                                     without_code_blocks(path.read_text(encoding="utf-8")),
                                                     re.MULTILINE)]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a link may name in a Markdown file (repeated headings get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in headings(path):
        base = slug(heading)
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


def workflow_rules() -> set[str]:
    """Every rule and checkpoint defined in the Snakefile and the rule files."""
    return {name for path in WORKFLOW_FILES for pair in RULE.findall(path.read_text(encoding="utf-8"))
            for name in pair if name}


def map_rows() -> list[list[str]]:
    """The rows of every table of docs/paper_map.md, as [paper, rule, command, library] cells."""
    rows, in_table = [], False
    for line in PAPER_MAP.read_text(encoding="utf-8").splitlines():
        if line.strip() == MAP_HEADER:
            in_table = True
            continue
        if in_table and line.startswith("| ---"):
            continue
        if in_table and line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
        else:
            in_table = False
    return rows


def parser_commands() -> set[str]:
    """The subcommands of ``rgenima`` (the parser the console script builds)."""
    from rgenima_lib.cli import build_parser

    actions = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return {name for action in actions for name in action.choices}


def resolve(name: str):
    """The object a dotted ``rgenima_lib`` name stands for: the longest importable module, then attributes.

    Raises ``LookupError`` naming the part that is missing.
    """
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                continue  # this prefix is no module: try a shorter one
            raise  # the module exists but cannot import one of its own imports
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                raise LookupError(f"{obj.__name__ if hasattr(obj, '__name__') else obj!r} has no {attr!r}")
            obj = getattr(obj, attr)
        return obj
    raise LookupError(f"no module {parts[0]!r}")


# --- the paper map ---------------------------------------------------------------------------------------------


def test_the_map_has_four_filled_cells_per_row():
    rows = map_rows()
    assert len(rows) >= len(workflow_rules()), "docs/paper_map.md: fewer table rows than workflow rules"
    bad = [row for row in rows if len(row) != 4 or not all(row)]
    assert not bad, f"docs/paper_map.md: rows without paper | rule | command | library (use '–'): {bad}"


def test_every_rule_named_in_the_map_exists():
    named = {name for row in map_rows() for name in re.findall(r"`(\w+)`", row[1])}
    missing = sorted(named - workflow_rules())
    assert named and not missing, f"docs/paper_map.md names rules that no workflow file defines: {missing}"


def test_every_rule_of_the_workflow_is_in_the_map():
    named = {name for row in map_rows() for name in re.findall(r"`(\w+)`", row[1])}
    absent = sorted(workflow_rules() - named)
    assert not absent, f"rules missing from docs/paper_map.md (add a row each): {absent}"


def test_every_command_in_the_map_and_the_docs_exists():
    commands = parser_commands()
    in_map = set(COMMAND.findall(PAPER_MAP.read_text(encoding="utf-8")))
    assert in_map, "docs/paper_map.md names no `rgenima <command>`"
    unknown = {f"{page.relative_to(ROOT)}: rgenima {c}" for page in PAGES
               for c in COMMAND.findall(page.read_text(encoding="utf-8")) if c not in commands}
    assert not unknown, f"commands that `rgenima` does not have (rgenima_lib.cli.build_parser): {sorted(unknown)}"


def test_every_command_run_by_a_rule_is_in_the_map():
    run = {c for path in WORKFLOW_FILES for c in re.findall(r"rgenima ([a-z0-9][a-z0-9-]*)",
                                                            path.read_text(encoding="utf-8"))}
    run |= {"finetune"}  # started as `torchrun ... -m rgenima_lib.cli finetune` on GPUs
    in_map = set(COMMAND.findall(PAPER_MAP.read_text(encoding="utf-8")))
    assert run and not run - in_map, f"commands the rules run but docs/paper_map.md lacks: {sorted(run - in_map)}"


def test_every_library_name_in_the_map_resolves():
    names = sorted(set(DOTTED.findall(PAPER_MAP.read_text(encoding="utf-8"))))
    assert len(names) > 50, f"docs/paper_map.md names only {len(names)} library objects"
    broken = []
    for name in names:
        try:
            resolve(name)
        except LookupError as exc:
            broken.append(f"{name} ({exc})")
    assert not broken, "docs/paper_map.md names library objects that do not exist; update their rows: " + "; ".join(broken)


def test_resolve_tells_a_missing_name_from_a_present_one():
    from rgenima_lib.result_paths import result_path

    assert resolve("rgenima_lib.result_paths.result_path") is result_path
    with pytest.raises(LookupError):
        resolve("rgenima_lib.result_paths.no_such_function")
    with pytest.raises(LookupError):
        resolve("rgenima_lib.no_such_module.function")


def test_every_file_named_in_the_map_exists():
    files = set(re.findall(r"`((?:config|workflow)/[\w./-]+)`", PAPER_MAP.read_text(encoding="utf-8")))
    missing = sorted(f for f in files if not (ROOT / f).exists())
    assert files and not missing, f"docs/paper_map.md names files that do not exist: {missing}"


# --- links and section references ------------------------------------------------------------------------------


def test_every_relative_link_points_at_an_existing_file_and_anchor():
    broken = []
    for page in PAGES:
        for target in LINK.findall(without_code_blocks(page.read_text(encoding="utf-8"))):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            dest = (page.parent / path_part).resolve() if path_part else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no heading with anchor #{anchor})")
    assert not broken, "broken links: " + "; ".join(broken)


def test_readme_and_the_index_link_every_docs_page_and_the_readme_stays_short():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in DOCS.glob("*.md"))
    assert not [p for p in pages if f"](docs/{p}" not in readme], "README.md does not link every docs/ page"
    assert not [p for p in pages if p != "index.md" and f"]({p}" not in index], "docs/index.md does not link every page"
    assert len(readme.splitlines()) <= 150, "README.md: keep it at most ~150 lines; move details into docs/"


def test_every_section_reference_names_a_heading():
    sources = [*ROOT.glob("rgenima_lib/**/*.py"), *ROOT.glob("tests/**/*.py"), *WORKFLOW_FILES,
               *ROOT.glob("config/*.yaml"), ROOT / "Makefile", *PAGES]
    refs = [(src, page, section) for src in sources if src.is_file()
            for page, section in SECTION_REF.findall(src.read_text(encoding="utf-8", errors="replace"))]
    assert any(page == "design" for _, page, _ in refs), "no docs/design.md section is cited anywhere"
    bad = []
    for src, page, section in refs:
        target = DOCS / f"{page}.md"
        if not target.exists() or section not in headings(target):
            bad.append(f'{src.relative_to(ROOT)}: docs/{page}.md, "{section}"')
    assert not bad, "references to sections that do not exist (rename the reference or the heading): " + "; ".join(bad)


# --- the config reference --------------------------------------------------------------------------------------


def test_config_md_is_the_generators_output_for_the_schema_as_it_is():
    expected = config_reference(SCHEMA_PATH)
    actual = (DOCS / "config.md").read_text(encoding="utf-8")
    assert actual == expected, f"docs/config.md is out of date with {SCHEMA_PATH.name}: run `{REGENERATE}`"


def _schema_keys(node: dict, prefix: str = "") -> list[str]:
    """Every dotted key under ``properties``, walked independently of the generator."""
    keys = []
    for name, sub in (node.get("properties") or {}).items():
        key = f"{prefix}{name}"
        keys.append(key)
        keys += _schema_keys(sub, key + ".")
    return keys


def test_config_reference_lists_every_key_of_the_schema_once():
    reference = config_reference(SCHEMA_PATH)
    schema = yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))
    sections = [k for k, v in schema["properties"].items() if "properties" in v]
    keys = [k for k in _schema_keys(schema) if k not in sections]
    assert len(keys) > 100 and len(sections) > 10
    assert all(f"\n## {s}\n" in reference for s in sections), "a top-level section has no heading"
    rows = re.findall(r"^\| `([^`]+)` \|", reference, re.MULTILINE)
    missing = [k for k in keys if k not in rows]
    assert not missing, f"keys of the schema missing from the reference: {missing}"
    assert len(rows) == len(set(rows)), "a key is listed twice"


SMALL_SCHEMA = """
type: object
properties:
  seed: {type: integer, default: 7, description: "one | seed"}
  part:
    type: object
    default: {}
    description: a section
    properties:
      rate: {type: number, exclusiveMinimum: 0, maximum: 1, default: 0.5, description: "a <rate>"}
      mode: {enum: [fast, slow], default: fast}
      size:
        type: array
        items: {type: integer, minimum: 8}
        minItems: 3
        maxItems: 3
        default: [8, 8, 8]
      path: {type: ["string", "null"], default: null}
      fractions: {$ref: "#/$defs/fractions"}
      named:
        type: object
        additionalProperties:
          type: object
          properties:
            weights: {type: string}
      pairs:
        type: array
        items:
          type: object
          required: [gene]
          properties:
            gene: {type: string}
$defs:
  fractions:
    type: object
    additionalProperties: {type: number, minimum: 0, maximum: 0.6}
"""


def test_config_reference_rows_carry_type_default_bounds_and_description(tmp_path):
    schema = tmp_path / "small.schema.yaml"
    schema.write_text(SMALL_SCHEMA)
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \| (.*) \|$", config_reference(schema),
                                                           re.MULTILINE)}
    assert rows["seed"] == "integer | `7` |  | one \\| seed"
    assert rows["part.rate"] == "number | `0.5` | > 0; ≤ 1 | a &lt;rate&gt;"
    assert rows["part.mode"] == "string | `fast` | one of `fast`, `slow` | "
    assert rows["part.size"] == "array of integer | `[8, 8, 8]` | exactly 3 items; items: ≥ 8 | "
    assert rows["part.path"] == "string or null | `null` |  | "
    assert rows["part.fractions"] == "map of number |  | values: ≥ 0; ≤ 0.6 | "
    assert rows["part.named.<name>.weights"] == "string |  |  | "
    assert rows["part.pairs[].gene"] == "string |  | required | "
    assert "part" not in rows  # a section is a heading with its description, not a row
    assert "## part\n\na section\n" in config_reference(schema)


def test_docgen_command_prints_the_reference(tmp_path, capsys):
    schema = tmp_path / "small.schema.yaml"
    schema.write_text(SMALL_SCHEMA)
    assert main(["config", "--schema", str(schema)]) == 0
    assert capsys.readouterr().out == config_reference(schema)

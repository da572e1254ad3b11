"""Documentation generated from the sources it describes: the configuration reference.

``python -m rgenima_lib.docgen config > docs/config.md`` writes one table per
top-level section of ``workflow/schemas/config.schema.yaml``: every key as a
dotted path, with its type, default, bounds or allowed values, and description.
``tests/test_docs.py`` checks that ``docs/config.md`` equals this output, so the
reference cannot drift from the schema.

This module imports nothing of the project, so that any floor may use it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
"""The config schema of this checkout."""

REGENERATE = "python -m rgenima_lib.docgen config > docs/config.md"
"""The command that rewrites ``docs/config.md``."""

_BOUNDS = (
    ("minimum", "≥ {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "≤ {}"),
    ("exclusiveMaximum", "< {}"),
    ("minLength", "length ≥ {}"),
    ("maxLength", "length ≤ {}"),
    ("minItems", "≥ {} items"),
    ("maxItems", "≤ {} items"),
    ("minProperties", "≥ {} entries"),
)


def _value(value) -> str:
    """A default or enum value as the YAML config would spell it, in one line."""
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value, ensure_ascii=False)


def _cell(text: str) -> str:
    """Text safe inside one Markdown table cell (pipes escaped, one line)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _text(text: str) -> str:
    """Prose safe inside one Markdown table cell: also ``<`` and ``>`` (read as HTML), outside code spans."""
    parts = _cell(text).split("`")
    for i in range(0, len(parts), 2):  # even parts lie outside code spans
        parts[i] = parts[i].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _code(text: str) -> str:
    """``text`` as a Markdown code span that survives a table cell."""
    text = _cell(text)
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _resolve(node: dict, root: dict) -> dict:
    """The node with a local ``$ref`` (``#/$defs/...``) replaced by its target, merged with siblings."""
    ref = node.get("$ref") if isinstance(node, dict) else None
    if not ref:
        return node
    if not ref.startswith("#/"):
        raise ValueError(f"schema: only local $ref are supported, got {ref!r}")
    target = root
    for part in ref[2:].split("/"):
        target = target[part]
    merged = dict(_resolve(target, root))
    merged.update({k: v for k, v in node.items() if k != "$ref"})
    return merged


def _type(node: dict, root: dict) -> str:
    """The node's type in words: ``integer``, ``string or null``, ``array of number``, ``map of number``."""
    kinds = node.get("type")
    if kinds is None:
        if "enum" in node:
            kinds = sorted({type(v).__name__ for v in node["enum"]})
            kinds = [{"str": "string", "int": "integer", "float": "number", "bool": "boolean",
                      "NoneType": "null"}.get(k, k) for k in kinds]
        else:
            return "any"
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    words = []
    for kind in kinds:
        if kind == "array" and isinstance(node.get("items"), dict):
            items = _resolve(node["items"], root)
            inner = "object" if "properties" in items else _type(items, root)
            words.append(f"array of {inner}")
        elif kind == "object" and "properties" not in node and isinstance(node.get("additionalProperties"), dict):
            value = _resolve(node["additionalProperties"], root)
            inner = "object" if "properties" in value else _type(value, root)
            words.append(f"map of {inner}")
        else:
            words.append(kind)
    return " or ".join(words)


def _allowed(node: dict, root: dict) -> str:
    """Bounds, allowed values and patterns of a node (and of its items or map values)."""
    parts = []
    if "enum" in node:
        parts.append("one of " + ", ".join(_code(_value(v)) for v in node["enum"]))
    if "pattern" in node:
        parts.append("matches " + _code(node["pattern"]))
    bounds = dict(_BOUNDS)
    if "minItems" in node and node.get("minItems") == node.get("maxItems"):
        parts.append(f"exactly {node['minItems']} items")
        bounds = {k: v for k, v in bounds.items() if k not in ("minItems", "maxItems")}
    parts += [template.format(_value(node[key])) for key, template in bounds.items() if key in node]
    if node.get("uniqueItems"):
        parts.append("unique items")
    for key, label in (("items", "items"), ("additionalProperties", "values")):
        inner = node.get(key)
        if isinstance(inner, dict) and "properties" not in _resolve(inner, root):
            inner_allowed = _allowed(_resolve(inner, root), root)
            if inner_allowed:
                parts.append(f"{label}: {inner_allowed}")
    return "; ".join(parts)


def _rows(name: str, node: dict, root: dict) -> list[tuple[str, str, str, str, str]]:
    """(key, type, default, allowed, description) of ``node`` and of every key below it."""
    node = _resolve(node, root)
    # An object's default {} only says "filled in key by key": its keys' rows show the defaults.
    shown = "default" in node and not ("properties" in node and node["default"] == {})
    default = _code(_value(node["default"])) if shown else ""
    rows = [(name, _type(node, root), default, _allowed(node, root), node.get("description", ""))]
    for child, sub in (node.get("properties") or {}).items():
        rows += _rows(f"{name}.{child}", sub, root)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and "properties" in _resolve(extra, root) and "properties" not in node:
        for child, sub in _resolve(extra, root)["properties"].items():
            rows += _rows(f"{name}.<name>.{child}", sub, root)
    items = node.get("items")
    if isinstance(items, dict) and "properties" in _resolve(items, root):
        required = set(_resolve(items, root).get("required", []))
        for child, sub in _resolve(items, root)["properties"].items():
            sub_rows = _rows(f"{name}[].{child}", sub, root)
            if child in required:
                key, kind, dflt, allowed, desc = sub_rows[0]
                sub_rows[0] = (key, kind, dflt, "; ".join(p for p in ("required", allowed) if p), desc)
            rows += sub_rows
    return rows


def config_reference(schema_path: str | Path = SCHEMA_PATH) -> str:
    """The configuration reference (Markdown) of a config schema.

    Parameters
    ----------
    schema_path : str or Path
        A JSON schema written as YAML (``workflow/schemas/config.schema.yaml``).
        Local ``$ref`` and YAML anchors are followed.

    Returns
    -------
    str
        ``docs/config.md``: a title, then one table per top-level key (top-level
        scalars first, together), each row one key as a dotted path (``a.b.c``;
        ``a.<name>.b`` for the entries of a map, ``a[].b`` for the fields of list
        items) with its type, default, bounds or allowed values, and description.
    """
    schema_path = Path(schema_path)
    root = yaml.safe_load(schema_path.read_text(encoding="utf-8"))
    lines = [
        "# Configuration reference",
        "",
        f"Generated from `{schema_path.name}` (`workflow/schemas/`) by `{REGENERATE}`; do not edit",
        "by hand. Every key is optional: the schema fills in the default. An unknown key stops the run",
        "with its name. `config/config.yaml` holds the paper's settings, `config/demo.yaml` the demo's",
        "([departures.md](departures.md)).",
        "",
    ]
    header = ["| key | type | default | allowed | description |", "| --- | --- | --- | --- | --- |"]

    def table(rows):
        return header + [f"| `{key}` | {_text(kind)} | {default} | {_cell(allowed)} | {_text(desc)} |"
                         for key, kind, default, allowed, desc in rows]

    properties = root.get("properties", {})
    leaves = [row for key in properties for row in _rows(key, properties[key], root)]
    if any(not default and kind not in ("object", "array of object") for _, kind, default, _, _ in leaves):
        lines[-1:-1] = ["A key with no default in this table gets it from the stage that reads it."]
    scalars = [k for k, v in properties.items() if "properties" not in _resolve(v, root)]
    sections = [k for k in properties if k not in scalars]
    if scalars:
        lines += ["## Top level", ""]
        lines += table([row for key in scalars for row in _rows(key, properties[key], root)])
        lines.append("")
    for key in sections:
        node = _resolve(properties[key], root)
        lines += [f"## {key}", ""]
        if node.get("description"):
            lines += [_text(node["description"]).replace("\\|", "|"), ""]
        lines += table(_rows(key, node, root)[1:])
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m rgenima_lib.docgen config [--schema PATH]``: print the configuration reference."""
    parser = argparse.ArgumentParser(prog="python -m rgenima_lib.docgen", description=__doc__.splitlines()[0])
    parser.add_argument("page", choices=["config"], help="the page to print")
    parser.add_argument("--schema", type=Path, default=SCHEMA_PATH, help="config schema (default: this checkout's)")
    args = parser.parse_args(argv)
    sys.stdout.write(config_reference(args.schema))
    return 0


if __name__ == "__main__":
    sys.exit(main())

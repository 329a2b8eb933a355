"""The project documents its own format: every JSON Schema property has a description (editors
show it) and is named in docs/shotlist.md, the user's reference."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from tests.helpers import REPO, run_cli

DOC = REPO / "docs" / "shotlist.md"


def _refs(node: object) -> Iterator[str]:
    """Every ``$ref`` target (a $defs name) below a schema node."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"].rsplit("/", 1)[-1]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def schema_properties(schema: dict) -> dict[tuple[str, str], tuple[dict, set[str]]]:
    """(object, field) -> (its property schema, every dotted path a user writes to reach it).

    Paths read as the error messages do: ``defaults.model``, ``output.fps``, a shot's fields
    bare (``prompt``, ``text.colour``, ``transition.duration``, ``start.shot``)."""
    defs = schema.get("$defs", {})
    found: dict[tuple[str, str], tuple[dict, set[str]]] = {}

    def walk(name: str, node: dict, prefix: str, seen: tuple[str, ...]) -> None:
        for field, prop in node.get("properties", {}).items():
            path = prefix + field
            entry = found.setdefault((name, field), (prop, set()))
            entry[1].add(path)
            for target in _refs(prop):
                if target not in seen:
                    child = "" if field == "shots" and not prefix else path + "."
                    walk(target, defs[target], child, (*seen, target))

    walk("<root>", schema, "", ("<root>",))
    return found


def test_schema_walk_reaches_every_definition():
    schema = json.loads(run_cli(["schema"]).stdout)
    reached = {name for name, _ in schema_properties(schema)}
    assert set(schema["$defs"]) <= reached
    paths = {p for _, paths in schema_properties(schema).values() for p in paths}
    assert {"defaults.model", "output.music", "prompt", "text.colour", "transition.duration",
            "start.shot", "defaults.transition.type"} <= paths


def test_every_schema_property_has_a_description():
    schema = json.loads(run_cli(["schema"]).stdout)
    missing = sorted(f"{name}.{field}" for (name, field), (prop, _) in schema_properties(schema).items()
                     if not str(prop.get("description", "")).strip())
    assert not missing, f"schema properties without a description: {missing}"


def test_every_schema_property_is_in_the_reference():
    text = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"`([^`\n]+)`", text))
    schema = json.loads(run_cli(["schema"]).stdout)
    missing = sorted(min(paths) for (_, _), (_, paths) in schema_properties(schema).items()
                     if not paths & named)
    assert not missing, f"docs/shotlist.md does not name: {missing}"


def test_readme_links_the_reference_inside_the_repository():
    links = re.findall(r"\]\(([^)\s]+)\)", (REPO / "README.md").read_text(encoding="utf-8"))
    assert "docs/shotlist.md" in links and "examples/README.md" in links


def test_relative_links_in_the_docs_resolve():
    pages = [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "examples").rglob("*.md")]
    for page in pages:
        for link in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if "://" not in link and not link.startswith("#"):
                assert (page.parent / link.split("#")[0]).exists(), f"{page.name}: {link}"

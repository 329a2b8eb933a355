"""The dependency direction (docs/architecture.md): cli -> flows -> tasks -> (SDKs, ffmpeg,
boto3), and the emulator imports none of flows, tasks or the cli (tasks do not import the
emulator either: they reach it over HTTP through the SDKs).

Read from the source with ``ast`` (every import, lazy ones inside functions included;
relative ones resolved against the module's package), so a new violation fails here
before anything runs it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import REPO

#: Source folder -> the package it installs as (pyproject's package-dir).
PACKAGES = {"reelflow": "reelflow", "flows": "reelflow.flows", "tasks": "reelflow.tasks",
            "emulator": "reelflow.emulator", "deployments": "reelflow.deployments"}
CLI = ("reelflow.cli", "reelflow._cli_")
#: A module of this layer may not import a module that starts with any of these.
FORBIDDEN = {
    "reelflow.tasks": ("reelflow.flows", *CLI, "reelflow.deployments",
                       "reelflow.emulator"),  # tasks reach Luma through the SDKs only
    "reelflow.flows": (*CLI, "reelflow.deployments"),
    "reelflow.emulator": ("reelflow.flows", "reelflow.tasks", *CLI, "reelflow.deployments"),
}


def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def imported(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in the module NAME at PATH."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.append((node.lineno, base))
            names += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return names


def _layer(name: str) -> str | None:
    return next((layer for layer in FORBIDDEN if name.startswith(layer + ".")), None)


def forbidden(name: str, target: str) -> bool:
    """True when the module NAME may not import TARGET."""
    layer = _layer(name)
    return layer is not None and any(
        target.startswith(bad) if bad.endswith("_") else target == bad or target.startswith(bad + ".")
        for bad in FORBIDDEN[layer])


def violations(found: dict[str, Path]) -> list[str]:
    """``file:line: module imports target`` for every import against the direction."""
    return sorted({f"{path.relative_to(REPO)}:{line}: {name} imports {target}"
                   for name, path in found.items() for line, target in imported(name, path)
                   if forbidden(name, target)})


def test_the_package_has_the_modules_the_rule_is_about():
    found = modules()
    assert {"reelflow.cli", "reelflow.flows.render", "reelflow.tasks.luma",
            "reelflow.emulator.server"} <= found.keys()
    assert len([n for n in found if n.startswith("reelflow.tasks.")]) > 30


def test_dependencies_point_one_way():
    assert violations(modules()) == []


@pytest.mark.parametrize(("name", "source", "target"), [
    ("reelflow.tasks.x", "from reelflow.flows.plan import make_plan", "reelflow.flows.plan"),
    ("reelflow.tasks.x", "from ..flows import render", "reelflow.flows"),
    ("reelflow.tasks.x", "def f():\n    import reelflow.cli", "reelflow.cli"),
    ("reelflow.tasks.x", "from reelflow.emulator import EmulatorServer", "reelflow.emulator"),
    ("reelflow.flows.x", "from reelflow import cli", "reelflow.cli"),
    ("reelflow.flows.x", "from reelflow._cli_render import validated", "reelflow._cli_render"),
    ("reelflow.emulator.x", "from reelflow.tasks import store", "reelflow.tasks"),
    ("reelflow.emulator.x", "from ..tasks.store import ClipStore", "reelflow.tasks.store"),
])
def test_a_wrong_way_import_is_found(tmp_path, name, source, target):
    path = tmp_path / "x.py"
    path.write_text(source + "\n")
    assert target in [t for _line, t in imported(name, path) if forbidden(name, t)]


@pytest.mark.parametrize(("name", "source"), [
    ("reelflow.flows.x", "from reelflow.tasks.store import ClipStore"),
    ("reelflow.tasks.x", "from . import _ffmpeg\nfrom reelflow.errors import ReelflowError"),
    ("reelflow.emulator.x", "from reelflow import pricing, spec\nfrom .account import Account"),
    ("reelflow.cli", "from reelflow.flows.render import render_sequence"),
])
def test_the_right_way_is_allowed(tmp_path, name, source):
    path = tmp_path / "x.py"
    path.write_text(source + "\n")
    assert not [t for _line, t in imported(name, path) if forbidden(name, t)]



def relative_imports(paths) -> list[tuple[Path, int]]:
    """(file, line) of every relative import (``from .x import y``) in PATHS."""
    return sorted((path, node.lineno) for path in paths
                  for node in ast.walk(ast.parse(path.read_text(), str(path)))
                  if isinstance(node, ast.ImportFrom) and node.level)


def test_imports_within_the_package_are_absolute():
    """One way to import within the package: ``from reelflow.tasks.x import y``."""
    found = relative_imports(modules().values())
    assert [f"{path.relative_to(REPO)}:{line}" for path, line in found] == []


def test_a_relative_import_is_found(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("from reelflow.errors import ReelflowError\nfrom . import _ffmpeg\n"
                    "def f():\n    from ..flows import plan\n")
    assert relative_imports([path]) == [(path, 2), (path, 4)]

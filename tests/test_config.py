"""reelflow/config.py is the one place the package reads the environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import SecretStr

import reelflow
from reelflow.config import ENV, Settings, settings

ROOT = Path(reelflow.__file__).resolve().parent.parent
#: The package's modules (the emulator, a separate program, keeps its own environment).
PACKAGES = ("reelflow", "flows", "tasks", "deployments")
_OS_ENV = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def environment_uses(source: str) -> list[str]:
    """``os.environ``, ``os.getenv`` (...) and ``from os import environ`` in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in _OS_ENV \
                and isinstance(node.value, ast.Name) and node.value.id == "os":
            found.append(f"line {node.lineno}: os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"line {node.lineno}: from os import {a.name}" for a in node.names
                      if a.name in _OS_ENV]
    return sorted(found)


def test_the_check_sees_every_way_of_reading_the_environment():
    assert environment_uses("import os\nos.environ.get('A')\nos.getenv('B')\n") == [
        "line 2: os.environ", "line 3: os.getenv"]
    assert environment_uses("from os import environ as e, path\n") == ["line 1: from os import environ"]
    assert environment_uses("import os\nos.path.join('a')\nenviron = {}\n") == []


def test_only_config_reads_the_environment():
    readers = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel != "reelflow/config.py" and (uses := environment_uses(path.read_text("utf-8"))):
                readers[rel] = uses
    assert readers == {}, "read it through reelflow.config.settings()"
    assert environment_uses((ROOT / "reelflow/config.py").read_text("utf-8"))  # it is there


def test_settings_take_the_first_variable_set_and_mask_secrets():
    env = Settings.from_environ({"AWS_ENDPOINT_URL": "http://b", "AWS_ENDPOINT_URL_S3": "",
                                 "REELFLOW_S3_ENDPOINT_URL": "", "LUMAAI_API_KEY": "sk-very-secret",
                                 "AWS_SECRET_ACCESS_KEY": "aws-very-secret", "REELFLOW_STORE": " "})
    assert env.s3_endpoint_url == "http://b"  # empty ones are unset, the first set one wins
    assert env.luma_api_key == SecretStr("sk-very-secret") and env.has_luma_key()
    assert "very-secret" not in repr(env) and "very-secret" not in env.model_dump_json()
    assert sorted(env.secret_values()) == ["aws-very-secret", "sk-very-secret"]
    assert env.store_spec() == "" and env.agents_api_key is None
    assert Settings.from_environ({}).emulator_latency_s() == 2.0
    assert Settings.from_environ({"REELFLOW_STALE_S": "7"}).seconds("stale", 30) == 7.0
    assert set(ENV) == set(Settings.model_fields)  # every field names its variables


def test_settings_are_read_when_asked(monkeypatch):
    monkeypatch.setenv("REELFLOW_PRICES", '{"ray-2": 1}')
    assert settings().prices == '{"ray-2": 1}'
    monkeypatch.delenv("REELFLOW_PRICES")
    assert settings().prices is None
    from reelflow.pricing import price_table

    monkeypatch.setenv("REELFLOW_PRICES", '{"ray-2": 0.5}')
    assert price_table()["ray-2"] == 0.5


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_distribution_default_reads_the_setting(monkeypatch, value):
    from reelflow.flows.distribute import distribute_default

    monkeypatch.setenv("REELFLOW_DISTRIBUTE", value)
    assert distribute_default()
    monkeypatch.setenv("REELFLOW_DISTRIBUTE", "0")
    assert not distribute_default()

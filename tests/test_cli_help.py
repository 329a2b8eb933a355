"""Every flag of every command says what it does and its default."""

from __future__ import annotations

import argparse

import pytest

from reelflow._cli_parser import build_parser
from reelflow.deployments.serve import deploy_parser, serve_parser
from reelflow.emulator import _parser as emulator_parser


def _parsers() -> dict[str, argparse.ArgumentParser]:
    main = build_parser()
    found = {"reelflow": main, "emulator": emulator_parser(), "serve": serve_parser(),
             "deploy": deploy_parser()}
    for action in main._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.setdefault(name, sub)
    return found


@pytest.mark.parametrize("name", sorted(_parsers()))
def test_every_flag_says_what_it_does_and_its_default(name):
    parser = _parsers()[name]
    flags = [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
    assert flags or name == "schema" or not parser.add_help
    for action in flags:
        text = action.help or ""
        assert len(text.split()) >= 3, f"{name} {action.option_strings}: no help"
        assert "default" in text or "required" in text, f"{name} {action.option_strings}: {text!r}"

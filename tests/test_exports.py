"""The public surface: `reelflow.__all__` names exactly these objects, and reelflow/errors.py
draws every exception it defines in its docstring tree, with the parents the code gives them."""

from __future__ import annotations

import inspect
import re

import pytest

import reelflow
import reelflow.errors as errors

#: name -> the module that defines it (a flow's home is its function's module).
PUBLIC = {
    "AnswerLost": "reelflow.errors",
    "ClipStore": "reelflow.tasks.store",
    "CredentialsMissing": "reelflow.errors",
    "DownloadError": "reelflow.errors",
    "FfmpegError": "reelflow.errors",
    "GenerationFailed": "reelflow.errors",
    "LumaCredentials": "reelflow.tasks.luma",
    "ModerationRefused": "reelflow.errors",
    "ReelflowError": "reelflow.errors",
    "ShotList": "reelflow.flows.shotlist",
    "ShotListError": "reelflow.errors",
    "StoreNotConfigured": "reelflow.errors",
    "StoreUnavailable": "reelflow.errors",
    "TimelineError": "reelflow.errors",
    "load_shotlist": "reelflow.flows.shotlist",
    "render_sequence": "reelflow.flows.render",
}


def test_all_is_exactly_the_public_names_sorted():
    assert reelflow.__all__ == sorted(PUBLIC)
    assert dir(reelflow) == sorted(PUBLIC)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_each_public_name_is_the_object_its_module_defines(name):
    obj = getattr(reelflow, name)
    defined = getattr(obj, "fn", obj)  # a Prefect flow wraps the function it was made from
    assert inspect.isclass(defined) or inspect.isfunction(defined), f"{name}: {obj!r}"
    assert (defined.__module__, defined.__name__) == (PUBLIC[name], name)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'render'"):
        reelflow.render  # noqa: B018


def _drawn_tree() -> dict[str, str | None]:
    """The docstring's tree: class name -> the name drawn as its parent (None at the root)."""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []  # (column of the name, name), the open ancestors
    for line in errors.__doc__.splitlines():
        found = re.match(r"^(\s*(?:[│ ]\s*)*(?:[├└]── )?)([A-Z]\w+)\b", line)
        if not found or not line.startswith("    "):
            continue
        column, name = len(found.group(1)), found.group(2)
        while stack and stack[-1][0] >= column:
            stack.pop()
        assert name not in parents, f"{name} is drawn twice"
        parents[name] = stack[-1][1] if stack else None
        stack.append((column, name))
    return parents


def _defined() -> dict[str, type]:
    return {name: cls for name, cls in inspect.getmembers(errors, inspect.isclass)
            if cls.__module__ == errors.__name__ and issubclass(cls, BaseException)}


def test_every_error_is_drawn_in_the_tree_under_its_parent():
    drawn, defined = _drawn_tree(), _defined()
    assert drawn.get("ReelflowError", "missing") is None and len(drawn) > 5
    assert set(drawn) == set(defined)
    for name, cls in defined.items():
        assert issubclass(cls, errors.ReelflowError), name
        if cls is not errors.ReelflowError:  # drawn under its first base; any other is a builtin
            assert cls.__bases__[0] is defined[drawn[name]], f"{name} is drawn under {drawn[name]}"
            assert all(base.__module__ == "builtins" for base in cls.__bases__[1:]), name


def test_the_timeline_error_is_the_one_in_the_tree_and_a_value_error():
    from reelflow.tasks._timeline import TimelineSpan, resolve

    with pytest.raises(errors.TimelineError) as raised:
        resolve([TimelineSpan(length_s=1.0, transition="crossfade", transition_s=2.0, label="a"),
                 TimelineSpan(length_s=1.0, label="b")], 24)
    assert isinstance(raised.value, ValueError) and raised.value.problems
    assert str(raised.value).startswith("item 1 (a): ")


def test_every_error_is_exported():
    assert sorted(errors.__all__) == errors.__all__ == sorted(_defined())
    assert set(errors.__all__) <= set(reelflow.__all__)

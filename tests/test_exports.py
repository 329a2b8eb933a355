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
    "BudgetExceeded": "reelflow.errors",
    "ClipStore": "reelflow.tasks.store",
    "CredentialsMissing": "reelflow.errors",
    "DownloadError": "reelflow.errors",
    "FfmpegError": "reelflow.errors",
    "GenerationFailed": "reelflow.errors",
    "LedgerConflict": "reelflow.errors",
    "LumaCredentials": "reelflow.tasks.luma",
    "ModerationRefused": "reelflow.errors",
    "NothingSent": "reelflow.errors",
    "ReelflowError": "reelflow.errors",
    "SendingElsewhere": "reelflow.errors",
    "ShotList": "reelflow.flows.shotlist",
    "ShotListError": "reelflow.errors",
    "StoreNotConfigured": "reelflow.errors",
    "StoreUnavailable": "reelflow.errors",
    "TimelineError": "reelflow.errors",
    "WriteConflict": "reelflow.errors",
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


#: Exceptions that never leave the module raising them (caught there, turned into
#: ShotListError lines), as the tree's docstring says.
PRIVATE_ERRORS = {"flows/_shotlist_read.py": {"_Refused"}, "flows/_image_header.py": {"ImageDamaged"}}


def _exception_classes(path) -> set[str]:
    """Classes in ``path`` whose base names end in Error/Exception/Conflict or are our errors."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    ours = set(errors.__all__) | {"Exception", "BaseException", "ValueError", "RuntimeError"}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
            if bases & ours or any(b.endswith(("Error", "Exception")) for b in bases):
                found.add(node.name)
    return found


def test_no_exception_class_is_defined_outside_the_tree():
    from pathlib import Path

    root = Path(reelflow.__file__).resolve().parent.parent
    outside = {}
    for package in ("reelflow", "flows", "tasks", "deployments"):
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel == "reelflow/errors.py":
                continue
            extra = _exception_classes(path) - PRIVATE_ERRORS.get(rel, set())
            if extra:
                outside[rel] = sorted(extra)
    assert outside == {}, f"define these in reelflow/errors.py and draw them in its tree: {outside}"
    assert _exception_classes(root / "flows/_image_header.py") == {"ImageDamaged"}  # the check sees


@pytest.mark.parametrize(("name", "parent"), [
    ("NothingSent", "GenerationFailed"), ("BudgetExceeded", "ShotListError"),
    ("LedgerConflict", "WriteConflict"), ("SendingElsewhere", "LedgerConflict"),
    ("WriteConflict", "ReelflowError")])
def test_the_errors_once_outside_are_drawn_under_their_parent(name, parent):
    assert _drawn_tree()[name] == parent
    assert getattr(reelflow, name).__bases__[0] is getattr(reelflow, parent)


def test_the_modules_that_raise_them_use_the_tree_classes():
    from reelflow.tasks import _create, _generate, _ledger, _s3

    assert _create.NothingSent is errors.NothingSent
    assert _ledger.LedgerConflict is errors.LedgerConflict
    assert _generate.SendingElsewhere is errors.SendingElsewhere
    assert _s3.WriteConflict is errors.WriteConflict and not hasattr(_s3, "Conflict")


def test_a_budget_refusal_is_a_shotlist_error_with_its_numbers(tmp_path):
    from reelflow.flows.plan import check_budget, make_plan
    from reelflow.flows.shotlist import load_shotlist
    from tests.helpers import write_shotlist

    path = write_shotlist(tmp_path, [{"id": "a", "prompt": "A lighthouse at dusk", "resolution": "540p"}])
    plan = make_plan(load_shotlist(path), "final")
    with pytest.raises(errors.BudgetExceeded) as raised:
        check_budget(plan, 0.01)
    assert isinstance(raised.value, errors.ShotListError) and len(raised.value.problems) == 1
    assert raised.value.problems[0].startswith(f"{path.name}: budget: this render would pay $")
    assert (raised.value.cost_usd, raised.value.budget_usd) == (plan.cost_usd, 0.01)

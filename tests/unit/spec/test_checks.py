"""Cross-field checks: every check function in checks.py is registered (an unregistered check never runs)."""

from __future__ import annotations

import inspect

from mlflowkit.spec import checks


def test_every_check_is_registered() -> None:
    helpers = {"check", "run_checks", "store_problem"}
    defined = [
        fn
        for name, fn in inspect.getmembers(checks, inspect.isfunction)
        if fn.__module__ == checks.__name__ and name not in helpers and not name.startswith("_")
    ]
    assert defined
    assert sorted(fn.__name__ for fn in defined) == sorted(fn.__name__ for fn in checks.CHECKS)
    assert len(checks.CHECKS) == len(set(checks.CHECKS))


def test_every_check_has_a_docstring_saying_its_concern() -> None:
    for fn in checks.CHECKS:
        assert (fn.__doc__ or "").strip(), fn.__name__

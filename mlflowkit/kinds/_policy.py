"""The operations policy a running step is governed by: the one its run was checked against when it started."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflowkit.kinds.base import StepContext
    from mlflowkit.policy.model import Policy

__all__ = ["governing_policy"]


def governing_policy(ctx: StepContext) -> Policy | None:
    """The policy of ``ctx``'s run (found once, when the run started; None when none governs).

    A context made outside the runner (``policy="find"``) gets the policy governing its spec folder now,
    so that a step is never run ungoverned.
    """
    if ctx.policy != "find":
        return ctx.policy
    from mlflowkit.policy.load import find_policy

    return find_policy(ctx.spec_dir)

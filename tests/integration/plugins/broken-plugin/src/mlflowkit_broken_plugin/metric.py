"""A metric whose import fails."""

import mlflowkit_does_not_exist  # noqa: F401

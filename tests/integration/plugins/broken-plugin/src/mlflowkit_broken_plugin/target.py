"""A deploy target whose import fails, as one with a missing client library would."""

raise RuntimeError("mlflowkit-broken-plugin's target is broken on purpose")

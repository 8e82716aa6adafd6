"""Step kinds: :mod:`.base` is what a kind is (params, ``run``, context, inputs); the other modules are the built-ins.

Built-in kinds register through the ``mlflowkit.kinds`` entry point like a third party's. Modules whose names
start with ``_`` are helpers the built-in kinds share.
"""

"""The spec wing: YAML text to a validated, frozen spec, with every error at file:line:col (:func:`.load.load_spec`)."""

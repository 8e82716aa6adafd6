"""The plan wing: a loaded spec compiled (:mod:`.compile`) into a frozen, deterministic DAG of steps (:mod:`.model`)."""

"""The run wing: a plan executed as a Prefect flow (one task per step), with the cache, run records and the drift check."""

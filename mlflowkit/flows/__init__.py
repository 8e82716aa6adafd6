"""Specs as Prefect deployments: schedules, registration, serving, run history.

``schedule`` is light (the spec's ``schedule:`` model; no Prefect), so the spec wing may import it.
``deploy``, ``entry`` and ``history`` import Prefect inside their functions, like the run wing.
"""

"""Monitoring: reference profiles stored with each version, drift of live data against them, drift reports.

:mod:`.settings` is the spec's ``monitor:`` section (light, validated with the spec), :mod:`.profile`
builds reference profiles, :mod:`.drift` compares live data with one, and :mod:`.report` renders the
result as a self-contained HTML page. :mod:`mlflowkit.runtime.monitor` runs it all as a Prefect flow.
"""

from __future__ import annotations

__all__: list[str] = []

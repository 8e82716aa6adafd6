"""A few reads of the Prefect REST API with httpx, without importing Prefect (it costs about a second).

Used by ``runs list|show`` and to find the deployments mlflowkit manages. Explicit ``limit`` and
``offset`` on every filter: Prefect 3.8.8's own sync client sends nulls that this server refuses.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["ApiUnavailable", "PrefectApi"]


class ApiUnavailable(Exception):
    """The Prefect API could not be reached or refused the request."""


class PrefectApi:
    """The Prefect server at ``url`` (``PREFECT_API_URL``)."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {os.environ['PREFECT_API_KEY']}"} if os.environ.get("PREFECT_API_KEY") else {}
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> PrefectApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        import httpx

        try:
            response = self._client.post(path, json=body)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"{self.url}{path}: {type(exc).__name__}: {exc}") from None
        return response.json()

    def get(self, path: str) -> Any:
        """``GET path`` (e.g. ``/flow_runs/<id>``), as JSON."""
        import httpx

        try:
            response = self._client.get(path)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"{self.url}{path}: {type(exc).__name__}: {exc}") from None
        return response.json()

    def filter(self, kind: str, criteria: dict[str, Any], *, limit: int = 200) -> list[dict[str, Any]]:
        """``POST /{kind}/filter`` with every page read (``kind``: flow_runs, deployments, flows, artifacts...)."""
        found: list[dict[str, Any]] = []
        while True:
            page = self._post(f"/{kind}/filter", {**criteria, "limit": limit, "offset": len(found)})
            found.extend(page)
            if len(page) < limit:
                return found

    def flow_runs(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Flow runs by id (those the server knows)."""
        if not ids:
            return {}
        runs = self.filter("flow_runs", {"flow_runs": {"id": {"any_": ids}}})
        return {r["id"]: r for r in runs}

    def deployments(self, *, ids: list[str] | None = None, tag: str | None = None) -> list[dict[str, Any]]:
        """Deployments by id or by tag, each with ``flow_name`` added."""
        criteria: dict[str, Any] = {}
        if ids is not None:
            if not ids:
                return []
            criteria["id"] = {"any_": ids}
        if tag is not None:
            criteria["tags"] = {"all_": [tag]}
        found = self.filter("deployments", {"deployments": criteria} if criteria else {})
        flow_ids = sorted({d["flow_id"] for d in found})
        flows = {f["id"]: f["name"] for f in self.filter("flows", {"flows": {"id": {"any_": flow_ids}}})} if flow_ids else {}
        for d in found:
            d["flow_name"] = flows.get(d["flow_id"], "?")
        return found

"""gx_catalog.json is what scripts/gen_gx_catalog.py makes from the installed Great Expectations."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from mlflowkit.kinds import _gx_catalog

REPO = Path(__file__).resolve().parents[3]


def test_checked_in_catalog_matches_a_fresh_generation() -> None:
    spec = importlib.util.spec_from_file_location("gen_gx_catalog", REPO / "scripts" / "gen_gx_catalog.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    fresh = generator.render(generator.build())
    checked_in = _gx_catalog.CATALOG_FILE.read_text(encoding="utf-8")
    assert fresh == checked_in, "gx_catalog.json is stale: run python scripts/gen_gx_catalog.py"


def test_catalog_knows_the_core_expectations_and_their_arguments() -> None:
    catalog = json.loads(_gx_catalog.CATALOG_FILE.read_text(encoding="utf-8"))
    between = catalog["expectations"]["expect_column_values_to_be_between"]["args"]
    assert between["column"] == {"required": True, "types": ["string"]}
    assert {"min_value", "max_value", "mostly", "strict_min"} <= set(between)
    assert "severity" not in between and "batch_id" not in between  # mlflowkit's own or GX plumbing
    assert catalog["expectations"]["expect_table_columns_to_match_set"]["pandas"] is True
    assert catalog["expectations"]["expect_query_results_to_match_comparison"]["pandas"] is False
    assert len(catalog["expectations"]) > 50

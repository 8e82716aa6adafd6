"""Fixtures of the edge unit tests: two small exported churn models and a signing keypair, made once."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "helpers"))
from edge_helpers import Exported, shared_keys, shared_models


@pytest.fixture(scope="session")
def models() -> tuple[list[Exported], pd.DataFrame]:
    return shared_models()


@pytest.fixture(scope="session")
def keys() -> tuple[Path, Path]:
    return shared_keys()

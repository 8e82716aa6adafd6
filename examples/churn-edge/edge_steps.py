"""The edge example's one custom step: the customer id identifies a row, it does not predict; devices never send it."""

from __future__ import annotations

import pandas as pd


def drop_ids(df: pd.DataFrame) -> pd.DataFrame:
    """The table without ``customer_id``."""
    return df.drop(columns=["customer_id"])

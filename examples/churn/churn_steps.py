"""Custom steps for the churn example: plain functions from DataFrame to DataFrame."""

from __future__ import annotations

import pandas as pd


def add_features(df: pd.DataFrame, cap: float = 150.0) -> pd.DataFrame:
    """Charges per month of tenure, capped; the customer id is dropped (it is not a feature)."""
    out = df.drop(columns=["customer_id"])
    out["charges_per_tenure"] = (df["monthly_charges"] / (df["tenure_months"] + 1)).clip(upper=cap)
    return out

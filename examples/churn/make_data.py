"""Generate the churn example's data set (deterministic; the CSV it writes is checked in).

python make_data.py [ROWS] > data/churn.csv
python make_data.py 6000 --bias 1.5 > data/churn_biased.csv   # churn depends on gender: unfair models
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd


def make(rows: int = 6000, seed: int = 7, bias: float = 0.0) -> pd.DataFrame:
    """A synthetic telecom churn table with a known, learnable signal and a sensitive attribute.

    ``bias`` adds a gender term to the churn logit, so that a model learns to treat groups differently.
    """
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 73, rows)
    contract = rng.choice(["month-to-month", "one-year", "two-year"], rows, p=[0.55, 0.25, 0.20])
    monthly = np.round(rng.normal(70, 25, rows).clip(18, 130), 2)
    support = rng.poisson(1.5, rows)
    age = rng.integers(18, 81, rows)
    gender = rng.choice(["female", "male"], rows)
    paperless = rng.choice(["yes", "no"], rows, p=[0.6, 0.4])
    logit = (
        -1.2
        - 0.045 * tenure
        + 0.022 * (monthly - 70)
        + 0.45 * support
        + np.select([contract == "month-to-month", contract == "one-year"], [1.3, 0.0], -1.1)
        + 0.3 * (paperless == "yes")
        - 0.01 * (age - 45)
        + bias * np.where(gender == "female", 1.0, -1.0)
    )
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "customer_id": [f"C{100000 + i}" for i in range(rows)],
            "age": age,
            "gender": gender,
            "tenure_months": tenure,
            "contract": contract,
            "monthly_charges": monthly,
            "support_calls": support,
            "paperless_billing": paperless,
            "churned": np.where(churned, "yes", "no"),
        }
    )


if __name__ == "__main__":
    args = sys.argv[1:]
    bias = float(args[args.index("--bias") + 1]) if "--bias" in args else 0.0
    rows = int(args[0]) if args and args[0] != "--bias" else 6000
    make(rows, bias=bias).to_csv(sys.stdout, index=False)

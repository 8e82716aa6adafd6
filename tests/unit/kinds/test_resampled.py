"""Evaluate's bootstrap, all resamples at once: each metric equals scikit-learn's on every resample (ties in the
scores, resamples with one class, nothing predicted positive), and the intervals equal those scored one
resample at a time."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from mlflowkit.kinds._resampled import RESAMPLED, binary_resampled
from mlflowkit.kinds.evaluate import EvaluateParams, _Scorer

CLASSES = np.array(["no", "yes"])


def _sklearn(y: Any, pred: Any, proba: Any) -> dict[str, float]:
    binary = {"average": "binary", "pos_label": "yes", "zero_division": 0}
    out = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, **binary),
        "recall": skm.recall_score(y, pred, **binary),
        "f1": skm.f1_score(y, pred, **binary),
        "log_loss": skm.log_loss(y, proba, labels=list(CLASSES)),
    }
    try:
        out["roc_auc"] = skm.roc_auc_score(y == "yes", proba[:, 1])
    except ValueError:  # one class only: evaluate keeps NaN
        out["roc_auc"] = math.nan
    return {k: float(v) for k, v in out.items()}


@pytest.mark.parametrize("seed", range(12))
def test_every_metric_equals_scikit_learn_on_every_resample(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 300))
    y = CLASSES[(rng.random(n) < rng.uniform(0.02, 0.6)).astype(int)]
    p1 = np.round(rng.random(n), int(rng.integers(1, 3)))  # rounded: many tied scores
    if seed % 3 == 0:
        p1[: n // 2] = 0.0  # certain answers: log loss clips them
    if seed % 4 == 0:
        p1 = np.minimum(p1, 0.4)  # nothing predicted positive: precision and F1 are 0, not an error
    proba = np.c_[1 - p1, p1]
    pred = CLASSES[(p1 > 0.5).astype(int)]
    rows = np.stack([rng.integers(0, n, n) for _ in range(40)])
    truth = y == "yes"
    got = binary_resampled(RESAMPLED, rows, truth=truth, predicted=pred == "yes", score=p1, p_true=np.where(truth, p1, 1 - p1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's warnings on one-class resamples
        expected = [_sklearn(y[r], pred[r], proba[r]) for r in rows]
    for name in RESAMPLED:
        want = np.array([e[name] for e in expected])
        if name == "roc_auc":  # exact counts against scikit-learn's trapezoids: equal within rounding
            np.testing.assert_allclose(got[name], want, rtol=0, atol=1e-12)
        else:
            np.testing.assert_array_equal(got[name], want)
    assert seed % 4 or not got["f1"].any()


def _old_bootstrap(scorer: _Scorer, n: int, seed: int, confidence: float) -> dict[str, list[float]]:
    """The intervals as evaluate computed them before: every metric scored one resample at a time."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {m: [] for m in scorer.params.metrics}
    for _ in range(n):
        for name, value in scorer.metrics(rng.integers(0, len(scorer.y), len(scorer.y))).items():
            draws[name].append(value)
    tail = (1 - confidence) / 2 * 100
    return {k: [float(np.nanpercentile(v, tail)), float(np.nanpercentile(v, 100 - tail))] for k, v in draws.items()}


@pytest.mark.parametrize(
    ("positive", "average"), [("yes", "auto"), ("no", "auto"), ("yes", "macro")], ids=["last", "first-class", "macro"]
)
def test_the_intervals_equal_those_scored_one_resample_at_a_time(positive: str, average: str) -> None:
    import pandas as pd

    rng = np.random.default_rng(7)
    x = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    y = pd.Series(np.where(x["a"] + rng.normal(size=400) > 0.8, "yes", "no"))
    model = LogisticRegression().fit(x, y)
    metrics = ["accuracy", "f1", "roc_auc", "log_loss", "balanced_accuracy"]
    params = EvaluateParams.model_validate({"metrics": metrics, "average": average, "bootstrap": {"n": 60, "seed": 3}})
    scorer = _Scorer(model, x, y, params, "classification", positive=positive)
    assert params.bootstrap is not None
    ci = scorer._bootstrap(params.bootstrap)
    old = _old_bootstrap(scorer, 60, 3, params.bootstrap.confidence)
    fast = set(scorer._resampled(np.zeros((1, 400), dtype=int)))  # scored all at once (the rest one by one)
    assert fast == {"accuracy", "roc_auc", "log_loss"} | ({"f1"} if average == "auto" else set())
    assert set(ci) == set(metrics)
    for name in metrics:
        np.testing.assert_allclose(ci[name], old[name], rtol=0, atol=1e-12 if name == "roc_auc" else 0)

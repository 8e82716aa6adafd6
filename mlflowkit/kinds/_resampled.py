"""Binary-classification metrics on many bootstrap resamples at once: numpy over a matrix of row indices.

Evaluate's confidence intervals score every metric on each of hundreds of resamples of the held-out set;
one scikit-learn call per metric and resample spends its time validating inputs. Here each metric is a
few array operations over all resamples, with scikit-learn's definitions: counts for accuracy,
precision, recall and F1 (0 where undefined, as ``zero_division=0``), the mean clipped log loss of the
true class, and ROC AUC as the Mann-Whitney statistic with tied scores counted half (NaN when a
resample holds one class only, where scikit-learn refuses). Tests compare each with scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["RESAMPLED", "binary_resampled"]

RESAMPLED = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
"""The metrics :func:`binary_resampled` computes."""

Array = np.ndarray[Any, Any]


def binary_resampled(
    names: Sequence[str], rows: Array, *, truth: Array, predicted: Array, score: Array | None, p_true: Array | None
) -> dict[str, Array]:
    """Each metric of ``names`` (those in :data:`RESAMPLED`) on every resample: one value per row of ``rows``.

    Args:
        names: the metrics wanted; others are left out of the answer.
        rows: resamples by row index, shape (resamples, rows of each).
        truth: whether each held-out row is of the positive class.
        predicted: whether the model predicts the positive class for it.
        score: the positive class's probability of each row (None: no ``roc_auc``).
        p_true: the probability the model gives each row's true class (None: no ``log_loss``).
    """
    out: dict[str, Array] = {}
    t, p = truth[rows], predicted[rows]
    tp = np.sum(t & p, axis=1)
    true_sum, pred_sum = np.sum(t, axis=1), np.sum(p, axis=1)
    counts = {
        "accuracy": (np.sum(t == p, axis=1), np.full(len(rows), rows.shape[1])),
        "precision": (tp, pred_sum),
        "recall": (tp, true_sum),
        "f1": (2 * tp, true_sum + pred_sum),
    }
    for name, (num, den) in counts.items():
        if name in names:
            out[name] = np.divide(num, den, out=np.zeros(len(rows)), where=den > 0)
    if "log_loss" in names and p_true is not None:
        eps = np.finfo(np.float64).eps
        loss = -np.log(np.clip(np.asarray(p_true, dtype=np.float64), eps, 1 - eps))
        out["log_loss"] = np.asarray([loss[r].mean() for r in rows])
    if "roc_auc" in names and score is not None:
        out["roc_auc"] = _auc(rows, truth, np.asarray(score, dtype=np.float64))
    return out


def _auc(rows: Array, truth: Array, score: Array) -> Array:
    """ROC AUC of each resample: positive-negative pairs ordered right, ties counted half, over all such pairs."""
    resamples, n = rows.shape
    # How often each held-out row is drawn in each resample, its columns in score order.
    drawn = np.bincount((rows + n * np.arange(resamples)[:, None]).ravel(), minlength=resamples * n).reshape(resamples, n)
    order = np.argsort(score, kind="stable")
    drawn, positive, ranked = drawn[:, order], truth[order], score[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # groups of equal scores
    pos = np.add.reduceat(drawn * positive, starts, axis=1)
    neg = np.add.reduceat(drawn * ~positive, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negatives scored lower than each group
    twice_u = np.sum(pos * (2 * below + neg), axis=1)  # integers: exact
    pairs = np.sum(pos, axis=1) * np.sum(neg, axis=1)
    auc: Array = np.divide(twice_u, 2 * pairs, out=np.full(resamples, np.nan), where=pairs > 0)
    return auc

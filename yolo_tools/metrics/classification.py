"""Accuracy, precision, recall, F1, ROC AUC and the confusion matrix of a classifier (scikit-learn).

Precision, recall and F1 are given per class and as their unweighted (macro) mean. ROC AUC uses the
predicted probabilities: for two classes it is the AUC of the second class (in the model's class order)
against the first; for more, the mean of each class's one-vs-rest AUC. A class's AUC is None when the
truth holds only that class or lacks it, since no curve exists then.

Examples:
    >>> summary, per_class, matrix = classify_metrics([0, 1, 1], np.array([[.9, .1], [.4, .6], [.7, .3]]), ["a", "b"])
    >>> summary["accuracy"], matrix.tolist()
    (0.6666666666666666, [[1, 0], [1, 1]])
"""

from __future__ import annotations

from typing import Any

import numpy as np


def classify_metrics(
    truth: np.ndarray, probabilities: np.ndarray, classes: list[str], predicted: np.ndarray | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]], np.ndarray]:
    """Summary numbers, one row per class, and the confusion matrix (rows: truth, columns: prediction).

    Args:
        truth: (N,) true class indices.
        probabilities: (N, C) predicted probabilities; the prediction is the most probable class.
        classes: the C class names, in the model's order.
        predicted: (N,) decided classes (e.g. at an operating point); default: the most probable class.
    """
    from sklearn import metrics as skm  # on first use: scikit-learn costs a second to import, and a recipe's task imports this

    truth = np.asarray(truth, dtype=int).reshape(-1)
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(len(truth), len(classes))
    predicted = probabilities.argmax(1) if predicted is None else np.asarray(predicted, dtype=int).reshape(-1)
    labels = np.arange(len(classes))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0.0
    )
    # One-vs-rest AUC of each class that is both present and absent somewhere in the truth.
    class_auc = [
        float(skm.roc_auc_score(truth == i, probabilities[:, i])) if 0 < (truth == i).sum() < len(truth) else None
        for i in labels
    ]
    if len(classes) == 2:
        auc = class_auc[1]
    else:
        defined = [value for value in class_auc if value is not None]
        auc = float(np.mean(defined)) if defined else None
    summary = {
        "images": int(len(truth)),
        "accuracy": float(skm.accuracy_score(truth, predicted)) if len(truth) else None,
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
        "roc_auc": auc,
    }
    if len(classes) == 2:  # sensitivity and specificity of the second class against the first
        summary["sensitivity"], summary["specificity"] = float(recall[1]), float(recall[0])
    per_class = [
        {
            "class": name,
            "images": int(support[i]),
            "predicted": int((predicted == i).sum()),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "roc_auc": class_auc[i],
        }
        for i, name in enumerate(classes)
    ]
    matrix = skm.confusion_matrix(truth, predicted, labels=labels)
    return summary, per_class, matrix


CALIBRATION_BINS = 10


def curves(truth: np.ndarray, probabilities: np.ndarray) -> dict[str, list[float]] | None:
    """ROC curve (scikit-learn's roc_curve) and reliability diagram (calibration_curve, 10 quantile bins) of the
    second class against the first; None when the truth holds one class only."""
    from sklearn import metrics as skm  # on first use: scikit-learn costs a second to import, and a recipe's task imports this

    from sklearn.calibration import calibration_curve

    positive = np.asarray(truth).reshape(-1) == 1
    if positive.all() or not positive.any():
        return None
    scores = np.asarray(probabilities, np.float64)[:, 1]
    fpr, tpr, _ = skm.roc_curve(positive, scores)
    observed, predicted = calibration_curve(positive, scores, n_bins=CALIBRATION_BINS, strategy="quantile")
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "calibration_predicted": predicted.tolist(), "calibration_observed": observed.tolist()}


def reliability(outcome: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, Any] | None:
    """How far scores (a classifier's probabilities, a detector's confidences) can be read as chances: per bin of
    `bins` quantile bins, the mean score, the share of outcomes that happened (the positive class; a finding
    that is a true one) and how many; and the expected calibration error, the count-weighted mean gap.

    The curve is scikit-learn's `calibration_curve`; it gives no counts, which the error needs, so they are
    counted on the same edges (quantiles of the scores, empty bins dropped as it drops them). None when no
    score is given or the outcomes are all one kind."""
    from sklearn.calibration import calibration_curve

    outcome, scores = np.asarray(outcome, bool).reshape(-1), np.asarray(scores, np.float64).reshape(-1)
    if not len(scores) or outcome.all() or not outcome.any():
        return None
    observed, predicted = calibration_curve(outcome, scores, n_bins=bins, strategy="quantile")
    edges = np.percentile(scores, np.linspace(0, 1, bins + 1) * 100)  # as scikit-learn cuts them
    counts = np.bincount(np.searchsorted(edges[1:-1], scores), minlength=bins)
    counts = counts[counts > 0]
    return {
        "predicted": predicted.tolist(),
        "observed": observed.tolist(),
        "count": counts.tolist(),
        "ece": float(np.sum(counts * np.abs(observed - predicted)) / counts.sum()),
        "scores": int(len(scores)),
    }

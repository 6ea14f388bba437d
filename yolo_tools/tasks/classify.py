"""Classification: one class per image, decided at the operating point; accuracy, F1, ROC AUC, the confusion matrix.

A two-class model decides at a probability threshold chosen on val by a rule (Youden's J, or a target
sensitivity; yolo_tools/operating_point.py), so the test split and outside sets are scored at the point
chosen before them; more classes take the most probable class.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from yolo_tools import fusion, operating_point
from yolo_tools.errors import UserError
from yolo_tools.metrics import classification
from yolo_tools.tasks.protocol import Calibrating, Evaluation, Scores, Scoring, Task, calibrated, intervals_of

if TYPE_CHECKING:  # pandas is imported where tables are made: reading a recipe asks a task for its facts only
    import pandas as pd


def score(state: Scoring, prediction: Any) -> tuple[dict[str, Any], tuple[int, np.ndarray]]:
    """One image's row; kept: the index of its true class and the model's probabilities."""
    if not state.rows:  # the model's class order (Ultralytics sorts class folders), which its probabilities follow
        state.names = [prediction.names[i] for i in sorted(prediction.names)]
    names, probabilities = state.names, prediction.probabilities
    truth, top = names.index(prediction.path.parent.name), int(probabilities.argmax())
    row = {
        "image": f"{prediction.path.parent.name}/{prediction.path.name}",
        "truth": names[truth],
        "predicted": names[top],
        "confidence": float(probabilities[top]),
        "p_truth": float(probabilities[truth]),
        "correct": top == truth,
    }
    return row, (truth, probabilities)


def _point(run_dir: Path, split: str, rule: str | None, truth: np.ndarray, probabilities: np.ndarray, names: list[str]):
    """The classifier's stored threshold; chosen now (and stored) when this is the val split and none is stored or a rule is given."""
    stored = operating_point.load(run_dir)
    if len(names) != 2:
        return None
    if split == "val" and (rule or not (stored and "threshold" in stored)):
        chosen = operating_point.choose_threshold(truth == 1, probabilities[:, 1], rule or operating_point.DEFAULT_RULE)
        operating_point.save(run_dir, {**chosen, "positive": names[1]})
        return operating_point.load(run_dir)
    if stored and "threshold" in stored:
        return stored
    raise UserError(f"{run_dir}: no operating point chosen yet; evaluate the val split first (yolo_tools evaluate {run_dir})")


def _intervals(evaluation: Evaluation, truth: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    boot = evaluation.boot
    correct = (predicted == truth).astype(np.float64)
    out: dict[str, Any] = {"accuracy": boot.mean(correct)}
    if probabilities.shape[1] == 2:
        from sklearn.metrics import roc_auc_score

        positive = truth == 1
        out["roc_auc"] = boot.weighted(
            lambda w: roc_auc_score(positive, probabilities[:, 1], sample_weight=w) if 0 < w[positive].sum() < w.sum() else None
        )
        out["sensitivity"] = boot.ratio(correct * positive, positive.astype(np.float64))
        out["specificity"] = boot.ratio(correct * ~positive, (~positive).astype(np.float64))
    return out


def summarise(state: Scoring, evaluation: Evaluation) -> Scores:
    """Decide each image at the operating point (chosen on val), then the metrics, per-class rows and ROC curve."""
    import pandas as pd

    names, per_image = state.names, evaluation.per_image
    truth, probabilities = np.array([t for t, _ in state.kept]), np.stack([p for _, p in state.kept])
    point = evaluation.operating_point  # one chosen elsewhere (a study's pooled out-of-fold point), else the run's
    if point is None and not evaluation.ensemble:
        point = _point(evaluation.run_dir, evaluation.split, evaluation.rule, truth, probabilities, names)
    predicted = np.array([operating_point.decide(p, point) for p in probabilities])
    per_image["predicted"] = [names[i] for i in predicted]
    per_image["confidence"] = probabilities[np.arange(len(predicted)), predicted]
    per_image["correct"] = predicted == truth
    metrics, rows, matrix = classification.classify_metrics(truth, probabilities, names, predicted)
    metrics["accuracy_argmax"] = float((probabilities.argmax(1) == truth).mean())  # as Ultralytics' top-1
    metrics["confusion_matrix"] = {"classes": names, "rows_truth_columns_predicted": matrix.tolist()}
    intervals = intervals_of(_intervals(evaluation, truth, probabilities, predicted), metrics)
    roc = classification.curves(truth, probabilities) if len(names) == 2 else None
    return Scores(pd.DataFrame(rows), metrics, intervals, point, extra={"roc": roc})


def group_numbers(group: pd.DataFrame) -> dict[str, float]:
    """A group of images' accuracy and mean probability of the true class (per_group.csv)."""
    return {"accuracy": float(group["correct"].astype(bool).mean()), "p_truth": float(group["p_truth"].mean())}


def conventions(conf: str) -> str:
    return (
        "prediction = the positive (second) class when its probability reaches the operating point's "
        "threshold (two classes), else the most probable class; precision, recall and F1 are macro means over classes"
    )


def caption(row: pd.Series, classes: list[str], fmt) -> str:
    return f"{row['image']}: truth {row['truth']}, predicted {row['predicted']} (p(truth) {fmt(row['p_truth'])})"


def calibration(given: Calibrating) -> dict[str, Any]:
    """A two-class classifier's p(positive) of each test image against its truth."""
    if len(given.classes) != 2:
        return {"what": None, "note": f"not computed for a classifier of {len(given.classes)} classes: it is p(positive) of two"}
    positive_name = given.classes[1]
    per_image = given.per_image
    positive = (per_image["truth"].astype(str) == positive_name).to_numpy()
    scores = np.where(positive, per_image["p_truth"], 1 - per_image["p_truth"])
    return calibrated(f"p({positive_name}) of each test image against its truth", classification.reliability(positive, scores))


TASK = Task(
    name="classify",
    summary="one class per image",
    model_suffix="-cls",
    balances_classes=True,
    mirrors=False,
    validator_metrics={"metrics/accuracy_top1": "top1_accuracy", "metrics/accuracy_top5": "top5_accuracy"},
    labels="classes",
    kind="image classification",
    fused_as="class probabilities averaged",
    curve_metric="metrics/accuracy_top1",
    score_name="probability",
    paired={"accuracy": lambda t: (t["correct"].astype(float).to_numpy(), np.ones(len(t)))},
    validates_outside=False,
    calibration=calibration,
    roboflow_format="folder",
    score=score,
    summarise=summarise,
    headline=("accuracy", "roc_auc", "sensitivity", "specificity"),
    per_image_metric={"column": "p_truth", "higher_is_better": True},
    conventions=conventions,
    group_numbers=group_numbers,
    meaning={
        "top1_accuracy": "share of images whose most probable class is right (Ultralytics' validator)",
        "top5_accuracy": "share of images whose right class is among the five most probable",
        "images": "images evaluated",
        "accuracy": "share of images classified right",
        "precision": "of the findings the model reported, the share that are real",
        "recall": "of the real findings, the share the model reported (sensitivity)",
        "f1": "harmonic mean of precision and recall, averaged over classes",
        "roc_auc": "probability that a random positive image is scored above a random negative one (0.5 = chance)",
        "accuracy_argmax": "accuracy when the most probable class is taken, ignoring the operating point (compare with top1_accuracy)",
        "sensitivity": "share of positive images called positive at the operating point (recall of the second class)",
        "specificity": "share of negative images called negative at the operating point",
    },
    count_columns=("predicted",),
    decides_by="threshold",
    caption=caption,
    fuse=fusion.fuse_probabilities,
)

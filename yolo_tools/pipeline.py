"""The workbench's verbs as functions: train a recipe, validate a run, predict, export.

Each goes recipe → converted data → Ultralytics → files in the run folder, so the CLI only parses
arguments and the same steps are callable from Python, tests and benchmarks.
"""

from __future__ import annotations

import glob
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from yolo_tools import engine, evaluation, operating_point, postprocess, tasks
from yolo_tools.conversion import prepare, prepare_dataset
from yolo_tools.convert.checks import check
from yolo_tools.dataset import CARD_MD
from yolo_tools.engine import args as yolo_args
from yolo_tools.errors import UserError
from yolo_tools.imaging.model_input import mapped_inputs, readable_images
from yolo_tools.inference import cascade, predictors, sliced
from yolo_tools.locations import runs_dir
from yolo_tools.outputs import predictions
from yolo_tools.prediction import Prediction
from yolo_tools.recipe import load_recipe
from yolo_tools.training import crossval, input_size, tracking
from yolo_tools.runs import (
    RECIPE_FILE, first_new_folder, new_run_dir, next_free, run_recipe, save_metrics, save_recipe, save_run_dataset, weights_of,
)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`key=value` pairs read exactly as `yolo` reads them (see engine/args.py)."""
    return yolo_args.parse_pairs(items)


def _check_device(args: dict[str, Any], origin: str = "command line") -> None:
    """An unavailable `device=` is refused before any conversion, run folder or output is made."""
    if args.get("device") not in (None, ""):
        args["device"] = engine.pick_device(args["device"], origin, announce=False)


def format_metrics(metrics: dict[str, float]) -> str:
    return "  ".join(f"{key} {value:.3f}" for key, value in metrics.items()) or "(no metrics)"


def _check_pretrained(pretrained: Any, recipe: Any, overrides: dict[str, Any]) -> None:
    """Weights to transfer from must be here: Ultralytics would otherwise try to download them, offline too."""
    if isinstance(pretrained, bool) or pretrained is None:
        return
    origin = "command line: pretrained" if "pretrained" in overrides else f"{recipe.path}: train.pretrained"
    if Path(str(pretrained)).is_file():
        try:
            engine.checkpoint_epochs(Path(str(pretrained)))  # a damaged file fails now, not after the conversion
        except UserError as error:
            raise UserError(f"{origin}: {error}") from None
        return
    raise UserError(
        f"{origin}: {pretrained}: no such weights file. Give a run's weights (runs/<recipe>/<run>/weights/best.pt)\n"
        "  or official weights you have downloaded (yolov8n.pt in the working folder)."
    )


def train_recipe(
    recipe_path: str | Path,
    overrides: dict[str, Any] | None = None,
    name: str | None = None,
    data_root: str | Path | None = None,
    track: str | None = None,
) -> tuple[Path, dict[str, float]]:
    """Convert the recipe's data if needed, train, and store the recipe and the final metrics in the run.

    Every argument is checked (names, then Ultralytics' own types, then the device) before any conversion or
    training. A training that stops before its first epoch is saved leaves nothing: the run folder (and any
    parent this call created) is removed, so no run exists that holds only recipe.yaml. `track` ('mlflow' or
    'tensorboard', else the recipe's `track`) logs this run there (yolo_tools/training/tracking.py).
    """
    recipe = check(load_recipe(recipe_path))
    overrides = yolo_args.check_command_line(dict(overrides or {}), passed={"model"})
    train_args = yolo_args.check_types(recipe.train, f"{recipe.path}: train.")
    origin = "command line: model" if "model" in overrides else f"{recipe.path}: model"
    model = overrides.pop("model", recipe.model)
    engine.check_model(model, origin)
    args = {**train_args, **overrides}
    _check_device(args, "command line" if "device" in overrides else f"{recipe.path}: train")
    if args.get("device"):
        origin = "command line" if "batch" in overrides else f"{recipe.path}: train"
        engine.check_multi_gpu_batch(args["device"], args.get("batch"), origin)
    _check_pretrained(args.get("pretrained"), recipe, overrides)
    track = track or recipe.track
    tracking.check_available(track)
    run_dir = new_run_dir(recipe, name)
    converted = prepare_dataset(recipe, data_root)
    data, version = converted.data_arg, converted.fingerprint  # what the run records it trains on
    model = engine.training_start(model, recipe.model_fallback)  # official weights, or their YAML when offline
    if args.get("imgsz") == input_size.AUTO:
        args = input_size.resolve(args, converted, engine.strides(model))
    created = first_new_folder(run_dir)
    try:
        save_recipe(recipe.model_copy(update={"model": model, "track": track}), run_dir, args)
        save_run_dataset(run_dir, version)  # the version it trains on, so it is never rewritten under it
        print(f"run: {run_dir}")
        with tracking.tracked(track, recipe.name, run_dir):
            metrics = tasks.get(recipe.task).short_metrics(engine.train(model, data, run_dir, args, track, recipe.class_balance))
    except BaseException as stop:
        saved = (run_dir / "weights" / "last.pt").is_file()
        if created is not None and not saved:
            shutil.rmtree(created, ignore_errors=True)  # nothing to resume: no epoch was saved
        if isinstance(stop, KeyboardInterrupt):  # what the user can do next, as it is (cli prints it)
            raise KeyboardInterrupt(
                f"resume with: yolo_tools train --resume {run_dir}" if saved else
                f"no epoch was saved, so there is nothing to resume (the run folder {run_dir} was removed); "
                f"train again with: yolo_tools train {recipe_path}"
            ) from None
        raise
    save_metrics(run_dir, metrics)
    print(f"validation ({recipe.name}, best weights): {format_metrics(metrics)}")
    return run_dir, metrics


def resume_run(run_dir: str | Path) -> dict[str, float]:
    """Continue an interrupted run; a finished one is refused with the command that trains it longer."""
    run_dir = Path(run_dir).expanduser().resolve()
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder (runs/<recipe>/<name>)")
    recipe = run_recipe(run_dir)
    if recipe is None:
        raise UserError(
            f"{run_dir}: no {RECIPE_FILE}, so not a run yolo_tools train made (or it was damaged); "
            "resume only works on such a run: train again with yolo_tools train RECIPE"
        )
    last = run_dir / "weights" / "last.pt"
    if not last.is_file():
        raise UserError(
            f"{run_dir}: no weights/last.pt to resume from (the run stopped before its first epoch, or it was "
            f"removed); train again with: yolo_tools train {run_dir / RECIPE_FILE}"
        )
    trained, epochs = engine.checkpoint_epochs(last)
    if trained < 0:
        raise UserError(
            f"{run_dir}: this training is finished ({epochs} epochs asked for); there is nothing to resume.\n"
            f"  To train it longer, start a new run from its weights:\n"
            f"  yolo_tools train {run_dir / RECIPE_FILE} model={last} epochs=N"
        )
    if recipe.track == "mlflow":
        tracking.check_link(run_dir)
    data = prepare(recipe, run_dir=run_dir)  # the run's dataset version, converted again if removed since
    _check_resume_data(run_dir, data)
    try:
        with tracking.tracked(recipe.track, recipe.name, run_dir):
            metrics = tasks.get(recipe.task).short_metrics(engine.resume(run_dir, recipe.track, recipe.class_balance))
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"resume again with: yolo_tools train --resume {run_dir}") from None
    save_metrics(run_dir, metrics)
    print(f"validation (best weights): {format_metrics(metrics)}")
    return metrics


def _check_resume_data(run_dir: Path, data: Path) -> None:
    """Ultralytics resumes on the `data=` its checkpoint was started with; refuse when its version lives elsewhere now."""
    started = (yaml.safe_load((run_dir / "args.yaml").read_text()) or {}).get("data") if (run_dir / "args.yaml").is_file() else None
    if started and Path(started).resolve() != data.resolve():
        raise UserError(
            f"{run_dir}: this run started on {started}, which now holds another version of the dataset; its own "
            f"version is at {data}, and Ultralytics resumes only on the data it started with. Start a new run "
            f"from its weights instead: yolo_tools train {run_dir / RECIPE_FILE} model={run_dir / 'weights' / 'last.pt'}"
        )


def validate(run_or_weights: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, float]:
    """Validate a run's best weights on its own val split (converted again if removed), or any weights on `data=`."""
    weights, run_dir = weights_of(run_or_weights)
    args = yolo_args.check_command_line(dict(overrides or {}), passed={"data"})
    _check_device(args)
    data = None
    if "data" not in args:
        recipe = run_recipe(run_dir) if run_dir else None
        if recipe is None:
            raise UserError(f"{weights}: not inside a yolo-tools run; say which dataset with data=PATH")
        data = prepare(recipe, run_dir=run_dir)
    args.setdefault("project", str(run_dir or runs_dir() / "val"))
    args.setdefault("name", "val")
    args.setdefault("exist_ok", run_dir is not None)
    task, results, save_dir = engine.validate(weights, data, args)
    metrics = tasks.get(task).short_metrics(results)
    if run_dir:
        save_metrics(run_dir, metrics)
    print(f"validation ({weights}): {format_metrics(metrics)}")
    print(f"plots: {save_dir}")
    return metrics


def predict(
    weights: str | Path | list[str | Path],
    source: str,
    out: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> tuple[Path, Path, int]:
    """Predict on images or folders; annotated images, predictions.csv and predictions.json go to `out`.

    Several runs or weights predict as one ensemble (yolo_tools/inference/ensemble.py); a run of a cascade recipe
    finds the regions, crops and classifies them (yolo_tools/inference/cascade.py). Files that cannot be read are
    skipped with a warning naming each (imaging/model_input.readable_images); if no image could be read,
    nothing is written and the command fails. A folder whose images are all in sub-folders (a class-folder
    test split, `test/<class>/*.jpeg`) is read one level down, as Ultralytics reads a classification
    folder; its rows and annotated images keep the sub-folder (`<class>/<image>`). Ultralytics' `save=False`
    leaves out the annotated images (the CSV and JSON are always written). `out` is a new or empty folder,
    or one this command wrote before (`predictions.MARKER` in it).
    """
    args = yolo_args.check_command_line(dict(overrides or {}), workbench=sliced.ARGS)
    save = _predict_outputs(args)
    slicing = sliced.options(args)  # slice=SIZE: detection on overlapping slices (yolo_tools/inference/sliced.py)
    members = _expand_cv([weights] if isinstance(weights, (str, Path)) else list(weights))
    weights, run_dir = weights_of(members[0])
    _check_device(args)
    shared = run_recipe(run_dir) if run_dir else None  # an ensemble's mirroring and post-processing: its first run's recipe
    predictor = predictors.choose(weights, members, shared, slicing, "predict")
    files = readable_images(source)
    root = Path(source) if Path(source).is_dir() and any(f.parent != Path(source) for f in files) else None
    if slicing:
        sliced.check_fits(slicing[0], files)
    out_dir = Path(out) if out else next_free((run_dir or runs_dir()) / ("ensemble" if len(members) > 1 else "predict"))
    _check_out(out_dir, files)
    created = first_new_folder(out_dir)
    recipe = shared if predictor.kind != "ensemble" else None
    try:
        predictions.mark(out_dir, str(source))
        if predictor.kind == "cascade":
            csv_path, json_path, count = cascade.predict(recipe, weights, files, out_dir, args, save)
        elif predictor.kind == "ensemble":
            results = predictor.predict(files, {**args, **predictors.mirroring(shared)})
            csv_path, json_path, count = predictions.write(_images_postprocessed(results, shared, members), out_dir, save, root=root)
        else:
            task = recipe.task if recipe else engine.task_and_names(weights)[0]
            args = predictors.prediction_args(task, recipe, run_dir, args, slicing)  # as evaluate predicts: the run's point, max_det, flips
            if predictor.kind == "sliced":
                results = predictor.predict(files, args)
            else:
                mapped = mapped_inputs(files, recipe.preprocess if recipe else None)
                results = _images_postprocessed(predictor.predict(files, args, draw=save, mapped=mapped), recipe, members)
            csv_path, json_path, count = predictions.write(results, out_dir, save, point=operating_point.load(run_dir), root=root)
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    if not count:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise UserError(f"{source}: none of its {len(files)} image(s) could be read (see the warnings above); nothing was written")
    print(f"{count} images → {out_dir} ({csv_path.name}, {json_path.name}{', annotated images' if save else ''})")
    return csv_path, json_path, count


# Ultralytics' switches that make its predictor write files itself, into its own runs folder (`project`/`name`,
# which the workbench sets for no prediction): the workbench writes its own outputs into --out instead.
ULTRALYTICS_WRITERS = ("save_txt", "save_crop")


def _predict_outputs(args: dict[str, Any]) -> bool:
    """Whether annotated images are written: Ultralytics' own `save` (on by default, as in `yolo predict`),
    taken out of the arguments so its predictor never writes its own copies. Its other writers are refused."""
    asked = [key for key in ULTRALYTICS_WRITERS if args.get(key)]
    if asked:
        raise UserError(
            f"command line: {', '.join(f'{key}=True' for key in asked)}: Ultralytics would write these files into its own "
            "runs folder, outside --out. predict writes predictions.csv and predictions.json (boxes, classes, confidences, "
            "outlines) into --out; for files other tools read use --format coco or rle-csv"
        )
    return bool(args.pop("save", True))


def _images_postprocessed(results: Iterator[Prediction], recipe: Any, members: list[Any]) -> Iterator[Prediction]:
    """Predictions of single images with the run's post-processing where it was decided on images (2D); one decided
    on whole volumes applies to volumes (`predict --format nifti`), said once, not to single slices."""
    decision = predictors.postprocessing(recipe, members)
    if not decision or not decision["largest_component"]:
        return results
    if decision["dimensions"] == 3:
        print(f"post-processing ({', '.join(decision['largest_component'])}: largest 3D component) was decided on whole "
              "volumes and is not applied to single images; predict volumes with --format nifti for it")
        return results
    names = list(recipe.classes)
    return postprocess.in_volumes(results, {}, {}, postprocess.class_ids(decision, names))


def predict_format(
    weights: str | Path, source: str, fmt: str, out: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> list[Path]:
    """Predict with one run and write `fmt` (nifti, dicom-seg, coco, rle-csv; see prediction_formats.py) to `out`.

    Files appear in `out` only once all are written (they are made in a hidden folder next to it first).
    """
    import os
    import shutil

    from yolo_tools.outputs import prediction_formats

    prediction_formats.check_format(fmt)
    weights, run_dir = weights_of(weights)
    args = yolo_args.check_command_line(dict(overrides or {}))
    _predict_outputs(args)  # `save` is predict's annotated images; the format's files are this command's output
    _check_device(args)
    if not Path(source).exists() and not glob.glob(source):
        raise UserError(f"{source}: no such image, volume, folder or glob")
    recipe = run_recipe(run_dir) if run_dir else None
    if cascade.is_cascade(recipe):
        raise UserError(f"{run_dir}: a cascade run writes predictions.csv/json only; predict without --format")
    task = recipe.task if recipe else engine.task_and_names(weights)[0]
    prediction_formats.check_task(fmt, task, weights)
    args = predictors.prediction_args(task, recipe, run_dir, args)  # the predictions evaluate scores: the run's point, full-size masks
    out_dir = Path(out) if out else next_free((run_dir or runs_dir()) / f"predict-{fmt}")
    if out_dir.exists() and not (out_dir.is_dir() and not any(out_dir.iterdir())):
        raise UserError(f"--out {out_dir}: already holds files (or is a file); give a new or empty folder for the {fmt} files")
    partial = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    try:
        files, count = prediction_formats.predict_to(fmt, weights, recipe, source, partial, args)
        out_dir.mkdir(parents=True, exist_ok=True)
        moved = []
        for path in sorted(partial.iterdir()):
            moved.append(Path(shutil.move(str(path), out_dir / path.name)))
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    print(f"{count} images or slices → {out_dir} ({', '.join(p.name for p in moved[:4])}{' ...' if len(moved) > 4 else ''})")
    return [out_dir / path.name for path in files]


def _check_out(out_dir: Path, files: list[Path]) -> None:
    """Annotated images are named after their inputs (`<stem>.jpg`): never write them among the inputs, or into a
    folder of the user's own files. A folder an earlier predict wrote (it holds `predictions.MARKER`, which a
    file that merely shares a name such as predictions.csv does not make) may be written again."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: a file, not a folder; give a folder for the predictions")
    blocking = next((p for p in out_dir.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UserError(f"--out {out_dir}: {blocking} is a file, not a folder; give a folder for the predictions")
    if any(f.resolve().parent.is_relative_to(out_dir.resolve()) for f in files):
        raise UserError(
            f"--out {out_dir}: the folder of the images being predicted; their annotated copies would overwrite "
            "them. Give another folder (or leave --out out: <run>/predict)"
        )
    if out_dir.is_dir() and any(out_dir.iterdir()) and not predictions.is_marked(out_dir):
        raise UserError(
            f"--out {out_dir}: a folder that holds other files, not one yolo_tools predict wrote (no "
            f"{predictions.MARKER} in it); annotated images and predictions.csv could overwrite them. Give a new or "
            "empty folder"
        )


def evaluate(
    run: str | Path | list[str | Path],
    overrides: dict[str, Any] | None = None,
    split: str = "val",
    data: str | Path | None = None,
    data_format: str | None = None,
    rule: str | None = None,
    data_options: dict[str, Any] | None = None,
    corrected: bool = False,
) -> Path:
    """A run's best weights on its val split, scored per image, class and patient; files in `<run>/eval/`.

    `split="test"` scores the recipe's held-out test split (`<run>/eval-test/`); `data` an outside folder,
    converted with the run's recipe or the reader `data_format` with `data_options`
    (`<run>/eval-outside-<folder>/`); `rule` re-chooses a classifier's operating
    point on val (youden, sensitivity=0.95). Several runs are evaluated as one ensemble; files in
    `<first run>/eval-ensemble[-test]/`.
    """
    overrides = yolo_args.check_command_line(dict(overrides or {}), workbench=sliced.ARGS)
    sliced.options(dict(overrides))  # a bad slice= is refused before any work
    _check_device(overrides)
    if rule is not None:
        operating_point.check_rule(rule)
    runs = [run] if isinstance(run, (str, Path)) else list(run)
    if split == "val" and data is None and any(crossval.members(member) for member in runs):
        raise UserError(
            f"{run}: the fold models together have trained on every val image; score the cv ensemble on "
            "held-out data: --split test (a recipe with data.split.test) or --data SRC"
        )
    runs = _expand_cv(runs)
    run_dir = weights_of(runs[0])[1]
    if run_dir is not None:
        tracking.check_link(run_dir)  # where the results are logged, checked before the evaluation runs
    out = evaluation.evaluate(
        runs[0], overrides, also=runs[1:], split=split, data=data, data_format=data_format, rule=rule,
        data_options=data_options, corrected=corrected,
    )
    tracking.log_evaluation(out)
    return out



def _expand_cv(runs: list[str | Path]) -> list[str | Path]:
    """A cross-validation folder stands for its fold runs, used together as one ensemble."""
    expanded: list[str | Path] = []
    for run in runs:
        expanded.extend(crossval.members(run) or [run])
    return expanded


def cross_validate(recipe_path: str | Path, overrides: dict[str, Any] | None = None, name: str | None = None, data_root: str | Path | None = None) -> Path:
    """Patient-wise k-fold cross-validation of a recipe (yolo_tools/training/crossval.py); returns `runs/<recipe>/<name>/cv/`."""
    return crossval.cross_validate(recipe_path, overrides, name, data_root)


def study(
    recipe_path: str | Path,
    overrides: dict[str, Any] | None = None,
    name: str | None = None,
    data_root: str | Path | None = None,
    retrain: bool = False,
    rule: str | None = None,
) -> Path:
    """A recipe's whole study (yolo_tools/training/study.py): test split apart, cv, the operating point on the pooled out-of-fold
    predictions, the fold ensemble on test, the pages; returns `runs/<recipe>/<name>/` (default: study)."""
    from yolo_tools.training import study as studies

    given = yolo_args.check_command_line(dict(overrides or {}), workbench=studies.STUDY_KEYS, passed={"model"})
    _check_device(given)
    return studies.run_study(recipe_path, given, name, data_root, retrain, rule)


def report(run: str | Path, overrides: dict[str, Any] | None = None, eval_name: str = evaluation.EVAL_DIR) -> tuple[Path, Path]:
    """An HTML page and a Markdown file about a run, from its eval files (evaluated first when missing).

    `eval_name` picks another evaluation (`eval-test`, `eval-outside-<set>`), which must exist.
    """
    from yolo_tools.report import write_report  # matplotlib and Jinja2, only when a report is asked for

    weights, run_dir = weights_of(run)
    if run_dir is None or run_recipe(run_dir) is None:
        raise UserError(f"{run}: report needs a run folder made by yolo_tools train (it reads recipe.yaml)")
    summary = run_dir / eval_name / evaluation.SUMMARY_FILE
    if eval_name == evaluation.EVAL_DIR and (overrides or not summary.is_file() or summary.stat().st_mtime < weights.stat().st_mtime):
        evaluate(run_dir, overrides)  # missing, asked for with other arguments, or older than the weights
    elif eval_name == "eval-test" and not summary.is_file():
        evaluate(run_dir, overrides, split="test")
    html, markdown = write_report(run_dir, eval_name)
    print(f"report: {html}\n        {markdown}")
    return html, markdown


def export(weights: str | Path, overrides: dict[str, Any] | None = None) -> Path:
    weights, _ = weights_of(weights)
    path = engine.export(weights, yolo_args.check_command_line(dict(overrides or {}), passed={"data"}))
    print(f"exported: {path}")
    return path


def convert(recipe_path: str | Path, data_root: str | Path | None = None, force: bool = False) -> Path:
    recipe = check(load_recipe(recipe_path))
    data = prepare(recipe, data_root, force=force)
    print(f"dataset: {data}")
    return data


def convert_format(fmt: str, src: str | Path, dst: str | Path, **options: Any) -> Path:
    """Convert a folder in a published format (coco, masks, box-csv, class-folders, nifti, dicom) into a YOLO
    dataset at `dst`; `options` are convert_folder's (task, split_by, val, seed, and the reader's `options`)."""
    from yolo_tools.conversion import convert_folder

    card = convert_folder(fmt, src, dst, **options)
    print(f"dataset: {dst} ({len(card['skipped'])} skipped; counts in {Path(dst) / CARD_MD})")
    return Path(dst)

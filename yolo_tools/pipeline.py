"""The workbench's verbs as functions: train a recipe, validate a run, predict, export.

Each goes recipe → converted data → Ultralytics → files in the run folder, so the CLI only parses
arguments and the same steps are callable from Python, tests and benchmarks.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import yaml

from yolo_tools import cascade, ensemble, evaluation, predictions, tracking, yolo
from yolo_tools.convert import prepare, train_data
from yolo_tools.errors import UserError
from yolo_tools.imaging.model_input import mapped_inputs
from yolo_tools.locations import runs_dir
from yolo_tools.recipe import check_train_args, load_recipe
from yolo_tools.runs import new_run_dir, run_recipe, save_metrics, save_recipe, weights_of


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`key=value` pairs as `yolo` takes them; values are read as YAML so numbers and booleans keep their type."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"'{item}': arguments after the recipe are key=value, e.g. epochs=3 imgsz=320")
        try:
            parsed[key] = yaml.safe_load(value) if value else None
        except yaml.YAMLError:
            parsed[key] = value
    return parsed


def _check_cli_args(args: dict[str, Any], allowed_extra: set[str] = frozenset()) -> None:
    try:
        check_train_args({k: v for k, v in args.items() if k not in allowed_extra}, origin="the command line")
    except ValueError as exc:
        raise UserError(f"command line: {exc}") from None


def _check_device(args: dict[str, Any], origin: str = "command line") -> None:
    """An unavailable `device=` is refused before any conversion, run folder or output is made."""
    if args.get("device") not in (None, ""):
        args["device"] = yolo.pick_device(args["device"], origin, announce=False)


def format_metrics(metrics: dict[str, float]) -> str:
    return "  ".join(f"{key} {value:.3f}" for key, value in metrics.items()) or "(no metrics)"


def _next_free(folder: Path) -> Path:
    candidate, number = folder, 1
    while candidate.exists():
        number += 1
        candidate = folder.with_name(f"{folder.name}{number}")
    return candidate


def _check_pretrained(pretrained: Any, recipe: Any, overrides: dict[str, Any]) -> None:
    """Weights to transfer from must be here: Ultralytics would otherwise try to download them, offline too."""
    if isinstance(pretrained, bool) or pretrained is None or Path(str(pretrained)).is_file():
        return
    origin = "command line: pretrained" if "pretrained" in overrides else f"{recipe.path}: train.pretrained"
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

    `track` ('mlflow' or 'tensorboard', else the recipe's `track`) logs this run there (yolo_tools/tracking.py).
    """
    recipe = load_recipe(recipe_path)
    overrides = dict(overrides or {})
    _check_cli_args(overrides, allowed_extra={"model"})
    model = overrides.pop("model", recipe.model)
    args = {**recipe.train, **overrides}
    _check_device(args, "command line" if "device" in overrides else f"{recipe.path}: train")
    if args.get("device"):
        origin = "command line" if "batch" in overrides else f"{recipe.path}: train"
        yolo.check_multi_gpu_batch(args["device"], args.get("batch"), origin)
    _check_pretrained(args.get("pretrained"), recipe, overrides)
    track = track or recipe.track
    tracking.check_available(track)
    data = prepare(recipe, data_root)
    run_dir = new_run_dir(recipe, name)
    save_recipe(recipe.model_copy(update={"model": model, "track": track}), run_dir, args)
    print(f"run: {run_dir}")
    with tracking.tracked(track, recipe.name, run_dir):
        metrics = yolo.train(model, data, run_dir, args, track)
    save_metrics(run_dir, metrics)
    print(f"validation ({recipe.name}, best weights): {format_metrics(metrics)}")
    return run_dir, metrics


def resume_run(run_dir: str | Path) -> dict[str, float]:
    run_dir = Path(run_dir)
    recipe = run_recipe(run_dir) if run_dir.is_dir() else None
    track = recipe.track if recipe else None
    with tracking.tracked(track, recipe.name if recipe else run_dir.parent.name, run_dir):
        metrics = yolo.resume(run_dir, track)
    save_metrics(run_dir, metrics)
    print(f"validation (best weights): {format_metrics(metrics)}")
    return metrics


def validate(run_or_weights: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, float]:
    """Validate a run's best weights on its own converted val split, or any weights on `data=`."""
    weights, run_dir = weights_of(run_or_weights)
    args = dict(overrides or {})
    _check_cli_args(args, allowed_extra={"data"})
    _check_device(args)
    data = None
    if "data" not in args:
        recipe = run_recipe(run_dir) if run_dir else None
        if recipe is None:
            raise UserError(f"{weights}: not inside a yolo-tools run; say which dataset with data=PATH")
        data = train_data(recipe)
    args.setdefault("project", str(run_dir or runs_dir() / "val"))
    args.setdefault("name", "val")
    args.setdefault("exist_ok", run_dir is not None)
    task, metrics, save_dir = yolo.validate(weights, data, args)
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

    Several runs or weights predict as one ensemble (yolo_tools/ensemble.py); a run of a cascade recipe
    finds the regions, crops and classifies them (yolo_tools/cascade.py).
    """
    members = [weights] if isinstance(weights, (str, Path)) else list(weights)
    weights, run_dir = weights_of(members[0])
    overrides = dict(overrides or {})
    _check_cli_args(overrides)
    _check_device(overrides)
    if not Path(source).exists() and not glob.glob(source):
        raise UserError(f"{source}: no such image, folder or glob")
    out_dir = Path(out) if out else _next_free((run_dir or runs_dir()) / ("ensemble" if len(members) > 1 else "predict"))
    recipe = run_recipe(run_dir) if run_dir and len(members) == 1 else None
    if cascade.is_cascade(recipe):
        csv_path, json_path, count = cascade.predict(recipe, weights, source, out_dir, overrides or {})
    elif len(members) > 1:
        results = ensemble.predict(members, source, overrides or {})
        csv_path, json_path, count = predictions.write(results, out_dir)
    else:
        mapped = mapped_inputs(source, recipe.preprocess if recipe else None)
        results = yolo.predict_arrays(weights, mapped, overrides or {}) if mapped else yolo.predict(weights, source, overrides or {})
        csv_path, json_path, count = predictions.write(results, out_dir)
    print(f"{count} images → {out_dir} ({csv_path.name}, {json_path.name}, annotated images)")
    return csv_path, json_path, count


def evaluate(run: str | Path | list[str | Path], overrides: dict[str, Any] | None = None) -> Path:
    """A run's best weights on its val split, scored per image, class and patient; files in `<run>/eval/`.

    Several runs are evaluated as one ensemble on the first run's val split; files in `<first run>/eval-ensemble/`.
    """
    overrides = dict(overrides or {})
    _check_cli_args(overrides)
    _check_device(overrides)
    runs = [run] if isinstance(run, (str, Path)) else list(run)
    out = evaluation.evaluate(runs[0], overrides, also=runs[1:])
    tracking.log_evaluation(out)
    return out


def report(run: str | Path, overrides: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """An HTML page and a Markdown file about a run, from its eval files (evaluated first when missing)."""
    from yolo_tools.report import write_report  # matplotlib and Jinja2, only when a report is asked for

    weights, run_dir = weights_of(run)
    if run_dir is None:
        raise UserError(f"{run}: report needs a run folder made by yolo_tools train")
    summary = run_dir / evaluation.EVAL_DIR / evaluation.SUMMARY_FILE
    if overrides or not summary.is_file() or summary.stat().st_mtime < weights.stat().st_mtime:
        evaluate(run_dir, overrides)  # missing, asked for with other arguments, or older than the weights
    html, markdown = write_report(run_dir)
    print(f"report: {html}\n        {markdown}")
    return html, markdown


def export(weights: str | Path, overrides: dict[str, Any] | None = None) -> Path:
    weights, _ = weights_of(weights)
    path = yolo.export(weights, overrides or {})
    print(f"exported: {path}")
    return path


def convert(recipe_path: str | Path, data_root: str | Path | None = None, force: bool = False) -> Path:
    recipe = load_recipe(recipe_path)
    data = prepare(recipe, data_root, force=force)
    print(f"dataset: {data}")
    return data


def convert_format(fmt: str, src: str | Path, dst: str | Path, **options: Any) -> Path:
    """Convert a folder in a published format (coco, masks, box-csv, class-folders) into a YOLO dataset at `dst`."""
    from yolo_tools.convert import convert_folder

    card = convert_folder(fmt, src, dst, **options)
    print(f"dataset: {dst} ({len(card['skipped'])} skipped; counts in {Path(dst) / 'card.md'})")
    return Path(dst)

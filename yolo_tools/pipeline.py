"""The workbench's verbs as functions: train a recipe, validate a run, predict, export.

Each goes recipe → converted data → Ultralytics → files in the run folder, so the CLI only parses
arguments and the same steps are callable from Python, tests and benchmarks.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from yolo_tools import cascade, ensemble, evaluation, predictions, yolo, yolo_args
from yolo_tools.convert import prepare
from yolo_tools.errors import UserError
from yolo_tools.imaging.model_input import mapped_inputs, readable_images
from yolo_tools.locations import runs_dir
from yolo_tools.recipe import check_train_args, load_recipe
from yolo_tools.runs import RECIPE_FILE, first_new_folder, new_run_dir, run_recipe, save_metrics, save_recipe, weights_of


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`key=value` pairs read exactly as `yolo` reads them (see yolo_args)."""
    return yolo_args.parse_pairs(items)


def _check_cli_args(args: dict[str, Any], allowed_extra: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Names, then Ultralytics' own type checks; returns the values as Ultralytics canonicalises them."""
    try:
        check_train_args({k: v for k, v in args.items() if k not in allowed_extra}, origin="the command line")
    except ValueError as exc:
        raise UserError(f"command line: {exc}") from None
    typed = yolo_args.check_types({k: v for k, v in args.items() if k not in allowed_extra}, "command line: ")
    return {**args, **typed}


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
    if isinstance(pretrained, bool) or pretrained is None:
        return
    origin = "command line: pretrained" if "pretrained" in overrides else f"{recipe.path}: train.pretrained"
    if Path(str(pretrained)).is_file():
        try:
            yolo.checkpoint_epochs(Path(str(pretrained)))  # a damaged file fails now, not after the conversion
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
) -> tuple[Path, dict[str, float]]:
    """Convert the recipe's data if needed, train, and store the recipe and the final metrics in the run.

    Every argument is checked (names, then Ultralytics' own types) before any conversion or training. A
    training that stops before its first epoch is saved leaves nothing: the run folder (and any parent this
    call created) is removed, so no run exists that holds only recipe.yaml.
    """
    recipe = load_recipe(recipe_path)
    overrides = _check_cli_args(dict(overrides or {}), allowed_extra=frozenset({"model"}))
    train_args = yolo_args.check_types(recipe.train, f"{recipe.path}: train.")
    model = overrides.pop("model", recipe.model)
    args = {**train_args, **overrides}
    _check_pretrained(args.get("pretrained"), recipe, overrides)
    run_dir = new_run_dir(recipe, name)
    data = prepare(recipe, data_root)
    created = first_new_folder(run_dir)
    try:
        save_recipe(recipe.model_copy(update={"model": model}), run_dir, args)
        print(f"run: {run_dir}")
        metrics = yolo.train(model, data, run_dir, args)
    except BaseException:
        if created is not None and not (run_dir / "weights" / "last.pt").is_file():
            shutil.rmtree(created, ignore_errors=True)  # nothing to resume: no epoch was saved
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
    trained, epochs = yolo.checkpoint_epochs(last)
    if trained < 0:
        raise UserError(
            f"{run_dir}: this training is finished ({epochs} epochs asked for); there is nothing to resume.\n"
            f"  To train it longer, start a new run from its weights:\n"
            f"  yolo_tools train {run_dir / RECIPE_FILE} model={last} epochs=N"
        )
    prepare(recipe)  # the converted dataset may have been removed since; rebuilt as it was
    metrics = yolo.resume(run_dir)
    save_metrics(run_dir, metrics)
    print(f"validation (best weights): {format_metrics(metrics)}")
    return metrics


def validate(run_or_weights: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, float]:
    """Validate a run's best weights on its own val split (converted again if removed), or any weights on `data=`."""
    weights, run_dir = weights_of(run_or_weights)
    args = _check_cli_args(dict(overrides or {}), allowed_extra=frozenset({"data"}))
    data = None
    if "data" not in args:
        recipe = run_recipe(run_dir) if run_dir else None
        if recipe is None:
            raise UserError(f"{weights}: not inside a yolo-tools run; say which dataset with data=PATH")
        data = prepare(recipe)
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
    finds the regions, crops and classifies them (yolo_tools/cascade.py). Files that cannot be read are
    skipped with a warning naming each (imaging/model_input.readable_images); if no image could be read,
    nothing is written and the command fails.
    """
    members = [weights] if isinstance(weights, (str, Path)) else list(weights)
    weights, run_dir = weights_of(members[0])
    args = _check_cli_args(dict(overrides or {}))
    files = readable_images(source)
    out_dir = Path(out) if out else _next_free((run_dir or runs_dir()) / ("ensemble" if len(members) > 1 else "predict"))
    _check_out(out_dir, files)
    created = first_new_folder(out_dir)
    recipe = run_recipe(run_dir) if run_dir and len(members) == 1 else None
    try:
        if cascade.is_cascade(recipe):
            csv_path, json_path, count = cascade.predict(recipe, weights, files, out_dir, args)
        elif len(members) > 1:
            results = ensemble.predict(members, files, args)
            csv_path, json_path, count = predictions.write(results, out_dir)
        else:
            mapped = mapped_inputs(files, recipe.preprocess if recipe else None)
            results = yolo.predict_arrays(weights, mapped, args) if mapped else yolo.predict(weights, files, args)
            csv_path, json_path, count = predictions.write(results, out_dir)
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    if not count:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise UserError(f"{source}: none of its {len(files)} image(s) could be read (see the warnings above); nothing was written")
    print(f"{count} images → {out_dir} ({csv_path.name}, {json_path.name}, annotated images)")
    return csv_path, json_path, count


def _check_out(out_dir: Path, files: list[Path]) -> None:
    """Annotated images are named after their inputs (`<stem>.jpg`): never write them among the inputs."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: a file, not a folder; give a folder for the predictions")
    if out_dir.resolve() in {f.resolve().parent for f in files}:
        raise UserError(
            f"--out {out_dir}: the folder of the images being predicted; their annotated copies would overwrite "
            "them. Give another folder (or leave --out out: <run>/predict)"
        )


def evaluate(run: str | Path | list[str | Path], overrides: dict[str, Any] | None = None) -> Path:
    """A run's best weights on its val split, scored per image, class and patient; files in `<run>/eval/`.

    Several runs are evaluated as one ensemble on the first run's val split; files in `<first run>/eval-ensemble/`.
    """
    overrides = _check_cli_args(dict(overrides or {}))
    runs = [run] if isinstance(run, (str, Path)) else list(run)
    return evaluation.evaluate(runs[0], overrides, also=runs[1:])


def report(run: str | Path, overrides: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """An HTML page and a Markdown file about a run, from its eval files (evaluated first when missing)."""
    from yolo_tools.report import write_report  # matplotlib and Jinja2, only when a report is asked for

    weights, run_dir = weights_of(run)
    if run_dir is None or run_recipe(run_dir) is None:
        raise UserError(f"{run}: report needs a run folder made by yolo_tools train (it reads recipe.yaml)")
    summary = run_dir / evaluation.EVAL_DIR / evaluation.SUMMARY_FILE
    if overrides or not summary.is_file() or summary.stat().st_mtime < weights.stat().st_mtime:
        evaluate(run_dir, overrides)  # missing, asked for with other arguments, or older than the weights
    html, markdown = write_report(run_dir)
    print(f"report: {html}\n        {markdown}")
    return html, markdown


def export(weights: str | Path, overrides: dict[str, Any] | None = None) -> Path:
    weights, _ = weights_of(weights)
    path = yolo.export(weights, _check_cli_args(dict(overrides or {}), allowed_extra=frozenset({"data"})))
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

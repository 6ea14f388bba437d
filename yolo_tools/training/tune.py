"""`yolo_tools tune RECIPE`: search a recipe's training hyperparameters, alone or on a Ray cluster.

Ultralytics ships both searches (`YOLO.tune`, in yolo_tools/engine/): its own tuner, which mutates the
best hyperparameters found so far one training after another, and `use_ray=True`, which hands trials to
Ray Tune (Optuna's TPE by default, with ASHA stopping poor trials early). This module adds what the
workbench needs around them: the recipe's converted data, one folder per search under
`runs/<recipe>/<name>/` holding every trial, the Ray connection (the cluster named by `RAY_ADDRESS`, or
a local Ray started here), and the result as a recipe file (`best_recipe.yaml`) that
`yolo_tools train` takes as it is. Ray is imported in this module only.

On a cluster every node must see the converted datasets and the runs folder at the same paths (a shared
filesystem), since each trial reads the data and writes its training where the driver says.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import yaml

from yolo_tools import engine
from yolo_tools.conversion import prepare_dataset
from yolo_tools.convert.checks import check
from yolo_tools.engine import args as yolo_args
from yolo_tools.engine.args import RESERVED as RESERVED_TRAIN_ARGS
from yolo_tools.errors import UserError
from yolo_tools.locations import check_runs_folder, runs_dir
from yolo_tools.recipe import Recipe, load_recipe
from yolo_tools.runs import next_free
from yolo_tools.training import input_size, tracking

BEST_RECIPE = "best_recipe.yaml"
# key=value arguments that steer the search rather than each training.
SEARCH_OPTIONS = frozenset({"iterations", "use_ray", "space", "grace_period", "gpu_per_trial", "search_alg"})
RAY_ONLY = frozenset({"grace_period", "gpu_per_trial", "search_alg"})


def _search_dir(recipe: Recipe, name: str | None) -> Path:
    """`runs/<recipe>/<name>`, or the next free `tune`, `tune2`, ...; never an existing folder."""
    parent = check_runs_folder(runs_dir() / recipe.name)
    if name:
        if (parent / name).exists():
            raise UserError(f"{parent / name}: already exists; give another --name")
        return check_runs_folder(parent / name)
    return next_free(parent / "tune")


def _split(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Search options and train arguments, all checked on one path (engine/args.py) before any work starts."""
    overrides = yolo_args.check_command_line(overrides, workbench=SEARCH_OPTIONS, passed={"model"})
    options = {key: overrides[key] for key in SEARCH_OPTIONS if key in overrides}
    train = {key: value for key, value in overrides.items() if key not in SEARCH_OPTIONS}
    if not options.get("use_ray") and RAY_ONLY & set(options):
        raise UserError(f"command line: {', '.join(sorted(RAY_ONLY & set(options)))}: Ray Tune options; add use_ray=True")
    return options, train


class _NotTheTokenDefault(logging.Filter):
    """Drops Ray's warning that token authentication is on, the default for a cluster it starts (its
    advice is how to turn that protection off); the warning that it is off stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Token authentication is enabled for this Ray cluster")


def _quiet_ray() -> None:
    """Ray's lines that no one can act on: the token warning above, and, from the TensorBoard writer Ray
    Tune logs each trial with, an INFO line per metric whose name has brackets ("Summary name
    .../mAP50(B) is illegal"), shown because the command line logs INFO. With -v they stay."""
    token_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _NotTheTokenDefault) for f in token_log.filters):
        token_log.addFilter(_NotTheTokenDefault())
    if not logging.getLogger(__name__).isEnabledFor(logging.DEBUG):
        logging.getLogger("tensorboardX").setLevel(logging.WARNING)


def _ray_space(space: dict[str, Any]) -> dict[str, Any]:
    """A search space given as bounds (`{'lr0': (1e-5, 1e-2)}`, the form Ultralytics' own tuner takes and the
    command line can write) as Ray Tune's ranges: uniform between the bounds, whole numbers for an argument
    Ultralytics keeps as an int (close_mosaic). The gain, which only Ultralytics' mutation uses, is dropped."""
    from ray import tune

    defaults = yolo_args.default_args()
    return {
        key: tune.randint(int(low), int(high) + 1) if isinstance(defaults[key], int) else tune.uniform(float(low), float(high))
        for key, (low, high, *_) in space.items()
    }


def _connect_ray(env: dict[str, str]) -> tuple[str, float]:
    """Join the Ray cluster named by RAY_ADDRESS, or start a local Ray on this machine.

    `env` is set in every Ray worker (where the trials train), on this machine or the cluster's. Returns
    which Ray it is and how many GPUs it has.
    """
    import ray

    _quiet_ray()
    address = os.environ.get("RAY_ADDRESS")
    if not ray.is_initialized():
        try:
            ray.init(
                address=address or None,
                include_dashboard=False,
                logging_level="WARNING",
                runtime_env={"env_vars": env} if env else None,
            )
        except (ConnectionError, RuntimeError) as exc:
            raise UserError(f"RAY_ADDRESS={address}: cannot join that Ray cluster: {exc}") from None
    return f"Ray cluster at {address}" if address else "a local Ray", ray.cluster_resources().get("GPU", 0)


def _best_of_ray(grid: Any, metric: str) -> tuple[dict[str, Any], float]:
    """The hyperparameters and score of Ray's best trial; a search whose every trial failed is an error."""
    try:
        best = grid.get_best_result(metric=metric, mode="max", filter_nan_and_inf=False)
    except RuntimeError:
        errors = "; ".join(str(error).splitlines()[0] for error in grid.errors[:3]) or "no trial reported a result"
        raise UserError(f"tune: no Ray trial finished ({errors})") from None
    return dict(best.config), float(best.metrics.get(metric, float("nan")))


def _best_of_tuner(folder: Path) -> dict[str, Any]:
    path = folder / "best_hyperparameters.yaml"
    if not path.is_file():
        raise UserError(f"tune: no iteration produced metrics (see {folder / 'tune_results.ndjson'})")
    return yaml.safe_load(path.read_text())


def write_best_recipe(recipe: Recipe, model: str, best: dict[str, Any], out_dir: Path, header: str) -> Path:
    """The recipe with the best hyperparameters folded into its train arguments, ready for `yolo_tools train`.

    Only the searched hyperparameters are taken: the key=value arguments of the search itself (epochs,
    fraction, imgsz for quick trials) stay out, so the recipe trains as long and as large as it did.
    """
    found = {
        key: value.item() if hasattr(value, "item") else value  # Ray may sample NumPy scalars
        for key, value in best.items()
        if key not in RESERVED_TRAIN_ARGS and key not in ("device", "epochs", "iterations")
    }
    payload = recipe.model_dump(mode="json", exclude={"path"})
    payload["model"] = model
    payload["train"] = {**recipe.train, **found}
    payload["description"] = f"{recipe.description} (hyperparameters from {out_dir.name})".strip()
    Recipe(**payload)  # the file must load exactly as `yolo_tools train` will read it
    path = out_dir / BEST_RECIPE
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text("".join(f"# {line}\n" for line in header.splitlines()) + yaml.safe_dump(payload, sort_keys=False))
    partial.replace(path)
    return path


def tune_recipe(
    recipe_path: str | Path,
    overrides: dict[str, Any] | None = None,
    name: str | None = None,
    data_root: str | Path | None = None,
) -> Path:
    """Search hyperparameters for a recipe; returns the best recipe written into `runs/<recipe>/<name>/`."""
    recipe = check(load_recipe(recipe_path))
    options, overrides = _split(dict(overrides or {}))
    origin = "command line: model" if "model" in overrides else f"{recipe.path}: model"
    model = overrides.pop("model", recipe.model)
    engine.check_model(model, origin)
    args = {**yolo_args.check_types(recipe.train, f"{recipe.path}: train."), **overrides}
    iterations, use_ray = options.pop("iterations", 10), options.pop("use_ray", False)
    if args.get("device") not in (None, "") and not use_ray:  # Ray trials see the GPUs Ray gives them, not ours
        origin = "command line" if "device" in overrides else f"{recipe.path}: train"
        args["device"] = engine.pick_device(args["device"], origin, announce=False)
    if use_ray and importlib.util.find_spec("ray") is None:
        raise UserError("use_ray=True needs Ray Tune: pip install 'yolo-tools[tune]'")
    out_dir = _search_dir(recipe, name)
    model = engine.training_start(model, recipe.model_fallback)  # official weights, or their YAML when offline
    experiment = f"{recipe.name}-{out_dir.name}"
    mlflow_env = tracking.search_environment(experiment) if "mlflow" in engine.trackers_in_settings() else {}
    if mlflow_env:
        tracking.check_store(mlflow_env["MLFLOW_TRACKING_URI"])  # one message now, not a traceback once trials start
    env = {**mlflow_env, **engine.usage_events_environment()}  # Ray trials: Ray rebuilds their callbacks
    with tracking.environment(env):
        where = "Ultralytics' tuner"
        if use_ray:  # first: a cluster that cannot be joined is refused before any data or folder is made
            where, gpus = _connect_ray(env)
            if gpus:  # without a GPU of its own a trial would train on the CPU (Ray hides the others from it)
                options.setdefault("gpu_per_trial", 1)
            if "space" in options:
                options["space"] = _ray_space(options["space"])
        dataset = prepare_dataset(recipe, data_root)
        data = dataset.data_arg
        if args.get("imgsz") == input_size.AUTO:  # every trial at the size the data asks for
            args = input_size.resolve(args, dataset, engine.strides(model))
        out_dir.mkdir(parents=True)
        if mlflow_env:
            tracking.create_experiment(experiment)
        print(f"tune: {iterations} trials of {recipe.name} with {where}, in {out_dir}")
        if recipe.class_balance != "none":  # the tuners build Ultralytics' own trainer for every trial
            print(f"tune: class_balance: {recipe.class_balance} is not applied to the trials (only to yolo_tools train and cv)")
        metric, result = engine.tune(model, data, out_dir, args, iterations, use_ray, options)
    # YOLO.tune trains every trial with AdamW unless told otherwise; the learning rates found are for it.
    optimizer = {"optimizer": args.get("optimizer", "AdamW")}
    if use_ray:
        best, score = _best_of_ray(result, metric)
        header = f"Best of {iterations} Ray Tune trials: {metric} = {score:.4f} (trials in {out_dir})"
    else:
        best = _best_of_tuner(result)
        header = f"Best of {iterations} iterations of Ultralytics' tuner (results in {result})"
    path = write_best_recipe(recipe, model, {**optimizer, **best}, out_dir, f"{header}\nTrain with: yolo_tools train {out_dir / BEST_RECIPE}")
    print(f"{header}\nbest recipe: {path}\n  train it with: yolo_tools train {path}")
    return path

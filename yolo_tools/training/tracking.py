"""Experiment tracking: a run's training (and its evaluation) in MLflow, or its training curves in TensorBoard.

Ultralytics already logs both through its own callbacks, which `engine.Trackers` switches on for one run
without touching Ultralytics' global settings file. What this module adds is where MLflow writes and
which MLflow run a run folder belongs to: a local SQLite store under the runs folder
(`runs/mlflow/mlflow.db`, artifacts in `runs/mlflow/artifacts/`) unless `MLFLOW_TRACKING_URI` names
another, one experiment per recipe, and one MLflow run per run folder whose id is kept in
`<run>/mlflow.json`. The MLflow run is created here before training and handed to Ultralytics' callback
through `MLFLOW_RUN_ID`, which `mlflow.start_run` resumes in whichever process trains (DDP's rank 0 too);
`evaluate` then logs Dice, IoU, per-class and per-patient results into that same run. MLflow is imported
in this module only.
"""

from __future__ import annotations

import importlib.util
import json
import math
import numbers
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from yolo_tools.errors import UserError
from yolo_tools.locations import runs_dir

MLFLOW_FILE = "mlflow.json"  # in a run folder: the tracking URI, experiment and MLflow run id it logs to
STORE_DIR = "mlflow"  # under the runs folder: the local SQLite store and its artifacts
PACKAGES = {"mlflow": "mlflow", "tensorboard": "tensorboard"}
# The evaluation files (yolo_tools/evaluation/__init__.py) stored as artifacts beside the metrics.
EVAL_ARTIFACTS = ("summary.json", "per_image.csv", "per_class.csv", "per_patient.csv", "per_group.csv")


def _quiet() -> None:
    """MLflow's own log lines at WARNING and above, unless the user chose a level (MLFLOW_LOGGING_LEVEL).

    At its default INFO MLflow prints its database set-up ("Creating initial MLflow database tables...",
    "Updating database tables") and "Autologging successfully enabled for sklearn" (Ultralytics' callback
    switches autologging on) on every training, none of which asks anything of the user. MLflow reads the
    level when it is imported, so this runs before any import here; trainings in other processes (DDP
    workers, search trials) inherit it."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def check_available(track: str | None) -> None:
    """A tracker whose package is missing, or an MLflow store that cannot be used, is refused before any work,
    not silently skipped by Ultralytics or a traceback after the conversion."""
    if track and importlib.util.find_spec(PACKAGES[track]) is None:
        raise UserError(f"track: {track} needs the {PACKAGES[track]} package: pip install 'yolo-tools[track]'")
    if track == "mlflow":
        check_store(tracking_uri())


# While the store is probed, a server that does not answer is given up on after one retry and 10 s, rather
# than after MLflow's default of seven retries with back-off (about four minutes); a user's own setting wins.
PROBE_ENVIRONMENT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def _without_password(text: str, uri: str) -> str:
    """`text` with the password of `uri` (postgresql://user:PASSWORD@host/db) masked: never printed."""
    password = urlsplit(uri).password
    return text.replace(password, "***") if password else text


ENV_FIX = ("Give a running server (http://HOST:5000) or a database (sqlite:///PATH/mlflow.db), or unset "
           "MLFLOW_TRACKING_URI to use the workbench's store under the runs folder (runs/mlflow/mlflow.db)")


def check_store(uri: str, origin: str = "MLFLOW_TRACKING_URI", fix: str = ENV_FIX) -> None:
    """One message naming `origin` (the variable, or a run's mlflow.json) when MLflow cannot use the store at
    `uri`: an unknown scheme, a server that does not answer, a database it cannot open. The workbench's own
    store under the runs folder is made when first used and is not probed."""
    if uri == _local_uri():
        return
    from mlflow import MlflowClient

    probe = {key: value for key, value in PROBE_ENVIRONMENT.items() if key not in os.environ}
    try:
        with environment(probe):
            MlflowClient(uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - MLflow raises its own, SQLAlchemy's and requests' errors here
        reason = _without_password(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, uri)
        raise UserError(
            f"{origin}={_without_password(uri, uri)}: MLflow cannot use this tracking store ({reason[:300]}).\n  {fix}"
        ) from None


def _local_uri() -> str:
    return f"sqlite:///{runs_dir() / STORE_DIR / 'mlflow.db'}"


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` when set (a server, a database), else the workbench's SQLite store under the runs folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or _local_uri()


def _experiment(experiment: str) -> tuple[Any, str, str]:
    """A client on the tracking store, and the id of `experiment` there (made if new), and the store's URI."""
    _quiet()
    from mlflow import MlflowClient

    uri = tracking_uri()
    artifacts = None
    if uri == _local_uri():
        store = runs_dir() / STORE_DIR
        store.mkdir(parents=True, exist_ok=True)
        artifacts = (store / "artifacts").as_uri()  # not MLflow's default ./mlruns in the working folder
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment, artifact_location=artifacts)
    return client, experiment_id, uri


LINK_KEYS = ("tracking_uri", "experiment", "run_id")


def read_link(run_dir: Path) -> dict[str, str] | None:
    """The MLflow run a run folder logs to (its mlflow.json), None when it has none; a damaged file is one
    message naming it, read before any work (an evaluation would otherwise run and fail at the end)."""
    path = run_dir / MLFLOW_FILE
    if not path.is_file():
        return None
    try:
        link = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        link, problem = None, f"not JSON ({exc})"
    else:
        missing = [key for key in LINK_KEYS if not isinstance(link, dict) or not isinstance(link.get(key), str)]
        problem = f"no {', '.join(missing)}" if missing else ""
    if problem:
        raise UserError(
            f"{path}: damaged: {problem}. It records which MLflow run this run logs to: restore it (the MLflow run "
            f"carries the tag yolo_tools.run_dir={run_dir}), or remove it to stop logging this run to MLflow"
        )
    return link


def check_link(run_dir: Path) -> None:
    """A run's mlflow.json, and the store it names, are usable: checked before an evaluation starts."""
    link = read_link(run_dir)
    if link is None:
        return
    uri, origin = link["tracking_uri"], f"{run_dir / MLFLOW_FILE}: tracking_uri"
    fix = f"This run logs to that store: bring it back, or move {MLFLOW_FILE} out of the run to go on without MLflow"
    database = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else None
    if database is not None and not Path(database).is_file():  # probing would make a new, empty database there
        raise UserError(f"{origin}={uri}: that MLflow database is gone.\n  {fix}")
    check_store(uri, origin, fix)


def _mlflow_run(experiment: str, run_dir: Path) -> dict[str, str]:
    """The MLflow run of `run_dir`: the one in its mlflow.json (a resumed training), else a new one recorded there."""
    link = read_link(run_dir)
    if link is not None:
        return link
    path = run_dir / MLFLOW_FILE
    client, experiment_id, uri = _experiment(experiment)
    run = client.create_run(experiment_id, run_name=run_dir.name, tags={"yolo_tools.run_dir": str(run_dir)})
    link = {"tracking_uri": uri, "experiment": experiment, "experiment_id": experiment_id, "run_id": run.info.run_id}
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(link, indent=2))
    partial.replace(path)
    return link


def search_environment(experiment: str) -> dict[str, str]:
    """Where the trials of a hyperparameter search log, when Ultralytics' settings have MLflow on for them.

    Trials are trainings Ultralytics starts itself (in Ray workers too), so `engine.Trackers` cannot reach
    them and they log as the settings say; these variables send that to the workbench's store, one
    experiment per search, instead of MLflow's default in each worker's working folder. Make the
    experiment with `create_experiment` before the trials start.
    """
    if importlib.util.find_spec("mlflow") is None:
        return {}
    _quiet()
    return {"MLFLOW_TRACKING_URI": tracking_uri(), "MLFLOW_EXPERIMENT_NAME": experiment}


def create_experiment(experiment: str) -> None:
    """Make `experiment` in the store, with its artifacts in the workbench's store rather than `./mlruns`."""
    _experiment(experiment)


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for a block (DDP workers inherit them) and put back what was there."""
    keys = [*values, "MLFLOW_EXPERIMENT_ID"]  # mlflow.set_experiment exports this one itself
    saved = {key: os.environ.get(key) for key in keys}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def tracked(track: str | None, experiment: str, run_dir: Path) -> Iterator[None]:
    """Around a training: with `mlflow`, point Ultralytics' MLflow callback at this run folder's MLflow run.

    TensorBoard needs nothing here: Ultralytics writes its event files into the run folder itself.
    """
    if track != "mlflow":
        yield
        return
    _quiet()
    link = _mlflow_run(experiment, run_dir)
    print(f"MLflow: run {link['run_id']} in experiment '{link['experiment']}' at {link['tracking_uri']}")
    with environment(
        {
            "MLFLOW_TRACKING_URI": link["tracking_uri"],
            "MLFLOW_EXPERIMENT_NAME": link["experiment"],
            "MLFLOW_RUN_ID": link["run_id"],
        }
    ):
        yield


def _key(prefix: str, *parts: Any) -> str:
    """`prefix/part/...` as an MLflow metric name, which allows only letters, digits and `_-. /`: parts are cleaned."""
    return "/".join([prefix, *(re.sub(r"[^\w\-. ]", "_", str(part)) for part in parts)])


def flat_numbers(prefix: str, value: Any) -> dict[str, float]:
    """Every number in a nested summary as `prefix/key/...`: an interval `[low, high]` becomes `.../low` and `.../high`.

    Lists of other lengths are indexed; text, booleans, NaN and lists of lists (a confusion matrix) are left out.
    """
    if isinstance(value, bool) or value is None:
        return {}
    if isinstance(value, numbers.Real):
        return {prefix: float(value)} if math.isfinite(value) else {}
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flat_numbers(_key(prefix, key), item).items()}
    if isinstance(value, (list, tuple)) and all(isinstance(v, numbers.Real) for v in value):
        names = ("low", "high") if len(value) == 2 else range(len(value))
        return {k: v for name, item in zip(names, value) for k, v in flat_numbers(_key(prefix, name), item).items()}
    return {}


def evaluation_metrics(eval_dir: Path) -> dict[str, float]:
    """What `evaluate` wrote to `eval_dir`, as MLflow metrics named after the folder (`eval/...`).

    The summary's numbers (Dice, IoU, AP, accuracy), each headline number's 95% bootstrap interval
    (summary.json's `intervals`, as `<metric>_ci95/low` and `/high` beside the metric), each class's row of
    per_class.csv, and the mean of each per_patient.csv column (per-volume scores of volumes).
    """
    prefix = eval_dir.name
    summary = json.loads((eval_dir / "summary.json").read_text())
    values = flat_numbers(_key(prefix, "validator"), summary.get("validator") or {})
    values |= flat_numbers(prefix, summary.get("metrics") or {})
    for name, interval in (summary.get("intervals") or {}).items():
        values |= flat_numbers(_key(prefix, f"{name}_ci95"), interval)
    per_class = eval_dir / "per_class.csv"
    if per_class.is_file():
        for row in pd.read_csv(per_class).to_dict("records"):
            name = row.pop("class")
            values |= flat_numbers(_key(prefix, "class", name), row)
    per_patient = eval_dir / "per_patient.csv"
    if per_patient.is_file():
        means = pd.read_csv(per_patient, dtype={"patient": str, "volume": str}).mean(numeric_only=True)
        values |= flat_numbers(_key(prefix, "per_patient_mean"), means.to_dict())
    return values


def log_evaluation(eval_dir: Path) -> None:
    """Log an evaluation into the MLflow run its training logged to; runs trained without MLflow are left alone."""
    link = read_link(eval_dir.parent)
    if link is None:
        return
    _quiet()
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(link["tracking_uri"])
    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, 0) for key, value in evaluation_metrics(eval_dir).items()]
    for start in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per batch
        client.log_batch(link["run_id"], metrics=metrics[start : start + 1000])
    for name in EVAL_ARTIFACTS:
        if (eval_dir / name).is_file():
            client.log_artifact(link["run_id"], str(eval_dir / name), artifact_path=eval_dir.name)
    print(f"MLflow: {len(metrics)} evaluation metrics logged to run {link['run_id']} at {link['tracking_uri']}")

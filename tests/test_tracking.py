"""`track: mlflow | tensorboard`: real trainings read back with MLflow's client and TensorBoard's reader.

Ultralytics switches its TensorBoard logger (and others) off whenever it sees pytest, so the trainings
run as a user runs them: `python -m yolo_tools` in a subprocess, without pytest's variables. Its
settings file there is a copy of the user's with both loggers on (MLflow is on in Ultralytics' defaults)
in a folder of the test's own (`YOLO_CONFIG_DIR`): each run must log to the requested tracker only,
and neither that file nor the user's own may change.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT
from yolo_tools import pipeline
from yolo_tools.training import tracking

pytestmark = pytest.mark.slow

QUICK = ["epochs=1", "imgsz=64", "batch=16", "workers=0", "plots=False"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, workspace: Path):
    """Run `yolo_tools` as a user would, outside pytest, with its outputs and Ultralytics settings in tmp folders."""
    from ultralytics.utils import SETTINGS, SETTINGS_FILE

    root = tmp_path_factory.mktemp("tracking")
    config = root / "ultralytics-config"
    config.mkdir()
    (config / "settings.json").write_text(json.dumps({**SETTINGS, "mlflow": True, "tensorboard": True}, indent=2))
    user_settings = _digest(SETTINGS_FILE) if SETTINGS_FILE.is_file() else None
    work = root / "cwd"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_CURRENT_TEST", "GITHUB_ACTIONS", "MLFLOW_TRACKING_URI")}
    env |= {
        "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
        "YOLO_CONFIG_DIR": str(config),
        "YOLO_TOOLS_DATASETS": str(workspace / "datasets"),  # the demo set, converted once per session
        "YOLO_TOOLS_RUNS": str(root / "runs"),
    }

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "yolo_tools", *args], cwd=work, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout + done.stderr

    settings = _digest(config / "settings.json")
    yield run, root
    assert _digest(config / "settings.json") == settings, "a run rewrote Ultralytics' settings file"
    assert (_digest(SETTINGS_FILE) if SETTINGS_FILE.is_file() else None) == user_settings
    assert not list(work.iterdir()), f"a run wrote into the working folder: {list(work.iterdir())}"


def test_mlflow_run_holds_training_and_evaluation(cli) -> None:
    from mlflow import MlflowClient

    run, root = cli
    said = run("train", "demo", "--name", "ml", "--track", "mlflow", *QUICK)
    run_dir = root / "runs" / "demo" / "ml"
    # MLflow's own INFO lines (database set-up, "Autologging successfully enabled") ask nothing of a user
    assert " INFO mlflow" not in said and "Creating initial MLflow database tables" not in said, said[-3000:]
    pipeline.evaluate(run_dir, {"imgsz": 64})  # in this process: the logging is the workbench's, not a callback

    link = json.loads((run_dir / tracking.MLFLOW_FILE).read_text())
    assert link["tracking_uri"] == f"sqlite:///{root / 'runs' / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(link["tracking_uri"])
    logged = client.get_run(link["run_id"])
    assert logged.info.status == "FINISHED" and logged.info.run_name == "ml"
    assert client.get_experiment(logged.info.experiment_id).name == "demo"
    assert logged.data.params["epochs"] == "1" and logged.data.params["imgsz"] == "64"
    # Ultralytics' callback: per-epoch training metrics, the same as results.csv.
    results = pd.read_csv(run_dir / "results.csv")
    history = client.get_metric_history(link["run_id"], "train/box_loss")
    assert history[0].value == pytest.approx(results["train/box_loss"].iloc[0], rel=1e-3)
    # evaluate: its summary, per-class rows and the validator's metrics, in the same MLflow run.
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    metrics = logged.data.metrics
    assert metrics["eval/missed"] == summary["metrics"]["missed"]
    assert metrics["eval/ap50_95"] == pytest.approx(summary["metrics"]["ap50_95"])
    assert metrics["eval/validator/mAP50"] == pytest.approx(summary["validator"]["mAP50"])
    per_class = pd.read_csv(run_dir / "eval" / "per_class.csv").set_index("class")
    assert metrics["eval/class/finding/missed"] == per_class.loc["finding", "missed"]
    # The 95% bootstrap intervals, beside each headline number (docs/scale.md: "each headline number's 95% interval").
    intervals = {name: value for name, value in summary["intervals"].items() if value is not None}
    assert intervals, "the demo evaluation gave no interval to compare"
    for name, (low, high) in intervals.items():
        assert metrics[f"eval/{name}_ci95/low"] == pytest.approx(low) and metrics[f"eval/{name}_ci95/high"] == pytest.approx(high)
    artifacts = {item.path for item in client.list_artifacts(link["run_id"], "eval")}
    assert {"eval/summary.json", "eval/per_class.csv", "eval/per_image.csv"} <= artifacts
    assert (root / "runs" / "mlflow" / "artifacts").is_dir()
    assert not list(run_dir.glob("events.out.tfevents.*")), "TensorBoard logged a run that asked for MLflow"


def test_tensorboard_run_has_event_files_and_no_mlflow(cli) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, root = cli
    store = root / "runs" / "mlflow" / "mlflow.db"
    before = _digest(store) if store.is_file() else None
    run("train", "demo", "--name", "tb", "--track", "tensorboard", *QUICK)
    run_dir = root / "runs" / "demo" / "tb"

    events = EventAccumulator(str(run_dir))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/box_loss", "metrics/mAP50-95(B)", "lr/pg0"} <= scalars
    results = pd.read_csv(run_dir / "results.csv")
    assert events.Scalars("train/box_loss")[0].value == pytest.approx(results["train/box_loss"].iloc[0], rel=1e-3)
    assert not (run_dir / tracking.MLFLOW_FILE).exists()
    assert (_digest(store) if store.is_file() else None) == before, "MLflow logged a run that asked for TensorBoard"


def test_evaluation_metrics_flatten_classes_patients_and_intervals(tmp_path: Path) -> None:
    """What evaluate logs for a segmentation of volumes, with intervals as a summary may carry them."""
    out = tmp_path / "eval"
    out.mkdir()
    summary = {
        "validator": {"mAP50": 0.5},
        "metrics": {"dice": 0.8, "volumes": 2, "note": "x"},
        "intervals": {"dice": [0.7, 0.9], "volumes": None},  # as evaluate writes them: no interval is null
    }
    (out / "summary.json").write_text(json.dumps(summary))
    pd.DataFrame({"class": ["left kidney (L)"], "dice_mean": [0.75]}).to_csv(out / "per_class.csv", index=False)
    pd.DataFrame({"patient": ["007", "008"], "volume": ["a", "b"], "dice": [0.6, 0.8]}).to_csv(out / "per_patient.csv", index=False)
    assert tracking.evaluation_metrics(out) == {
        "eval/validator/mAP50": 0.5,
        "eval/dice": 0.8,
        "eval/dice_ci95/low": 0.7,
        "eval/dice_ci95/high": 0.9,
        "eval/volumes": 2.0,
        "eval/class/left kidney _L_/dice_mean": 0.75,
        "eval/per_patient_mean/dice": pytest.approx(0.7),
    }


def test_mlflow_tracking_uri_names_another_store(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri().endswith(f"{os.sep}mlflow{os.sep}mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'team.db'}")
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'team.db'}"

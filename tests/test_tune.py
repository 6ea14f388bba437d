"""`yolo_tools tune`: tiny real searches on the demo recipe, with Ultralytics' tuner and with a local Ray.

Two trials of one epoch on 64-pixel images: the point is the plumbing (trials under the search folder,
the best hyperparameters as a recipe `yolo_tools train` reads), not the quality of the search.
"""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import RECIPES
from yolo_tools import engine
from yolo_tools.recipe import load_recipe
from yolo_tools.training import tune

pytestmark = pytest.mark.slow

QUICK = {"iterations": 2, "epochs": 1, "imgsz": 64, "batch": 16, "workers": 0, "plots": False}
SEARCHED = ("lr0", "momentum", "weight_decay", "box", "mosaic")


def _check_best_recipe(path, trials: list[dict]) -> dict:
    best = load_recipe(path)  # exactly what `yolo_tools train` does with it
    demo = load_recipe(RECIPES / "demo.yaml")
    assert best.name == "demo" and best.data == demo.data and best.classes == demo.classes
    assert best.train["epochs"] == demo.train["epochs"], "the search's own epochs=1 must not leak into the recipe"
    assert best.train["optimizer"] == "AdamW"
    chosen = {key: best.train[key] for key in SEARCHED}
    assert chosen in [{key: trial[key] for key in SEARCHED} for trial in trials], "not one of the trials' hyperparameters"
    return best.train


def test_ultralytics_tuner_writes_trials_and_a_best_recipe(workspace) -> None:
    path = tune.tune_recipe(RECIPES / "demo.yaml", QUICK, name="evolve")
    out = workspace / "runs" / "demo" / "evolve"
    assert path == out / tune.BEST_RECIPE
    lines = (out / "tuner" / "tune_results.ndjson").read_text().splitlines()
    trials = [json.loads(line)["hyperparameters"] for line in lines]
    assert len(trials) == 2
    train = _check_best_recipe(path, trials)
    if "mlflow" in engine.trackers_in_settings():  # trials log as Ultralytics' settings say: into the runs folder's store
        from mlflow import MlflowClient

        store = workspace / "runs" / "mlflow"
        experiment = MlflowClient(f"sqlite:///{store / 'mlflow.db'}").get_experiment_by_name("demo-evolve")
        assert experiment.artifact_location == (store / "artifacts").as_uri()
    assert {k: train[k] for k in SEARCHED} == {k: yaml.safe_load((out / "tuner" / "best_hyperparameters.yaml").read_text())[k] for k in SEARCHED}


def test_ray_tune_runs_trials_on_a_local_ray(workspace, monkeypatch) -> None:
    pytest.importorskip("ray.tune")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    path = tune.tune_recipe(RECIPES / "demo.yaml", {**QUICK, "use_ray": True}, name="ray")
    out = workspace / "runs" / "demo" / "ray"
    trainings = sorted(out.glob("trial_*"))
    assert len(trainings) == 2 and all((t / "weights" / "best.pt").is_file() for t in trainings)
    trials = [yaml.safe_load((t / "args.yaml").read_text()) for t in trainings]
    assert all(trial["epochs"] == 1 and trial["project"] == str(out) for trial in trials)
    assert (out / "trial").is_dir(), "Ray's own experiment state belongs beside the trials"
    _check_best_recipe(path, trials)


def test_ray_lines_no_one_can_act_on_are_left_out(caplog: pytest.LogCaptureFixture) -> None:
    """Ray's "token authentication is enabled" (the default it starts with) and tensorboardX's line per
    bracketed metric name are not shown at the command line's INFO level; the warning that Ray runs
    without token authentication is."""
    import logging

    pytest.importorskip("tensorboardX")
    from ray._private.authentication import authentication_token_setup as token_setup
    from tensorboardX.summary import _clean_tag

    class Kept(logging.Handler):  # Ray's loggers print through their own handlers, not the root's
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    said: list[str] = []
    kept = Kept(logging.INFO)
    tune._quiet_ray()
    with caplog.at_level(logging.INFO):
        for log in (token_setup.logger, logging.getLogger("tensorboardX.summary")):
            log.addHandler(kept)
        try:
            token_setup._warn_token_auth_enabled()
            _clean_tag("ray/tune/metrics/mAP50(B)")
            token_setup._warn_token_auth_disabled()
        finally:
            for log in (token_setup.logger, logging.getLogger("tensorboardX.summary")):
                log.removeHandler(kept)
    assert len(said) == 1 and said[0].startswith("Token authentication is disabled for this Ray cluster"), said

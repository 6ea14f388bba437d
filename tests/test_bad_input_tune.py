"""Bad input: `yolo_tools tune` options and `track` settings, refused before any data is converted or trained."""

from __future__ import annotations

from pathlib import Path

import pytest

from bad_input import Case, parametrize, run_case

DEMO = Path(__file__).resolve().parent.parent / "recipes" / "demo.yaml"


def _taken(inputs: Path) -> None:
    (inputs.parent / "runs" / "demo" / "taken").mkdir(parents=True)


def _recipe_tracking(tracker: str):
    def setup(inputs: Path) -> None:
        (inputs / "tracked.yaml").write_text(DEMO.read_text() + f"track: {tracker}\n")

    return setup


def _password_hidden(stderr: str) -> None:
    assert "s3cret" not in stderr, "the tracking URI's password was printed"


CASES: list[Case] = [
    Case("tune-zero-iterations", lambda i: ["tune", "demo", "iterations=0"], (r"iterations=0", r"whole number >= 1")),
    Case("tune-iterations-text", lambda i: ["tune", "demo", "iterations=many"], (r"iterations=many",)),
    Case("tune-use-ray-not-bool", lambda i: ["tune", "demo", "use_ray=maybe"], (r"use_ray=maybe", r"True or False")),
    Case("tune-ray-option-without-ray", lambda i: ["tune", "demo", "grace_period=2"], (r"grace_period", r"use_ray=True")),
    Case("tune-unknown-train-arg", lambda i: ["tune", "demo", "epoch=1"], (r"'epoch' is not an Ultralytics train argument", r"epochs")),
    Case("tune-name-taken", lambda i: ["tune", "demo", "--name", "taken"], (r"taken: already exists", r"--name"), setup=_taken),
    # a search space is checked whole before any folder, store or Ray is touched (nothing left behind)
    Case("tune-space-not-a-mapping", lambda i: ["tune", "demo", "space=foo"], (r"space=foo: not a mapping", r"\(min, max\)")),
    Case("tune-space-a-list", lambda i: ["tune", "demo", "space=[1,2]"], (r"space=\[1, 2\]: not a mapping",)),
    Case("tune-space-unknown-key", lambda i: ["tune", "demo", "space={'lr':(0.001,0.01)}"],
         (r"'lr' is not an Ultralytics train argument",)),
    Case("tune-space-text-argument", lambda i: ["tune", "demo", "space={'optimizer':(0,1)}"], (r"'optimizer' is not a number",)),
    Case("tune-space-bounds-reversed", lambda i: ["tune", "demo", "space={'lr0':(0.01,0.001)}"],
         (r"'lr0': the minimum 0\.01 is not below the maximum 0\.001",)),
    Case("tune-space-bounds-not-numbers", lambda i: ["tune", "demo", "space={'lr0':'small'}"], (r"'lr0': 'small' is not \(min, max\)",)),
    Case("tune-space-gain-out-of-range", lambda i: ["tune", "demo", "space={'lr0':(0.001,0.01,3)}"], (r"the gain 3 is not from 0 to 1",)),
    Case("tune-search-alg-unknown", lambda i: ["tune", "demo", "use_ray=True", "search_alg=annealing"],
         (r"search_alg=annealing: not one of Ultralytics' Ray Tune search algorithms", r"optuna")),
    Case("tune-grace-period-a-fraction", lambda i: ["tune", "demo", "use_ray=True", "grace_period=1.5"], (r"grace_period=1\.5: .*whole number",)),
    Case("tune-train-argument-of-the-wrong-type", lambda i: ["tune", "demo", "epochs=abc"], (r"command line: epochs: .*must be an int",)),
    Case("tune-model-missing", lambda i: ["tune", "demo", "model=nosuch.yaml"], (r"command line: model: nosuch\.yaml: no such model YAML",)),
    Case("tune-runs-folder-under-a-file", lambda i: ["tune", "demo"], (r"runs-file is a file, not a folder", "YOLO_TOOLS_RUNS"),
         lambda i: (i / "runs-file").write_text("not a folder\n"), env={"YOLO_TOOLS_RUNS": "{inputs}/runs-file/runs"}),
    Case("recipe-unknown-tracker", lambda i: ["train", str(i / "tracked.yaml")], (r"tracked\.yaml", r"track", r"mlflow"), setup=_recipe_tracking("wandb")),
    Case("cli-unknown-tracker", lambda i: ["train", "demo", "--track", "wandb"], (r"--track", r"mlflow", r"tensorboard")),
    # an MLflow store that cannot be used is one message naming the variable, before any conversion
    Case("mlflow-uri-unknown-scheme", lambda i: ["train", "demo", "--track", "mlflow"],
         (r"MLFLOW_TRACKING_URI=foo://bar: MLflow cannot use this tracking store", r"unset MLFLOW_TRACKING_URI"),
         env={"MLFLOW_TRACKING_URI": "foo://bar"}),
    Case("mlflow-uri-server-not-answering", lambda i: ["train", "demo", "--track", "mlflow"],
         (r"MLFLOW_TRACKING_URI=http://127\.0\.0\.1:9: MLflow cannot use this tracking store", r"http://HOST:5000"),
         env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}),
    Case("mlflow-uri-password-never-shown", lambda i: ["train", "demo", "--track", "mlflow"],
         (r"MLFLOW_TRACKING_URI=http://user:\*\*\*@127\.0\.0\.1:9: MLflow cannot use",),
         env={"MLFLOW_TRACKING_URI": "http://user:s3cret-token@127.0.0.1:9", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
         check=lambda root, stderr: _password_hidden(stderr)),
]


@parametrize(CASES)
def test_case(case, tmp_path, monkeypatch, capfd):
    run_case(case, tmp_path, monkeypatch, capfd)


def test_a_search_space_of_bounds_becomes_ray_tune_ranges() -> None:
    """`space=` written as bounds (all the command line can write) reaches Ray Tune as ranges, not as constants."""
    pytest.importorskip("ray")
    from ray.tune.search.sample import Float, Integer

    from yolo_tools.training import tune

    space = tune._ray_space({"lr0": (1e-5, 1e-2, 0.3), "close_mosaic": (0, 10)})
    assert isinstance(space["lr0"], Float) and (space["lr0"].lower, space["lr0"].upper) == (1e-5, 1e-2)
    assert isinstance(space["close_mosaic"], Integer) and (space["close_mosaic"].lower, space["close_mosaic"].upper) == (0, 11)
    assert all(0 <= space["close_mosaic"].sample() <= 10 for _ in range(50))

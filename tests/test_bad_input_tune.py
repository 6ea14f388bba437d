"""Bad input: `yolo_tools tune` options and `track` settings, refused before any data is converted or trained."""

from __future__ import annotations

from pathlib import Path

from bad_input import Case, parametrize, run_case

DEMO = Path(__file__).resolve().parent.parent / "recipes" / "demo.yaml"


def _taken(inputs: Path) -> None:
    (inputs.parent / "runs" / "demo" / "taken").mkdir(parents=True)


def _recipe_tracking(tracker: str):
    def setup(inputs: Path) -> None:
        (inputs / "tracked.yaml").write_text(DEMO.read_text() + f"track: {tracker}\n")

    return setup


CASES: list[Case] = [
    Case("tune-zero-iterations", lambda i: ["tune", "demo", "iterations=0"], (r"iterations=0", r"whole number >= 1")),
    Case("tune-iterations-text", lambda i: ["tune", "demo", "iterations=many"], (r"iterations=many",)),
    Case("tune-use-ray-not-bool", lambda i: ["tune", "demo", "use_ray=maybe"], (r"use_ray=maybe", r"True or False")),
    Case("tune-ray-option-without-ray", lambda i: ["tune", "demo", "grace_period=2"], (r"grace_period", r"use_ray=True")),
    Case("tune-unknown-train-arg", lambda i: ["tune", "demo", "epoch=1"], (r"'epoch' is not an Ultralytics train argument", r"epochs")),
    Case("tune-name-taken", lambda i: ["tune", "demo", "--name", "taken"], (r"taken: already exists", r"--name"), setup=_taken),
    Case("recipe-unknown-tracker", lambda i: ["train", str(i / "tracked.yaml")], (r"tracked\.yaml", r"track", r"mlflow"), setup=_recipe_tracking("wandb")),
    Case("cli-unknown-tracker", lambda i: ["train", "demo", "--track", "wandb"], (r"--track", r"mlflow", r"tensorboard")),
]


@parametrize(CASES)
def test_case(case, tmp_path, monkeypatch, capfd):
    run_case(case, tmp_path, monkeypatch, capfd)

"""Bad input to `yolo_tools study`: refused with one message before any conversion, training or page is made."""

from __future__ import annotations

import json
from pathlib import Path

from bad_input import Case, parametrize, run_case

RECIPE = (
    "name: tiny\ntask: detect\ndata:\n  source: {kind: synthetic}\n  converter: synthetic\n  options: {images: 8, size: 32}\n"
    "  split: %s\nclasses: [finding]\nmodel: yolov8n.yaml\n"
)
WITH_TEST = "{by: file, val: 0.25, test: 0.25}"


def _recipe(split: str = WITH_TEST):
    def setup(inputs: Path) -> None:
        (inputs / "tiny.yaml").write_text(RECIPE % split)

    return setup


def _study_folder(change: dict, files: dict[str, str] | None = None):
    """The recipe, and runs/tiny/study/ already holding a study whose study.json differs by `change` (or other files)."""

    def setup(inputs: Path) -> None:
        from yolo_tools.recipe import load_recipe

        _recipe()(inputs)
        folder = inputs.parent / "runs" / "tiny" / "study"
        folder.mkdir(parents=True)
        for name, text in (files or {}).items():
            (folder / name).write_text(text)
        if files is None:
            recipe = load_recipe(inputs / "tiny.yaml")
            stored = {"recipe": "tiny", "fingerprint": recipe.fingerprint(), "folds": 2, "fold_seed": 0, "model": "yolov8n.yaml",
                      "train": {}, "operating_point_rule": "youden", "retrain": False, **change}
            (folder / "study.json").write_text(json.dumps(stored))

    return setup


CASES: list[Case] = [
    Case(
        "study-recipe-without-a-test-split",
        lambda i: ["study", str(i / "tiny.yaml"), "folds=2"],
        ("tiny.yaml", "keeps no test split", "test: 0.15", "test: source"),
        _recipe("{by: file, val: 0.25}"),
    ),
    Case(
        "study-one-fold",
        lambda i: ["study", str(i / "tiny.yaml"), "folds=1"],
        ("folds=1", "at least 2"),
        _recipe(),
    ),
    Case(
        "study-folds-not-a-number",
        lambda i: ["study", str(i / "tiny.yaml"), "folds=abc"],
        ("folds=abc", "whole number", "folds=5"),
        _recipe(),
    ),
    Case(
        "study-folds-a-fraction",
        lambda i: ["study", str(i / "tiny.yaml"), "folds=2.5"],
        ("folds=2.5", "whole number"),
        _recipe(),
    ),
    Case(
        "study-fold-seed-negative",
        lambda i: ["study", str(i / "tiny.yaml"), "fold_seed=-1"],
        ("fold_seed=-1", "at least 0"),
        _recipe(),
    ),
    Case(
        "study-unknown-train-argument",
        lambda i: ["study", str(i / "tiny.yaml"), "epocs=3"],
        ("epocs", "did you mean", "epochs"),
        _recipe(),
    ),
    Case(
        "study-folder-holds-another-recipes-study",
        lambda i: ["study", str(i / "tiny.yaml"), "folds=2"],
        (r"runs/tiny/study", "another recipe or of other data", "--name"),
        _study_folder({"fingerprint": "0123456789abcdef"}),
    ),
    Case(
        "study-folder-holds-a-study-with-other-settings",
        lambda i: ["study", str(i / "tiny.yaml"), "folds=2", "epochs=2"],
        (r"runs/tiny/study", "other settings", "train", "--name"),
        _study_folder({}),
    ),
    Case(
        "study-folder-holds-other-folds",
        lambda i: ["study", str(i / "tiny.yaml"), "folds=3"],
        ("other settings", "folds 2 there, 3 now"),
        _study_folder({}),
    ),
    Case(
        "study-folder-holds-no-study",
        lambda i: ["study", str(i / "tiny.yaml")],
        (r"runs/tiny/study", "not a study", "--name"),
        _study_folder({}, files={"notes.txt": "mine"}),
    ),
    Case(
        "study-folder-with-a-damaged-study-json",
        lambda i: ["study", str(i / "tiny.yaml")],
        ("study.json", "damaged", "--name"),
        _study_folder({}, files={"study.json": "{not json"}),
    ),
    Case(
        "study-threshold-rule-for-a-detector",
        lambda i: ["study", str(i / "tiny.yaml"), "--operating-point", "sensitivity=0.9"],
        ("sensitivity=0.9", "classifier", "F1"),
        _recipe(),
    ),
    Case(
        "study-operating-point-rule-unknown",
        lambda i: ["study", str(i / "tiny.yaml"), "--operating-point", "sens=0.9"],
        ("sens=0.9", "youden", "sensitivity=0.95"),
        _recipe(),
    ),
    Case(
        "study-device-missing",
        lambda i: ["study", str(i / "tiny.yaml"), "device=7"],
        ("device=7", "not available"),
        _recipe(),
    ),
]


@parametrize(CASES)
def test_case(case, tmp_path, monkeypatch, capfd):
    run_case(case, tmp_path, monkeypatch, capfd)

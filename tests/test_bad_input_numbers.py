"""Bad input to test splits, cross-validation, outside sets and operating points: one clear message each.

Outside sets (`evaluate RUN --data SRC`) are refused before anything is converted or written where the set
cannot be scored as the run's training data was made: a reader whose labels are of another task (class
folders on a detector), single images for a 2.5D run, a `--option` the reader does not take or of the
wrong kind; a layout the folder does not have is refused by the reader with the flag that changes it.
The runs here are fakes (a recipe.yaml and weights never read): every refusal comes before the weights load.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from bad_input import Case, parametrize, run_case
from hospital_data import CASES as HIPPOCAMPUS_CASES
from hospital_data import HIPPOCAMPUS, decathlon

SYNTHETIC = "name: tiny\ntask: detect\ndata:\n  source: {kind: synthetic}\n  converter: synthetic\n  options: {images: 6, size: 32}\n  split: %s\nclasses: [finding]\n"


def _recipe(split: str):
    def setup(inputs: Path) -> None:
        (inputs / "tiny.yaml").write_text(SYNTHETIC % split)

    return setup


def _fake_run(recipe_text: str):
    """`inputs/run`: a run folder whose recipe is `recipe_text` and whose weights are never read."""

    def setup(inputs: Path) -> None:
        (inputs / "run" / "weights").mkdir(parents=True)
        (inputs / "run" / "weights" / "best.pt").write_bytes(b"never read: the input is refused before\n")
        (inputs / "run" / "recipe.yaml").write_text(recipe_text)
        (inputs / "set").mkdir()
        for name in ("normal", "pneumonia"):  # a class-folder set: what a detector cannot score
            (inputs / "set" / name).mkdir()
            cv2.imwrite(str(inputs / "set" / name / f"{name}1.png"), np.full((32, 32), 90, np.uint8))

    return setup


DETECTOR = SYNTHETIC % "{by: file, val: 0.3}"
HIPPOCAMPUS_RECIPE = (Path(__file__).resolve().parent.parent / "recipes" / "hippocampus.yaml").read_text().replace(
    "path: hippocampus-mri-msd", "path: hippo"
)


def _volumes(inputs: Path) -> None:
    """A run of the hippocampus recipe (2.5D) on three Decathlon cases (train, val and test patients), and a fourth
    case without dataset.json."""
    _fake_run(HIPPOCAMPUS_RECIPE)(inputs)
    decathlon(inputs / "hippo", HIPPOCAMPUS_CASES[:3])
    case = HIPPOCAMPUS_CASES[3]
    for folder in ("imagesTr", "labelsTr"):
        (inputs / "other" / folder).mkdir(parents=True)
        (inputs / "other" / folder / f"{case}.nii.gz").write_bytes((HIPPOCAMPUS / folder / f"{case}.nii.gz").read_bytes())


def _cv_over_a_run(inputs: Path) -> None:
    """The tiny recipe and a training run of it named `train`, in a runs folder among the inputs (kept unchanged)."""
    (inputs / "tiny.yaml").write_text(DETECTOR)
    run = inputs / "runs" / "tiny" / "train"
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "best.pt").write_bytes(b"the run's own weights\n")
    (run / "recipe.yaml").write_text(DETECTOR)


def _evaluate(*words: str):
    return lambda i: ["evaluate", str(i / "run"), *[w.format(i=i) for w in words]]


OUTSIDE = [
    Case("outside-class-folders-on-a-detector", _evaluate("--data", "{i}/set", "--format", "class-folders"),
         ("--format class-folders reads classify labels", "a detect model", "yolo, coco, box-csv"), _fake_run(DETECTOR)),
    Case("outside-option-unknown", _evaluate("--data", "{i}/set", "--format", "yolo", "--option", "tile=3"),
         (r"--option tile: unknown key; yolo_export takes: tiles",), _fake_run(DETECTOR)),
    Case("outside-option-wrong-kind", _evaluate("--data", "{i}/set", "--format", "box-csv", "--option", "images=[1,2]"),
         (r"--option images: .*string",), _fake_run(DETECTOR)),
    Case("outside-option-not-a-pair", _evaluate("--data", "{i}/set", "--option", "layout"),
         (r"--option layout: give KEY=VALUE",), _fake_run(DETECTOR)),
    Case("outside-option-without-data", _evaluate("--option", "layout=folders"),
         (r"--option sets an option of the reader", "--data SRC"), _fake_run(DETECTOR)),
    Case("outside-no-such-folder", _evaluate("--data", "{i}/nowhere"), (r"nowhere: no such folder",), _fake_run(DETECTOR)),
    Case("outside-single-images-for-a-2.5d-run", _evaluate("--data", "{i}/set", "--format", "masks"),
         ("2.5D", "preprocess.context: 1", "--format nifti or dicom"), _volumes),
    Case("outside-decathlon-layout-without-dataset-json", _evaluate("--data", "{i}/other", "--option", "layout=decathlon"),
         (r"other/dataset\.json: missing; layout 'decathlon' needs it", r"--option KEY=VALUE"), _volumes, may_write=("datasets",)),
    Case("outside-label-values-do-not-fit", _evaluate("--data", "{i}/other", "--format", "nifti", "--option", "label_values=[1]"),
         (r"label_values has 1 entries for 2 classes",), _volumes, may_write=("datasets",)),
    Case("cv-name-of-a-training-run", lambda i: ["cv", str(i / "tiny.yaml"), "--name", "train"],
         (r"runs/tiny/train: holds a training run", "predict would then use the fold models", "another --name"),
         _cv_over_a_run, env={"YOLO_TOOLS_RUNS": "{inputs}/runs"}),
]

CASES: list[Case] = [
    Case(
        "cv-one-fold",
        lambda i: ["cv", str(i / "tiny.yaml"), "folds=1"],
        ("folds=1", "at least 2 folds"),
        _recipe("{by: file, val: 0.3}"),
    ),
    # folds= and fold_seed= go through the checks Ultralytics' own keys get (yolo_args.WORKBENCH_KEYS)
    Case("cv-folds-a-word", lambda i: ["cv", str(i / "tiny.yaml"), "folds=abc"], (r"folds=abc: .*whole number", "e.g. folds=5"),
         _recipe("{by: file, val: 0.3}")),
    Case("cv-folds-a-fraction", lambda i: ["cv", str(i / "tiny.yaml"), "folds=2.5"], (r"folds=2\.5: .*whole number",),
         _recipe("{by: file, val: 0.3}")),
    Case("cv-folds-a-bool", lambda i: ["cv", str(i / "tiny.yaml"), "folds=True"], (r"folds=True: .*whole number",),
         _recipe("{by: file, val: 0.3}")),
    Case("cv-fold-seed-a-word", lambda i: ["cv", str(i / "tiny.yaml"), "fold_seed=abc"], (r"fold_seed=abc: .*whole number",),
         _recipe("{by: file, val: 0.3}")),
    Case("cv-train-argument-of-the-wrong-type", lambda i: ["cv", str(i / "tiny.yaml"), "epochs=abc"],
         (r"command line: epochs: .*must be an int",), _recipe("{by: file, val: 0.3}")),
    Case("cv-model-missing", lambda i: ["cv", str(i / "tiny.yaml"), "model=nosuch.pt"],
         (r"command line: model: nosuch\.pt: no such weights file", r"model=runs/<recipe>/<run>/weights/best\.pt"),
         _recipe("{by: file, val: 0.3}")),
    Case("cv-runs-folder-a-file", lambda i: ["cv", str(i / "tiny.yaml")], (r"is a file, not a folder", "YOLO_TOOLS_RUNS"),
         lambda i: (_recipe("{by: file, val: 0.3}")(i), (i / "runs-file").write_text("not a folder\n")),
         env={"YOLO_TOOLS_RUNS": "{inputs}/runs-file"}),
    Case(
        "cv-more-folds-than-patients",
        lambda i: ["cv", str(i / "tiny.yaml"), "folds=9"],
        ("9 folds need at least 9 patients", "has 6"),
        _recipe("{by: file, val: 0.3}"),
        may_write=("datasets",),  # the conversion itself is complete and reusable
    ),
    Case(
        "split-fractions-too-large",
        lambda i: ["convert", str(i / "tiny.yaml")],
        ("tiny.yaml", r"data\.split", "val \\+ test < 1"),
        _recipe("{by: file, val: 0.6, test: 0.5}"),
    ),
    Case(
        "test-source-without-a-published-test-split",
        lambda i: ["convert", str(i / "tiny.yaml")],
        ("tiny.yaml", "no published test split", "test: 0.15"),
        _recipe("{by: file, val: 0.3, test: source}"),
    ),
    Case(
        "operating-point-rule-unknown",
        lambda i: ["evaluate", str(i / "run"), "--operating-point", "sens=0.9"],
        ("sens=0.9", "youden", "sensitivity=0.95"),
    ),
    Case(
        "evaluate-split-unknown",
        lambda i: ["evaluate", str(i / "run"), "--split", "train"],
        ("invalid choice", "val", "test"),
    ),
    *OUTSIDE,
]


@parametrize(CASES)
def test_case(case, tmp_path, monkeypatch, capfd):
    run_case(case, tmp_path, monkeypatch, capfd)


def test_workbench_keys_are_read_and_typed_as_ultralytics_reads_its_own() -> None:
    """folds=1e1 is 10 (as epochs=1e2 is 100 for Ultralytics); every key a verb reads itself is declared once."""
    from yolo_tools.engine.args import WORKBENCH_KEYS, check_command_line
    from yolo_tools.inference import sliced
    from yolo_tools.pipeline import parse_overrides
    from yolo_tools.training import crossval, tune

    parsed = parse_overrides(["folds=1e1", "fold_seed=3", "epochs=2"])
    checked = check_command_line(parsed, workbench=crossval.CV_KEYS)
    assert checked == {"folds": 10, "fold_seed": 3, "epochs": 2} and isinstance(checked["folds"], int)
    assert crossval.CV_KEYS | sliced.ARGS | tune.SEARCH_OPTIONS == set(WORKBENCH_KEYS)

"""Bad input to test splits, cross-validation, outside sets and operating points: one clear message each."""

from __future__ import annotations

from pathlib import Path

from bad_input import Case, parametrize, run_case

SYNTHETIC = "name: tiny\ntask: detect\ndata:\n  source: {kind: synthetic}\n  converter: synthetic\n  options: {images: 6, size: 32}\n  split: %s\nclasses: [finding]\n"


def _recipe(split: str):
    def setup(inputs: Path) -> None:
        (inputs / "tiny.yaml").write_text(SYNTHETIC % split)

    return setup


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
]


@parametrize(CASES)
def test_case(case, tmp_path, monkeypatch, capfd):
    run_case(case, tmp_path, monkeypatch, capfd)


def test_workbench_keys_are_read_and_typed_as_ultralytics_reads_its_own() -> None:
    """folds=1e1 is 10 (as epochs=1e2 is 100 for Ultralytics); every key a verb reads itself is declared once."""
    from yolo_tools import crossval, sliced, tune
    from yolo_tools.pipeline import parse_overrides
    from yolo_tools.yolo_args import WORKBENCH_KEYS, check_command_line

    parsed = parse_overrides(["folds=1e1", "fold_seed=3", "epochs=2"])
    checked = check_command_line(parsed, workbench=crossval.CV_KEYS)
    assert checked == {"folds": 10, "fold_seed": 3, "epochs": 2} and isinstance(checked["folds"], int)
    assert crossval.CV_KEYS | sliced.ARGS | tune.SEARCH_OPTIONS == set(WORKBENCH_KEYS)

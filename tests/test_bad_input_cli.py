"""Bad command lines: `key=value` values Ultralytics refuses, unknown or reserved keys, ports out of range.

Values are read by Ultralytics' own `smart_value` (as `yolo` reads them) and checked by its `check_cfg`
before any conversion or training starts; each message names the key and the type wanted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

# Ultralytics binds its log handler to the sys.stdout of the moment it is first imported: imported here, at
# collection, that is pytest's session-long capture, not one case's (closed when the case ends, after which
# every Ultralytics log line would print a logging traceback).
import ultralytics  # noqa: F401, E402
from bad_input import TINY_RECIPE, Case, parametrize, run_case
from yolo_tools.errors import UserError
from yolo_tools.pipeline import parse_overrides


def tiny_recipe(inputs: Path) -> None:
    (inputs / "demo.yaml").write_text(yaml.safe_dump(TINY_RECIPE, sort_keys=False))


def train(*pairs: str):
    return lambda inputs: ["train", str(inputs / "demo.yaml"), *pairs]


def case(case_id: str, pairs: tuple[str, ...], *says: str) -> Case:
    """A `train` command line refused before its data is converted (nothing written anywhere)."""
    return Case(case_id, train(*pairs), says, tiny_recipe)


def _interrupted_at_the_third():
    """The writer's staging of one sample, with Ctrl-C pressed while the third is written."""
    from yolo_tools.convert import writer

    stage, calls = writer._stage, []

    def staged(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return stage(*args, **kwargs)

    return staged


def _no_dataset(root: Path, stderr: str) -> None:
    """Ctrl-C left no dataset and no partial folder behind (the harness checks `.partial-*` names too)."""
    assert not [p for p in (root / "datasets").rglob("*") if p.is_file()], "files were left in datasets/"
    assert "resume a training" not in stderr


CMD = r"command line: "
CASES: list[Case] = [
    case("epochs-a-word", ("epochs=ten",), CMD + r"epochs: 'epochs=ten' .*must be an int"),
    case("epochs-fraction", ("epochs=2.5",), CMD + r"epochs: .*must be an int"),
    case("epochs-zero", ("epochs=0",), CMD + r"epochs: .*must be >= 1"),
    case("lr0-a-word", ("lr0=abc",), CMD + r"lr0: .*int .*or float"),
    case("lr0-negative", ("lr0=-0.1",), CMD + r"lr0: .*between 0\.0 and 1\.0"),
    case("batch-a-word", ("batch=big",), CMD + r"batch: .*int .*or float"),
    case("imgsz-a-word", ("imgsz=large",), CMD + r"imgsz: .*imgsz"),
    case("imgsz-three-sizes", ("imgsz=[320,320,3]",), CMD + r"imgsz: .*imgsz"),
    case("patience-negative", ("patience=-1",), CMD + r"patience: .*must be >= 0"),
    case("workers-a-word", ("workers=many",), CMD + r"workers: .*must be an int"),
    case("plots-a-word", ("plots=sometimes",), CMD + r"plots: .*must be a bool"),
    case("cos-lr-a-number", ("cos_lr=2",), CMD + r"cos_lr: .*must be a bool"),
    case("optimizer-a-number", ("optimizer=3",), CMD + r"optimizer: .*must be a str"),
    case("fraction-above-one", ("fraction=1.5",), CMD + r"fraction: .*fraction"),
    case("amp-a-word", ("amp=maybe",), CMD + r"amp: .*True, False"),
    case("mosaic-none", ("mosaic=None",), CMD + r"mosaic: .*must not be None"),
    case("empty-value", ("epochs=",), r"'epochs=': give 'epochs' a value"),
    case("empty-key", ("=5",), r"'=5': arguments after the recipe or run are key=value"),
    case("no-equals", ("fast",), r"'fast': arguments after the recipe or run are key=value"),
    case("unknown-key", ("epocs=3",), CMD + r"'epocs' is not an Ultralytics train argument \(did you mean: epochs"),
    case("reserved-data", ("data=coco8.yaml",), CMD + r"'data' is set by yolo-tools"),
    case("reserved-project", ("project=/tmp",), CMD + r"'project' is set by yolo-tools", r"YOLO_TOOLS_RUNS"),
    case("reserved-name", ("name=quick",), CMD + r"'name' is set by yolo-tools .*: name the run with --name NAME"),
    case("pretrained-missing-file", ("pretrained=nowhere/best.pt",), r"command line: pretrained: nowhere/best\.pt: no such weights file"),
    Case("train-without-recipe", lambda i: ["train"], (r"train needs a recipe",)),
    Case("threads-a-word", train(), (r"YOLO_TOOLS_THREADS=many: give a whole number of CPU threads", r"or unset it"), tiny_recipe,
         env={"YOLO_TOOLS_THREADS": "many"}),
    Case("threads-zero", train(), (r"YOLO_TOOLS_THREADS=0: give a whole number of CPU threads \(1 or more\)",), tiny_recipe,
         env={"YOLO_TOOLS_THREADS": "0"}),
    Case("resume-with-arguments", lambda i: ["train", "--resume", str(i / "run"), "epochs=10"],
         (r"--resume continues a run with its own recipe and arguments; 'epochs=10' would be ignored", r"model=.*last\.pt epochs=N")),
    Case("resume-with-a-recipe", lambda i: ["train", str(i / "demo.yaml"), "--resume", str(i / "run")],
         (r"--resume continues a run .*demo\.yaml' would be ignored",), tiny_recipe),
    Case("app-port-too-big", lambda i: ["app", "--port", "99999"], (r"argument --port: 99999 is not a port \(1-65535\)", r"--port 7860")),
    Case("app-port-zero", lambda i: ["app", "--port", "0"], (r"argument --port: 0 is not a port",)),
    Case("app-port-negative", lambda i: ["app", "--port=-80"], (r"argument --port: -80 is not a port",)),
    Case("app-port-a-word", lambda i: ["app", "--port", "http"], (r"argument --port: 'http' is not a port number",)),
    Case("inspect-port-too-big", lambda i: ["inspect", "run", "--port", "70000"], (r"argument --port: 70000 is not a port",)),
    # convert FORMAT's own options, named as typed; a recipe takes nothing after it
    Case("convert-val-above-one", lambda i: ["convert", "masks", str(i / "src"), str(i.parent / "out"), "--val", "1.5"],
         (r"argument --val: '1\.5' is not a fraction between 0 and 1", r"--val 0\.2")),
    Case("convert-val-zero", lambda i: ["convert", "masks", str(i / "src"), str(i.parent / "out"), "--val", "0"],
         (r"argument --val: '0' is not a fraction",)),
    Case("convert-val-a-word", lambda i: ["convert", "masks", str(i / "src"), str(i.parent / "out"), "--val", "fifth"],
         (r"argument --val: 'fifth' is not a fraction",)),
    Case("convert-split-by-not-a-regex", lambda i: ["convert", "masks", str(i / "src"), str(i.parent / "out"), "--split-by", "(pat"],
         (r"convert masks: invalid options", r"--split-by \(pat: '\(pat' is neither 'source', 'file', a named rule nor a valid regex"),
         lambda i: (i / "src").mkdir()),
    Case("convert-recipe-stray-argument", lambda i: ["convert", str(i / "demo.yaml"), "extra"],
         (r"convert .*demo\.yaml: 'extra' is not understood; a recipe is converted alone", r"convert FORMAT SRC DST"), tiny_recipe),
    Case("convert-unknown-format-one-path", lambda i: ["convert", "nrrd", str(i)], (r"convert: format 'nrrd' is unknown; allowed: coco",)),
    Case("convert-format-one-path", lambda i: ["convert", "coco", str(i)], (r"convert coco takes a source and a destination folder", r"got 1"),),
    Case("convert-format-three-paths", lambda i: ["convert", "coco", "a", "b", "c"], (r"convert coco takes a source and a destination folder", r"got 3 \(a b c\)"),),
    Case("convert-interrupted", lambda i: ["convert", str(i / "demo.yaml")],
         (r"interrupted; nothing was half-written", r"run the same convert command again"), tiny_recipe, code=130,
         patch=lambda patch: patch.setattr("yolo_tools.convert.writer._stage", _interrupted_at_the_third()),
         check=lambda root, stderr: _no_dataset(root, stderr)),
    Case("unknown-verb", lambda i: ["fit", "recipe.yaml"], (r"invalid choice: 'fit'",)),
    Case("unknown-option", lambda i: ["val", "run", "--fast"], (r"unrecognized arguments: --fast",)),
]


@parametrize(CASES)
def test_case(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    run_case(case, tmp_path, monkeypatch, capfd)


@pytest.mark.parametrize(
    "pair, value",
    [("lr0=1e-3", 0.001), ("epochs=3", 3), ("amp=False", False), ("device=cpu", "cpu"), ("imgsz=[320,256]", [320, 256]),
     ("cache=None", None), ("conf=.25", 0.25), ("epochs=1e2", 100.0)],
)
def test_values_are_read_as_yolo_reads_them(pair: str, value) -> None:
    """`yolo`'s own reading (Ultralytics' smart_value), not YAML's: 1e-3 is a float, not the text '1e-3'."""
    key = pair.split("=")[0]
    parsed = parse_overrides([pair])[key]
    assert parsed == value and type(parsed) is type(value)


def test_integral_float_epochs_is_accepted_as_yolo_does() -> None:
    from yolo_tools.engine.args import check_types

    assert check_types({"epochs": 1e2, "lr0": 0.001}, "command line: ") == {"epochs": 100, "lr0": 0.001}
    with pytest.raises(UserError, match=r"command line: epochs: .*must be an int"):
        check_types({"epochs": 2.5}, "command line: ")

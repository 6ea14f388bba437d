"""Damaged run folders given to val, evaluate, report, export, inspect and `train --resume`, and trainings
that stop before their first epoch.

Each case copies one tiny finished run (trained once for the module) into its inputs and damages it: no
weights, weights that are garbage, empty or cut short, a recipe.yaml that is not YAML, not UTF-8, of
another version, or missing. The run is an input: it must come out unchanged.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

# Ultralytics binds its log handler to the sys.stdout of the moment it is first imported: imported here, at
# collection, that is pytest's session-long capture, not one case's (closed when the case ends, after which
# every Ultralytics log line would print a logging traceback).
import ultralytics  # noqa: F401, E402
from bad_input import TINY_RECIPE, Case, copy_run, logs_on_stderr, parametrize, run_case, train_tiny_run

RUN: dict[str, Path] = {}  # the module's tiny run, trained once by `_tiny_run`


@pytest.fixture(scope="module", autouse=True)
def _tiny_run(tmp_path_factory: pytest.TempPathFactory) -> None:
    RUN["run"] = train_tiny_run(tmp_path_factory.mktemp("tiny-run"))


@pytest.fixture(autouse=True)
def _warnings_on_stderr(capfd: pytest.CaptureFixture) -> None:
    with logs_on_stderr():
        yield


# --- damages ----------------------------------------------------------------------------------------------

Damage = Callable[[Path], None]


def _weights(content: Callable[[bytes], bytes], name: str = "best.pt") -> Damage:
    def damage(run: Path) -> None:
        path = run / "weights" / name
        path.write_bytes(content(path.read_bytes()))

    return damage


def _recipe(text: bytes | None) -> Damage:
    def damage(run: Path) -> None:
        if text is None:
            (run / "recipe.yaml").unlink()
        else:
            (run / "recipe.yaml").write_bytes(text)

    return damage


def _foreign_recipe(run: Path) -> None:
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    recipe["schema"] = 7  # a key a later version might write
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))


DAMAGES: dict[str, tuple[Damage, tuple[str, ...]]] = {
    "no-weights": (lambda run: shutil.rmtree(run / "weights"), (r"run: a run folder without weights/best\.pt", r"train again")),
    "garbage-best": (_weights(lambda _: b"garbage\n"), (r"best\.pt: not a readable Ultralytics weights file", r"train again")),
    "empty-best": (_weights(lambda _: b""), (r"best\.pt: not a readable Ultralytics weights file", r"weights/last\.pt")),
    "truncated-best": (_weights(lambda data: data[:4096]), (r"best\.pt: not a readable Ultralytics weights file", r"cut short")),
    "recipe-not-yaml": (_recipe(b"name: [demo\ntask: detect\n"), (r"recipe\.yaml: not valid YAML", r"restore it")),
    "recipe-not-utf8": (_recipe("name: d\xe9mo\n".encode("latin-1")), (r"recipe\.yaml: a recipe must be UTF-8", r"restore it")),
    "recipe-other-version": (_foreign_recipe, (r"recipe\.yaml: invalid recipe", r"schema: unknown key", r"another yolo-tools version")),
    "recipe-a-list": (_recipe(b"- demo\n- detect\n"), (r"recipe\.yaml: a recipe must be a YAML mapping", r"restore it")),
}
RECIPE_DAMAGES = [name for name in DAMAGES if name.startswith("recipe-")]
WEIGHT_DAMAGES = ["garbage-best", "empty-best", "truncated-best"]


def _operating_point(data: bytes) -> Damage:
    return lambda run: (run / "operating_point.json").write_bytes(data)


def _image(path: Path) -> None:
    cv2.imwrite(str(path), np.full((64, 64), 128, np.uint8))


_HELD: list[socket.socket] = []  # ports held by "another program" until the module ends


def _listening_port() -> int:
    """A port another program (a plain socket, not a FiftyOne App) listens on."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    _HELD.append(held)
    return held.getsockname()[1]


def damaged(name: str | None, *more: Damage) -> Callable[[Path], None]:
    def setup(inputs: Path) -> None:
        run = copy_run(RUN["run"], inputs / "run")
        if name:
            DAMAGES[name][0](run)
        for damage in more:
            damage(run)

    return setup


def verb(*words: str) -> Callable[[Path], list[str]]:
    return lambda inputs: [words[0], str(inputs / "run"), *words[1:]]


CASES: list[Case] = []
# val, evaluate and report read the recipe and load the weights; export loads the weights only.
for name in ("no-weights", *WEIGHT_DAMAGES, *RECIPE_DAMAGES):
    says = DAMAGES[name][1]
    loads_data = name in WEIGHT_DAMAGES  # the val split is converted (into datasets/) before the weights load
    writes = ("datasets",) if loads_data else ()
    CASES.append(Case(f"val-{name}", verb("val"), says, damaged(name), may_write=writes))
    CASES.append(Case(f"evaluate-{name}", verb("evaluate"), says, damaged(name), may_write=writes))
    CASES.append(Case(f"report-{name}", verb("report"), says, damaged(name), may_write=writes))
for name in ("no-weights", *WEIGHT_DAMAGES):
    CASES.append(Case(f"export-{name}", verb("export"), DAMAGES[name][1], damaged(name)))
for name in (*WEIGHT_DAMAGES, *RECIPE_DAMAGES):
    CASES.append(
        Case(f"predict-{name}", lambda i: ["predict", str(i / "run"), str(i / "scan.png"), "--out", str(i.parent / "out")],
             DAMAGES[name][1], damaged(name, lambda run: _image(run.parent / "scan.png")))
    )
for name in ("no-weights", *RECIPE_DAMAGES):
    CASES.append(Case(f"inspect-{name}", verb("inspect", "--no-app"), DAMAGES[name][1], damaged(name)))

CASES += [
    Case("val-no-recipe", verb("val"), (r"best\.pt: not inside a yolo-tools run", r"data=PATH"), damaged(None, _recipe(None))),
    Case("evaluate-no-recipe", verb("evaluate"), (r"run: evaluate needs a run folder made by yolo_tools train",), damaged(None, _recipe(None))),
    Case("report-no-recipe", verb("report"), (r"run: report needs a run folder made by yolo_tools train",), damaged(None, _recipe(None))),
    Case("inspect-no-recipe", verb("inspect", "--no-app"), (r"inspect needs a run folder",), damaged(None, _recipe(None))),
    Case("val-missing-run", verb("val"), (r"run: neither a run folder .* nor a weights file",)),
    Case("val-data-missing", verb("val", "data=nowhere.yaml"), (r"data=nowhere\.yaml: .*does not exist", r"give a dataset YAML"), damaged(None)),
    Case("val-conf-word", verb("val", "conf=low"), (r"command line: conf: .*float",), damaged(None)),
    Case("evaluate-conf-word", verb("evaluate", "conf=low"), (r"command line: conf: .*float",), damaged(None)),
    Case("report-iou-word", verb("report", "iou=x"), (r"command line: iou: .*float",), damaged(None)),
    Case("export-unknown-format", verb("export", "format=jpeg2000"), (r"export .*best\.pt: Invalid export format='jpeg2000'",), damaged(None)),
    Case("export-bool-word", verb("export", "dynamic=sometimes"), (r"command line: dynamic: .*bool",), damaged(None)),
    Case("inspect-conf-word", verb("inspect", "--no-app", "conf=low"), (r"command line: conf: .*float",), damaged(None)),
    # the threshold evaluate chose on val, damaged: predict, evaluate and inspect read it
    Case("predict-operating-point-not-json", lambda i: ["predict", str(i / "run"), str(i / "scan.png"), "--out", str(i.parent / "out")],
         (r"operating_point\.json: not an operating point yolo_tools evaluate wrote", r"Remove it and run yolo_tools evaluate"),
         damaged(None, lambda run: _image(run.parent / "scan.png"), _operating_point(b'{"conf": 0.3')), may_write=("out",)),
    Case("evaluate-operating-point-conf-word", verb("evaluate"), (r"operating_point\.json: not an operating point", r"conf= on the command line"),
         damaged(None, _operating_point(b'{"rule": "max F1", "conf": "high"}'))),
    Case("inspect-operating-point-out-of-range", verb("inspect", "--no-app"), (r"operating_point\.json: not an operating point", r"from 0 to 1"),
         damaged(None, _operating_point(b'{"rule": "max F1", "conf": 7}'))),
    # the App's port held by another program: refused before predicting, not after FiftyOne's wait
    Case("inspect-port-taken", lambda i: ["inspect", str(i / "run"), "--port", (i / "port.txt").read_text()],
         (r"--port \d+: another program is listening on 127\.0\.0\.1:\d+", r"choose a free port with --port"),
         damaged(None, lambda run: (run.parent / "port.txt").write_text(str(_listening_port())))),
    Case("predict-operating-point-deciding-nothing",
         lambda i: ["predict", str(i / "run"), str(i / "scan.png"), "--out", str(i.parent / "out")],
         (r"operating_point\.json: not an operating point", r"it holds conf, class_conf\s+or threshold"),
         damaged(None, lambda run: _image(run.parent / "scan.png"), _operating_point(b'{"rule": "max F1", "class_conf": {}}')), may_write=("out",)),
    # An earlier version stored conf 1.0 when val found nothing: every finding hidden. Said, and not used.
    Case("predict-operating-point-hiding-everything",
         lambda i: ["predict", str(i / "run"), str(i / "scan.png"), "--out", str(i.parent / "out")],
         (r"operating_point\.json: conf 1 hides every finding", r"Ultralytics' default conf applies", r"yolo_tools evaluate"),
         damaged(None, lambda run: _image(run.parent / "scan.png"), _operating_point(b'{"rule": "max F1", "conf": 1.0, "class_conf": {"finding": 1.0}}')),
         code=0),
    # --operating-point re-chooses a two-class classifier's threshold; on a detector it changed nothing, silently.
    Case("evaluate-operating-point-on-a-detector", verb("evaluate", "--operating-point", "sensitivity=0.9"),
         (r"--operating-point sensitivity=0\.9: chooses a two-class classifier's threshold", r"a detect run decides per class", r"give conf="),
         damaged(None)),
    # train --resume
    Case(
        "resume-finished-run",
        lambda i: ["train", "--resume", str(i / "run")],
        (r"run: this training is finished \(1 epochs", r"nothing to resume", r"yolo_tools train .*recipe\.yaml model=.*weights/last\.pt epochs=N"),
        damaged(None),
    ),
    Case("resume-no-last", lambda i: ["train", "--resume", str(i / "run")], (r"run: no weights/last\.pt to resume from", r"train again"),
         damaged(None, lambda run: (run / "weights" / "last.pt").unlink())),
    Case("resume-garbage-last", lambda i: ["train", "--resume", str(i / "run")], (r"last\.pt: not a readable Ultralytics weights file",),
         damaged(None, _weights(lambda _: b"\x80\x04garbage", "last.pt"))),
    Case("resume-empty-last", lambda i: ["train", "--resume", str(i / "run")], (r"last\.pt: not a readable Ultralytics weights file",),
         damaged(None, _weights(lambda _: b"", "last.pt"))),
    Case("resume-truncated-last", lambda i: ["train", "--resume", str(i / "run")], (r"last\.pt: not a readable Ultralytics weights file",),
         damaged(None, _weights(lambda data: data[: len(data) // 2], "last.pt"))),
    Case("resume-no-recipe", lambda i: ["train", "--resume", str(i / "run")], (r"run: no recipe\.yaml", r"yolo_tools train RECIPE"),
         damaged(None, _recipe(None))),
    Case("resume-bad-recipe", lambda i: ["train", "--resume", str(i / "run")], (r"recipe\.yaml: not valid YAML", r"restore it"),
         damaged("recipe-not-yaml")),
    Case("resume-missing-folder", lambda i: ["train", "--resume", str(i / "nowhere")], (r"nowhere: no such run folder",)),
    Case("resume-a-file", lambda i: ["train", "--resume", str(i / "run" / "recipe.yaml")], (r"recipe\.yaml: no such run folder",), damaged(None)),
]


# --- trainings that stop before their first epoch leave no run folder -------------------------------------


def _tiny_recipe(**train) -> Callable[[Path], None]:
    def setup(inputs: Path) -> None:
        recipe = {**TINY_RECIPE, "train": {**TINY_RECIPE["train"], **train}}
        (inputs / "demo.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))

    return setup


def _train(*extra: str) -> Callable[[Path], list[str]]:
    return lambda inputs: ["train", str(inputs / "demo.yaml"), "device=cpu", *extra]


CASES += [
    Case("train-model-missing", _train("model=nosuch.yaml"), (r"nosuch\.yaml: cannot load model",), _tiny_recipe(), may_write=("datasets",)),
    Case("train-model-garbage-weights", lambda i: [*_train()(i), f"model={i / 'garbage.pt'}"],
         (r"garbage\.pt: not a readable Ultralytics weights file",),
         lambda i: (_tiny_recipe()(i), (i / "garbage.pt").write_bytes(b"nope")), may_write=("datasets",)),
    Case("train-pretrained-garbage", lambda i: [*_train()(i), f"pretrained={i / 'garbage.pt'}"],
         (r"command line: pretrained: .*garbage\.pt: not a readable Ultralytics weights file",),
         lambda i: (_tiny_recipe()(i), (i / "garbage.pt").write_bytes(b"\x00" * 64))),
    Case("train-name-taken", lambda i: [*_train()(i), "--name", "train"], (r"train: a run of that name is already there", r"--resume"),
         lambda i: (_tiny_recipe()(i), copy_run(RUN["run"], i.parent / "runs" / "demo" / "train"))),
]


# --- a run's own training data given as an "outside" set: scored, with a caution on stderr and in summary.json ----


def _own_data_as_outside(inputs: Path) -> None:
    """The run (among the outputs: evaluate writes into it) and the very dataset it trained on, as a YOLO export."""
    copy_run(RUN["run"], inputs.parent / "runs" / "demo" / "train")
    shutil.copytree(RUN["run"].parents[2] / "datasets" / "demo", inputs / "export")


def _cautioned(root: Path, stderr: str) -> None:
    import json

    summary = json.loads((root / "runs" / "demo" / "train" / "eval-outside-export" / "summary.json").read_text())
    assert set(summary["seen_in_training"]) == {"train", "val"} and "no independent test" in summary["split_caveat"]
    assert summary["images"] == sum(len(names) for names in summary["seen_in_training"].values())


CASES += [
    Case("evaluate-outside-the-runs-own-data",
         lambda i: ["evaluate", str(i.parent / "runs" / "demo" / "train"), "--data", str(i / "export"), "--format", "yolo", "device=cpu"],
         (r"caution: 16 of the 16 images of this outside set are byte-identical to images of the run's own train split \(12",
          "no independent test"),
         _own_data_as_outside, code=0, may_write=("runs", "datasets"), check=_cautioned),
]


@parametrize(CASES)
def test_case(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    run_case(case, tmp_path, monkeypatch, capfd)


def test_val_rebuilds_a_removed_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    """`val` on a run whose converted dataset is gone converts it again, as `evaluate` does, and validates."""
    run = copy_run(RUN["run"], tmp_path / "runs" / "demo" / "train")
    case = Case("val-dataset-removed", lambda _: ["val", str(run), "device=cpu"], (r"converted .* into .*datasets/demo",), code=0)
    run_case(case, tmp_path, monkeypatch, capfd)
    assert (tmp_path / "datasets" / "demo" / "data.yaml").is_file()
    assert "val" in yaml.safe_load((run / "metrics.json").read_text())

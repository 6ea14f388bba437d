"""Broken recipes: not UTF-8, not YAML, wrong shape, wrong value types, and train arguments Ultralytics
itself refuses (checked by its own `check_cfg` before any conversion or training starts).

Every case runs `yolo_tools train RECIPE` (or `convert`, which must not need Ultralytics to read a recipe)
and must fail with one message naming the recipe file and the key, before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

# Ultralytics binds its log handler to the sys.stdout of the moment it is first imported: imported here, at
# collection, that is pytest's session-long capture, not one case's (closed when the case ends, after which
# every Ultralytics log line would print a logging traceback).
import ultralytics  # noqa: F401, E402
from bad_input import TINY_RECIPE, Case, parametrize, run_case


def recipe_bytes(data: bytes) -> Callable[[Path], None]:
    return lambda inputs: (inputs / "recipe.yaml").write_bytes(data)


def recipe_with(**changes: Any) -> Callable[[Path], None]:
    """The tiny demo recipe with dotted keys changed (`train__epochs="ten"`); None removes the key."""

    def setup(inputs: Path) -> None:
        recipe = yaml.safe_load(yaml.safe_dump(TINY_RECIPE))
        for dotted, value in changes.items():
            *parents, last = dotted.split("__")
            node = recipe
            for key in parents:
                node = node.setdefault(key, {})
            if value is None:
                node.pop(last, None)
            else:
                node[last] = value
        (inputs / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))

    return setup


def recipe_text(text: str) -> Callable[[Path], None]:
    return lambda inputs: (inputs / "recipe.yaml").write_text(text)


def train(inputs: Path) -> list[str]:
    return ["train", str(inputs / "recipe.yaml")]


def convert(inputs: Path) -> list[str]:
    return ["convert", str(inputs / "recipe.yaml")]


FILE = r"recipe\.yaml: "
CASES: list[Case] = [
    # --- the file itself
    Case("not-utf8-latin1", train, (FILE + r"a recipe must be UTF-8 text", r"Save it as UTF-8"), recipe_bytes("name: caf\xe9\n".encode("latin-1"))),
    Case("not-utf8-utf16", convert, (FILE + r"a recipe must be UTF-8",), recipe_bytes("name: demo\n".encode("utf-16"))),
    Case("binary-garbage", train, (FILE + r"a recipe must be UTF-8",), recipe_bytes(bytes(range(128, 256)) * 4)),
    Case("not-yaml", train, (FILE + r"not valid YAML",), recipe_text("name: demo\ntask: [detect\n")),
    Case("tab-indented", convert, (FILE + r"not valid YAML",), recipe_text("name: demo\ndata:\n\tconverter: x\n")),
    Case("empty-file", train, (FILE + r"a recipe must be a YAML mapping",), recipe_bytes(b"")),
    Case("a-list", train, (FILE + r"a recipe must be a YAML mapping",), recipe_text("- name\n- task\n")),
    Case("a-string", convert, (FILE + r"a recipe must be a YAML mapping",), recipe_text("just words\n")),
    Case("missing-file", lambda i: ["train", str(i / "nothing.yaml")], (r"nothing\.yaml: no such recipe file",)),
    Case("a-folder", lambda i: ["convert", str(i)], (r"in: no such recipe file",)),
    # --- the schema: the key named, with what is allowed
    Case("no-name", train, (FILE + r"invalid recipe", r"^  name: Field required"), recipe_with(name=None)),
    Case("name-with-spaces", train, (r"^  name: String should match pattern",), recipe_with(name="my demo")),
    Case("name-a-number", convert, (r"^  name: Input should be a valid string",), recipe_with(name=5)),
    Case("unknown-task", train, (r"^  task: Input should be 'detect', 'segment' or 'classify'",), recipe_with(task="track")),
    Case("classes-empty", train, (r"^  classes: List should have at least 1 item",), recipe_with(classes=[])),
    Case("classes-a-string", convert, (r"^  classes: Input should be a valid list",), recipe_with(classes="finding")),
    Case("classes-numbers", convert, (r"^  classes\.0: Input should be a valid string",), recipe_with(classes=[1, 2])),
    Case("classes-one-named-twice", convert, (FILE + r"invalid recipe", r"^  classes: 'finding' is named twice; name each class once"),
         recipe_with(classes=["finding", "finding"])),
    Case("classes-differing-only-in-case", convert, (r"^  classes: 'Finding' and 'finding' differ only in case",),
         recipe_with(classes=["Finding", "stone", "finding"])),
    Case("class-folders-two-classes-one-folder", convert, (r"^  classes: 'normal' and 'NORMAL' differ only in case", r"ignoring case"),
         recipe_with(task="classify", model="yolov8n-cls.yaml", classes=["normal", "NORMAL"],
                     data={"source": {"kind": "local", "path": "films"}, "converter": "class_folders"})),
    Case("no-data", train, (r"^  data: Field required",), recipe_with(data=None)),
    Case("data-a-string", train, (r"^  data: Input should be a valid dictionary",), recipe_with(data="somewhere")),
    Case("unknown-converter", convert, (r"data\.converter: 'csv_boxes' is unknown; allowed: ",), recipe_with(data__converter="csv_boxes")),
    Case("unknown-source-kind", train, (r"^  data\.source\.kind: Input should be 'local', 'roboflow', 'synthetic' or 'dicomweb'",),
         recipe_with(data__source__kind="s3")),
    Case("local-source-without-path", train, (r"data\.source: .*a local source needs 'path'",), recipe_with(data__source__kind="local")),
    Case("roboflow-source-version-missing", convert, (r"a roboflow source needs 'workspace', 'project' and 'version'",),
         recipe_with(data__source={"kind": "roboflow", "workspace": "w", "project": "p"})),
    Case("roboflow-version-a-word", convert, (r"^  data\.source\.version: Input should be a valid integer",),
         recipe_with(data__source={"kind": "roboflow", "workspace": "w", "project": "p", "version": "latest"})),
    Case("split-val-above-one", train, (r"^  data\.split\.val: Input should be less than 1",), recipe_with(data__split__val=1.5)),
    Case("split-val-a-word", train, (r"^  data\.split\.val: Input should be a valid number",), recipe_with(data__split__val="fifth")),
    Case("split-seed-a-word", convert, (r"^  data\.split\.seed: Input should be a valid integer",), recipe_with(data__split__seed="x")),
    Case("split-rule-not-a-regex", convert, (r"^  data\.split\.by: '\(' is neither 'source', 'file', a named rule nor a valid regex",),
         recipe_with(data__split__by="(")),
    Case("split-unknown-key", convert, (r"^  data\.split\.fraction: unknown key; allowed here: by, val, test, seed",),
         recipe_with(data__split__fraction=0.2)),
    Case("options-a-list", convert, (r"^  data\.options: Input should be a valid dictionary",), recipe_with(data__options=[1, 2])),
    Case("model-wrong-suffix", train, (r"^  model: .*must be an Ultralytics model YAML",), recipe_with(model="yolov8n")),
    Case("model-wrong-task", train, (r"model 'yolov8n-seg\.yaml' does not fit task 'detect'",), recipe_with(model="yolov8n-seg.yaml")),
    Case("class-balance-not-a-classifier", train, (r"class_balance: 'oversample' is for classify recipes", r"train\.cls_pw"), recipe_with(class_balance="oversample")),
    Case("class-balance-unknown", train, (FILE, r"class_balance: Input should be 'none' or 'oversample'"), recipe_with(class_balance="undersample")),
    Case("preprocess-context-too-big", convert, (r"^  preprocess\.context: Input should be less than or equal to 1",),
         recipe_with(preprocess={"context": 5})),
    Case("unknown-top-level-key", convert, (r"^  epochs: unknown key; allowed here: name, task",), recipe_with(epochs=3)),
    # --- predict: nnU-Net's test-time mirroring and post-processing, checked before any work
    Case("predict-flips-unknown", train, (FILE, r"^  predict\.flips\.0: Input should be 'horizontal' or 'vertical'",),
         recipe_with(predict={"flips": ["diagonal"]})),
    Case("predict-flips-twice", convert, (FILE, r"predict\.flips: .*name each flip once",), recipe_with(predict={"flips": ["vertical", "vertical"]})),
    Case("predict-flips-untrained", train, (FILE, r"predict\.flips: vertical needs train\.flipud > 0", r"set train\.flipud"),
         recipe_with(predict={"flips": ["vertical"]})),
    Case("predict-flips-fliplr-off", convert, (FILE, r"predict\.flips: horizontal needs train\.fliplr > 0",),
         recipe_with(predict={"flips": ["horizontal"]}, train__fliplr=0.0)),
    Case("predict-largest-component-detect", train, (FILE, r"predict\.largest_component: .*a detect recipe has no masks",),
         recipe_with(predict={"largest_component": "auto"})),
    Case("predict-largest-component-unknown", convert, (FILE, r"predict\.largest_component: Input should be 'off' or 'auto'",),
         recipe_with(predict={"largest_component": "always"})),
    Case("predict-unknown-key", convert, (r"^  predict\.tta: unknown key; allowed here: flips, largest_component",),
         recipe_with(predict={"tta": True})),
    Case("metadata-without-path", convert, (r"^  data\.metadata\.path: Field required",), recipe_with(data__metadata={"key": "patient"})),
    # --- train: names (read from Ultralytics' default.yaml as a file), then Ultralytics' own type checks
    Case("train-a-list", train, (r"^  train: Input should be a valid dictionary",), recipe_with(train=["epochs", 3])),
    Case("train-unknown-key", convert, (r"^  train: .*'epocs' is not an Ultralytics train argument \(did you mean: epochs",),
         recipe_with(train__epocs=3)),
    Case("train-reserved-key", convert, (r"^  train: .*'data' is set by yolo-tools from the recipe",), recipe_with(train__data="x.yaml")),
    Case("train-pretrained-a-word", train, (r"^  train: .*'pretrained' is true, false or weights",), recipe_with(train__pretrained="imagenet")),
    Case("train-epochs-a-word", train, (FILE + r"train\.epochs: 'epochs=ten' .*must be an int",), recipe_with(train__epochs="ten")),
    Case("train-epochs-fraction", train, (FILE + r"train\.epochs: .*must be an int",), recipe_with(train__epochs=2.5)),
    Case("train-epochs-zero", train, (FILE + r"train\.epochs: .*must be >= 1",), recipe_with(train__epochs=0)),
    Case("train-epochs-negative", train, (FILE + r"train\.epochs: .*must be >= 1",), recipe_with(train__epochs=-3)),
    Case("train-lr0-a-word", train, (FILE + r"train\.lr0: .*int .*or float",), recipe_with(train__lr0="fast")),
    Case("train-lr0-yaml-exponent", train, (FILE + r"train\.lr0: .*float", r"YAML reads '1e-3' as text", r"0\.001"),
         recipe_text(yaml.safe_dump(TINY_RECIPE).replace("epochs: 1", "epochs: 1\n  lr0: 1e-3"))),
    Case("train-lr0-above-one", train, (FILE + r"train\.lr0: .*between 0\.0 and 1\.0",), recipe_with(train__lr0=3)),
    Case("train-batch-a-word", train, (FILE + r"train\.batch: .*int .*or float",), recipe_with(train__batch="auto")),
    Case("train-plots-a-word", train, (FILE + r"train\.plots: .*must be a bool",), recipe_with(train__plots="yes please")),
    Case("train-mosaic-a-list", train, (FILE + r"train\.mosaic: .*float",), recipe_with(train__mosaic=[1, 2])),
    Case("train-imgsz-a-word", train, (FILE + r"train\.imgsz: .*imgsz",), recipe_with(train__imgsz="large")),
    Case("train-optimizer-a-number", train, (FILE + r"train\.optimizer: .*must be a str",), recipe_with(train__optimizer=3)),
    Case("train-patience-null", train, (FILE + r"train\.patience: .*must not be None",),
         recipe_text(yaml.safe_dump(TINY_RECIPE).replace("epochs: 1", "epochs: 1\n  patience: null"))),
]


@parametrize(CASES)
def test_case(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    run_case(case, tmp_path, monkeypatch, capfd)


def test_reading_a_recipe_does_not_import_ultralytics(tmp_path: Path) -> None:
    """convert, report and pull read recipes; checking train argument names must not load Ultralytics (torch)."""
    import subprocess
    import sys

    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({**TINY_RECIPE, "train": {"epochs": 3, "lr0": 0.01}}))
    code = (
        "import sys; from yolo_tools.recipe import load_recipe; "
        f"load_recipe({str(tmp_path / 'recipe.yaml')!r}); "
        "assert 'ultralytics' not in sys.modules and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'ultra' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)

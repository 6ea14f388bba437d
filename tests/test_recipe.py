from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import RECIPES
from yolo_tools.convert.checks import check
from yolo_tools.errors import UserError
from yolo_tools.recipe import load_recipe


def write(tmp_path: Path, recipe: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def kidney() -> dict:
    return yaml.safe_load((RECIPES / "kidney.yaml").read_text())


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_recipe_is_valid(path: Path) -> None:
    recipe = check(load_recipe(path))
    assert recipe.name == path.stem
    assert recipe.classes


def test_fingerprint_follows_data_not_training(tmp_path: Path) -> None:
    base = load_recipe(RECIPES / "kidney.yaml")
    changed_training = kidney() | {"train": {"epochs": 1}}
    changed_split = kidney()
    changed_split["data"]["split"]["seed"] = 7
    assert load_recipe(write(tmp_path, changed_training)).fingerprint() == base.fingerprint()
    assert load_recipe(write(tmp_path, changed_split)).fingerprint() != base.fingerprint()


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda r: r.update(task="detection"), ["task", "'detect', 'segment' or 'classify'"]),
        (lambda r: r.update(colour="red"), ["colour", "unknown key", "allowed here: name, task"]),
        (lambda r: r["data"]["source"].update(flavour=1), ["data.source.flavour", "allowed here: kind, path"]),
        (lambda r: r["train"].update(epocs=3), ["train", "'epocs' is not an Ultralytics train argument", "epochs"]),
        (lambda r: r["train"].update(data="x.yaml"), ["train", "'data' is set by yolo-tools"]),
        (lambda r: r["data"]["split"].update(val=1.5), ["data.split.val", "less than 1"]),
        (lambda r: r.update(model="yolov8n-seg.yaml"), ["does not fit task 'detect'"]),
        (lambda r: r.update(model="resnet50"), ["model", "Ultralytics model YAML"]),
        (lambda r: r.pop("classes"), ["classes", "Field required"]),
        (lambda r: r["data"]["source"].pop("workspace"), ["roboflow source needs 'workspace'"]),
        (lambda r: r["data"].update(converter="dicom2yolo"), ["data.converter", "'dicom2yolo' is unknown", "allowed:"]),
        (lambda r: r["data"].update(options={"min_aera": 5000}), ["data.options.min_aera", "unknown key", "takes: tiles"]),
        (
            lambda r: r["data"].update(converter="mask_images", options={"min_area": "ten"}),
            ["data.options.min_area", "valid integer", "'ten'"],
        ),
        (
            lambda r: r["data"].update(converter="hdf5_volumes", options={"empty": "maybe"}),
            ["data.options.empty", "'keep' or 'drop'"],
        ),
    ],
)
def test_bad_recipe_names_file_and_key(tmp_path: Path, edit, expected: list[str]) -> None:
    recipe = kidney()
    edit(recipe)
    path = write(tmp_path, recipe)
    with pytest.raises(UserError) as error:
        check(load_recipe(path))  # as a recipe is read for use: its file, then its converter's options
    message = str(error.value)
    assert message.startswith(f"{path}: invalid recipe")
    for fragment in expected:
        assert fragment in message


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(UserError, match="must be a YAML mapping"):
        load_recipe(path)
    with pytest.raises(UserError, match="no such recipe file"):
        load_recipe(tmp_path / "absent.yaml")
    path.write_text("name: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_recipe(path)


def test_preprocess_is_validated(tmp_path: Path) -> None:
    recipe = kidney() | {"preprocess": {"intensity": {"mode": "window", "center": 40, "width": 400}}}
    assert load_recipe(write(tmp_path, recipe)).preprocess.intensity.width == 400
    recipe["preprocess"] = {"intensity": {"mode": "window", "center": 40, "width": -1}}
    with pytest.raises(UserError, match="preprocess.intensity.window.width"):
        load_recipe(write(tmp_path, recipe))
    recipe["preprocess"] = {"intensity": {"mode": "gamma"}}
    with pytest.raises(UserError, match="preprocess.intensity"):
        load_recipe(write(tmp_path, recipe))


def test_reading_a_recipe_loads_only_its_own_converter(tmp_path: Path) -> None:
    """The converter registry names modules; checking a recipe imports its converter and no other."""
    import subprocess
    import sys

    path = write(tmp_path, {k: v for k, v in kidney().items() if k != "train"})  # train args would load Ultralytics
    code = (
        "import sys; from yolo_tools.recipe import load_recipe; from yolo_tools.convert.checks import check; "
        f"check(load_recipe({str(path)!r})); "
        "print(sorted(m for m in sys.modules if m.startswith(('yolo_tools.convert.', 'yolo_tools.inference.cascade'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'yolo_tools.convert.yolo_export'" in loaded
    for other in ("box_csv", "mask_images", "coco", "hdf5_volumes", "uw_madison_gi", "class_folders", "cascade"):
        assert other not in loaded, loaded

"""Cascade: lung fields from a tiny heart-seg run crop real Kermany films; a classifier trained on the crops
runs behind it in `predict`. Plus the crop box by hand and the recipe's checks of its new keys."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import RECIPES, SHARED_DATA, needs_data
from yolo_tools import pipeline
from yolo_tools.conversion import prepare
from yolo_tools.convert import region_crops
from yolo_tools.errors import UserError
from yolo_tools.recipe import load_recipe

QUICK = {"epochs": 1, "imgsz": 64, "batch": 8, "workers": 0, "plots": False, "device": "cpu"}


def test_crop_box_joins_kept_regions_with_a_margin() -> None:
    boxes = np.array([[10, 20, 30, 80], [60, 20, 90, 70], [40, 40, 50, 50]], float)
    classes = np.array([1, 2, 0])
    assert region_crops.crop_box(boxes, classes, [1, 2], (100, 100), 0.0) == (10, 20, 90, 80)
    assert region_crops.crop_box(boxes, classes, [1, 2], (100, 100), 0.1) == (2, 14, 98, 86)
    assert region_crops.crop_box(boxes, classes, None, (100, 100), 0.5) == (0, 0, 100, 100)  # clipped to the image
    assert region_crops.crop_box(boxes, classes, [3], (100, 100), 0.1) is None


def _recipe(tmp_path: Path, options: dict) -> Path:
    raw = yaml.safe_load((RECIPES / "pneumonia-lungs.yaml").read_text())
    raw["data"]["options"] = options
    path = tmp_path / "cascade.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_crop_options_are_checked_with_file_and_key(tmp_path: Path) -> None:
    base = str(RECIPES / "pneumonia.yaml")
    recipe = load_recipe(_recipe(tmp_path, {"recipe": base, "regions": "r", "margin": 2, "colour": 1}))
    with pytest.raises(UserError) as error:
        region_crops.options_of(recipe)
    assert "cascade.yaml: invalid recipe" in str(error.value)
    assert "data.options.margin: Input should be less than or equal to 1" in str(error.value)
    assert "data.options.colour: unknown key; region_crops takes: recipe, regions, classes, margin" in str(error.value)
    recipe = load_recipe(_recipe(tmp_path, {"recipe": str(RECIPES / "heart.yaml"), "regions": "r"}))
    with pytest.raises(UserError, match="data.options.recipe .* must be a classify recipe"):
        region_crops.base_recipe(recipe, region_crops.options_of(recipe))
    recipe = load_recipe(_recipe(tmp_path, {"recipe": base, "regions": str(tmp_path / "no-run")}))
    with pytest.raises(UserError, match="data.options.regions .*no-run': no such run folder"):
        prepare(recipe)


@pytest.mark.slow
@needs_data("heart-cxr-jsrt")
@needs_data("pneumonia-cxr-kermany")
def test_cascade_trains_on_crops_and_predicts_the_chain(workspace: Path, tmp_path: Path) -> None:
    regions, _ = pipeline.train_recipe(RECIPES / "heart-seg.yaml", {**QUICK, "fraction": 0.15}, name="cascade-regions")
    # A small base set of real Kermany films: 12 per class, patient-wise split by the recipe's own rule.
    for folder in ("NORMAL", "PNEUMONIA"):
        target = tmp_path / "kermany" / "train" / folder
        target.mkdir(parents=True)
        for image in sorted((SHARED_DATA / "pneumonia-cxr-kermany" / "train" / folder).iterdir())[:12]:
            shutil.copy(image, target / image.name)
    base = yaml.safe_load((RECIPES / "pneumonia.yaml").read_text())
    base["name"], base["data"]["source"]["path"] = "pneumonia-small", str(tmp_path / "kermany")
    (tmp_path / "pneumonia-small.yaml").write_text(yaml.safe_dump(base))
    path = _recipe(tmp_path, {"recipe": "pneumonia-small.yaml", "regions": str(regions), "classes": ["left_lung", "right_lung"]})

    run, metrics = pipeline.train_recipe(path, {**QUICK, "batch": 4}, name="quick")
    assert set(metrics) == {"top1_accuracy", "top5_accuracy"}
    crops = workspace / "datasets" / "pneumonia-lungs"
    original = workspace / "datasets" / "pneumonia-small"
    for split in ("train", "val"):  # same images, same split, same classes as the base recipe
        assert sorted(p.relative_to(crops).with_suffix("") for p in (crops / split).rglob("*.png")) == sorted(
            p.relative_to(original).with_suffix("") for p in (original / split).rglob("*.jpeg")
        )

    source = tmp_path / "in"
    source.mkdir()
    for image in sorted((original / "val").rglob("*.jpeg"))[:3]:
        shutil.copy(image, source / image.name)
    csv_path, json_path, count = pipeline.predict(run, str(source), tmp_path / "out", {"imgsz": 64})
    table = pd.read_csv(csv_path)
    assert count == 3 and len(table) == 3 and set(table["class_name"]) <= {"normal", "pneumonia"}
    assert table["confidence"].between(0.5, 1).all()
    assert ((table["x2"] <= 224) & (table["y2"] <= 224) & (table["x1"] < table["x2"])).all()
    assert len(list((tmp_path / "out").glob("*.jpg"))) == 3

"""COCO JSON and label-map masks through Ultralytics' own converters, and `yolo_tools convert FORMAT SRC DST`."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import SHARED_DATA, needs_data
from yolo_tools.cli import main
from yolo_tools.codecs.polygons import dice, mask_to_polygons, polygons_to_mask
from yolo_tools.conversion import convert_folder
from yolo_tools.errors import UserError

pytestmark = needs_data("heart-cxr-jsrt")
HEART = SHARED_DATA / "heart-cxr-jsrt"
NAMES = ["JPCLN001", "JPCLN002", "JPCLN003", "JPCLN004", "JPCLN006", "JPCLN007"]


def _heart_rows() -> dict[str, dict]:
    with (HEART / "heart_boxes.csv").open(newline="") as handle:
        return {row["name"]: row for row in csv.DictReader(handle)}


def _coco_source(tmp_path: Path) -> Path:
    """A COCO file from real heart boxes and outlines, with one background, one bad box, one unknown category."""
    src = tmp_path / "coco"
    (src / "images").mkdir(parents=True)
    rows = _heart_rows()
    images, annotations = [], []
    for image_id, name in enumerate(NAMES, 1):
        shutil.copyfile(HEART / "images" / f"{name}.png", src / "images" / f"{name}.png")
        images.append({"id": image_id, "file_name": f"{name}.png", "width": 512, "height": 512})
        if name == "JPCLN007":
            continue  # listed without annotations: a background
        row = rows[name]
        box = [float(row[k]) for k in ("x0", "y0", "w", "h")]
        if name == "JPCLN004":
            box[0] = 450.0  # runs off the right edge
        mask = cv2.imread(str(HEART / "masks" / "heart" / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
        outline = (mask_to_polygons(mask, min_area=50)[0] * 512).reshape(-1).tolist()
        category = 2 if name == "JPCLN006" else 1
        annotations.append({"id": image_id, "image_id": image_id, "category_id": category, "bbox": box,
                            "area": box[2] * box[3], "iscrowd": 0, "segmentation": [outline]})
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "heart"}, {"id": 2, "name": "liver"}]}
    (src / "annotations.json").write_text(json.dumps(coco))
    return src


def _labels(dst: Path) -> dict[str, list[str]]:
    return {p.stem: p.read_text().splitlines() for p in dst.glob("labels/*/*.txt")}


def test_coco_boxes_match_the_csv_converter(tmp_path: Path) -> None:
    src = _coco_source(tmp_path)
    card = convert_folder("coco", src, tmp_path / "coco-yolo", options={}, split_by="file", val=0.34)
    assert card["classes"] == ["heart", "liver"] and card["task"] == "detect"
    assert card["skipped"] == [next(s for s in card["skipped"] if "JPCLN004" in s)]
    assert re.search(r"JPCLN004\.png: annotation 4: bbox .* lies outside the 512x512 image", card["skipped"][0])
    labels = _labels(tmp_path / "coco-yolo")
    assert labels["JPCLN007"] == [] and labels["JPCLN006"][0].startswith("1 ")
    # the boxes of the published CSV, to Ultralytics' 6 significant digits
    rows = _heart_rows()
    for name in ("JPCLN001", "JPCLN002", "JPCLN003"):
        x0, y0, w, h = (float(rows[name][k]) for k in ("x0", "y0", "w", "h"))
        expected = [0, (x0 + w / 2) / 512, (y0 + h / 2) / 512, w / 512, h / 512]
        np.testing.assert_allclose(np.array(labels[name][0].split(), float), expected, atol=2e-6)
    assert not list(tmp_path.glob("*.partial-*")) and (tmp_path / "coco-yolo" / "card.md").is_file()


def test_coco_outlines_for_segmentation_and_unknown_classes(tmp_path: Path) -> None:
    from yolo_tools.convert import coco
    from yolo_tools.recipe import Data, Recipe, Source

    src = _coco_source(tmp_path)
    recipe = Recipe(name="heart-coco", task="segment", model="yolov8n-seg.yaml", classes=["heart"],
                    data=Data(source=Source(path=str(src)), converter="coco", split={"by": "file"}))
    found = {s.name: s for s in coco.samples(src, recipe)}
    with pytest.raises(Exception, match="category 'liver' is not in the recipe's classes"):
        found["JPCLN006"].labels()
    (line,) = found["JPCLN001"].labels()
    polygon = np.array(line.split()[1:], float).reshape(-1, 2)
    original = cv2.imread(str(HEART / "masks" / "heart" / "JPCLN001.png"), cv2.IMREAD_GRAYSCALE)
    assert line.startswith("0 ") and dice(polygons_to_mask([polygon], original.shape), original) > 0.98


def test_label_map_masks_through_ultralytics(tmp_path: Path) -> None:
    """Plain label maps (pixel value = class + 1): Ultralytics' converter, one class per pixel."""
    src = tmp_path / "labelmaps"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    for name in NAMES[:4]:
        shutil.copyfile(HEART / "images" / f"{name}.png", src / "images" / f"{name}.png")
        labels = np.zeros((512, 512), np.uint8)
        for value, organ in enumerate(["left_lung", "right_lung", "heart"], 1):  # heart painted over the lungs
            labels[cv2.imread(str(HEART / "masks" / organ / f"{name}.png"), 0) > 0] = value
        cv2.imwrite(str(src / "masks" / f"{name}.png"), labels)
    cv2.imwrite(str(src / "masks" / "ORPHAN.png"), np.zeros((512, 512), np.uint8))
    card = convert_folder("masks", src, tmp_path / "out")
    assert card["classes"] == ["class1", "class2", "class3"]
    assert card["skipped"] == [f"{src / 'masks' / 'ORPHAN.png'}: mask {src / 'masks' / 'ORPHAN.png'} has no image"]
    labels = _labels(tmp_path / "out")
    assert {line.split()[0] for line in labels["JPCLN001"]} == {"0", "1", "2"}
    heart = [np.array(l.split()[1:], float).reshape(-1, 2) for l in labels["JPCLN001"] if l.startswith("2 ")]
    original = cv2.imread(str(HEART / "masks" / "heart" / "JPCLN001.png"), 0)
    assert dice(polygons_to_mask(heart, original.shape), original) > 0.98


def test_cli_convert_format_src_dst(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = _coco_source(tmp_path)
    assert main(["convert", "coco", str(src), str(tmp_path / "cli-out"), "--task", "segment", "--val", "0.4"]) == 0
    card = json.loads((tmp_path / "cli-out" / "card.json").read_text())
    # segment labels are the outlines, which stay inside the image even where the box was moved off it
    assert card["task"] == "segment" and card["split"]["val"] == 0.4 and card["skipped"] == []
    assert (tmp_path / "cli-out" / "data.yaml").is_file()
    organs_src = tmp_path / "organs-src"
    for name in NAMES[:3]:
        for sub in ("images", "masks/heart", "masks/left_lung", "masks/right_lung"):
            (organs_src / sub).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(HEART / sub / f"{name}.png", organs_src / sub / f"{name}.png")
    assert main(["convert", "masks", str(organs_src), str(tmp_path / "organs")]) == 0
    organs = json.loads((tmp_path / "organs" / "card.json").read_text())
    assert organs["classes"] == ["heart", "left_lung", "right_lung"]
    assert main(["convert", "analyze", str(src), str(tmp_path / "x")]) == 2
    assert "format 'analyze' is unknown" in capsys.readouterr().err
    assert main(["convert", "coco", str(src)]) == 2


def test_coco_needs_one_json_or_a_name(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    with pytest.raises(UserError, match="0 JSON files here"):
        convert_folder("coco", tmp_path / "src", tmp_path / "out")

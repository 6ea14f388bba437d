"""Heart (boxes from a CSV), heart-seg (per-organ masks) and pneumonia (class folders) from their published formats.

Each converter runs on the real shared data; bad inputs are small copies in tmp_path; then one short real
training per recipe (1 epoch, tiny images, a fraction of the train split).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from conftest import RECIPES, SHARED_DATA, needs_data
from yolo_tools import pipeline
from yolo_tools.codecs.polygons import dice, polygons_to_mask
from yolo_tools.conversion import prepare
from yolo_tools.convert import box_csv, class_folders
from yolo_tools.convert.splits import group_keys
from yolo_tools.convert.writer import write_dataset
from yolo_tools.recipe import load_recipe

HEART = SHARED_DATA / "heart-cxr-jsrt"
PNEUMONIA = SHARED_DATA / "pneumonia-cxr-kermany"
PNEUMONIA_RULE = r"^(person\d+|IM-\d+|NORMAL2-IM-\d+)"


def _card(data: Path) -> dict:
    folder = data if data.is_dir() else data.parent
    return json.loads((folder / "card.json").read_text())


def _convert(recipe, src: Path, dst: Path) -> dict:
    from yolo_tools.convert.registry import converter

    return write_dataset(converter(recipe.data.converter).samples(src, recipe), dst, recipe, str(src))


# ---------------------------------------------------------------- heart: boxes in a CSV


@needs_data("heart-cxr-jsrt")
def test_heart_boxes_from_the_real_csv() -> None:
    data = prepare(load_recipe(RECIPES / "heart.yaml"))
    card = _card(data)
    assert card["skipped"] == []
    assert card["counts"]["train"]["images"] + card["counts"]["val"]["images"] == 198
    assert card["counts"]["train"]["heart"] + card["counts"]["val"]["heart"] == 198
    label = next(data.parent.glob("labels/*/JPCLN001.txt")).read_text().split()
    # CSV: heart,213,209,184,176,JPCLN001,512,512 -> centre (305, 297), size 184 x 176, over 512
    assert label == ["0", f"{305 / 512:.6f}", f"{297 / 512:.6f}", f"{184 / 512:.6f}", f"{176 / 512:.6f}"]


def _bad_box_source(tmp_path: Path) -> Path:
    src = tmp_path / "boxes"
    (src / "images").mkdir(parents=True)
    for name in ("JPCLN001", "JPCLN002", "JPCLN003", "JPCLN004", "JPCLN006"):
        shutil.copyfile(HEART / "images" / f"{name}.png", src / "images" / f"{name}.png")
    (src / "images" / "BROKEN.png").write_bytes(b"not a png at all")
    rows = [
        "label,x0,y0,w,h,name,img_shape_x,img_shape_y,nodule",
        "heart,213,209,184,176,JPCLN001,512,512,1",  # fine
        "heart,400,209,184,176,JPCLN002,512,512,1",  # runs off the right edge
        "liver,180,208,186,112,JPCLN003,512,512,1",  # not a recipe class
        "heart,10,10,50,50,JPCLN999,512,512,0",  # no such image
        "heart,10,10,50,50,BROKEN,512,512,0",  # undecodable image
        "heart,10,10,50,50,JPCLN006,512,512,0",  # two boxes on one image
        "heart,60,60,50,50,JPCLN006,512,512,0",
    ]  # JPCLN004 has no row
    (src / "boxes.csv").write_text("\n".join(rows) + "\n")
    return src


@needs_data("heart-cxr-jsrt")
def test_heart_bad_inputs_are_skipped_with_file_and_reason(tmp_path: Path) -> None:
    src = _bad_box_source(tmp_path)
    recipe = load_recipe(RECIPES / "heart.yaml").model_copy(deep=True)
    recipe.data.options.update(csv="boxes.csv")
    card = _convert(recipe, src, tmp_path / "out")
    skipped = "\n".join(card["skipped"])
    assert len(card["skipped"]) == 5, skipped
    assert re.search(r"JPCLN002\.png: boxes\.csv line 3: box .* outside the 512x512 image", skipped)
    assert re.search(r"JPCLN003\.png: boxes\.csv line 4: class 'liver' is not in the recipe's classes", skipped)
    assert re.search(r"name 'JPCLN999'\): boxes\.csv line 5: image .*JPCLN999\.png not found", skipped)
    assert re.search(r"BROKEN\.png: not an image file", skipped)
    assert re.search(r"JPCLN004\.png: no row for 'JPCLN004' in boxes\.csv", skipped)
    counts = card["counts"]["train"]
    assert sum(c.get("images", 0) for c in card["counts"].values()) == 2
    assert sum(c.get("heart", 0) for c in card["counts"].values()) == 3
    assert counts.get("backgrounds", 0) == 0


def test_box_csv_needs_its_columns(tmp_path: Path) -> None:
    from yolo_tools.errors import UserError

    (tmp_path / "images").mkdir()
    (tmp_path / "b.csv").write_text("class,x,y\nheart,1,2\n")
    with pytest.raises(UserError, match=r"missing columns \['label', 'x0'"):
        box_csv.read_rows(tmp_path / "b.csv")


# ---------------------------------------------------------------- heart-seg: one binary mask per organ


@needs_data("heart-cxr-jsrt")
def test_heart_seg_polygons_match_the_published_masks() -> None:
    recipe = load_recipe(RECIPES / "heart-seg.yaml")
    data = prepare(recipe)
    card = _card(data)
    assert card["skipped"] == []
    for organ in recipe.classes:
        assert card["counts"]["train"][organ] + card["counts"]["val"][organ] == 198
    scores = {organ: [] for organ in recipe.classes}
    for label_file in sorted(data.parent.glob("labels/*/*.txt")):
        polygons = {organ: [] for organ in recipe.classes}
        for line in label_file.read_text().splitlines():
            values = line.split()
            polygons[recipe.classes[int(values[0])]].append(np.array(values[1:], float).reshape(-1, 2))
        for organ, found in polygons.items():
            original = cv2.imread(str(HEART / "masks" / organ / f"{label_file.stem}.png"), cv2.IMREAD_GRAYSCALE)
            scores[organ].append(dice(polygons_to_mask(found, original.shape), original))
    for organ, values in scores.items():
        assert len(values) == 198 and min(values) > 0.98, organ
    # The heart overlaps the lungs' outlines: both classes keep the shared pixels.
    heart = cv2.imread(str(HEART / "masks" / "heart" / "JPCLN001.png"), 0) > 0
    lungs = (cv2.imread(str(HEART / "masks" / "left_lung" / "JPCLN001.png"), 0) > 0) | (
        cv2.imread(str(HEART / "masks" / "right_lung" / "JPCLN001.png"), 0) > 0
    )
    assert (heart & lungs).sum() > 0


@needs_data("heart-cxr-jsrt")
def test_mask_bad_inputs_are_skipped_with_file_and_reason(tmp_path: Path) -> None:
    src = tmp_path / "seg"
    organs = ["heart", "left_lung", "right_lung"]
    (src / "images").mkdir(parents=True)
    for organ in organs:
        (src / "masks" / organ).mkdir(parents=True)
    for name in ("JPCLN001", "JPCLN002", "JPCLN003", "JPCLN004", "JPCLN007"):  # two whole: a split needs two
        shutil.copyfile(HEART / "images" / f"{name}.png", src / "images" / f"{name}.png")
        for organ in organs:
            shutil.copyfile(HEART / "masks" / organ / f"{name}.png", src / "masks" / organ / f"{name}.png")
    (src / "masks" / "right_lung" / "JPCLN002.png").unlink()  # a missing mask
    small = cv2.resize(cv2.imread(str(HEART / "masks" / "heart" / "JPCLN003.png"), 0), (256, 256))
    cv2.imwrite(str(src / "masks" / "heart" / "JPCLN003.png"), small)  # wrong size
    (src / "masks" / "left_lung" / "JPCLN004.png").write_bytes(b"garbage")  # undecodable
    shutil.copyfile(HEART / "masks" / "heart" / "JPCLN006.png", src / "masks" / "heart" / "JPCLN006.png")  # no image
    card = _convert(load_recipe(RECIPES / "heart-seg.yaml"), src, tmp_path / "out")
    skipped = "\n".join(card["skipped"])
    assert len(card["skipped"]) == 4, skipped
    assert re.search(r"JPCLN002\.png: no mask right_lung/JPCLN002\.\* for this image", skipped)
    assert re.search(r"JPCLN003\.png: mask .*heart/JPCLN003\.png is 256x256 but its image is 512x512", skipped)
    assert re.search(r"JPCLN004\.png: mask .*left_lung/JPCLN004\.png: not an image file", skipped)
    assert re.search(r"heart/JPCLN006\.png: mask .*JPCLN006\.png has no image", skipped)
    assert sum(c.get("images", 0) for c in card["counts"].values()) == 2


# ---------------------------------------------------------------- pneumonia: class folders


def test_pneumonia_patient_rule_on_the_name_patterns() -> None:
    names = ["person1000_bacteria_2931", "person1000_virus_1681", "person447_virus_921_1", "IM-0115-0001",
             "IM-0429-0001-0002", "NORMAL2-IM-0383-0001", "NORMAL2-IM-0587-0001-0002"]
    assert group_keys(names, PNEUMONIA_RULE) == [
        "person1000", "person1000", "person447", "IM-0115", "IM-0429", "NORMAL2-IM-0383", "NORMAL2-IM-0587"
    ]
    assert load_recipe(RECIPES / "pneumonia.yaml").data.split.by == PNEUMONIA_RULE


@needs_data("pneumonia-cxr-kermany")
def test_pneumonia_split_by_patient_and_duplicates_once() -> None:
    import hashlib

    data = prepare(load_recipe(RECIPES / "pneumonia.yaml"))
    card = _card(data)
    published = {c: len(list((PNEUMONIA / "train" / c).glob("*.jpeg"))) for c in ("NORMAL", "PNEUMONIA")}
    assert published == {"NORMAL": 1341, "PNEUMONIA": 3875}
    duplicates = [s for s in card["skipped"] if "byte-identical duplicate" in s]
    assert len(duplicates) == len(card["skipped"]) == 26  # 24 groups of identical files, 50 files in all
    kept = {split: [p for p in (data / split).rglob("*.jpeg")] for split in ("train", "val")}
    assert sum(map(len, kept.values())) == 5216 - 26
    assert {p.parent.name for p in kept["train"]} == {"normal", "pneumonia"}
    patients = {split: set(group_keys([p.stem for p in files], PNEUMONIA_RULE)) for split, files in kept.items()}
    assert not patients["train"] & patients["val"]
    digests = {split: [hashlib.sha256(p.read_bytes()).hexdigest() for p in files] for split, files in kept.items()}
    assert len(set(digests["train"]) | set(digests["val"])) == 5216 - 26  # every kept picture is unique
    assert 0.15 < len(kept["val"]) / 5190 < 0.25


def test_class_folders_skip_unreadable_unknown_duplicates_and_conflicting_labels(tmp_path: Path) -> None:
    src = tmp_path / "folders"
    for folder in ("NORMAL", "PNEUMONIA", "OTHER"):
        (src / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(src / "NORMAL" / f"IM-{i:04d}-0001.jpeg"), rng.integers(0, 255, (32, 32), np.uint8))
        cv2.imwrite(str(src / "PNEUMONIA" / f"person{i}_virus_{i}.jpeg"), rng.integers(0, 255, (32, 32), np.uint8))
    shutil.copyfile(src / "NORMAL" / "IM-0000-0001.jpeg", src / "PNEUMONIA" / "person9_virus_9.jpeg")  # two classes
    shutil.copyfile(src / "NORMAL" / "IM-0001-0001.jpeg", src / "NORMAL" / "IM-0009-0001.jpeg")  # one class, twice
    (src / "NORMAL" / "IM-0100-0001.jpeg").write_bytes(b"\xff\xd8 truncated")
    cv2.imwrite(str(src / "OTHER" / "person7_x_1.jpeg"), rng.integers(0, 255, (32, 32), np.uint8))
    recipe = load_recipe(RECIPES / "pneumonia.yaml").model_copy(deep=True)
    recipe.data.options.update(folder=".")
    found = class_folders.samples(src, recipe)
    by_name = {s.name: s for s in found}
    assert by_name["person9_virus_9"].group == by_name["IM-0000-0001"].group  # tied by content
    card = write_dataset(found, tmp_path / "out", recipe, str(src))
    skipped = "\n".join(card["skipped"])
    assert len(card["skipped"]) == 5, skipped
    assert re.search(r"IM-0100-0001\.jpeg: not an image file", skipped)
    assert re.search(r"IM-0009-0001\.jpeg: byte-identical duplicate of .*IM-0001-0001\.jpeg", skipped)
    assert re.search(r"person9_virus_9\.jpeg: conflicting labels: .* also filed as 'normal'", skipped)
    assert re.search(r"IM-0000-0001\.jpeg: conflicting labels: .* also filed as 'pneumonia'", skipped)
    assert re.search(r"OTHER/person7_x_1\.jpeg: class 'OTHER' is not in the recipe's classes", skipped)


# ---------------------------------------------------------------- one short real training per recipe

QUICK = {"epochs": 1, "imgsz": 96, "batch": 8, "workers": 0, "plots": False, "device": "cpu"}
TRAININGS = {
    "heart": ("heart-cxr-jsrt", {"fraction": 0.1}, {"precision", "recall", "mAP50", "mAP50-95"}),
    "heart-seg": (
        "heart-cxr-jsrt",
        {"fraction": 0.1},
        {"precision", "recall", "mAP50", "mAP50-95", "box_precision", "box_recall", "box_mAP50", "box_mAP50-95"},
    ),
    "pneumonia": (
        "pneumonia-cxr-kermany", {"fraction": 0.02, "imgsz": 64, "batch": 16}, {"top1_accuracy", "top5_accuracy"}
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TRAININGS))
def test_short_real_training(name: str, workspace: Path) -> None:
    folder, extra, keys = TRAININGS[name]
    if not (SHARED_DATA / folder).is_dir():
        pytest.skip(f"{SHARED_DATA / folder} not present")
    run_dir, metrics = pipeline.train_recipe(RECIPES / f"{name}.yaml", {**QUICK, **extra}, name="quick")
    assert run_dir == workspace / "runs" / name / "quick"
    assert set(metrics) == keys and all(0.0 <= v <= 1.0 for v in metrics.values())
    assert (run_dir / "weights" / "best.pt").is_file() and (run_dir / "results.csv").is_file()
    assert json.loads((run_dir / "metrics.json").read_text())["val"] == metrics
    saved = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    assert saved["name"] == name and saved["train"]["epochs"] == 1
    args = yaml.safe_load((run_dir / "args.yaml").read_text())
    assert args["fraction"] == extra["fraction"] and args["fliplr"] == (0.0 if name.startswith("heart") else 0.5)

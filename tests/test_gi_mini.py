"""GI on real scans: the 36 real slices of gi-mini (colour-coded masks) to a segmentation run with per-organ Dice.

The recipe names official weights (yolov8n-seg.pt); the download is made to fail here as it does offline,
so the run also shows the fallback to training from scratch.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import RECIPES, SHARED_DATA, needs_data, read_polygons
from test_convert_gi import organ_masks
from yolo_tools import pipeline
from yolo_tools.codecs import mask_png
from yolo_tools.codecs.polygons import dice, polygons_to_mask
from yolo_tools.conversion import dataset_dir, prepare
from yolo_tools.convert.mask_images import colour_classes
from yolo_tools.errors import UserError
from yolo_tools.recipe import load_recipe

MINI = SHARED_DATA / "gi-tract-mri-uwmadison-mini"
CLASSES = ["large_bowel", "small_bowel", "stomach"]
QUICK = {"epochs": 1, "imgsz": 64, "batch": 8, "workers": 0, "plots": False, "device": "cpu"}

pytestmark = needs_data("gi-tract-mri-uwmadison-mini")


def _offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Ultralytics' downloader fails as it does without a network; the URLs it was asked for are recorded."""
    from ultralytics.utils import downloads

    asked: list[str] = []

    def no_network(url, *args, **kwargs):
        asked.append(url)
        raise ConnectionError(f"Download failure for {url}. Environment may be offline.")

    monkeypatch.setattr(downloads, "safe_download", no_network)
    return asked


def test_colour_masks_decode_to_organs_split_by_case() -> None:
    recipe = load_recipe(RECIPES / "gi-mini.yaml")
    prepare(recipe)
    dataset = dataset_dir(recipe)
    names = {split: sorted(p.stem for p in (dataset / "images" / split).iterdir()) for split in ("train", "val")}
    assert len(names["train"]) + len(names["val"]) == 36
    cases = {split: {re.match(r"(case\d+)_", n).group(1) for n in found} for split, found in names.items()}
    assert cases["val"] and not cases["train"] & cases["val"], "a case on both sides of the split"

    scores: dict[str, list[float]] = {name: [] for name in CLASSES}
    decoded: dict[str, list[float]] = {name: [] for name in CLASSES}
    for split, found in names.items():
        for name in found:
            colour = cv2.imread(str(MINI / "masks" / f"{name}.png"))[..., ::-1]
            published = organ_masks(colour)  # an independent reading: each channel thresholded halfway
            polygons = read_polygons(dataset / "labels" / split / f"{name}.txt")
            kept = mask_png.load(dataset / "masks" / split / f"{name}.png", len(CLASSES))
            for class_id, organ in enumerate(CLASSES):
                if not published[organ].any():
                    assert class_id not in polygons and not kept[class_id].any()
                    continue
                decoded[organ].append(dice(kept[class_id], published[organ]))
                if published[organ].sum() >= 100:  # specks (a 9-pixel stomach) fall under min_area by design
                    redrawn = polygons_to_mask(polygons.get(class_id, []), colour.shape[:2])
                    scores[organ].append(dice(redrawn, published[organ]))
    for organ in CLASSES:
        assert np.mean(decoded[organ]) > 0.98 and min(decoded[organ]) > 0.9, (organ, decoded[organ])
        assert len(scores[organ]) >= 5 and np.mean(scores[organ]) > 0.95 and min(scores[organ]) > 0.85, (organ, scores[organ])


COMPETITION = SHARED_DATA / "gi-tract-mri-uwmadison"


@needs_data("gi-tract-mri-uwmadison")
def test_colour_legend_matches_the_competition_labels() -> None:
    """The recipe's colour for each organ, decoded as the converter decodes it, against the competition's own
    run-length labels of the same 36 slices (train.csv, decoded at the scan's size and resized to gi-mini's 512
    px): each organ must match its own colour, not the other bowel's (the source repository's legend swaps them)."""
    from yolo_tools.codecs.rle import decode

    recipe = load_recipe(RECIPES / "gi-mini.yaml")
    palette = np.array([recipe.data.options["colours"][organ] for organ in CLASSES])
    names = sorted(p.stem for p in (MINI / "masks").glob("*.png"))
    table = pd.read_csv(COMPETITION / "train.csv", dtype=str, keep_default_na=False).query("id in @names")
    sizes = pd.read_csv(COMPETITION / "slice_meta.csv").set_index("id").loc[names, ["height", "width"]]
    assert len(table) == 3 * len(names) == 108
    counts = np.zeros((len(CLASSES), len(CLASSES), 3))  # (gi-mini class, competition class, (shared, mini, competition))
    independent = np.zeros((len(CLASSES), 3))
    for name in names:
        colour = cv2.imread(str(MINI / "masks" / f"{name}.png"))[..., ::-1]
        mini = colour_classes(colour, palette)  # what the converter reads with the recipe's colours
        rows = table[table["id"] == name].set_index("class")["segmentation"]
        shape = tuple(int(v) for v in sizes.loc[name])
        truth = np.stack([
            cv2.resize(decode(rows[organ], shape), colour.shape[1::-1], interpolation=cv2.INTER_NEAREST).astype(bool)
            for organ in CLASSES
        ])
        for i in range(len(CLASSES)):
            for j in range(len(CLASSES)):
                counts[i, j] += [(mini[i] & truth[j]).sum(), mini[i].sum(), truth[j].sum()]
        thresholded = organ_masks(colour)  # the tests' own reading of the colours, channel by channel
        for j, organ in enumerate(CLASSES):
            mask = thresholded[organ].astype(bool)
            independent[j] += [(mask & truth[j]).sum(), mask.sum(), truth[j].sum()]
    dice = 2 * counts[..., 0] / (counts[..., 1] + counts[..., 2])  # (gi-mini class, competition class), pooled
    assert (np.diag(dice) > 0.95).all(), dict(zip(CLASSES, np.diag(dice).round(3)))
    assert (dice.argmax(1) == np.arange(len(CLASSES))).all(), dice.round(3)  # each colour is its own organ's best match
    own = 2 * independent[:, 0] / (independent[:, 1] + independent[:, 2])
    assert (own > 0.95).all(), dict(zip(CLASSES, own.round(3)))


def test_blended_edges_split_halfway_and_tolerance_drops_other_colours() -> None:
    palette = np.array([[0, 200, 0], [255, 255, 0], [255, 0, 0]])
    # green, yellow, red; dimmed yellow past and before half; yellow-green blends; stomach blended with black; blue
    pixels = np.array([[[0, 190, 0], [240, 250, 5], [200, 20, 0], [140, 140, 0], [115, 115, 0], [200, 240, 0],
                        [60, 210, 0], [100, 0, 0], [0, 0, 255]]], np.uint8)
    found = colour_classes(pixels, palette)[:, 0]
    assert found.any(0).tolist() == [1, 1, 1, 1, 0, 1, 1, 0, 0]
    assert found.argmax(0)[found.any(0)].tolist() == [0, 1, 2, 1, 1, 0]
    strict = colour_classes(np.array([[[90, 30, 200], [240, 250, 5]]], np.uint8), palette, tolerance=60)[:, 0]
    assert strict.any(0).tolist() == [0, 1]  # purple is no blend of the colours: background


def test_every_class_needs_a_colour(tmp_path: Path) -> None:
    raw = yaml.safe_load((RECIPES / "gi-mini.yaml").read_text())
    del raw["data"]["options"]["colours"]["stomach"]
    raw["name"] = "gi-mini-bad"
    path = tmp_path / "gi-mini-bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match=r"data\.options\.colours: .*missing \['stomach'\]"):
        prepare(load_recipe(path))
    assert not dataset_dir(load_recipe(path)).exists()


@pytest.mark.slow
def test_trains_offline_from_scratch_and_scores_each_organ(monkeypatch, caplog) -> None:
    asked = _offline(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="yolo_tools.engine.weights"):
        run_dir, metrics = pipeline.train_recipe(RECIPES / "gi-mini.yaml", QUICK, name="quick")
    assert asked == ["https://github.com/ultralytics/assets/releases/download/v8.4.0/yolov8n-seg.pt"]
    said = [r.getMessage() for r in caplog.records if "could not be downloaded" in r.getMessage()]
    assert len(said) == 1 and "from scratch from yolov8n-seg.yaml" in said[0]
    assert yaml.safe_load((run_dir / "recipe.yaml").read_text())["model"] == "yolov8n-seg.yaml"
    assert (run_dir / "weights" / "best.pt").is_file()

    out = pipeline.evaluate(run_dir, {"imgsz": 64, "device": "cpu"})
    per_class = pd.read_csv(out / "per_class.csv").set_index("class")
    assert sorted(per_class.index) == CLASSES
    assert per_class["dice_mean"].between(0, 1).all()
    per_image = pd.read_csv(out / "per_image.csv")
    assert len(per_image) == len(list((dataset_dir(load_recipe(RECIPES / "gi-mini.yaml")) / "images" / "val").iterdir()))
    assert {f"dice_{organ}" for organ in CLASSES} <= set(per_image.columns)

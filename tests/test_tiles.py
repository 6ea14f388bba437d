"""Small findings: tiles at native resolution for training, sliced inference for predict and evaluate.

On a few real kidney-stone slices: tile boxes map back onto the original boxes, boxes cut by a tile edge
are kept (clipped) only when enough of them is inside, val images stay whole and patient-wise; sliced
inference (SAHI) returns boxes in the original image's coordinates, equal to what the model finds on
each slice shifted by the slice's origin.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import RECIPES, SHARED_DATA, needs_data
from yolo_tools import engine, operating_point, pipeline
from yolo_tools.conversion import dataset_dir, prepare
from yolo_tools.convert.tiles import Tiles, clip_boxes, grid, plan, yolo_to_xyxy
from yolo_tools.engine.args import check_command_line
from yolo_tools.errors import UserError
from yolo_tools.inference import sliced
from yolo_tools.prediction import DEFAULT_CONF
from yolo_tools.recipe import load_recipe

KIDNEY = SHARED_DATA / "kidney-stones-ct"
TILES = {"size": 320, "overlap": 0.2, "min_visible": 0.5, "background": 0.25}

pytestmark = needs_data("kidney-stones-ct")


def _labelled(split: str, count: int) -> list[Path]:
    """The first `count` images of a split whose label file has boxes."""
    found = []
    for image in sorted((KIDNEY / split / "images").iterdir()):
        label = KIDNEY / split / "labels" / f"{image.stem}.txt"
        if label.is_file() and label.read_text().strip():
            found.append(image)
        if len(found) == count:
            return found
    return found


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    low, high = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=-1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def test_grid_covers_the_image_with_overlap() -> None:
    cells = grid(640, 640, 320, 0.2)
    assert cells[:, 0].tolist()[:3] == [0, 256, 320] and len(cells) == 9
    assert (cells[:, 2:] - cells[:, :2] == 320).all() and cells[:, 2:].max() == 640
    assert grid(200, 700, 320, 0.2).tolist() == [[0, 0, 320, 200], [256, 0, 576, 200], [380, 0, 700, 200]]


def test_boxes_cut_by_a_tile_edge_are_kept_clipped_only_when_mostly_inside() -> None:
    boxes = np.array([[300.0, 100, 340, 120], [310, 200, 350, 220], [10, 10, 30, 30]])
    clipped, visible = clip_boxes(boxes, np.array([[0, 0, 320, 320]]))
    assert np.allclose(visible[0], [0.5, 0.25, 1.0]) and np.allclose(clipped[0, 0], [300, 100, 320, 120])
    lines = ["0 0.5 0.171875 0.0625 0.03125", "0 0.515625 0.328125 0.0625 0.03125"]  # the first two boxes above
    tiles = Tiles(size=320, overlap=0.0, min_visible=0.5, background=0.0)
    kept = {tuple(cell[:2]): labels for cell, labels in plan(lines, 640, 640, tiles, "x")}
    # tile (0, 0): box 1 half inside (kept, clipped), box 2 a quarter inside -> the tile is left out
    assert (0, 0) not in kept
    assert [len(v) for v in kept.values()] == [2]  # tile (320, 0) holds both (half and three quarters)


def test_tile_boxes_map_back_to_the_original_boxes() -> None:
    tiles = Tiles(**TILES)
    for image in _labelled("train", 6):
        lines = (KIDNEY / "train" / "labels" / f"{image.stem}.txt").read_text().splitlines()
        height, width = cv2.imread(str(image)).shape[:2]
        _, original = yolo_to_xyxy(lines, height, width)
        back = []
        for cell, tile_lines in plan(lines, height, width, tiles, image.stem):
            _, boxes = yolo_to_xyxy(tile_lines, cell[3] - cell[1], cell[2] - cell[0])
            back.append(boxes + np.tile(cell[:2], 2))
        back = np.concatenate(back)
        overlap = _iou(original, back)
        assert (overlap.max(axis=1) > 0.999).all(), "an original box is not whole in any tile"
        assert (overlap.max(axis=0) > 0).all(), "a tile box that is no original box"
        # every tile box lies inside its original box (clipped, never grown)
        inside = (back[:, None, :2] >= original[None, :, :2] - 1e-3) & (back[:, None, 2:] <= original[None, :, 2:] + 1e-3)
        assert inside.all(-1).any(1).all()


@pytest.fixture(scope="module")
def small_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A YOLO export of 24 real kidney slices (links to the shared files), in Roboflow's layout."""
    root = tmp_path_factory.mktemp("kidney-small")
    for split, count in (("train", 20), ("valid", 4)):
        for image in _labelled(split, count):
            for kind, path in (("images", image), ("labels", KIDNEY / split / "labels" / f"{image.stem}.txt")):
                (root / split / kind).mkdir(parents=True, exist_ok=True)
                (root / split / kind / path.name).symlink_to(path)
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "../train/images", "val": "../valid/images", "nc": 1, "names": ["Tas_Var"]}))
    return root


def _recipe(tmp_path: Path, source: Path, name: str, tiles: dict | None) -> Path:
    raw = yaml.safe_load((RECIPES / "kidney.yaml").read_text())
    raw["name"], raw["data"]["source"] = name, {"kind": "local", "path": str(source)}
    if tiles:
        raw["data"]["options"] = {"tiles": tiles}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _stem(name: str) -> str:
    return re.sub(r"_x\d+_y\d+$", "", Path(name).stem)


def test_tiled_conversion_keeps_val_whole_and_patients_apart(small_export: Path, tmp_path: Path) -> None:
    whole = load_recipe(_recipe(tmp_path, small_export, "kidney-whole", None))
    tiled = load_recipe(_recipe(tmp_path, small_export, "kidney-tiled", TILES))
    prepare(whole), prepare(tiled)
    files = {r.name: {s: sorted((dataset_dir(r) / "images" / s).iterdir()) for s in ("train", "val")} for r in (whole, tiled)}
    plain, cut = files["kidney-whole"], files["kidney-tiled"]
    assert plain["val"] and [p.stem for p in cut["val"]] == [p.stem for p in plain["val"]]  # the same patients in val
    assert {_stem(p.name) for p in cut["train"]} == {p.stem for p in plain["train"]}
    assert all(cv2.imread(str(p)).shape[:2] == (320, 320) for p in cut["train"])
    assert all(cv2.imread(str(p)).shape[:2] == (640, 640) for p in cut["val"])
    assert len(cut["train"]) > len(plain["train"])
    labels = dataset_dir(tiled) / "labels" / "train"
    assert sum(len((labels / f"{p.stem}.txt").read_text().split()) // 5 for p in cut["train"]) >= len(plain["train"])


def test_a_patient_skipped_whole_moves_no_training_tile_into_val(small_export: Path, tmp_path: Path) -> None:
    """Every image of one patient is unusable: the split is drawn over the usable patients before tiling,
    and the writer keeps that draw, so val still holds whole images only (a fresh draw after the skips
    used to put another patient's training tiles into val)."""
    from yolo_tools.convert.splits import group_keys

    files = sorted((small_export / "train" / "images").iterdir()) + sorted((small_export / "valid" / "images").iterdir())
    keys = group_keys([f.stem for f in files], "acquisition_session")
    broken = sorted(set(keys))[0]
    root = tmp_path / "broken-export"
    for path in small_export.rglob("*"):
        if path.is_file() or path.is_symlink():
            target = root / path.relative_to(small_export)
            target.parent.mkdir(parents=True, exist_ok=True)
            unusable = path.parent.name == "images" and keys[files.index(path)] == broken
            target.write_bytes(b"") if unusable else target.write_bytes(path.read_bytes())
    tiled = load_recipe(_recipe(tmp_path, root, "kidney-tiled-broken", TILES))
    prepare(tiled)
    card = json.loads((dataset_dir(tiled) / "card.json").read_text())
    assert len(card["skipped"]) == keys.count(broken)
    val = sorted((dataset_dir(tiled) / "images" / "val").iterdir())
    assert val and all(not re.search(r"_x\d+_y\d+$", p.stem) for p in val)
    assert all(cv2.imread(str(p)).shape[:2] == (640, 640) for p in val)
    patient = {f.stem: key for f, key in zip(files, keys)}
    train = {patient[_stem(p.name)] for p in (dataset_dir(tiled) / "images" / "train").iterdir()}
    assert train and broken not in train and not train & {patient[p.stem] for p in val}


def test_bad_tile_values_are_refused_before_any_work(small_export: Path, tmp_path: Path) -> None:
    path = _recipe(tmp_path, small_export, "kidney-bad", {**TILES, "overlap": 1.5})
    with pytest.raises(UserError, match=r"data\.options\.tiles\.overlap"):
        pipeline.train_recipe(path)


@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A detector's weights (untrained: it scores every box alike, which is all a geometry check needs)."""
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("weights") / "untrained.pt"
    YOLO("yolov8n.yaml").save(path)
    return path


def test_sliced_inference_returns_boxes_in_image_coordinates(untrained: Path, tmp_path: Path) -> None:
    image = _labelled("valid", 1)[0]
    args = {"conf": 1e-6, "imgsz": 320, "device": "cpu", "iou": 0.7}
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    [result] = list(sliced.predict(untrained, [image], args, 320, 0.0))
    assert Image.MAX_IMAGE_PIXELS == limit  # SAHI switches Pillow's decompression-bomb check off; put back
    found = result
    assert found.shape == (640, 640) and Path(result.path) == image and len(found.boxes) > 10
    pixels = cv2.imread(str(image))
    shifted = []
    for x0, y0 in ((0, 0), (320, 0), (0, 320), (320, 320)):
        crop = tmp_path / f"crop_{x0}_{y0}.png"
        cv2.imwrite(str(crop), pixels[y0:y0 + 320, x0:x0 + 320])
        [direct] = list(engine.predict(untrained, [crop], args))
        shifted.append(direct.boxes + (x0, y0, x0, y0))
    shifted = np.concatenate(shifted)
    # every merged box is one the model found on a slice, moved by that slice's origin
    assert (_iou(found.boxes, shifted).max(axis=1) > 0.999).all()
    assert (found.boxes[:, 2] > 330).any() and (found.boxes[:, 3] > 330).any()  # slices beyond the first
    assert len(found.boxes) <= len(shifted)


def test_slice_arguments_are_checked() -> None:
    assert sliced.options({"imgsz": 320}) is None
    assert sliced.options({"slice": 320, "slice_overlap": 0.25}) == (320, 0.25)
    assert sliced.options({"slice": 320}) == (320, 0.2)
    typed = check_command_line({"slice": 3.2e2, "slice_overlap": 0}, workbench=sliced.ARGS)
    assert typed == {"slice": 320, "slice_overlap": 0.0} and isinstance(typed["slice"], int)
    for bad, says in (({"slice": 8}, "slice=8: .*at least 32 pixels"), ({"slice": 320.5}, "slice=320.5: .*whole number"),
                      ({"slice": True}, "slice=True"), ({"slice": 320, "slice_overlap": 1}, "slice_overlap=1: .*not including\\) 1")):
        with pytest.raises(UserError, match=says):
            check_command_line(bad, workbench=sliced.ARGS)
    with pytest.raises(UserError, match="slice_overlap=0.3: only sliced inference uses it"):
        sliced.options({"slice_overlap": 0.3})


def test_a_slice_larger_than_an_image_is_refused_before_any_prediction(tmp_path: Path) -> None:
    """SAHI would predict such an image whole, enlarged to the slice (slice=100000 asked Ultralytics for 30 GB)."""
    for name, shape in (("wide.png", (200, 640)), ("small.png", (100, 120))):
        cv2.imwrite(str(tmp_path / name), np.zeros(shape, np.uint8))
    files = sorted(tmp_path.iterdir())
    sliced.check_fits(120, files)  # each image's longer side is at least 120
    with pytest.raises(UserError, match=r"slice=121 is larger than .*small\.png \(120 x 100 px\).*at most 120"):
        sliced.check_fits(121, files)
    with pytest.raises(UserError, match=r"slice=100000 .*and 1 other image"):
        sliced.check_fits(100000, files)


@pytest.mark.slow
def test_train_on_tiles_then_evaluate_sliced(small_export: Path, tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, small_export, "kidney-tiled", TILES)
    quick = {"epochs": 1, "imgsz": 160, "batch": 8, "workers": 0, "plots": False, "device": "cpu"}
    run_dir, _ = pipeline.train_recipe(recipe, quick, name="tiles")
    out = pipeline.evaluate(run_dir, {"imgsz": 160, "device": "cpu", "slice": 320, "conf": 0.001})
    per_image = pd.read_csv(out / "per_image.csv")
    assert len(per_image) == len(list((dataset_dir(load_recipe(recipe)) / "images" / "val").iterdir()))
    predicted = pd.read_csv(out / "predictions.csv")
    assert predicted[["x1", "y1", "x2", "y2"]].to_numpy().max(initial=0) <= 640  # whole-image coordinates
    assert not list(run_dir.glob("operating_point*.json"))  # a given conf chooses nothing

    out = pipeline.evaluate(run_dir, {"imgsz": 160, "device": "cpu", "slice": 320})
    summary = json.loads((out / "summary.json").read_text())
    assert not (run_dir / operating_point.FILE).exists()  # the whole-image point is chosen on whole images only
    stored = run_dir / "operating_point-slice320-overlap0.2.json"
    if stored.is_file():  # the slices' predictions found stones on val: their own point
        chosen = json.loads(stored.read_text())
        assert chosen["predictions"] == "slices of 320 px overlapping by 0.2" and "conf" in chosen
        assert summary["operating_point"]["conf"] == chosen["conf"] == summary["conf"]
    else:  # one epoch may find no stone at all: no point then (it once stored 1.0, hiding everything), the default
        assert summary["operating_point"] is None and summary["conf"] == DEFAULT_CONF

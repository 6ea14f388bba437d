"""UW-Madison GI tract: the competition layout (train.csv of run-length masks + 16-bit scans) to YOLO-seg.

A fixture in the competition's own layout is built from the 36 real slices of gi-mini (colour masks
turned into one mask per organ, 8-bit scans widened to 16 bits, run-length rows), converted with
`uw_madison_gi`, and the YOLO polygons are rasterised back and compared with the original masks. Overlapping
organs come from real train.csv rows. The real partial copy (2 scans, all rows) converts with a count of
what is left out.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import RECIPES, SHARED_DATA, needs_data, read_polygons
from yolo_tools import pipeline
from yolo_tools.codecs.polygons import dice, polygons_to_mask
from yolo_tools.codecs.rle import RunTable
from yolo_tools.conversion import prepare
from yolo_tools.convert.uw_madison_gi import COLUMNS, GISlice, scan_path, write
from yolo_tools.errors import UserError
from yolo_tools.recipe import load_recipe

MINI = SHARED_DATA / "gi-tract-mri-uwmadison-mini"
GI = SHARED_DATA / "gi-tract-mri-uwmadison"
CLASSES = ["large_bowel", "small_bowel", "stomach"]
NO_SCAN = "ids in train.csv whose scan is not under train/ (this copy of the set lacks them)"

pytestmark = needs_data("gi-tract-mri-uwmadison-mini")


def organ_masks(colour: np.ndarray) -> dict[str, np.ndarray]:
    """gi-mini's colour masks (RGB): yellow large bowel, green (0,200,0) small bowel, red stomach (the
    competition's labels of the same slices say so; tests/test_gi_mini.py compares).

    Edges were blended by resizing, so each channel is thresholded halfway.
    """
    red, green = colour[..., 0].astype(int), colour[..., 1].astype(int)
    return {
        "large_bowel": ((red > 127) & (green > 127)).astype(np.uint8),
        "small_bowel": ((green > 100) & (red < 64)).astype(np.uint8),  # not the dimmed edge of yellow
        "stomach": ((red > 127) & (green <= 127)).astype(np.uint8),
    }


def to_16bit(grey: np.ndarray) -> np.ndarray:
    """An MRI-like 16-bit scan: values up to ~15,000, far above what 8-bit truncation keeps."""
    return grey.astype(np.uint16) * 58 + 120


def mini_slices() -> list[tuple[str, np.ndarray, dict[str, np.ndarray]]]:
    found = []
    for image_path in sorted((MINI / "images").glob("*.png")):
        grey = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE)
        colour = cv2.imread(str(MINI / "masks" / image_path.name))[..., ::-1]
        found.append((image_path.stem, grey, organ_masks(colour)))
    return found


@pytest.fixture(scope="module")
def mini() -> list[tuple[str, np.ndarray, dict[str, np.ndarray]]]:
    return mini_slices()


@pytest.fixture(scope="module")
def competition(tmp_path_factory: pytest.TempPathFactory, mini) -> Path:
    """gi-mini written in the competition layout: train.csv + train/caseN/caseN_dayD/scans/*.png (16-bit)."""
    root = tmp_path_factory.mktemp("gi-competition")
    present = [{organ: m for organ, m in masks.items() if m.any()} for _, _, masks in mini]
    write(root, [GISlice(name, to_16bit(grey), organs) for (name, grey, _), organs in zip(mini, present)])
    return root


def fixture_recipe(
    tmp_path: Path,
    source: Path,
    name: str,
    preprocess: dict | None = None,
    split: dict | None = None,
    **options,
) -> Path:
    """A copy of recipes/gi.yaml pointing at `source` (absolute path), optionally with other settings."""
    recipe = yaml.safe_load((RECIPES / "gi.yaml").read_text())
    recipe["name"] = name
    recipe["data"]["source"] = {"kind": "local", "path": str(source)}
    if preprocess is not None:
        recipe["preprocess"] = preprocess
    if split is not None:
        recipe["data"]["split"] = split
    recipe["data"]["options"].update(options)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def convert(recipe_path: Path) -> tuple[Path, dict]:
    data = prepare(load_recipe(recipe_path), force=True)
    return data.parent, json.loads((data.parent / "card.json").read_text())


def converted(folder: Path) -> dict[str, tuple[Path, Path]]:
    """Converted images by name, with their label files."""
    return {
        image.stem: (image, folder / "labels" / image.parent.name / f"{image.stem}.txt")
        for image in sorted((folder / "images").glob("*/*.png"))
    }


def test_fixture_is_in_the_competition_layout(competition: Path, mini) -> None:
    table = pd.read_csv(competition / "train.csv", dtype=str, keep_default_na=False)
    assert list(table.columns) == COLUMNS and len(table) == 3 * len(mini) == 108
    assert table.groupby("id")["class"].apply(list).map(lambda c: c == CLASSES).all()
    scans = sorted((competition / "train").glob("case*/case*_day*/scans/slice_*_512_512_1.50_1.50.png"))
    assert len(scans) == 36
    pixels = cv2.imread(str(scans[0]), cv2.IMREAD_UNCHANGED)
    assert pixels.dtype == np.uint16 and pixels.max() > 10_000
    name, _, masks = mini[0]
    row = table[(table["id"] == name) & (table["class"] == "stomach")].iloc[0]
    assert RunTable.parse([row.segmentation], sizes=512 * 512).areas()[0] == masks["stomach"].sum()


def test_polygons_rasterise_back_to_the_organ_masks(competition: Path, mini, tmp_path: Path) -> None:
    recipe = fixture_recipe(tmp_path, competition, "gi-roundtrip", preprocess={"intensity": {"mode": "percentile"}})
    folder, card = convert(recipe)
    images = converted(folder)
    assert len(images) == 36 and card["skipped"] == [] and card["left_out"] == {}
    totals = {name: [0, 0] for name in CLASSES}  # overlap, sum of areas
    for name, _, masks in mini:
        polygons = read_polygons(images[name][1])
        for class_id, organ in enumerate(CLASSES):
            back = polygons_to_mask(polygons.get(class_id, []), (512, 512))
            truth = masks[organ] > 0
            totals[organ][0] += 2 * int((back.astype(bool) & truth).sum())
            totals[organ][1] += int(back.sum()) + int(truth.sum())
            if truth.sum() > 500:
                assert dice(back, truth) > 0.95, (name, organ)
    for organ, (overlap, total) in totals.items():
        assert total > 20_000, organ  # every organ is really present in gi-mini
        assert overlap / total > 0.98, organ
    # patients (cases) never straddle the split, and slices.csv names each slice's case-day and number
    slices = pd.read_csv(folder / "slices.csv")
    assert list(slices.columns) == ["image", "split", "patient", "volume", "slice"]
    assert slices.groupby("patient")["split"].nunique().max() == 1
    assert set(slices["patient"]) == {re.match(r"(case\d+)_", n).group(1) for n, _, _ in mini}
    row = slices[slices["image"] == "case101_day20_slice_0078.png"].iloc[0]
    assert (row.volume, row.slice, row.patient) == ("case101_day20", 78, "case101")
    # the organ masks as published (run-lengths) are kept for scoring, with the spacing from the scan names
    from yolo_tools.codecs import mask_png

    published = {name: masks for name, _, masks in mini}
    stored = sorted((folder / "masks").glob("*/*.png"))
    assert len(stored) == 36
    for path in stored:
        masks = mask_png.load(path, len(CLASSES))
        assert all((masks[c] == (published[path.stem][organ] > 0)).all() for c, organ in enumerate(CLASSES))
    spacing = pd.read_csv(folder / "spacing.csv")
    assert len(spacing) == 36 and (spacing[["row_mm", "col_mm"]] > 0).all().all()


def test_16bit_scans_are_mapped_by_the_recipe_not_truncated(competition: Path, mini, tmp_path: Path) -> None:
    percentile = {"intensity": {"mode": "percentile", "low": 0.5, "high": 99.5}}
    folder, _ = convert(fixture_recipe(tmp_path, competition, "gi-intensity", preprocess=percentile))
    images = converted(folder)
    for name, grey, _ in mini[:6]:
        out = cv2.imread(str(images[name][0]), cv2.IMREAD_GRAYSCALE)
        assert out.shape == grey.shape
        assert np.corrcoef(out.ravel(), grey.ravel())[0, 1] > 0.99
        assert np.percentile(out, 99.5) >= 250  # the full 8-bit range is used
    # what a plain 8-bit reader makes of the same 16-bit file: a dark, squashed image
    scan = next((competition / "train").rglob("*.png"))
    assert cv2.imread(str(scan), cv2.IMREAD_GRAYSCALE).max() < 64


def test_2p5d_context_stacks_the_neighbouring_slices(mini, tmp_path: Path) -> None:
    source = tmp_path / "context"
    greys = [grey for _, grey, _ in mini[:4]]
    empty = {}
    slices = [GISlice(f"case7_day3_slice_{n:04d}", to_16bit(g), empty) for n, g in zip((1, 2, 3, 5), greys)]
    slices.append(GISlice(id="case8_day0_slice_0002", scan=to_16bit(greys[0]), masks=empty))
    write(source, slices)
    window = {"mode": "window", "center": 120 + 58 * 127.5, "width": 58 * 255}  # maps the 16-bit values back exactly
    context = {"intensity": window, "context": 1, "context_stride": 1}
    recipe = fixture_recipe(tmp_path, source, "gi-context", preprocess=context)
    folder, _ = convert(recipe)
    images = converted(folder)

    def rgb(name: str) -> np.ndarray:
        return cv2.imread(str(images[name][0]))[..., ::-1]

    middle = rgb("case7_day3_slice_0002")
    for channel, grey in enumerate(greys[:3]):  # red = slice 1, green = slice 2, blue = slice 3
        assert np.abs(middle[..., channel].astype(int) - grey).max() <= 1
    first = rgb("case7_day3_slice_0001")  # no slice 0: the slice itself stands in below
    assert np.array_equal(first[..., 0], first[..., 1]) and np.abs(first[..., 2].astype(int) - greys[1]).max() <= 1
    lonely = rgb("case7_day3_slice_0005")  # slices 4 and 6 are missing
    assert np.array_equal(lonely[..., 0], lonely[..., 1]) and np.array_equal(lonely[..., 2], lonely[..., 1])


def test_slices_without_organs_are_kept_or_dropped(mini, tmp_path: Path) -> None:
    source = tmp_path / "empty"
    labelled = [GISlice(name, to_16bit(grey), masks) for name, grey, masks in mini[:2]]
    write(source, [*labelled, GISlice("case1_day1_slice_0001", to_16bit(mini[2][1]), {})])
    _, card = convert(fixture_recipe(tmp_path, source, "gi-keep", split={"by": "file"}))
    assert card["counts"]["train"].get("backgrounds", 0) + card["counts"]["val"].get("backgrounds", 0) == 1
    folder, card = convert(fixture_recipe(tmp_path, source, "gi-drop", split={"by": "file", "val": 0.5}, empty="drop"))
    assert card["left_out"] == {"slices with no organ (options.empty: drop)": 1}
    assert sorted(converted(folder)) == sorted(item.id for item in labelled)
    with pytest.raises(UserError, match=r"data.options.emtpy: unknown key; uw_madison_gi takes: csv"):
        convert(fixture_recipe(tmp_path, source, "gi-typo", emtpy="drop"))


@needs_data("gi-tract-mri-uwmadison")
def test_overlapping_organs_survive_from_real_rows(tmp_path: Path) -> None:
    """Real train.csv rows where organs share pixels: each organ keeps its own outline."""
    ids = ["case84_day0_slice_0121", "case33_day21_slice_0126", "case65_day28_slice_0111", "case16_day0_slice_0041"]
    rows = pd.read_csv(GI / "train.csv", dtype=str, keep_default_na=False)
    rows = rows[rows["id"].isin(ids)].reset_index(drop=True)
    meta = pd.read_csv(GI / "slice_meta.csv").set_index("id")
    shapes = {i: (int(meta.at[i, "height"]), int(meta.at[i, "width"])) for i in ids}
    table = RunTable.parse(rows["segmentation"].tolist(), sizes=[np.prod(shapes[i]) for i in rows["id"]])
    truth = {(i, c): table.mask(k, shapes[i]) for k, (i, c) in enumerate(zip(rows["id"], rows["class"]))}
    rng = np.random.default_rng(0)
    source = tmp_path / "overlap"
    scans = {i: rng.integers(0, 4000, shapes[i], dtype=np.uint16) for i in ids}
    write(source, [GISlice(i, scans[i], {c: truth[i, c] for c in CLASSES}) for i in ids])
    written = pd.read_csv(source / "train.csv", dtype=str, keep_default_na=False)
    in_order = ["id", "class"]
    assert written.sort_values(in_order).to_numpy().tolist() == rows.sort_values(in_order).to_numpy().tolist()

    folder, card = convert(fixture_recipe(tmp_path, source, "gi-overlap", split={"by": "file"}))
    images = converted(folder)
    shared_total = shared_kept = 0
    for i in ids:
        polygons = read_polygons(images[i][1])
        back = {c: polygons_to_mask(polygons.get(k, []), shapes[i]) for k, c in enumerate(CLASSES)}
        for c in CLASSES:
            if truth[i, c].any():
                assert dice(back[c], truth[i, c]) > 0.98, (i, c)
        shared = sum(truth[i, c] for c in CLASSES) > 1
        both = sum(back[c].astype(int) * truth[i, c] for c in CLASSES) > 1
        shared_total += int(shared.sum())
        shared_kept += int((shared & both).sum())
    assert shared_total > 1_000 and shared_kept / shared_total > 0.95


def test_bad_input_is_skipped_or_refused_with_the_reason(competition: Path, tmp_path: Path) -> None:
    source = tmp_path / "bad"
    shutil.copytree(competition, source)
    table = pd.read_csv(source / "train.csv", dtype=str, keep_default_na=False)
    ids = sorted(table["id"].unique())
    too_long, unreadable, wrong_size, missing = ids[0], ids[1], ids[2], ids[3:6]
    table.loc[(table["id"] == too_long) & (table["class"] == "stomach"), "segmentation"] = "262000 200"
    table.to_csv(source / "train.csv", index=False)
    scan_path(source, unreadable, 512, 512).write_bytes(b"not a png at all")
    path = scan_path(source, wrong_size, 512, 512)
    path.rename(scan_path(source, wrong_size, 520, 512))
    for i in missing:
        scan_path(source, i, 512, 512).unlink()
    folder, card = convert(fixture_recipe(tmp_path, source, "gi-bad"))
    skipped = "\n".join(card["skipped"])
    assert len(card["skipped"]) == 3
    too_long_reason = r"run \(start 262000, length 200\) ends at pixel 262199, beyond the 262144 pixels"
    assert re.search(rf"train.csv line \d+ \({too_long}, stomach\): {too_long_reason}", skipped)
    assert f"{scan_path(source, unreadable, 512, 512).name}: not an image file" in skipped
    assert re.search(r"is 512x512 pixels but its name says 520x512", skipped)
    assert card["left_out"] == {NO_SCAN: 3}
    assert len(converted(folder)) == 36 - 3 - 3
    assert "Left out before conversion: 3" in (folder / "card.md").read_text()

    table.loc[7, "class"] = "pancreas"
    table.to_csv(source / "train.csv", index=False)
    with pytest.raises(UserError, match=r"train.csv line 9 \(case\w+\): class 'pancreas' is not in the recipe's"):
        convert(fixture_recipe(tmp_path, source, "gi-bad"))
    table.rename(columns={"segmentation": "rle"}).to_csv(source / "train.csv", index=False)
    with pytest.raises(UserError, match=r"columns are \['id', 'class', 'rle'\]"):
        convert(fixture_recipe(tmp_path, source, "gi-bad"))


@needs_data("gi-tract-mri-uwmadison")
def test_the_real_partial_copy_converts_its_two_scans_and_counts_the_rest() -> None:
    folder, card = convert(RECIPES / "gi.yaml")
    assert card["left_out"] == {NO_SCAN: 38_494}
    assert card["skipped"] == []
    assert sum(split["images"] for split in card["counts"].values()) == 2
    assert card["groups"] == {"train": 1, "val": 1}  # two cases, one on each side
    slices = pd.read_csv(folder / "slices.csv")
    assert sorted(slices["volume"]) == ["case35_day0", "case85_day0"]
    image = cv2.imread(str(next((folder / "images").glob("*/case85_day0_slice_0088.png"))))
    assert image.shape == (310, 360, 3)  # W x H = 360 x 310 from the scan's file name
    labels = read_polygons(next((folder / "labels").glob("*/case85_day0_slice_0088.txt")))
    meta = pd.read_csv(GI / "slice_meta.csv").set_index("id").loc["case85_day0_slice_0088"]
    for class_id, organ in enumerate(CLASSES):
        area = polygons_to_mask(labels.get(class_id, []), (310, 360)).sum()
        assert abs(int(area) - int(meta[f"area_{organ}"])) <= 0.02 * meta[f"area_{organ}"] + 5, organ


@pytest.mark.slow
def test_one_epoch_on_the_fixture_trains_through_the_recipe(competition: Path, tmp_path: Path) -> None:
    recipe = fixture_recipe(tmp_path, competition, "gi-train")
    run_dir, metrics = pipeline.train_recipe(
        recipe, {"epochs": 1, "imgsz": 128, "batch": 8, "workers": 0, "plots": False}, name="quick"
    )
    assert (run_dir / "weights" / "best.pt").is_file()
    assert {"precision", "recall", "mAP50", "mAP50-95"} <= set(metrics)
    assert all(0.0 <= value <= 1.0 for value in metrics.values())

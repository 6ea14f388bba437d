"""HDF5 volumes (ACDC cine MRI, LA 2018 LGE-MRI) to 2D YOLO-seg slices, with slices.csv for 3D metrics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import RECIPES, SHARED_DATA, needs_data, read_polygons
from yolo_tools import pipeline
from yolo_tools.codecs.polygons import dice, polygons_to_mask
from yolo_tools.conversion import prepare
from yolo_tools.errors import UserError
from yolo_tools.recipe import load_recipe

ACDC = SHARED_DATA / "cardiac-mri-acdc"
LA = SHARED_DATA / "left-atrium-mri-la2018"


def recipe_copy(tmp_path: Path, recipe: str, name: str, source: Path | None = None, **options) -> Path:
    raw = yaml.safe_load((RECIPES / recipe).read_text())
    raw["name"] = name
    if source is not None:
        raw["data"]["source"] = {"kind": "local", "path": str(source)}
    raw["data"]["options"].update(options)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def cardiac() -> Path:
    return prepare(load_recipe(RECIPES / "cardiac.yaml"), force=True).parent


@pytest.fixture(scope="module")
def left_atrium() -> Path:
    return prepare(load_recipe(RECIPES / "left-atrium.yaml"), force=True).parent


def round_trip(folder: Path, label_of) -> dict[int, float]:
    """Dice per class over all slices: the converted polygons rasterised vs the published label map."""
    slices = pd.read_csv(folder / "slices.csv")
    totals: dict[int, list[int]] = {}
    for row in slices.itertuples():
        truth, values = label_of(row.volume, row.slice)
        polygons = read_polygons(folder / "labels" / row.split / f"{Path(row.image).stem}.txt")
        for class_id, value in enumerate(values):
            back = polygons_to_mask(polygons.get(class_id, []), truth.shape).astype(bool)
            target = truth == value
            total = totals.setdefault(class_id, [0, 0])
            total[0] += 2 * int((back & target).sum())
            total[1] += int(back.sum()) + int(target.sum())
            if target.sum() >= 100:
                assert dice(back, target) > 0.95, (row.image, class_id)
    return {class_id: overlap / total for class_id, (overlap, total) in totals.items()}


@needs_data("cardiac-mri-acdc")
def test_acdc_volumes_become_every_slice_with_a_patient_wise_split(cardiac: Path) -> None:
    card = json.loads((cardiac / "card.json").read_text())
    volumes = sorted((ACDC / "volumes").glob("*.h5"))
    n_slices = sum(h5py.File(v, "r")["image"].shape[0] for v in volumes)
    assert sum(split["images"] for split in card["counts"].values()) == n_slices == 376
    assert card["skipped"] == [] and card["groups"] == {"train": 16, "val": 4}
    slices = pd.read_csv(cardiac / "slices.csv")
    assert list(slices.columns) == ["image", "split", "patient", "volume", "slice"] and len(slices) == n_slices
    assert slices.groupby("patient")["split"].nunique().max() == 1  # both frames of a patient together
    assert slices.groupby("patient")["volume"].nunique().eq(2).all()
    first = slices.iloc[0]
    assert (first.image, first.patient, first.volume, first.slice) == (
        "patient002_frame01_s000.png", "patient002", "patient002_frame01", 0
    )
    image = cv2.imread(str(cardiac / "images" / first.split / first.image), cv2.IMREAD_UNCHANGED)
    assert image.shape == (256, 232) and image.dtype == np.uint8  # (slices, H, W): H x W per slice
    per_volume = slices.groupby("volume")["slice"].agg(["min", "max", "count"])
    assert (per_volume["min"] == 0).all() and (per_volume["max"] + 1 == per_volume["count"]).all()


@needs_data("cardiac-mri-acdc")
def test_acdc_labels_round_trip_through_polygons(cardiac: Path) -> None:
    def label_of(volume: str, index: int):
        with h5py.File(ACDC / "volumes" / f"{volume}.h5", "r") as handle:
            return handle["label"][index], [1, 2, 3]

    scores = round_trip(cardiac, label_of)
    assert all(score > 0.98 for score in scores.values()), scores
    # the myocardium is a ring: its polygons must not fill the left ventricle's cavity
    volume, index = "patient002_frame01", 5
    truth, _ = label_of(volume, index)
    split = pd.read_csv(cardiac / "slices.csv").set_index("image").at[f"{volume}_s{index:03d}.png", "split"]
    polygons = read_polygons(cardiac / "labels" / split / f"{volume}_s{index:03d}.txt")
    ring = polygons_to_mask(polygons[1], truth.shape).astype(bool)
    assert (truth == 3).sum() > 500 and (ring & (truth == 3)).sum() < 0.02 * (truth == 3).sum()
    # the label map itself is kept, per class, for scoring against the masks as published
    from yolo_tools.codecs import mask_png

    kept = mask_png.load(cardiac / "masks" / split / f"{volume}_s{index:03d}.png", 3)
    assert all((kept[c] == (truth == c + 1)).all() for c in range(3))


@needs_data("cardiac-mri-acdc")
def test_volume_intensities_use_one_mapping_per_volume(cardiac: Path) -> None:
    with h5py.File(ACDC / "volumes" / "patient002_frame01.h5", "r") as handle:
        volume = handle["image"][()]
    low, high = np.percentile(volume, (0.5, 99.5))
    split = pd.read_csv(cardiac / "slices.csv").set_index("image").at["patient002_frame01_s004.png", "split"]
    image = cv2.imread(str(cardiac / "images" / split / "patient002_frame01_s004.png"), cv2.IMREAD_GRAYSCALE)
    expected = np.clip((volume[4] - low) / (high - low) * 255, 0, 255)
    assert np.abs(image.astype(float) - expected).max() <= 1.0


@needs_data("left-atrium-mri-la2018")
def test_left_atrium_slices_on_the_last_axis(left_atrium: Path) -> None:
    cases = sorted(p.name for p in LA.iterdir() if (p / "mri_norm2.h5").is_file())
    shapes = {c: h5py.File(LA / c / "mri_norm2.h5", "r")["image"].shape for c in cases}
    slices = pd.read_csv(left_atrium / "slices.csv")
    assert len(slices) == sum(s[2] for s in shapes.values())
    assert sorted(slices["volume"].unique()) == cases and sorted(slices["patient"].unique()) == cases
    row = slices[slices["volume"] == cases[0]].iloc[40]
    image = cv2.imread(str(left_atrium / "images" / row.split / row.image), cv2.IMREAD_GRAYSCALE)
    assert image.shape == shapes[cases[0]][:2]

    def label_of(volume: str, index: int):
        with h5py.File(LA / volume / "mri_norm2.h5", "r") as handle:
            return handle["label"][:, :, index], [1]

    scores = round_trip(left_atrium, label_of)
    assert scores[0] > 0.98, scores


@needs_data("cardiac-mri-acdc")
def test_context_stacks_neighbouring_slices_of_a_volume(tmp_path: Path) -> None:
    source = tmp_path / "one"
    (source / "volumes").mkdir(parents=True)
    shutil.copy(ACDC / "volumes" / "patient002_frame01.h5", source / "volumes")
    shutil.copy(ACDC / "volumes" / "patient007_frame01.h5", source / "volumes")
    raw = yaml.safe_load((RECIPES / "cardiac.yaml").read_text())
    raw.update(name="cardiac-context", preprocess={"intensity": {"mode": "minmax"}, "context": 1, "context_stride": 1})
    raw["data"]["source"] = {"kind": "local", "path": str(source)}
    path = tmp_path / "cardiac-context.yaml"
    path.write_text(yaml.safe_dump(raw))
    folder = prepare(load_recipe(path), force=True).parent
    split = pd.read_csv(folder / "slices.csv").set_index("image").at["patient002_frame01_s004.png", "split"]
    rgb = cv2.imread(str(folder / "images" / split / "patient002_frame01_s004.png"))[..., ::-1]
    with h5py.File(source / "volumes" / "patient002_frame01.h5", "r") as handle:
        volume = handle["image"][()]
    scaled = (volume - volume.min()) / (volume.max() - volume.min()) * 255
    for channel, index in enumerate((3, 4, 5)):
        assert np.abs(rgb[..., channel] - scaled[index]).max() <= 1.0


@needs_data("cardiac-mri-acdc")
def test_slices_without_labels_can_be_dropped(tmp_path: Path) -> None:
    source = tmp_path / "two"
    (source / "volumes").mkdir(parents=True)
    labelled = 0
    for name in ("patient030_frame02.h5", "patient033_frame02.h5", "patient064_frame01.h5"):
        shutil.copy(ACDC / "volumes" / name, source / "volumes")
        with h5py.File(source / "volumes" / name, "r") as handle:
            labelled += int((handle["label"][()].reshape(handle["label"].shape[0], -1) > 0).any(axis=1).sum())
    assert labelled == 30 - 6  # slices 0 and 9, 0, 1 and 9, and 9 have nothing labelled
    recipe = recipe_copy(tmp_path, "cardiac.yaml", "cardiac-drop", source, empty="drop")
    folder = prepare(load_recipe(recipe), force=True).parent
    card = json.loads((folder / "card.json").read_text())
    assert sum(split["images"] for split in card["counts"].values()) == labelled
    assert card["left_out"] == {"slices with no label (options.empty: drop)": 6}
    kept = pd.read_csv(folder / "slices.csv")
    assert 0 not in set(kept.loc[kept["volume"] == "patient033_frame02", "slice"])


@needs_data("cardiac-mri-acdc")
def test_broken_volumes_are_skipped_with_the_file_and_reason(tmp_path: Path) -> None:
    source = tmp_path / "broken"
    (source / "volumes").mkdir(parents=True)
    shutil.copy(ACDC / "volumes" / "patient002_frame01.h5", source / "volumes")
    shutil.copy(ACDC / "volumes" / "patient007_frame01.h5", source / "volumes")
    (source / "volumes" / "patient011_frame01.h5").write_bytes(b"not hdf5")
    with h5py.File(source / "volumes" / "patient013_frame01.h5", "w") as handle:
        handle["image"] = np.zeros((2, 8, 8), np.float32)
    with h5py.File(source / "volumes" / "patient022_frame01.h5", "w") as handle:
        handle["image"] = np.zeros((2, 8, 8), np.float32)
        handle["label"] = np.zeros((2, 8, 9), np.uint8)
    with h5py.File(source / "volumes" / "patient024_frame01.h5", "w") as handle:
        handle["image"] = np.zeros((2, 16, 16), np.float32)
        label = np.zeros((2, 16, 16), np.uint8)
        label[1, 4:8, 4:8] = 7
        handle["label"] = label
    folder = prepare(load_recipe(recipe_copy(tmp_path, "cardiac.yaml", "cardiac-broken", source)), force=True).parent
    card = json.loads((folder / "card.json").read_text())
    skipped = "\n".join(card["skipped"])
    assert len(card["skipped"]) == 4, skipped
    assert "patient011_frame01.h5: cannot be read as HDF5" in skipped
    assert "patient013_frame01.h5: no dataset 'label' (it has ['image'])" in skipped
    assert "patient022_frame01.h5: image (2, 8, 8) and label (2, 8, 9) differ in shape" in skipped
    assert "patient024_frame01.h5 slice 1: label values [7] are not classes" in skipped
    assert sum(split["images"] for split in card["counts"].values()) == 10 + 10 + 1

    with pytest.raises(UserError, match=r"label_values \[1, 2\]: give one distinct label value per class"):
        load_recipe_and_convert(recipe_copy(tmp_path, "cardiac.yaml", "cardiac-bad", source, label_values=[1, 2]))
    with pytest.raises(UserError, match=r"data.options.slice_axes: unknown key; hdf5_volumes takes: files"):
        load_recipe_and_convert(recipe_copy(tmp_path, "cardiac.yaml", "cardiac-bad", source, slice_axes=2))


def load_recipe_and_convert(path: Path) -> Path:
    return prepare(load_recipe(path), force=True)


@needs_data("cardiac-mri-acdc")
@pytest.mark.slow
def test_one_epoch_of_cardiac_on_a_few_images(cardiac: Path) -> None:
    quick = {"epochs": 1, "imgsz": 128, "fraction": 0.1, "batch": 8, "workers": 0, "plots": False}
    run_dir, metrics = pipeline.train_recipe(RECIPES / "cardiac.yaml", quick, name="quick")
    assert (run_dir / "weights" / "best.pt").is_file()
    assert {"precision", "recall", "mAP50", "mAP50-95"} <= set(metrics)
    assert all(0.0 <= value <= 1.0 for value in metrics.values())


def test_a_label_value_between_the_classes_is_found(tmp_path: Path) -> None:
    """label_values [1, 3]: a 2 is no class even though no value lies above the largest class."""
    from yolo_tools.convert import hdf5_volumes
    from yolo_tools.convert.samples import SkipSample
    from yolo_tools.recipe import Data, Recipe, Source

    (tmp_path / "volumes").mkdir()
    label = np.zeros((2, 16, 16), np.uint8)
    label[0, 2:8, 2:8], label[0, 9:14, 9:14] = 1, 3
    label[1, 4:8, 4:8] = 2
    with h5py.File(tmp_path / "volumes" / "patient001_frame01.h5", "w") as handle:
        handle["image"], handle["label"] = np.ones((2, 16, 16), np.float32), label
    recipe = Recipe(name="between", task="segment", model="yolov8n-seg.yaml", classes=["a", "b"],
                    data=Data(source=Source(path=str(tmp_path)), converter="hdf5_volumes",
                              options={"files": "volumes/*.h5", "label_values": [1, 3]}, split={"by": "file"}))
    first, second = hdf5_volumes.samples(tmp_path, recipe)
    assert [line.split()[0] for line in first.labels()] == ["0", "1"]
    with pytest.raises(SkipSample, match=r"label values \[2\] are not classes"):
        second.labels()

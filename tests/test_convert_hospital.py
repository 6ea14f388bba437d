"""NIfTI (Decathlon, nnU-Net v2, plain folders) and DICOM series (SEG, aligned NIfTI) to YOLO-seg slices.

Each converted dataset is read back: polygons rasterised against the source label, images against the
source voxels, volumes.json against the source geometry, and the split against the cases or PatientIDs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import read_polygons, needs_data
from hospital_data import CASES, HIPPOCAMPUS, LIVER, decathlon, dicom_mixed, mr_label, nnunet
from yolo_tools.codecs.polygons import polygons_to_mask
from yolo_tools.conversion import convert_folder
from yolo_tools.errors import UserError
from yolo_tools.imaging.geometry import Geometry

nib = pytest.importorskip("nibabel")
pytest.importorskip("highdicom")

pytestmark = [needs_data("hippocampus-mri-msd"), needs_data("dicom-ct-liver-seg"), needs_data("dicom-mr-brain-series")]


def stacked_masks(folder: Path, volume: str, n_classes: int, shape: tuple[int, int]) -> np.ndarray:
    """The dataset's polygons of one volume rasterised: (classes, slices, H, W) bool."""
    slices = pd.read_csv(folder / "slices.csv", dtype={"volume": str}).query("volume == @volume").sort_values("slice")
    out = np.zeros((n_classes, len(slices), *shape), bool)
    for row in slices.itertuples():
        polygons = read_polygons(folder / "labels" / row.split / f"{Path(row.image).stem}.txt")
        for class_id in range(n_classes):
            out[class_id, row.slice] = polygons_to_mask(polygons.get(class_id, []), shape).astype(bool)
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


@pytest.fixture(scope="module")
def hippocampus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("hospital")
    card = convert_folder("nifti", decathlon(root / "decathlon"), root / "out", seed=1)
    return root / "out", card


def test_decathlon_cases_become_slices_with_geometry_and_a_case_split(hippocampus: tuple[Path, dict]) -> None:
    out, card = hippocampus
    assert card["classes"] == ["Anterior", "Posterior"] and card["skipped"] == []
    volumes = json.loads((out / "volumes.json").read_text())
    assert sorted(volumes) == sorted(CASES)
    slices = pd.read_csv(out / "slices.csv")
    assert slices.groupby("volume")["split"].nunique().max() == 1 and set(slices["split"]) == {"train", "val"}
    for case in CASES[:3]:
        image = nib.load(HIPPOCAMPUS / "imagesTr" / f"{case}.nii.gz")
        label = np.asarray(nib.load(HIPPOCAMPUS / "labelsTr" / f"{case}.nii.gz").dataobj).round().astype(int)
        geometry = Geometry.from_json(volumes[case])
        np.testing.assert_allclose(geometry.affine, image.affine, atol=1e-5)
        assert geometry.shape == image.shape and geometry.slice_axis == 2  # isotropic: the last axis
        assert (slices["volume"] == case).sum() == image.shape[2]
        masks = stacked_masks(out, case, 2, image.shape[:2])
        for class_id, value in enumerate((1, 2)):
            truth = np.moveaxis(label == value, 2, 0)
            assert dice(masks[class_id], truth) > 0.9, (case, value)
        # the 2.5D-free image of slice 10 is the volume's slice mapped by 0.5-99.5 percentiles
        split = slices.set_index("image").at[f"{case}_s010.png", "split"]
        pixels = cv2.imread(str(out / "images" / split / f"{case}_s010.png"), cv2.IMREAD_UNCHANGED)
        data = np.asarray(image.dataobj, np.float32)
        low, high = np.percentile(data, (0.5, 99.5))
        expected = np.clip((data[:, :, 10] - low) / (high - low) * 255, 0, 255)
        assert pixels.shape == data.shape[:2] and np.abs(pixels - expected).max() <= 1.0


def test_nnunet_v2_layout_gives_the_same_dataset_and_merges_regions(tmp_path: Path, hippocampus: tuple[Path, dict]) -> None:
    decathlon_out, _ = hippocampus
    source = nnunet(tmp_path / "nnunet")
    card = convert_folder("nifti", source, tmp_path / "out", seed=1)
    assert card["classes"] == ["Anterior", "Posterior"]
    for split in ("train", "val"):
        for label in sorted((tmp_path / "out" / "labels" / split).glob("*.txt")):
            assert label.read_text() == (decathlon_out / "labels" / split / label.name).read_text()
    # one class from two label values: the whole hippocampus
    from yolo_tools.convert import nifti_volumes
    from yolo_tools.recipe import Data, Recipe, Source, Split

    recipe = Recipe(
        name="merged", task="segment", classes=["hippocampus"], model="yolov8n-seg.yaml",
        data=Data(source=Source(path=str(source)), converter="nifti", options={"label_values": [[1, 2]]}, split=Split(by="file")),
    )
    found = nifti_volumes.samples(source, recipe)
    case = CASES[0]
    label = np.asarray(nib.load(HIPPOCAMPUS / "labelsTr" / f"{case}.nii.gz").dataobj).round()
    index = int(np.argmax((label > 0).sum(axis=(0, 1))))
    sample = next(s for s in found if s.slice_of == (case, index))
    polygons = [np.array(line.split()[1:], float).reshape(-1, 2) for line in sample.labels()]
    assert {line.split()[0] for line in sample.labels()} == {"0"}
    assert dice(polygons_to_mask(polygons, label.shape[:2]).astype(bool), label[:, :, index] > 0) > 0.9


def test_plain_folders_match_by_name_and_slice_along_the_largest_spacing(tmp_path: Path) -> None:
    src = tmp_path / "plain"
    (src / "images").mkdir(parents=True)
    (src / "labels").mkdir()
    rng = np.random.default_rng(0)
    for case in ("a", "b", "c"):
        image = rng.normal(100, 20, (12, 40, 30)).astype(np.float32)  # 12 slices of 4 mm on the FIRST axis
        label = np.zeros((12, 40, 30), np.uint8)
        label[3:9, 10:25, 8:20] = 3
        affine = np.diag([4.0, 0.7, 0.7, 1.0])
        nib.save(nib.Nifti1Image(image, affine), src / "images" / f"{case}_0000.nii.gz")
        nib.save(nib.Nifti1Image(label, affine), src / "labels" / f"{case}.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((12, 40, 30), np.float32), np.eye(4)), src / "images" / "unlabelled.nii.gz")
    card = convert_folder("nifti", src, tmp_path / "out")
    assert card["classes"] == ["label_3"] and card["left_out"] == {"cases without their image or label file: unlabelled (no label in labels/)": 1}
    volumes = json.loads((tmp_path / "out" / "volumes.json").read_text())
    assert volumes["a"]["slice_axis"] == 0 and volumes["a"]["spacing_mm"] == [4.0, 0.7, 0.7]
    masks = stacked_masks(tmp_path / "out", "a", 1, (40, 30))
    truth = np.zeros((12, 40, 30), bool)
    truth[3:9, 10:25, 8:20] = True
    assert dice(masks[0], truth) > 0.97


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("dicom")
    src = dicom_mixed(root / "in")
    from yolo_tools.convert import dicom_volumes
    from yolo_tools.convert.writer import write_dataset
    from yolo_tools.recipe import Data, Recipe, Source, Split

    recipe = Recipe(
        name="liver", task="segment", classes=["liver", "orange"], model="yolov8n-seg.yaml",
        data=Data(source=Source(path=str(src)), converter="dicom", options={"segments": {"ORANGE": "orange"}}, split=Split(by="file", seed=3)),
    )
    card = write_dataset(dicom_volumes.samples(src, recipe), root / "out", recipe, str(src))
    return src, root / "out", card


def test_dicom_series_with_seg_and_aligned_nifti_labels(mixed: tuple[Path, Path, dict]) -> None:
    import highdicom as hd
    import pydicom

    src, out, card = mixed
    assert card["skipped"] == [] and card["groups"] == {"train": 1, "val": 1}
    volumes = json.loads((out / "volumes.json").read_text())
    assert sorted(volumes) == ["ct", "mr"] and volumes["ct"]["patient_id"] == "99000"
    slices = pd.read_csv(out / "slices.csv", dtype={"patient": str})
    assert dict(slices.groupby("volume")["patient"].first()) == {"ct": "99000", "mr": "PGBM-003"}
    # CT: slices ordered by position along the normal, in HU; the liver SEG and one overlapping segment
    cts = sorted((pydicom.dcmread(p) for p in (src / "ct").glob("ct-*.dcm")), key=lambda d: float(d.ImagePositionPatient[2]))
    geometry = Geometry.from_json(volumes["ct"])
    assert geometry.shape == (3, 512, 512) and geometry.slice_axis == 0
    np.testing.assert_allclose(geometry.affine[:3, 3], [-float(cts[0].ImagePositionPatient[0]), -float(cts[0].ImagePositionPatient[1]), float(cts[0].ImagePositionPatient[2])], atol=1e-4)
    masks = stacked_masks(out, "ct", 2, (512, 512))
    liver = hd.seg.segread(LIVER / "liver.dcm").get_pixels_by_source_instance(
        [d.SOPInstanceUID for d in cts], ignore_spatial_locations=True
    )[..., 0] > 0
    overlaps = hd.seg.segread(LIVER / "partial_overlaps.dcm")
    orange = overlaps.get_pixels_by_source_instance([d.SOPInstanceUID for d in cts], ignore_spatial_locations=True)[..., 1] > 0
    assert liver.sum() > 100_000 and dice(masks[0], liver) > 0.98
    assert orange.sum() > 10_000 and dice(masks[1], orange) > 0.98
    assert (masks[0] & masks[1]).sum() > 0  # segments overlap, and both are kept
    split = slices.query("volume == 'ct'")["split"].iloc[0]
    image = cv2.imread(str(out / "images" / split / "ct_s001.png"), cv2.IMREAD_UNCHANGED)
    hu = cts[1].pixel_array * float(cts[1].RescaleSlope) + float(cts[1].RescaleIntercept)
    center, width = float(cts[1].WindowCenter), float(cts[1].WindowWidth)  # the series' own window
    expected = np.clip((hu - (center - width / 2)) / width * 255, 0, 255)
    assert np.abs(image - expected).max() <= 1.0
    # MR: the NIfTI label stored in (column, row, slice) order comes back on the files' own grid
    from yolo_tools.imaging import dicom_series

    series = next(s for s in dicom_series.find(src / "mr").series)
    pixels, _ = dicom_series.load(series)
    truth = mr_label(pixels).astype(bool)
    assert dice(stacked_masks(out, "mr", 1, pixels.shape[1:])[0], truth) > 0.9


def test_dicom_nifti_label_on_another_grid_is_skipped_by_name(tmp_path: Path) -> None:
    src = dicom_mixed(tmp_path / "in")
    for seg in ("liver.dcm", "partial_overlaps.dcm"):
        (src / "ct" / seg).unlink()
    image = nib.load(src / "labels" / "mr.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[:, :, :-2], image.affine), src / "labels" / "mr.nii.gz")
    shutil.copyfile(src / "labels" / "mr.nii.gz", src / "labels" / "ct.nii.gz")
    with pytest.raises(UserError, match="every one of the 43 samples was skipped"):
        convert_folder("dicom", src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_dicom_without_any_label_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for path in (SHARED_MR := LIVER.parent / "dicom-mr-brain-series" / "11_HCropVolume").glob("*.dcm"):
        shutil.copyfile(path, src / path.name)
    assert SHARED_MR.is_dir()
    with pytest.raises(UserError, match="no DICOM SEG and no NIfTI label volume"):
        convert_folder("dicom", src, tmp_path / "out")
    assert not (tmp_path / "out").exists()

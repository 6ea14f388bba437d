"""The prediction writers on known masks (no model): each file read back by its consumers' library, voxel for voxel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA, needs_data
from yolo_tools.convert.volume_slices import Loaded
from yolo_tools.imaging import dicom_series
from yolo_tools.imaging.geometry import Geometry
from yolo_tools.outputs import prediction_formats
from yolo_tools.prediction import Prediction

nib = pytest.importorskip("nibabel")


def blobs(shape: tuple[int, ...], classes: int, seed: int = 0) -> np.ndarray:
    """(classes, *shape) bool: overlapping boxes, one per class, plus noise so no writer can guess."""
    rng = np.random.default_rng(seed)
    masks = rng.random((classes, *shape)) > 0.97
    for c in range(classes):
        start = [s // 4 + c * 2 for s in shape]
        masks[(c, *[slice(a, a + s // 2) for a, s in zip(start, shape)])] = True
    return masks


def test_nifti_label_volume_has_the_input_grid_and_the_predicted_voxels(tmp_path: Path) -> None:
    affine = np.array([[0, 0, -0.8, 100], [0, -0.7, 0, 50], [3.0, 0, 0, -20], [0, 0, 0, 1]])
    geometry = Geometry.from_affine(affine, (12, 40, 30))
    masks = blobs(geometry.shape, 3)
    volume = prediction_formats.VolumeInput("case_7", geometry, lambda: Loaded([np.zeros(geometry.shape)], None))
    path = prediction_formats.write_nifti(prediction_formats.VolumePrediction(volume, masks, []), tmp_path)
    image = nib.load(path)
    np.testing.assert_allclose(image.affine, affine)
    assert image.header.get_zooms() == pytest.approx((3.0, 0.7, 0.8))
    stored = np.asarray(image.dataobj)
    expected = np.where(masks[2], 3, np.where(masks[1], 2, np.where(masks[0], 1, 0)))  # later classes win
    np.testing.assert_array_equal(stored, expected)


@pytest.mark.parametrize("codes", [(1, 1), (4, 0), (0, 2)], ids=["scanner-both", "mni-sform-only", "qform-only"])
def test_nifti_label_volume_keeps_the_source_header(tmp_path: Path, codes: tuple[int, int]) -> None:
    """sform/qform codes, description and units of the input survive (nibabel alone writes 2 and 0, no description,
    no time unit); what describes the voxels is a label's (uint8, unscaled), the affine and grid the source's."""
    affine = np.array([[0, 0, -0.8, 100], [0, -0.7, 0, 50], [3.0, 0, 0, -20], [0, 0, 0, 1]])
    source = nib.Nifti1Image((np.random.default_rng(0).random((12, 40, 30)) * 900).astype(np.float32), affine)
    source.set_sform(affine, code=codes[0])
    source.set_qform(affine, code=codes[1])
    source.header.set_xyzt_units("mm", "msec")
    source.header["descrip"] = b"T1 MPRAGE, site 3"
    source.header.set_slope_inter(2.0, -5.0)
    nib.save(source, tmp_path / "case_7_0000.nii.gz")
    given = nib.load(tmp_path / "case_7_0000.nii.gz")
    geometry = Geometry.from_affine(given.affine, given.shape)
    volume = prediction_formats.VolumeInput("case_7", geometry, lambda: None, header_of=tmp_path / "case_7_0000.nii.gz")
    masks = blobs(geometry.shape, 2)
    written = nib.load(prediction_formats.write_nifti(prediction_formats.VolumePrediction(volume, masks, []), tmp_path))
    for field in ("sform_code", "qform_code", "descrip", "xyzt_units", "pixdim", "srow_x", "srow_y", "srow_z",
                  "quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z", "dim"):
        np.testing.assert_array_equal(written.header[field], given.header[field], err_msg=field)
    assert written.get_data_dtype() == np.uint8 and written.header.get_slope_inter() == (None, None)
    np.testing.assert_array_equal(np.asarray(written.dataobj), np.where(masks[1], 2, np.where(masks[0], 1, 0)))


def test_nifti_label_volume_of_a_dicom_series_says_scanner_coordinates(tmp_path: Path) -> None:
    affine = np.diag([0.7, 0.7, 5.0, 1.0])
    geometry = Geometry.from_affine(affine, (20, 20, 4))
    volume = prediction_formats.VolumeInput("series", geometry, lambda: None)  # no NIfTI header to keep
    written = nib.load(prediction_formats.write_nifti(prediction_formats.VolumePrediction(volume, blobs(geometry.shape, 1), []), tmp_path))
    assert (int(written.header["sform_code"]), int(written.header["qform_code"])) == (1, 1)
    assert written.header.get_xyzt_units() == ("mm", "sec") and np.allclose(written.affine, affine)


@needs_data("dicom-ct-liver-seg")
def test_dicom_seg_keeps_overlapping_segments_and_references_each_source_instance(tmp_path: Path) -> None:
    import highdicom as hd
    import pydicom

    series = dicom_series.find(SHARED_DATA / "dicom-ct-liver-seg").series[0]
    masks = blobs((3, 512, 512), 2, seed=1)
    path = dicom_series.write_seg(tmp_path / "ct.seg.dcm", series, np.moveaxis(masks, 0, -1), ["liver", "lesion"], "test")
    raw = pydicom.dcmread(path)
    source = pydicom.dcmread(series.files[0])
    assert raw.Modality == "SEG" and raw.StudyInstanceUID == source.StudyInstanceUID and raw.PatientID == source.PatientID
    assert raw.ReferencedSeriesSequence[0].SeriesInstanceUID == series.uid
    seg = hd.seg.segread(path)
    assert [d.SegmentLabel for d in seg.SegmentSequence] == ["liver", "lesion"]
    stored = seg.get_pixels_by_source_instance(series.instance_uids, ignore_spatial_locations=True)
    np.testing.assert_array_equal(stored.astype(bool), np.moveaxis(masks, 0, -1))
    assert (masks[0] & masks[1]).any()  # the overlap survived


@needs_data("dicom-ct-liver-seg")
def test_writing_and_reading_a_seg_says_nothing_no_one_can_act_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """highdicom's INFO line per copied DICOM module and its warning about the source's one-part PatientName
    ("JANCT000") are not shown at the command line's INFO level; another highdicom warning still is."""
    import logging
    import warnings

    series = dicom_series.find(SHARED_DATA / "dicom-ct-liver-seg").series[0]
    masks = np.moveaxis(blobs((3, 512, 512), 1, seed=2), 0, -1)
    with caplog.at_level(logging.INFO), warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")
        path = dicom_series.write_seg(tmp_path / "ct.seg.dcm", series, masks, ["liver"], "test")
        dicom_series.segment_masks(dicom_series.SegFile(path, series.uid, ["liver"]), series)
        warnings.warn_explicit("a highdicom warning a user can act on", UserWarning, "base.py", 1, module="highdicom.base")
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("highdicom")]
    assert [str(w.message) for w in shown] == ["a highdicom warning a user can act on"]


def fake_prediction(name: str, shape: tuple[int, int], seed: int) -> Prediction:
    masks = blobs(shape, 3, seed)
    boxes = []
    for mask in masks:
        rows, cols = np.nonzero(mask)
        boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
    return Prediction(
        path=Path(name), names={0: "a", 1: "b"}, shape=shape, boxes=np.array(boxes, float),
        classes=np.array([0, 1, 1]), confidences=np.array([0.9, 0.5, 0.25]), masks=masks, probabilities=None,
    )


def test_coco_results_load_in_pycocotools_with_every_mask(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    predictions = [fake_prediction("x.png", (48, 64), 0), fake_prediction("y.png", (30, 20), 1)]
    prediction_formats.write_coco(predictions, ["a", "b"], tmp_path)
    truth = COCO(str(tmp_path / "coco_images.json"))
    results = truth.loadRes(str(tmp_path / "coco_results.json"))
    assert [c["name"] for c in truth.loadCats(truth.getCatIds())] == ["a", "b"]
    for image_id, prediction in enumerate(predictions, start=1):
        anns = results.loadAnns(results.getAnnIds(imgIds=[image_id]))
        assert [a["category_id"] for a in anns] == [1, 2, 2] and [a["score"] for a in anns] == [0.9, 0.5, 0.25]
        for ann, mask, box in zip(anns, prediction.masks, prediction.boxes):
            np.testing.assert_array_equal(results.annToMask(ann).astype(bool), mask)
            assert ann["bbox"] == [box[0], box[1], box[2] - box[0], box[3] - box[1]]


def test_rle_csv_rows_decode_to_the_merged_class_masks_with_competition_ids(tmp_path: Path) -> None:
    from yolo_tools.codecs.rle import decode

    scan = "train/case123/case123_day20/scans/slice_0042_266_266_1.50_1.50.png"
    predictions = [fake_prediction(scan, (40, 50), 2), fake_prediction("other.png", (40, 50), 3)]
    path = prediction_formats.write_rle_csv(predictions, ["a", "b"], tmp_path)
    table = pd.read_csv(path, keep_default_na=False)
    assert list(table["id"]) == ["case123_day20_slice_0042"] * 2 + ["other"] * 2
    for position, prediction in enumerate(predictions):
        merged = [prediction.masks[0], prediction.masks[1] | prediction.masks[2]]
        for class_id in range(2):
            row = table.iloc[2 * position + class_id]
            assert row["class"] == "ab"[class_id]
            np.testing.assert_array_equal(decode(row["segmentation"], (40, 50)).astype(bool), merged[class_id])
    # row-major and 1-based: a mask with only the second pixel of the first row set is "2 1"
    one = Prediction(Path("p.png"), {0: "a"}, (3, 4), np.zeros((1, 4)), np.array([0]), np.array([1.0]), np.zeros((1, 3, 4), bool), None)
    one.masks[0, 0, 1] = True
    prediction_formats.write_rle_csv([one], ["a"], tmp_path)
    assert (tmp_path / "submission.csv").read_text().splitlines()[1] == "p,a,2 1"


def test_unknown_format_is_refused_with_the_allowed_ones() -> None:
    from yolo_tools.errors import UserError

    with pytest.raises(UserError, match="nifti, dicom-seg, dicom-sr, coco, rle-csv"):
        prediction_formats.check_format("nrrd")
    assert json.dumps(prediction_formats.FORMATS)


def _volume_prediction(series, slices: list[Prediction]) -> prediction_formats.VolumePrediction:
    geometry = Geometry.from_affine(np.eye(4), (len(series.files), 512, 512), 0)
    volume = prediction_formats.VolumeInput(series.name, geometry, lambda: None, series)
    return prediction_formats.VolumePrediction(volume, np.zeros((1, *geometry.shape), bool), slices)


@needs_data("dicom-ct-liver-seg")
def test_dicom_sr_holds_each_box_and_a_classifier_decision_at_the_stored_point(tmp_path: Path) -> None:
    """Boxes on the right instances with their probability and threshold; a classifier's positive images only
    (the stored threshold decides, not argmax); and a series with nothing found says so."""
    import highdicom as hd

    series = dicom_series.find(SHARED_DATA / "dicom-ct-liver-seg").series[0]
    algorithm = dicom_series.Algorithm("liver", "train", "0" * 64, "test", "conf 0.2")
    empty = Prediction(Path("s.png"), {0: "a", 1: "b"}, (512, 512), np.zeros((0, 4)), np.zeros(0, int), np.zeros(0), None, None)
    boxed = Prediction(Path("s.png"), {0: "a", 1: "b"}, (512, 512), np.array([[10.5, 20.25, 40.0, 60.0], [100, 100, 200, 150]]),
                       np.array([1, 0]), np.array([0.9, 0.3]), None, None)
    detected = _volume_prediction(series, [empty, boxed, empty])
    findings = prediction_formats.findings_of(detected, ["a", "b"], "detect", {"conf": 0.2, "class_conf": {"a": 0.25}}, None)
    path = prediction_formats.write_dicom_sr(detected, tmp_path, findings, algorithm)
    report = hd.sr.srread(path)
    groups = report.content.get_planar_roi_measurement_groups()
    assert [g.finding_type.meaning for g in groups] == ["b", "a"]
    np.testing.assert_allclose(groups[0].roi.value, [[10.5, 20.25], [40, 20.25], [40, 60], [10.5, 60], [10.5, 20.25]])
    assert {g.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID for g in groups} == {series.instance_uids[1]}
    assert [[(m.name.meaning, round(m.value, 3)) for m in g.get_measurements()] for g in groups] == [
        [("Probability", 0.9), ("Threshold Value", 0.2)], [("Probability", 0.3), ("Threshold Value", 0.25)],
    ]

    def probs(p: float) -> Prediction:
        return Prediction(Path("s.png"), {0: "normal", 1: "lesion"}, (512, 512), np.zeros((0, 4)), np.zeros(0, int), np.zeros(0), None, np.array([1 - p, p]))

    classified = _volume_prediction(series, [probs(0.35), probs(0.2), probs(0.9)])
    point = {"rule": "youden", "threshold": 0.3}  # 0.35 is below argmax's 0.5 but above the stored threshold
    findings = prediction_formats.findings_of(classified, ["normal", "lesion"], "classify", {}, point)
    assert [(f.index, f.label, round(f.confidence, 2), f.threshold) for f in findings] == [(0, "lesion", 0.35, 0.3), (2, "lesion", 0.9, 0.3)]
    (tmp_path / "c").mkdir()
    path = prediction_formats.write_dicom_sr(classified, tmp_path / "c", findings, algorithm)
    groups = hd.sr.srread(path).content.get_planar_roi_measurement_groups()
    np.testing.assert_allclose(groups[0].roi.value, [[0, 0], [512, 0], [512, 512], [0, 512], [0, 0]])  # the whole image

    (tmp_path / "n").mkdir()
    nothing = prediction_formats.write_dicom_sr(_volume_prediction(series, [empty] * 3), tmp_path / "n", [], algorithm)
    assert dicom_series.findings_summary(hd.sr.srread(nothing)) == "All algorithms succeeded; without findings"
    assert not hd.sr.srread(nothing).content.get_planar_roi_measurement_groups()
    assert dicom_series.findings_summary(report) == "All algorithms succeeded; with findings"

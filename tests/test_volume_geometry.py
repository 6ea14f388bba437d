"""Volumes are placed where the scanner put them, or refused by name: DICOM series with a missing or doubled
slice, several series under one SeriesInstanceUID, thin slices, multi-frame files out of order; NIfTI
volumes with NaN voxels or a header without spacing; NIfTI cases with a missing file.

The broken inputs are copies of the real series in ../shared/data, broken the way hospital exports are.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import needs_data
from hospital_data import HIPPOCAMPUS, LIVER, MR_BRAIN, T1POST, T2, decathlon, dicom_mixed, mr_series, series_label
from yolo_tools.conversion import convert_folder
from yolo_tools.errors import UserError
from yolo_tools.imaging import dicom_series, nifti
from yolo_tools.imaging.geometry import SPACING_TOLERANCE, irregular_spacing, same_positions

pydicom = pytest.importorskip("pydicom")
nib = pytest.importorskip("nibabel")


BLANKED = {"SeriesNumber": None, "SeriesDescription": "", "AcquisitionNumber": None, "EchoNumbers": None}


def _names(count: int) -> list[str]:
    return [f"f{i}" for i in range(count)]


def test_a_uniform_stack_passes_with_decimal_rounding_and_a_gantry_tilt() -> None:
    rng = np.random.default_rng(0)
    along = np.arange(30) * 0.625
    straight = np.c_[np.zeros(30), np.zeros(30), along] + rng.uniform(-0.005, 0.005, (30, 3))  # DS rounding
    assert irregular_spacing(straight, _names(30)) == ""
    tilted = np.c_[np.zeros(30), along * np.tan(np.radians(15)), along]  # slices shifted in-plane, uniformly
    assert irregular_spacing(tilted, _names(30)) == ""
    assert same_positions(straight) == []


def test_a_missing_slice_a_shifted_slice_and_a_doubled_position_are_found() -> None:
    along = np.delete(np.arange(22) * 6.5, 10)  # the 11th of 22 slices is missing
    points = np.c_[np.zeros(21), np.zeros(21), along]
    problem = irregular_spacing(points, _names(21))
    assert "6.5 mm apart but 13 mm between f9 and f10" in problem and "up to 3.25 mm" in problem
    shifted = np.c_[np.zeros(22), np.zeros(22), np.arange(22) * 6.5]
    shifted[7, 0] = 2.0  # one slice 2 mm off within its plane: along the normal it looks fine
    assert "slices are not on one uniform grid: f7 lies 2 mm off it" in irregular_spacing(shifted, _names(22))
    nudged = np.c_[np.zeros(22), np.zeros(22), np.arange(22) * 6.5]
    nudged[5, 2] += 6.5 * SPACING_TOLERANCE * 0.8  # within the tolerance
    assert irregular_spacing(nudged, _names(22)) == ""
    doubled = np.insert(points, 4, points[4], axis=0)
    assert [run.tolist() for run in same_positions(doubled)] == [[4, 5]]


@needs_data("dicom-mr-brain-series")
def test_every_real_series_passes_unsplit_and_unchanged() -> None:
    found = dicom_series.find(MR_BRAIN)
    assert len(found.series) == 5 and found.notes == []
    assert all(not s.refused and not s.dropped for s in found.series)
    assert sorted(len(s.files) for s in found.series) == [22, 22, 22, 22, 40]


@needs_data("dicom-mr-brain-series")
def test_a_series_with_a_missing_slice_is_refused_naming_the_files_around_the_gap(tmp_path: Path) -> None:
    files = mr_series(tmp_path / "t1", drop=10)
    series = dicom_series.find(tmp_path).series[0]
    assert f"13 mm between t1/{files[9].name} and t1/{files[10].name}" in series.refused and "up to 3.25 mm" in series.refused
    with pytest.raises(UserError, match=r"series t1 \(.*t1\): slice spacing is not uniform: 6\.5 mm apart but 13 mm"):
        dicom_series.load(series)


@needs_data("dicom-ct-liver-seg")
def test_an_identical_copy_of_a_ct_slice_is_kept_once_and_the_slice_axis_stays_the_files(tmp_path: Path) -> None:
    src = dicom_mixed(tmp_path / "in")  # the CT with its SEGs, and an MR series: two patients to split
    shutil.copyfile(src / "ct" / "ct-3slice_02.dcm", src / "ct" / "slice 2 again.dcm")
    series = dicom_series.find(src).series[0]
    assert series.dropped == ["ct/slice 2 again.dcm (the image of ct/ct-3slice_02.dcm)"] and len(series.files) == 3
    card = convert_folder("dicom", src, tmp_path / "out")
    volume = json.loads((tmp_path / "out" / "volumes.json").read_text())["ct"]
    assert volume["shape"] == [3, 512, 512] and volume["slice_axis"] == 0  # a 4-file series once read as 512 slices
    assert volume["spacing_mm"][0] == pytest.approx(1.0, abs=1e-4)
    assert card["left_out"] == {"slices stored twice, kept once, series ct: ct/slice 2 again.dcm (the image of ct/ct-3slice_02.dcm)": 1}
    assert card["counts"]["train"]["images"] + card["counts"]["val"]["images"] == 3 + 40


@needs_data("dicom-ct-liver-seg")
def test_the_copy_a_seg_references_is_the_one_kept(tmp_path: Path) -> None:
    for path in LIVER.glob("*.dcm"):
        shutil.copyfile(path, tmp_path / path.name)
    data = pydicom.dcmread(tmp_path / "ct-3slice_02.dcm")
    data.SOPInstanceUID = "1.2.3.999"
    data.save_as(tmp_path / "a copy with its own uid.dcm")  # sorts first by path, yet the SEG references the other
    found = dicom_series.find(tmp_path)
    series = next(s for s in found.series if s.modality == "CT")
    assert tmp_path / "ct-3slice_02.dcm" in series.files and "1.2.3.999" not in series.instance_uids
    masks = dicom_series.segment_masks(found.segs_of(series)[0], series)
    assert next(iter(masks.values()))[1].sum() > 1000  # the middle slice keeps its liver


@needs_data("dicom-ct-liver-seg")
def test_different_images_at_one_position_refuse_the_series_by_file(tmp_path: Path) -> None:
    for path in LIVER.glob("ct-*.dcm"):
        shutil.copyfile(path, tmp_path / path.name)
    data = pydicom.dcmread(tmp_path / "ct-3slice_02.dcm")
    data.PixelData = (data.pixel_array[::-1].copy()).tobytes()
    data.SOPInstanceUID = "1.2.3.998"
    data.save_as(tmp_path / "ct-3slice_02b.dcm")
    series = dicom_series.find(tmp_path).series[0]
    assert "1 slice position(s) hold different images (ct-3slice_02.dcm and ct-3slice_02b.dcm)" in series.refused
    with pytest.raises(UserError, match="Give each series its own folder"):
        dicom_series.load(series)


@needs_data("dicom-mr-brain-series")
@pytest.mark.parametrize("blank", [False, True], ids=["by-series-number", "by-folder"])
def test_two_series_under_one_uid_are_split_back_into_their_own_volumes(tmp_path: Path, blank: bool) -> None:
    tags = {"SeriesInstanceUID": "1.2.826.0.1.3680043.2.1125.1"}
    if blank:  # an anonymiser that also blanked series and acquisition numbers and descriptions: the folder is left
        tags |= BLANKED
    mr_series(tmp_path / "t1", T1POST, **tags)
    mr_series(tmp_path / "t2", T2, **tags)
    found = dicom_series.find(tmp_path)
    assert [s.name for s in found.series] == ["t1", "t2"] and not any(s.refused for s in found.series)
    by = "folder" if blank else "SeriesNumber/SeriesDescription"
    assert found.notes == [f"SeriesInstanceUID {tags['SeriesInstanceUID']} holds 2 series, told apart by {by}: read as t1, t2"]
    for series, original in zip(found.series, (T1POST, T2)):
        pixels, geometry = dicom_series.load(series)
        expected, expected_geometry = dicom_series.load(dicom_series.find(MR_BRAIN / original).series[0])
        np.testing.assert_array_equal(pixels, expected)
        np.testing.assert_allclose(geometry.affine, expected_geometry.affine, atol=1e-6)


@needs_data("dicom-mr-brain-series")
def test_two_series_under_one_uid_in_one_folder_with_nothing_to_tell_them_apart_are_refused(tmp_path: Path) -> None:
    tags = {"SeriesInstanceUID": "1.2.3", **BLANKED}
    mr_series(tmp_path / "t1", T1POST, **tags)
    for path in mr_series(tmp_path / "t2", T2, **tags):
        path.rename(tmp_path / "t1" / f"t2_{path.name}")
    [series] = dicom_series.find(tmp_path).series
    assert series.refused.startswith("22 slice position(s) hold different images (t1/")


@needs_data("dicom-mr-brain-series")
@needs_data("dicom-ct-liver-seg")
def test_series_of_different_planes_under_one_uid_are_split_and_each_seg_stays_with_its_images(tmp_path: Path) -> None:
    (tmp_path / "ct").mkdir()
    for path in LIVER.glob("*.dcm"):
        shutil.copyfile(path, tmp_path / "ct" / path.name)
    ct_uid = str(pydicom.dcmread(LIVER / "ct-3slice_01.dcm").SeriesInstanceUID)
    series_number = pydicom.dcmread(LIVER / "ct-3slice_01.dcm").get("SeriesNumber")
    mr_series(tmp_path / "mr", "11_HCropVolume", SeriesInstanceUID=ct_uid, SeriesNumber=series_number, SeriesDescription="")
    found = dicom_series.find(tmp_path)
    ct, mr = (next(s for s in found.series if s.name == name) for name in ("ct", "mr"))
    assert len(ct.files) == 3 and len(mr.files) == 40 and ct.uid == mr.uid == ct_uid
    assert "told apart by plane" in found.notes[0]
    assert len(found.segs_of(ct)) == 2 and found.segs_of(mr) == []


@needs_data("dicom-ct-liver-seg")
def test_thin_slices_are_still_cut_into_the_files_own_images(tmp_path: Path) -> None:
    src = dicom_mixed(tmp_path / "in")  # the CT with its SEGs, and an MR series: two patients to split
    for index, path in enumerate(sorted((src / "ct").glob("ct-*.dcm"))):  # 0.5 mm apart, closer than the 0.81 mm pixels
        data = pydicom.dcmread(path)
        data.ImagePositionPatient = [*data.ImagePositionPatient[:2], -126.69 - 0.5 * index]
        data.save_as(path)
    convert_folder("dicom", src, tmp_path / "out")
    volume = json.loads((tmp_path / "out" / "volumes.json").read_text())["ct"]
    assert volume["shape"] == [3, 512, 512] and volume["slice_axis"] == 0 and volume["spacing_mm"][0] == pytest.approx(0.5)


def _multi_frame(tmp_path: Path, order: list[int]) -> Path:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    slices = [pydicom.dcmread(p) for p in dicom_series.find(MR_BRAIN / "11_HCropVolume").series[0].files]
    chosen = [slices[i] for i in order]
    multi = slices[0].copy()
    multi.NumberOfFrames = len(chosen)
    multi.PixelData = b"".join(s.PixelData for s in chosen)
    frames = []
    for s in chosen:
        position, group = Dataset(), Dataset()
        position.ImagePositionPatient = s.ImagePositionPatient
        group.PlanePositionSequence = Sequence([position])
        frames.append(group)
    multi.PerFrameFunctionalGroupsSequence = Sequence(frames)
    multi.save_as(tmp_path / "multi.dcm")
    return tmp_path


@needs_data("dicom-mr-brain-series")
@pytest.mark.parametrize(
    ("order", "says"),
    [
        ([i for i in range(40) if i != 20], r"multi\.dcm: slice spacing is not uniform: 1 mm apart but 2 mm between frame 20 and frame 21"),
        ([*range(20), 25, *range(20, 25), *range(26, 40)], r"multi\.dcm: its frames are not stored in order along the slice normal"),
        ([*range(40), 5], r"multi\.dcm: 2 frames share 1 position"),
    ],
    ids=["missing-frame", "frames-out-of-order", "frame-twice"],
)
def test_a_multi_frame_file_whose_frames_are_not_one_stack_is_refused(tmp_path: Path, order: list[int], says: str) -> None:
    series = dicom_series.find(_multi_frame(tmp_path, order)).series[0]
    with pytest.raises(UserError, match=says):
        dicom_series.load(series)


@needs_data("dicom-mr-brain-series")
@needs_data("dicom-ct-liver-seg")
def test_a_conversion_names_the_refused_series_and_converts_the_others(tmp_path: Path) -> None:
    src = tmp_path / "in"
    files = mr_series(src / "t1", drop=10)
    series_label(T1POST, src / "labels" / "t1.nii.gz")
    mr_series(src / "t2", T2)
    series_label(T2, src / "labels" / "t2.nii.gz")
    (src / "ct").mkdir()
    for path in LIVER.glob("*.dcm"):  # another patient, so that the good series can be split
        shutil.copyfile(path, src / "ct" / path.name)
    card = convert_folder("dicom", src, tmp_path / "out")
    assert len(card["skipped"]) == 1 and f"13 mm between t1/{files[9].name} and t1/{files[10].name}" in card["skipped"][0]
    assert "series t1 (" in card["skipped"][0]
    volumes = json.loads((tmp_path / "out" / "volumes.json").read_text())
    assert sorted(volumes) == ["ct", "t2"] and volumes["t2"]["shape"] == [22, 320, 280]


def _nan_copy(source: Path, target: Path, share: float) -> None:
    image = nib.load(source)
    data = np.asarray(image.dataobj, dtype=np.float32)
    data[np.arange(data.size).reshape(data.shape) < int(data.size * share)] = np.nan
    nib.save(nib.Nifti1Image(data, image.affine), target)  # float32 on disk, whatever the source stored


@needs_data("hippocampus-mri-msd")
def test_nan_voxels_skip_the_nifti_case_by_name_instead_of_black_slices(tmp_path: Path) -> None:
    src = decathlon(tmp_path / "ds", ("hippocampus_001", "hippocampus_003", "hippocampus_004", "hippocampus_006"))
    _nan_copy(HIPPOCAMPUS / "imagesTr" / "hippocampus_003.nii.gz", src / "imagesTr" / "hippocampus_003.nii.gz", 0.1)
    _nan_copy(HIPPOCAMPUS / "imagesTr" / "hippocampus_004.nii.gz", src / "imagesTr" / "hippocampus_004.nii.gz", 1.0)
    card = convert_folder("nifti", src, tmp_path / "out")
    reasons = {line.split(" slice ", 1)[1].split(": ", 1)[1] for line in card["skipped"]}  # every slice of both, one reason each
    assert len(card["skipped"]) == sum(nib.load(src / "imagesTr" / f"hippocampus_00{n}.nii.gz").shape[2] for n in (3, 4))
    three, four = sorted(reasons)
    assert "hippocampus_003.nii.gz: " in three and "voxels are not finite (" in three and " NaN" in three
    assert "hippocampus_004.nii.gz: all " in four
    slices = (tmp_path / "out" / "slices.csv").read_text()
    assert "hippocampus_003" not in slices and "hippocampus_004" not in slices
    assert "hippocampus_001" in slices and "hippocampus_006" in slices


def test_a_nifti_label_with_nan_and_a_header_without_spacing_are_named(tmp_path: Path) -> None:
    label = np.zeros((8, 8, 4), np.float32)
    label[2, 2, 2] = np.nan
    nib.save(nib.Nifti1Image(label, np.eye(4)), tmp_path / "label.nii.gz")
    with pytest.raises(UserError, match=r"label\.nii\.gz: 1 of 256 voxels are not finite \(1 NaN, 0 infinite\)"):
        nifti.read_array(tmp_path / "label.nii.gz")
    flat = nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), None)
    flat.header.set_sform(np.diag([1.0, 1.0, 0.0, 1.0]), code=2)  # a zero slice spacing, qform unset
    flat.header["qform_code"] = 0
    nib.save(flat, tmp_path / "flat.nii.gz")
    with pytest.raises(UserError, match=r"flat\.nii\.gz: the header places no voxel in space \(voxel spacing \[1\.0, 1\.0, 0\.0\] mm"):
        nifti.header(tmp_path / "flat.nii.gz")


@needs_data("hippocampus-mri-msd")
def test_a_listed_case_without_its_label_file_is_named(tmp_path: Path) -> None:
    src = decathlon(tmp_path / "ds", ("hippocampus_001", "hippocampus_003", "hippocampus_004"))
    (src / "labelsTr" / "hippocampus_003.nii.gz").unlink()
    card = convert_folder("nifti", src, tmp_path / "out")
    assert card["left_out"] == {"cases without their image or label file: hippocampus_003 (hippocampus_003.nii.gz)": 1}


def _blank_predictions(weights: Path, named, args: dict):
    from yolo_tools.prediction import Prediction

    for path, image in named:
        yield Prediction(path=path, names={0: "a"}, shape=image.shape[:2], boxes=np.zeros((0, 4)), classes=np.zeros(0, int),
                         confidences=np.zeros(0), masks=None, probabilities=None)


@needs_data("hippocampus-mri-msd")
@needs_data("dicom-mr-brain-series")
def test_predict_skips_a_nan_volume_or_a_gapped_series_by_name_and_refuses_when_nothing_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from yolo_tools.outputs import prediction_formats

    monkeypatch.setattr(prediction_formats.engine, "predict_arrays", _blank_predictions)  # the model is not what is tested
    (tmp_path / "niftis").mkdir()
    shutil.copyfile(HIPPOCAMPUS / "imagesTr" / "hippocampus_001.nii.gz", tmp_path / "niftis" / "good.nii.gz")
    _nan_copy(HIPPOCAMPUS / "imagesTr" / "hippocampus_003.nii.gz", tmp_path / "niftis" / "holes.nii.gz", 1.0)
    inputs = prediction_formats.volume_inputs(tmp_path / "niftis", None)
    done = [p.volume.name for p in prediction_formats.predict_volumes(tmp_path / "w.pt", inputs, None, 1, {})]
    assert done == ["good"] and "holes.nii.gz: all " in caplog.text and "voxels are not finite" in caplog.text
    with pytest.raises(UserError, match=r"holes\.nii\.gz: all [\d,]+ voxels are not finite"):  # alone: refused, not an empty label map
        inputs = prediction_formats.volume_inputs(tmp_path / "niftis" / "holes.nii.gz", None)
        list(prediction_formats.predict_volumes(tmp_path / "w.pt", inputs, None, 1, {}))
    mr_series(tmp_path / "dicom" / "t1", drop=10)
    mr_series(tmp_path / "dicom" / "t2", T2)
    assert [v.name for v in prediction_formats.volume_inputs(tmp_path / "dicom", None)] == ["t2"]
    assert "skipped series t1 (" in caplog.text and "slice spacing is not uniform" in caplog.text
    shutil.rmtree(tmp_path / "dicom" / "t2")
    with pytest.raises(UserError, match=r"series t1 \(.*\): slice spacing is not uniform"):
        prediction_formats.volume_inputs(tmp_path / "dicom", None)

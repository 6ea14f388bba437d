"""DICOM as hospitals send it: every common transfer syntax, VOI LUTs, multi-frame files, series order."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, needs_data
from yolo_tools.imaging import dicom, dicom_series

pydicom = pytest.importorskip("pydicom")
SYNTAXES = SHARED_DATA / "dicom-samples" / "TransferSyntaxes"
MR_SERIES = SHARED_DATA / "dicom-mr-brain-series" / "11_HCropVolume"
GREY = sorted(p.name for p in SYNTAXES.glob("*.dcm") if p.stem not in ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.4.50")) if SYNTAXES.is_dir() else []


@needs_data("dicom-samples")
@pytest.mark.parametrize("name", GREY)
def test_every_transfer_syntax_decodes_to_a_plausible_image(name: str) -> None:
    image = dicom.read(SYNTAXES / name)
    pixels = image.pixels if image.pixels.ndim == 2 else image.pixels[0]
    assert pixels.shape[0] >= 256 and pixels.std() > 10
    # neighbouring pixels agree as in any real image; a wrongly decoded stream is noise
    assert np.corrcoef(pixels[:, :-1].ravel(), pixels[:, 1:].ravel())[0, 1] > 0.8
    assert dicom.to_uint8(image).dtype == np.uint8


@needs_data("dicom-samples")
def test_lossless_compression_decodes_to_the_same_values_as_uncompressed() -> None:
    # JPEG 2000 lossless, RLE and Deflate copies of the same NM image
    same = [dicom.read(SYNTAXES / f"{uid}.dcm").pixels for uid in ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80")]
    np.testing.assert_array_equal(same[0], same[1])
    np.testing.assert_array_equal(same[0], same[2])


def test_voi_lut_is_applied_before_any_window(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    data = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    data.WindowCenter, data.WindowWidth = 40, 400  # present too: the LUT must win for display
    item = Dataset()
    lut = (np.clip(np.arange(4096) // 4, 0, 255) * 257).astype(np.uint16)  # HU 0..1023 -> 0..65535
    item.LUTDescriptor = [4096, 0, 16]  # entries, first value mapped (in HU, after the rescale), bits
    item.add_new(0x00283006, "US", lut.tolist())  # LUT Data
    data.VOILUTSequence = Sequence([item])
    data.save_as(tmp_path / "lut.dcm")
    image = dicom.read(tmp_path / "lut.dcm")
    hu = data.pixel_array.astype(int) - 1024
    expected = np.clip(np.clip(hu, 0, 4095) // 4, 0, 255)
    assert expected.min() == 0 and expected.max() == 255
    np.testing.assert_array_equal(dicom.to_uint8(image), expected)
    assert image.window == (40.0, 400.0)  # a recipe's rule still replaces both
    from yolo_tools.intensity import Window, window

    np.testing.assert_array_equal(dicom.to_uint8(image, Window(center=0, width=100)), window(image.pixels, 0, 100))


@needs_data("dicom-mr-brain-series")
def test_series_order_follows_positions_not_file_names(tmp_path: Path) -> None:
    files = sorted(MR_SERIES.glob("*.dcm"))
    for number, path in enumerate(reversed(files)):  # names now run against the slice order
        shutil.copyfile(path, tmp_path / f"img{number:03d}.dcm")
    (tmp_path / "sub").mkdir()
    shutil.move(tmp_path / "img005.dcm", tmp_path / "sub" / "img005.dcm")
    found = dicom_series.find(tmp_path)
    assert len(found.series) == 1 and len(found.series[0].files) == len(files)
    pixels, geometry = dicom_series.load(found.series[0])
    heights = [float(pydicom.dcmread(p).ImagePositionPatient[2]) for p in found.series[0].files]
    assert heights == sorted(heights)
    assert geometry.spacing == pytest.approx((np.diff(sorted(heights)).mean(), 1.0, 1.0))


@needs_data("dicom-mr-brain-series")
def test_multi_frame_file_is_a_volume_like_its_series(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    series = dicom_series.find(MR_SERIES).series[0]
    pixels, geometry = dicom_series.load(series)
    slices = [pydicom.dcmread(p) for p in series.files]
    multi = slices[0].copy()
    multi.NumberOfFrames = len(slices)
    multi.PixelData = b"".join(s.PixelData for s in reversed(slices))  # frames stored top-down
    frames = []
    for s in reversed(slices):
        position, group = Dataset(), Dataset()
        position.ImagePositionPatient = s.ImagePositionPatient
        group.PlanePositionSequence = Sequence([position])
        frames.append(group)
    multi.PerFrameFunctionalGroupsSequence = Sequence(frames)
    multi.save_as(tmp_path / "multi.dcm")
    found = dicom_series.find(tmp_path)
    assert len(found.series) == 1 and found.series[0].files == [tmp_path / "multi.dcm"]
    multi_pixels, multi_geometry = dicom_series.load(found.series[0])
    np.testing.assert_array_equal(multi_pixels, pixels[::-1])
    np.testing.assert_allclose(multi_geometry.spacing, geometry.spacing, atol=1e-6)
    np.testing.assert_allclose(multi_geometry.affine[:3, 3], geometry.affine[:3, 3] + geometry.affine[:3, 0] * (len(slices) - 1), atol=1e-4)


@needs_data("dicom-samples")
def test_non_image_objects_are_named_and_left_out() -> None:
    found = dicom_series.find(SHARED_DATA / "dicom-samples" / "SEG_RTSTRUCT")
    assert [s.modality for s in found.series] == ["CT"]
    assert any("RT.dcm: a RTSTRUCT object" in line for line in found.skipped)
    assert [seg.labels for seg in found.segs] == [["Necrosis", "Edema", "Enhancing Lesion"]]


@needs_data("dicom-mr-brain-series")
def test_series_in_folders_of_the_same_name_get_distinct_names(tmp_path: Path) -> None:
    for patient, uid in (("a", None), ("b", "1.2.3.4")):
        (tmp_path / patient / "CT").mkdir(parents=True)
        for path in sorted(MR_SERIES.glob("*.dcm"))[:3]:
            data = pydicom.dcmread(path)
            if uid:
                data.SeriesInstanceUID = uid
            data.save_as(tmp_path / patient / "CT" / path.name)
    assert [s.name for s in dicom_series.find(tmp_path).series] == ["a_CT", "b_CT"]

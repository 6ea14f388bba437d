"""DICOM (pydicom's real CT and MR test files) and NIfTI (small volumes made here) readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from yolo_tools.errors import UserError
from yolo_tools.intensity import Window, Windows, window

pydicom = pytest.importorskip("pydicom")
nib = pytest.importorskip("nibabel")

from pydicom.data import get_testdata_file  # noqa: E402

from yolo_tools.imaging import dicom, nifti  # noqa: E402


def test_ct_is_read_in_plausible_hounsfield_units() -> None:
    image = dicom.read(get_testdata_file("CT_small.dcm"))
    stored = pydicom.dcmread(get_testdata_file("CT_small.dcm")).pixel_array
    assert image.modality == "CT" and image.pixels.dtype == np.float32 and image.pixels.shape == (128, 128)
    np.testing.assert_array_equal(image.pixels, stored.astype(np.float32) - 1024)  # slope 1, intercept -1024
    assert -1024 <= image.pixels.min() < -800  # air
    assert -100 < np.median(image.pixels) < 100  # soft tissue
    assert 300 < image.pixels.max() < 3000  # bone
    assert image.spacing == pytest.approx((0.661468, 0.661468))
    assert image.window is None  # the file stores none: percentiles by default, a recipe window otherwise
    soft = dicom.to_uint8(image, Window(center=40, width=400))
    assert soft.dtype == np.uint8
    assert soft[image.pixels <= -160].max() == 0 and soft[image.pixels >= 240].min() == 255
    channels = dicom.to_uint8(image, Windows(windows=[(40, 400), (400, 1800), (-600, 1500)]))
    assert channels.shape == (128, 128, 3)
    assert dicom.to_uint8(image).dtype == np.uint8


def test_mr_uses_the_window_stored_in_the_file() -> None:
    image = dicom.read(get_testdata_file("MR_small.dcm"))
    assert image.modality == "MR" and image.window == (600.0, 1600.0)
    np.testing.assert_array_equal(dicom.to_uint8(image), window(image.pixels, 600, 1600))
    recipe_window = dicom.to_uint8(image, Window(center=1000, width=500))  # a recipe's window wins
    np.testing.assert_array_equal(recipe_window, window(image.pixels, 1000, 500))


def test_rescale_and_monochrome1_are_honoured(tmp_path: Path) -> None:
    dataset = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    dataset.RescaleSlope, dataset.RescaleIntercept = 2, -2048
    dataset.PhotometricInterpretation = "MONOCHROME1"
    dataset.save_as(tmp_path / "inverted.dcm")
    image = dicom.read(tmp_path / "inverted.dcm")
    np.testing.assert_array_equal(image.pixels, dataset.pixel_array.astype(np.float32) * 2 - 2048)
    spec = Window(center=0, width=2000)
    np.testing.assert_array_equal(dicom.to_uint8(image, spec), 255 - window(image.pixels, 0, 2000))


def test_unreadable_dicom_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom")
    with pytest.raises(UserError, match=r"bad\.dcm: cannot read DICOM pixels"):
        dicom.read(bad)


def _marked_volume() -> np.ndarray:
    """X (left->right), Y (posterior->anterior), Z (inferior->superior) with a mark at right-anterior-superior."""
    data = np.zeros((20, 30, 10), np.int16)
    data[15:18, 24:27, 8] = 1000
    return data


@pytest.mark.parametrize("voxel_order", ["RAS", "LPS"])
def test_nifti_slices_in_radiological_view_whatever_the_voxel_order(tmp_path: Path, voxel_order: str) -> None:
    data, affine = _marked_volume(), np.diag([0.8, 0.8, 2.5, 1.0])
    if voxel_order == "LPS":  # the same patient stored with x and y reversed, as DICOM-derived files often are
        data, affine = data[::-1, ::-1, :].copy(), np.diag([-0.8, -0.8, 2.5, 1.0])
        affine[:2, 3] = [19 * 0.8, 29 * 0.8]
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "volume.nii.gz")
    volume = nifti.read(tmp_path / "volume.nii.gz")
    assert volume.data.shape == (20, 30, 10) and volume.spacing == pytest.approx((0.8, 0.8, 2.5))
    axial = list(nifti.slices(volume, axis=2))
    assert len(axial) == 10 and axial[8].shape == (30, 20)  # rows anterior->posterior, columns right->left
    rows, cols = np.nonzero(axial[8])
    assert rows.max() < 10 and cols.max() < 10  # patient's right-anterior: top left on screen
    coronal = nifti.slice_at(volume, 25, axis=1)
    assert coronal.shape == (10, 20) and np.nonzero(coronal)[0].max() < 3  # superior at the top
    raw = nifti.read(tmp_path / "volume.nii.gz", canonical=False)
    assert voxel_order == "RAS" or not np.array_equal(raw.data, volume.data)


def test_nifti_four_dimensional_takes_the_first_volume_and_bad_files_are_named(tmp_path: Path) -> None:
    series = np.stack([_marked_volume(), np.zeros((20, 30, 10), np.int16)], axis=-1)
    nib.save(nib.Nifti1Image(series, np.eye(4)), tmp_path / "series.nii")
    assert nifti.read(tmp_path / "series.nii").data.max() == 1000
    (tmp_path / "bad.nii.gz").write_bytes(b"nope")
    with pytest.raises(UserError, match=r"bad\.nii\.gz: cannot read NIfTI volume"):
        nifti.read(tmp_path / "bad.nii.gz")


def test_the_formats_converters_accept_are_the_ones_ultralytics_trains_on() -> None:
    """`imaging.pillow.TRAINABLE_FORMATS` is kept as text so converting does not import Ultralytics."""
    from ultralytics.data.utils import IMG_FORMATS

    from yolo_tools.imaging.pillow import TRAINABLE_FORMATS

    assert TRAINABLE_FORMATS == IMG_FORMATS | {"jpeg2000"}


def test_a_file_pillow_cannot_identify_is_refused_without_installing_a_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ultralytics' patched `Image.open` pip-installs pi-heif for any file Pillow cannot identify; the
    converters' check and `predict`'s must call Pillow's own and name the file as no image instead."""
    import ultralytics.utils.checks
    import ultralytics.utils.patches  # noqa: F401 - patches PIL.Image.open, as any training or prediction does

    from yolo_tools.convert import images
    from yolo_tools.convert.samples import SkipSample
    from yolo_tools.imaging import model_input

    def no_install(*args, **kwargs):
        raise AssertionError(f"tried to install {args}")

    monkeypatch.setattr(ultralytics.utils.checks, "check_requirements", no_install)
    note = tmp_path / "scan.jpg"
    note.write_text("this is a note, not an image\n")
    with pytest.raises(SkipSample, match="not an image file"):
        images.load(note)
    assert "not a readable image" in model_input.unreadable(note)


@pytest.mark.parametrize("side", [10_000, 100_000])  # Pillow warns (1-2x its limit), Pillow refuses (beyond)
def test_a_decompression_bomb_is_skipped_whether_pillow_warns_or_refuses(tmp_path: Path, side: int) -> None:
    from bad_input_sources import bomb

    from yolo_tools.convert import images
    from yolo_tools.convert.samples import SkipSample

    path = tmp_path / f"bomb-{side}.png"
    bomb(path, side)
    with pytest.raises(SkipSample, match="decompression bomb"):
        images.load(path)

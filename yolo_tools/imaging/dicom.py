"""DICOM images as the scanner meant them: stored values -> modality units (Hounsfield for CT) -> 8-bit.

`read` applies the modality LUT (Rescale Slope/Intercept), so a CT pixel is in HU whatever the vendor
stored; it keeps the file's own display window and photometric interpretation. `to_uint8` windows with
the recipe's intensity spec when there is one, else the file's VOI LUT (CR, DX and MG files often carry
one instead of, or before, a window; pydicom's `apply_voi_lut`), else the file's window, else robust
percentiles, and inverts MONOCHROME1 images (where low values are white) so bone and contrast are bright
like everywhere else.

Compressed pixel data decodes through pydicom's plugins (pylibjpeg with its libjpeg and openjpeg
back-ends, pyjpegls, python-gdcm). The one file type none of them accepts, 12-bit JPEG Extended (lossy)
with the non-conforming scan header some old scanners wrote, is handed to GDCM's own reader, which
decodes it where pydicom's GDCM plugin refuses 12-bit JPEG Extended outright. Files without a file meta
header (old Implicit VR Little Endian files) are read as such.

Examples:
    >>> from pydicom.data import get_testdata_file
    >>> image = read(get_testdata_file("CT_small.dcm"))
    >>> image.pixels.min(), image.window                  # HU, and the file's (centre, width) or None
    >>> grey = to_uint8(image, Window(center=40, width=400))  # soft-tissue window, uint8
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolo_tools.errors import UserError
from yolo_tools.intensity import Intensity, Percentile, Window, to_uint8 as map_intensity


@dataclass(frozen=True)
class DicomImage:
    """Pixels in modality units (float32; HU for CT), frames first for multi-frame files."""

    pixels: np.ndarray
    modality: str
    photometric: str
    window: tuple[float, float] | None  # the file's first (centre, width), in the same units as pixels
    spacing: tuple[float, float] | None  # row, column spacing in mm
    path: Path
    tags: dict = field(default_factory=dict)
    voi_lut: np.ndarray | None = None  # the file's VOI LUT applied, scaled to 0..1 (None: the file has none)


def _first(value) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value[0] if hasattr(value, "__len__") and not isinstance(value, str) else value)
    except (TypeError, ValueError, IndexError):
        return None


def file_window(data) -> tuple[float, float] | None:
    """The file's first (WindowCenter, WindowWidth), or None when it has no usable one."""
    center, width = _first(data.get("WindowCenter")), _first(data.get("WindowWidth"))
    return (center, width) if center is not None and width and width > 0 else None


def dataset(path: str | Path, pixels: bool = True):
    """The file as a pydicom Dataset; files without a meta header are taken as Implicit VR Little Endian."""
    import pydicom
    from pydicom.uid import ImplicitVRLittleEndian

    path = Path(path)
    try:
        data = pydicom.dcmread(path, force=True, stop_before_pixels=not pixels)
    except Exception as exc:  # pydicom raises many types for unreadable files
        raise UserError(f"{path}: cannot read DICOM pixels or header: {exc}") from None
    if "TransferSyntaxUID" not in data.file_meta:
        if "SOPClassUID" not in data:
            raise UserError(
                f"{path}: cannot read DICOM pixels or header: not a DICOM file (no SOP Class UID); "
                "give .dcm files from a scanner or PACS"
            )
        data.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return data


def stored_pixels(data, path: Path) -> np.ndarray:
    """Stored values, frames first; the GDCM fallback is for 12-bit JPEG Extended (see the module doc)."""
    if "PixelData" not in data:
        raise UserError(f"{path}: the DICOM file has no pixel data ({data.get('Modality', '?')} object); give image files")
    try:
        return data.pixel_array
    except Exception as exc:  # pydicom raises many types for unreadable or compressed data
        if data.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.51":
            decoded = _gdcm_pixels(path, data)
            if decoded is not None:
                return decoded
        raise UserError(
            f"{path}: cannot decode DICOM pixels ({data.file_meta.TransferSyntaxUID.name}): {exc}; "
            "install the decoders: pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg python-gdcm"
        ) from None


def _gdcm_pixels(path: Path, data) -> np.ndarray | None:
    """Decode with GDCM's ImageReader directly (single-frame, grey): the buffer is the stored values."""
    try:
        import gdcm
    except ImportError:
        return None
    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    if not reader.Read() or int(data.get("SamplesPerPixel", 1)) != 1 or int(data.get("NumberOfFrames", 1)) != 1:
        return None
    dtype = np.int16 if int(data.get("PixelRepresentation", 0)) else np.uint16
    if int(data.BitsAllocated) == 8:
        dtype = np.int8 if dtype == np.int16 else np.uint8
    raw = reader.GetImage().GetBuffer().encode("utf-8", errors="surrogateescape")
    expected = int(data.Rows) * int(data.Columns) * np.dtype(dtype).itemsize
    if len(raw) != expected:
        return None
    return np.frombuffer(raw, dtype=dtype).reshape(int(data.Rows), int(data.Columns)).copy()


def _voi_lut(modality_pixels: np.ndarray, data) -> np.ndarray | None:
    """The file's VOI LUT (not its window: that stays a Window so a recipe can replace it) as 0..1."""
    from pydicom.pixels import apply_voi_lut

    if "VOILUTSequence" not in data:
        return None
    item = data.VOILUTSequence[0]
    bits = int(item.LUTDescriptor[2]) if "LUTDescriptor" in item else 16
    if np.issubdtype(modality_pixels.dtype, np.floating) and np.array_equal(modality_pixels, np.rint(modality_pixels)):
        modality_pixels = modality_pixels.astype(np.int64)  # whole numbers after the rescale: LUT indices
    shown = apply_voi_lut(modality_pixels, data, index=0, prefer_lut=True).astype(np.float32)
    return np.clip(shown / float(2**bits - 1), 0, 1)


def read(path: str | Path) -> DicomImage:
    """Read one DICOM file into modality units; any problem is one error naming the file."""
    from pydicom.pixels import apply_modality_lut

    path = Path(path)
    data = dataset(path)
    stored = stored_pixels(data, path)
    modality = apply_modality_lut(stored, data)
    pixels = modality.astype(np.float32)
    spacing = data.get("PixelSpacing")
    return DicomImage(
        pixels=pixels,
        modality=str(data.get("Modality", "")),
        photometric=str(data.get("PhotometricInterpretation", "MONOCHROME2")),
        window=file_window(data),
        spacing=(float(spacing[0]), float(spacing[1])) if spacing else None,
        path=path,
        tags={
            "PatientID": str(data.get("PatientID", "")),
            "StudyInstanceUID": str(data.get("StudyInstanceUID", "")),
            "SeriesInstanceUID": str(data.get("SeriesInstanceUID", "")),
            "InstanceNumber": data.get("InstanceNumber"),
        },
        voi_lut=_voi_lut(modality, data),
    )


def to_uint8(image: DicomImage, spec: Intensity | None = None) -> np.ndarray:
    """8-bit grey (or 3 channels for multi-window specs) for YOLO, MONOCHROME1 inverted to MONOCHROME2."""
    if spec is None and image.voi_lut is not None:
        grey = (image.voi_lut * 255).round().astype(np.uint8)
    else:
        if spec is None:
            spec = Window(center=image.window[0], width=image.window[1]) if image.window else Percentile()
        grey = map_intensity(image.pixels, spec)
    return 255 - grey if image.photometric == "MONOCHROME1" else grey


def deidentification(paths: list[Path]) -> dict:
    """What the files' headers say of their de-identification, for a study's checklist (CLAIM asks how it was done).

    Headers only (no pixels): per value of Patient Identity Removed (0012,0062) and of De-identification
    Method (0012,0063), how many files carry it ('(absent)' where a file lacks the tag); files pydicom cannot
    read are counted apart rather than stopping the study that asks.
    """
    removed: dict[str, int] = {}
    methods: dict[str, int] = {}
    unreadable = 0
    for path in paths:
        try:
            data = dataset(path, pixels=False)
        except UserError:
            unreadable += 1
            continue
        flag = str(data.get("PatientIdentityRemoved", "(absent)")) or "(absent)"
        method = str(data.get("DeidentificationMethod", "(absent)")) or "(absent)"
        removed[flag] = removed.get(flag, 0) + 1
        methods[method] = methods.get(method, 0) + 1
    return {"files": len(paths), "unreadable": unreadable, "patient_identity_removed": removed, "method": methods}

"""DICOM images as the scanner meant them: stored values -> modality units (Hounsfield for CT) -> 8-bit.

`read` applies the modality LUT (Rescale Slope/Intercept), so a CT pixel is in HU whatever the vendor
stored; it keeps the file's own display window and photometric interpretation. `to_uint8` windows with
the recipe's intensity spec when there is one, else the file's window, else robust percentiles, and
inverts MONOCHROME1 images (where low values are white) so bone and contrast are bright like everywhere else.

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


def _first(value) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value[0] if hasattr(value, "__len__") and not isinstance(value, str) else value)
    except (TypeError, ValueError, IndexError):
        return None


def read(path: str | Path) -> DicomImage:
    """Read one DICOM file into modality units; any problem is one error naming the file."""
    import pydicom
    from pydicom.pixels import apply_modality_lut

    path = Path(path)
    try:
        dataset = pydicom.dcmread(path)
        stored = dataset.pixel_array
    except Exception as exc:  # pydicom raises many types for unreadable or compressed data
        raise UserError(f"{path}: cannot read DICOM pixels: {exc}") from None
    pixels = apply_modality_lut(stored, dataset).astype(np.float32)
    center, width = _first(dataset.get("WindowCenter")), _first(dataset.get("WindowWidth"))
    spacing = dataset.get("PixelSpacing")
    return DicomImage(
        pixels=pixels,
        modality=str(dataset.get("Modality", "")),
        photometric=str(dataset.get("PhotometricInterpretation", "MONOCHROME2")),
        window=(center, width) if center is not None and width and width > 0 else None,
        spacing=(float(spacing[0]), float(spacing[1])) if spacing else None,
        path=path,
        tags={
            "PatientID": str(dataset.get("PatientID", "")),
            "StudyInstanceUID": str(dataset.get("StudyInstanceUID", "")),
            "SeriesInstanceUID": str(dataset.get("SeriesInstanceUID", "")),
            "InstanceNumber": dataset.get("InstanceNumber"),
        },
    )


def to_uint8(image: DicomImage, spec: Intensity | None = None) -> np.ndarray:
    """8-bit grey (or 3 channels for multi-window specs) for YOLO, MONOCHROME1 inverted to MONOCHROME2."""
    if spec is None:
        spec = Window(center=image.window[0], width=image.window[1]) if image.window else Percentile()
    grey = map_intensity(image.pixels, spec)
    return 255 - grey if image.photometric == "MONOCHROME1" else grey

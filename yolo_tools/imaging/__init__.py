"""Readers for what hospitals hand over (DICOM files, NIfTI volumes), as float arrays in the scanner's units.

They only read: how values become 8-bit grey is `yolo_tools.intensity`, chosen by the recipe or, for
DICOM, by the window stored in the file. What they hand over is finite: a NaN or infinite voxel has no
place on an 8-bit scale and no meaning to a model, so a volume holding one is refused by name
(`require_finite`) rather than turned into black slices that keep their labels.
"""

from __future__ import annotations

import numpy as np

from yolo_tools.errors import UserError

# Raster image files Ultralytics and OpenCV read directly (DICOM needs `imaging.dicom`).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


def require_finite(array: np.ndarray, where: str) -> np.ndarray:
    """`array` itself when every value is finite; else one message naming `where` and how many are not."""
    if array.dtype.kind != "f" or np.isfinite(array).all():
        return array
    nan = int(np.count_nonzero(np.isnan(array)))
    infinite = int(np.count_nonzero(np.isinf(array)))
    share = "all" if nan + infinite == array.size else f"{nan + infinite:,} of"
    raise UserError(
        f"{where}: {share} {array.size:,} voxels are not finite ({nan:,} NaN, {infinite:,} infinite); they have no "
        "intensity to show or predict on. Fill them (e.g. with the background value) or leave this volume out"
    )

"""Per-class masks as one 16-bit PNG: bit c of each pixel is class c (classes may overlap), up to 16 classes.

One format for the published ground truth a converter keeps (`<dataset>/masks/<split>/`) and the
predicted masks evaluate saves (`<run>/eval/masks/`), so both are read back by the same function.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

MAX_CLASSES = 16


def save(masks: np.ndarray, path: Path) -> None:
    """(classes, H, W) bool masks into one 16-bit PNG."""
    bits = (masks.astype(np.uint16) << np.arange(len(masks), dtype=np.uint16)[:, None, None]).sum(0, dtype=np.uint16)
    if not cv2.imwrite(str(path), bits):
        raise OSError(f"{path}: could not write the mask PNG")


def load(path: Path, n_classes: int) -> np.ndarray:
    """What `save` wrote, back as (classes, H, W) bool."""
    bits = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.uint16)
    return (bits[None] >> np.arange(n_classes, dtype=np.uint16)[:, None, None]) & 1 > 0

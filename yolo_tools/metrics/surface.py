"""Boundary metrics of segmentations: 95th-percentile Hausdorff distance (HD95) and surface Dice (NSD).

Dice rewards bulk overlap and hardly moves when an outline is off by a few pixels on a large organ;
boundary metrics say how far off the outlines are, in millimetres where the pixel spacing is known (the
GI scans' file names, DICOM and NIfTI headers), in pixels otherwise. Computed as MONAI and DeepMind's
`surface-distance` do, from Euclidean distance transforms (scipy.ndimage.distance_transform_edt with the
spacing as `sampling`), so no per-pixel Python loop; written here because neither package is a
dependency of the workbench and the whole computation is two distance transforms per class.

- Surface: the mask pixels with a background neighbour, edges and corners counted (mask minus its erosion by a
  full 3x3 or 3x3x3 block): an image's outline, or a volume's surface when its slices are stacked.
- HD95: the 95th percentile of the distances from every predicted surface pixel to the true surface and
  from every true surface pixel to the predicted one, pooled (medpy's `hd95`).
- NSD at tolerance τ: the share of both surfaces' pixels lying within τ of the other surface
  (Nikolov et al. 2021), counted per surface pixel rather than per surfel area.

Convention (as for Dice): a class absent from both prediction and truth has NSD 1 and no HD95 (NaN,
left out of means); absent from only one, NSD 0 and no HD95, so a missed organ is visible in NSD and in
the count of defined HD95 values, never as an invented distance.

Examples:
    >>> true = np.zeros((1, 32, 32), bool); true[0, 8:24, 8:24] = True
    >>> pred = np.roll(true, 2, axis=2)                                   # shifted 2 pixels right
    >>> hd95, nsd = surface_scores(pred, true, spacing=(0.5, 0.5), tolerance=1.0)
    >>> float(hd95[0]), float(nsd[0])                                   # 2 px = 1 mm
    (1.0, ...)
"""

from __future__ import annotations

import numpy as np

TOLERANCE = 2.0  # NSD tolerance, in mm where the spacing is known, else in pixels
def _surface(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage  # here, not at the top: the segment task imports this module, and reading a recipe the tasks

    return mask & ~ndimage.binary_erosion(mask, structure=np.ones((3,) * mask.ndim, bool), border_value=0)


def surface_scores(
    pred: np.ndarray, true: np.ndarray, spacing: tuple[float, ...] | None = None, tolerance: float = TOLERANCE
) -> tuple[np.ndarray, np.ndarray]:
    """HD95 and NSD per class for (C, H, W) boolean masks, or (C, D, H, W) volumes; `spacing` is mm per pixel
    (or voxel) along each spatial axis: (row, column), or (slice, row, column)."""
    from scipy import ndimage

    sampling = tuple(spacing) if spacing else (1.0,) * (pred.ndim - 1)
    classes = len(pred)
    hd95, nsd = np.full(classes, np.nan), np.zeros(classes)
    for c in range(classes):
        p, t = pred[c].astype(bool), true[c].astype(bool)
        if not p.any() and not t.any():
            nsd[c] = 1.0
            continue
        if not p.any() or not t.any():
            continue
        surface_p, surface_t = _surface(p), _surface(t)
        to_true = ndimage.distance_transform_edt(~surface_t, sampling=sampling)[surface_p]
        to_pred = ndimage.distance_transform_edt(~surface_p, sampling=sampling)[surface_t]
        both = np.concatenate([to_true, to_pred])
        hd95[c] = np.percentile(both, 95)
        nsd[c] = (both <= tolerance).sum() / len(both)
    return hd95, nsd

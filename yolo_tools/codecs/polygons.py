"""Binary masks to YOLO-seg polygons and back: shared by every converter that starts from masks.

One class's mask is handled at a time, so classes that overlap (heart over a lung, organs that touch)
keep their own outlines; Ultralytics' `convert_segment_masks_to_yolo_seg` instead reads one class per
pixel. Each 8-connected region becomes one instance; a region with holes (a myocardium ring) becomes one
"keyhole" polygon that walks the outer edge, crosses to each hole along a zero-width cut and walks round
it, which Ultralytics' own rasteriser (`cv2.fillPoly`, one polygon per instance) fills as a ring.

Coordinates follow Ultralytics' convention: pixel (column i, row j) is at (i / W, j / H).

Examples:
    >>> mask = np.zeros((64, 64), np.uint8); mask[10:30, 20:50] = 255
    >>> polygons = mask_to_polygons(mask, min_area=10)
    >>> lines = [polygon_line(0, p) for p in polygons]          # YOLO-seg label lines
    >>> back = polygons_to_mask(polygons, mask.shape)             # 0/1, equal to mask > 0 here
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

# OpenCV is imported in the functions that trace and fill, on first use: the segment task imports this module,
# and reading a recipe imports the tasks, which must stay quick.


def _remove_specks(binary: np.ndarray, min_area: int) -> np.ndarray:
    """The 0/1 mask without 8-connected regions smaller than `min_area` pixels.

    Region sizes come from a count over the labels: OpenCV's `connectedComponentsWithStats` computes
    bounding boxes and centroids too and is several times slower, and speck removal ran on every mask of
    every converter. Most masks have no specks, and are then returned as they are.
    """
    if min_area <= 1:
        return binary
    import cv2

    count, labels = cv2.connectedComponents(binary, connectivity=8)
    keep = np.bincount(labels.ravel(), minlength=count) >= min_area
    keep[0] = False
    if keep[1:].all():
        return binary
    return keep[labels].astype(np.uint8)


def _splice(outer: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """One polygon: `outer` with `hole` joined in at their closest pair of vertices (a zero-width cut)."""
    dx = outer[:, None, 0] - hole[None, :, 0]
    dy = outer[:, None, 1] - hole[None, :, 1]
    i, j = divmod(int(np.argmin(dx * dx + dy * dy)), len(hole))
    return np.concatenate([outer[: i + 1], hole[j:], hole[: j + 1], outer[i:]])


def mask_to_polygons(
    mask: np.ndarray, min_area: int = 0, holes: bool = True, epsilon: float = 0.0
) -> list[np.ndarray]:
    """Polygons (each an (N, 2) float array of normalised x, y) for the regions of a binary mask.

    Args:
        mask: HxW array; any non-zero pixel is foreground (0/1, 0/255 and bool all work).
        min_area: regions (and holes) smaller than this many pixels are dropped as specks.
        holes: keep holes as keyhole cuts; False fills them (outer outlines only, as Ultralytics does).
        epsilon: simplify outlines with `cv2.approxPolyDP` to within this many pixels (0 keeps every corner).

    Returns:
        One polygon per connected region, largest first. Regions whose outline has fewer than three
        vertices (lines one pixel wide) are left out, since they enclose no area.

    Examples:
        >>> mask = cv2.imread("masks/heart/JPCLN001.png", cv2.IMREAD_GRAYSCALE)
        >>> [polygon_line(0, p) for p in mask_to_polygons(mask, min_area=50)]
    """
    import cv2

    if mask.ndim != 2:
        raise ValueError(f"mask_to_polygons takes one HxW mask per class, not an array of shape {mask.shape}")
    height, width = mask.shape
    # a boolean mask (what converters pass) is read as 0/1 bytes in place: no pass over the whole slice
    binary = np.ascontiguousarray(mask).view(np.uint8) if mask.dtype == bool else (mask > 0).view(np.uint8)
    # Labelling and tracing run on the mask's bounding box only (a padding of one pixel keeps regions that
    # touch it exact): an organ covers a small part of its slice, and most classes none of most slices.
    left, top, box_w, box_h = cv2.boundingRect(binary)
    if box_w == 0:
        return []
    top, left = max(top - 1, 0), max(left - 1, 0)
    crop = _remove_specks(np.ascontiguousarray(binary[top : top + box_h + 2, left : left + box_w + 2]), min_area)
    mode = cv2.RETR_CCOMP if holes else cv2.RETR_EXTERNAL
    contours, hierarchy = cv2.findContours(crop, mode, cv2.CHAIN_APPROX_SIMPLE, offset=(left, top))
    if not contours:
        return []
    if epsilon > 0:
        contours = [cv2.approxPolyDP(c, epsilon, True) for c in contours]
    hierarchy = hierarchy[0]  # per contour: next, previous, first child, parent
    found = []
    for index, contour in enumerate(contours):
        if hierarchy[index][3] >= 0 or len(contour) < 3:  # a hole (handled with its parent) or a line
            continue
        outline = contour[:, 0, :]
        child = hierarchy[index][2]
        while child >= 0:
            hole = contours[child]
            if len(hole) >= 3 and cv2.contourArea(hole) >= max(min_area, 1):
                outline = _splice(outline, hole[:, 0, :])
            child = hierarchy[child][0]
        found.append((cv2.contourArea(contour), outline))
    found.sort(key=lambda item: -item[0])
    scale = np.array([width, height], dtype=np.float64)
    return [outline.astype(np.float64) / scale for _, outline in found]


def polygons_to_mask(polygons: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Rasterise normalised polygons into an HxW 0/1 uint8 mask, one `cv2.fillPoly` call per polygon.

    That is how Ultralytics rasterises a segment (`polygon2mask`), so a keyhole polygon comes back as a
    ring here exactly as it does in training. Overlapping polygons are OR-ed.
    """
    import cv2

    height, width = shape[:2]
    mask = np.zeros((height, width), np.uint8)
    scale = np.array([width, height], dtype=np.float64)
    for polygon in polygons:
        points = np.round(np.asarray(polygon, dtype=np.float64).reshape(-1, 2) * scale).astype(np.int32)
        cv2.fillPoly(mask, [points], 1)
    return mask


def polygon_line(class_id: int, polygon: np.ndarray, decimals: int = 6) -> str:
    """A YOLO-seg label line: `class x1 y1 x2 y2 ...`, normalised, clipped to the image."""
    coords = np.clip(np.asarray(polygon, dtype=np.float64).reshape(-1), 0.0, 1.0)
    return f"{class_id} " + " ".join(map(f"{{:.{decimals}f}}".format, coords.tolist()))


class TracedLines(list):
    """YOLO-seg label lines traced here from masks (`traced_lines`), valid by construction: coordinates
    clipped to 0..1, at least three vertices per polygon, the class ids the converter gave. The writer
    checks their class ids only; parsing every vertex of a traced outline again (`writer.check_lines`)
    cost a fifth of a volume conversion's time and could find nothing wrong."""


def traced_lines(masks: Iterable[tuple[int, np.ndarray]], min_area: int = 0, holes: bool = True,
                 epsilon: float = 0.0) -> TracedLines:
    """The label lines of (class id, HxW mask) pairs: each region of a class's mask one polygon (`mask_to_polygons`)."""
    lines = TracedLines()
    for class_id, mask in masks:
        lines += [polygon_line(class_id, polygon) for polygon in mask_to_polygons(mask, min_area, holes, epsilon)]
    return lines


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two binary masks (1.0 when both are empty)."""
    a, b = a > 0, b > 0
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total

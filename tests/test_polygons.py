"""Masks -> YOLO-seg polygons -> masks: exact on shapes, holes kept, specks dropped, real organs Dice > 0.98."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import SHARED_DATA, needs_data
from yolo_tools.codecs.polygons import TracedLines, dice, mask_to_polygons, polygon_line, polygons_to_mask, traced_lines
from yolo_tools.convert.samples import SkipSample
from yolo_tools.convert.writer import check_lines


def _ring(size: int = 100) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, (50, 50), 30, 255, -1)
    cv2.circle(mask, (50, 50), 15, 0, -1)
    return mask


def test_rectangle_round_trip_is_exact_and_normalised() -> None:
    mask = np.zeros((64, 80), np.uint8)
    mask[10:30, 20:50] = 255
    (polygon,) = mask_to_polygons(mask, min_area=10)
    assert polygon.shape == (4, 2) and polygon.min() >= 0 and polygon.max() <= 1
    np.testing.assert_allclose(polygon.min(0), [20 / 80, 10 / 64])
    assert dice(polygons_to_mask([polygon], mask.shape), mask) == 1.0


def test_ring_keeps_its_hole_also_in_ultralytics_rasteriser() -> None:
    from ultralytics.data.utils import polygon2mask

    ring = _ring()
    (polygon,) = mask_to_polygons(ring, min_area=5)
    assert dice(polygons_to_mask([polygon], ring.shape), ring) == 1.0
    theirs = polygon2mask((100, 100), [polygon.reshape(-1) * 100], color=1, downsample_ratio=1)
    assert dice(theirs, ring) > 0.98 and theirs[50, 50] == 0
    (filled,) = mask_to_polygons(ring, holes=False)
    assert polygons_to_mask([filled], ring.shape)[50, 50] == 1


def test_one_polygon_per_region_largest_first_and_specks_dropped() -> None:
    mask = np.zeros((100, 100), bool)
    mask[10:20, 10:20] = True  # 100 px
    mask[50:90, 50:90] = True  # 1600 px
    mask[0:2, 98:100] = True  # a 4 px speck
    polygons = mask_to_polygons(mask, min_area=10)
    assert len(polygons) == 2
    assert polygons[0].min(0)[0] == pytest.approx(0.5)
    assert len(mask_to_polygons(mask, min_area=0)) == 3
    assert mask_to_polygons(np.zeros((8, 8), np.uint8)) == []


def test_an_island_inside_a_hole_is_its_own_instance() -> None:
    mask = _ring()
    mask[45:56, 45:56] = 255
    polygons = mask_to_polygons(mask, min_area=5)
    assert len(polygons) == 2
    assert dice(polygons_to_mask(polygons, mask.shape), mask) == 1.0


def test_label_line_format() -> None:
    line = polygon_line(2, np.array([[0.1, 0.2], [0.3, 0.4], [1.2, -0.1]]))
    assert line == "2 0.100000 0.200000 0.300000 0.400000 1.000000 0.000000"


def test_mask_must_be_two_dimensional() -> None:
    with pytest.raises(ValueError, match="one HxW mask per class"):
        mask_to_polygons(np.zeros((4, 4, 3), np.uint8))


@needs_data("heart-cxr-jsrt")
@pytest.mark.parametrize("organ", ["heart", "left_lung", "right_lung"])
def test_real_organ_masks_round_trip(organ: str) -> None:
    scores = []
    for path in sorted((SHARED_DATA / "heart-cxr-jsrt" / "masks" / organ).glob("*.png")):
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        polygons = mask_to_polygons(mask, min_area=50)
        assert polygons, path
        scores.append(dice(polygons_to_mask(polygons, mask.shape), mask))
    assert len(scores) == 198 and min(scores) > 0.98


def test_traced_lines_are_checked_for_their_class_only() -> None:
    """Lines the workbench traced are written as they are, with the lines of a per-class trace; a class id
    outside the recipe (a converter's mistake) still skips the sample, and a detect recipe checks every line."""
    masks = np.zeros((2, 64, 64), np.uint8)
    masks[0, 10:30, 20:50], masks[1, 40:60, 5:15] = 1, 1
    lines = traced_lines(enumerate(masks), min_area=10)
    assert isinstance(lines, TracedLines)
    assert lines == [polygon_line(c, p) for c in (0, 1) for p in mask_to_polygons(masks[c], min_area=10)]
    assert check_lines(lines, "segment", ["a", "b"]) == lines == check_lines(list(lines), "segment", ["a", "b"])
    with pytest.raises(SkipSample, match="class is not one of the 1 classes"):
        check_lines(lines, "segment", ["a"])
    with pytest.raises(SkipSample, match="a detect label has 4"):
        check_lines(lines, "detect", ["a", "b"])

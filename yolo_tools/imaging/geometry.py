"""Where a volume's voxels are in the patient: what lets 2D slice predictions become a 3D result in mm.

A converted volume dataset keeps, per volume, the voxel array's shape, its voxel-to-world affine (RAS+ mm,
as NIfTI and nibabel use it), the spacing along each array axis and the axis that was sliced
(`volumes.json`). Slice `i` of a volume is `np.moveaxis(array, slice_axis, 0)[i]`: image rows run along
the first remaining array axis, columns along the second. Putting predicted slices back with the same
rule gives a label array that overlays the source voxel for voxel, so it can be written with the same
affine (NIfTI) or against the same DICOM instances (DICOM SEG) and measured in millimetres.

A stack of 2D slices (DICOM files, the frames of a multi-frame file) is a volume only when its slices
lie on one uniform grid: `same_positions` and `irregular_spacing` check that before an affine is drawn
through them, so that a missing slice or a slice stored twice is refused instead of shifting every slice
after it.

Examples:
    >>> geometry = Geometry.from_affine(np.diag([1.0, 1.0, 3.0, 1.0]), (35, 50, 12))
    >>> geometry.slice_axis, geometry.voxel_volume_mm3
    (2, 3.0)
    >>> irregular_spacing(np.array([[0, 0, 0], [0, 0, 5.0], [0, 0, 15.0]]), ["a", "b", "c"])[:40]
    'slice spacing is not uniform: 5 mm apart'
"""

from __future__ import annotations

from dataclasses import dataclass

from collections.abc import Sequence

import numpy as np

# A slice may lie this fraction of the slice spacing off the uniform grid through the first and last slice:
# far above the rounding of positions written as decimal strings (about 0.01 mm), far below a missing or
# doubled slice (half a spacing or more).
SPACING_TOLERANCE = 0.05
SAME_POSITION_MM = 0.01  # closer than this, two slices are at one position (no scanner spaces slices so)


@dataclass(frozen=True)
class Geometry:
    shape: tuple[int, ...]  # the voxel array's shape
    affine: np.ndarray  # 4x4, array index (i, j, k) -> RAS+ mm
    slice_axis: int = 2

    @classmethod
    def from_affine(
        cls, affine: np.ndarray, shape: tuple[int, ...], slice_axis: int | None = None
    ) -> Geometry:
        """`slice_axis` None: the largest spacing, the last axis on ties (NIfTI's rule; DICOM slices its files'
        own images, axis 0, and says so)."""
        geometry = cls(tuple(int(s) for s in shape[:3]), np.asarray(affine, dtype=np.float64), 2)
        axis = geometry.largest_spacing_axis() if slice_axis is None else slice_axis % 3
        return cls(geometry.shape, geometry.affine, axis)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """mm between voxel centres along each array axis (the lengths of the affine's columns)."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def voxel_volume_mm3(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    def largest_spacing_axis(self) -> int:
        """The acquisition plane's normal: the axis with the largest spacing (the last among equals)."""
        spacing = np.round(np.asarray(self.spacing), 3)
        return int(np.flatnonzero(spacing == spacing.max())[-1])

    @property
    def in_plane_spacing(self) -> tuple[float, float]:
        """(row, column) mm per pixel of a slice image: the two array axes left after the sliced one, in order."""
        rows, columns = (axis for axis in range(3) if axis != self.slice_axis)
        return float(self.spacing[rows]), float(self.spacing[columns])

    @property
    def slice_count(self) -> int:
        return self.shape[self.slice_axis]

    def to_json(self) -> dict:
        return {
            "shape": list(self.shape),
            "spacing_mm": [round(s, 6) for s in self.spacing],
            "affine_ras": np.round(self.affine, 6).tolist(),
            "origin_ras_mm": np.round(self.affine[:3, 3], 6).tolist(),
            "slice_axis": self.slice_axis,
        }

    @classmethod
    def from_json(cls, data: dict) -> Geometry:
        return cls(tuple(data["shape"]), np.asarray(data["affine_ras"], dtype=np.float64), int(data["slice_axis"]))


def slices_first(array: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The array with the sliced axis first (a view): element i is slice i's image."""
    return np.moveaxis(array, geometry.slice_axis, 0)


def restack(slices: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Slice images (slices, rows, cols) back into the source's voxel order: the inverse of `slices_first`."""
    return np.ascontiguousarray(np.moveaxis(slices, 0, geometry.slice_axis))


def along_normal(positions: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    """Each slice's distance (mm) along the slice normal, the cross product of the row and column directions
    of DICOM's ImageOrientationPatient: the order DICOM and nnU-Net's readers stack slices in."""
    return np.asarray(positions, np.float64) @ np.cross(orientation[:3], orientation[3:])


def same_positions(positions: np.ndarray) -> list[np.ndarray]:
    """Runs of slices, in stack order, that sit at one position (indices into `positions`, two or more each)."""
    steps = np.linalg.norm(np.diff(np.asarray(positions, np.float64), axis=0), axis=1)
    apart = np.flatnonzero(steps >= SAME_POSITION_MM) + 1
    return [run for run in np.split(np.arange(len(positions)), apart) if len(run) > 1]


def irregular_spacing(positions: np.ndarray, names: Sequence[str]) -> str:
    """Why slices at `positions` (n, 3 mm, in stack order, one per position) are not one uniform stack, or "".

    Written here because the libraries stop short of it: pydicom reads positions but stacks nothing;
    nibabel's DICOM reader sorts slices without checking their spacing; highdicom's `get_volume_positions`
    answers only yes or no (its reasons go to its log), compares spacing along the normal alone, so a
    slice shifted within its plane passes, and refuses a gantry tilt, which the sheared affine drawn
    through such a stack represents exactly. Each slice is compared in 3D with where the uniform grid
    through the first and last slice puts it, which bounds how far a slice would be misplaced.
    """
    points = np.asarray(positions, np.float64)
    if len(points) < 3:
        return ""
    step = (points[-1] - points[0]) / (len(points) - 1)
    grid = points[0] + np.arange(len(points))[:, None] * step
    misplaced = np.linalg.norm(points - grid, axis=1)
    if misplaced.max() <= SPACING_TOLERANCE * np.linalg.norm(step):
        return ""
    gaps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    agreeing = (np.abs(gaps[:, None] - gaps[None, :]) <= SPACING_TOLERANCE * gaps[:, None]).sum(axis=1)
    usual = float(gaps[np.lexsort((gaps, -agreeing))[0]])  # the gap most others agree with, the smallest on ties
    odd = np.flatnonzero(np.abs(gaps - usual) > SPACING_TOLERANCE * usual)
    if odd.size:
        where = ", ".join(f"{gaps[i]:.3g} mm between {names[i]} and {names[i + 1]}" for i in odd[:3])
        more = f" and {len(odd) - 3} more" if len(odd) > 3 else ""
        what = f"slice spacing is not uniform: {usual:.3g} mm apart but {where}{more}"
    else:  # steps of one length, but a slice off the line: shifted within its plane
        worst = int(np.argmax(misplaced))
        what = f"slices are not on one uniform grid: {names[worst]} lies {misplaced[worst]:.3g} mm off it"
    return (
        f"{what} (a missing slice, or slices of another series); stacked as one volume, slices would lie up to "
        f"{misplaced.max():.3g} mm from where they belong. Give the complete series, or only slices of one series"
    )

"""Where a volume's voxels are in the patient: what lets 2D slice predictions become a 3D result in mm.

A converted volume dataset keeps, per volume, the voxel array's shape, its voxel-to-world affine (RAS+ mm,
as NIfTI and nibabel use it), the spacing along each array axis and the axis that was sliced
(`volumes.json`). Slice `i` of a volume is `np.moveaxis(array, slice_axis, 0)[i]`: image rows run along
the first remaining array axis, columns along the second. Putting predicted slices back with the same
rule gives a label array that overlays the source voxel for voxel, so it can be written with the same
affine (NIfTI) or against the same DICOM instances (DICOM SEG) and measured in millimetres.

Examples:
    >>> geometry = Geometry.from_affine(np.diag([1.0, 1.0, 3.0, 1.0]), (35, 50, 12))
    >>> geometry.slice_axis, geometry.voxel_volume_mm3
    (2, 3.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Geometry:
    shape: tuple[int, ...]  # the voxel array's shape
    affine: np.ndarray  # 4x4, array index (i, j, k) -> RAS+ mm
    slice_axis: int = 2

    @classmethod
    def from_affine(
        cls, affine: np.ndarray, shape: tuple[int, ...], slice_axis: int | None = None, prefer: int = 2
    ) -> Geometry:
        """`slice_axis` None: the largest spacing, `prefer` on ties (NIfTI: the last axis; DICOM: 0, the files)."""
        geometry = cls(tuple(int(s) for s in shape[:3]), np.asarray(affine, dtype=np.float64), 2)
        axis = geometry.largest_spacing_axis(prefer) if slice_axis is None else slice_axis % 3
        return cls(geometry.shape, geometry.affine, axis)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """mm between voxel centres along each array axis (the lengths of the affine's columns)."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def voxel_volume_mm3(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    def largest_spacing_axis(self, prefer: int = 2) -> int:
        """The acquisition plane's normal: the axis with the largest spacing (`prefer` among equals)."""
        spacing = np.round(np.asarray(self.spacing), 3)
        largest = np.flatnonzero(spacing == spacing.max()).tolist()
        return prefer if prefer in largest else int(largest[-1])

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

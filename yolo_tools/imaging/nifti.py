"""NIfTI volumes (`.nii`, `.nii.gz`) as float arrays and as 2D slices in the radiological display convention.

`read` reorients to the closest canonical (RAS+) orientation by default, so that `slices` can show every
volume the same way whatever the scanner's voxel order: patient's right on the image's left, anterior
(axial) or superior (coronal, sagittal) at the top, anterior on the left in sagittal slices.

Voxels are refused when any is NaN or infinite (`imaging.require_finite`), and a header whose affine
places no voxel in space (a zero or non-finite spacing) is refused before anything is read or written
against it.

Examples:
    >>> volume = read("case_0001.nii.gz")
    >>> for index, pixels in enumerate(slices(volume, axis=2)):   # axial slices, in mm spacing volume.spacing
    ...     grey = to_uint8(pixels, Window(center=40, width=400))
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yolo_tools.errors import UserError
from yolo_tools.imaging import require_finite


@dataclass(frozen=True)
class Volume:
    data: np.ndarray  # float32, voxel axes (i, j, k); RAS+ when read with canonical=True
    spacing: tuple[float, ...]  # mm per voxel along each axis
    affine: np.ndarray
    path: Path


def read(path: str | Path, canonical: bool = True) -> Volume:
    """Read a NIfTI volume (3D, or the first volume of a 4D series)."""
    import nibabel as nib

    path = Path(path)
    try:
        image = nib.load(str(path))
        if canonical:
            image = nib.as_closest_canonical(image)
        data = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises several types for unreadable files
        raise UserError(f"{path}: cannot read NIfTI volume: {exc}") from None
    if data.ndim == 4:
        data = data[..., 0]
    if data.ndim != 3:
        raise UserError(f"{path}: expected a 3D volume, got shape {data.shape}")
    require_finite(data, str(path))
    spacing = tuple(float(s) for s in image.header.get_zooms()[:3])
    return Volume(data=data, spacing=spacing, affine=np.asarray(image.affine), path=path)


def slice_at(volume: Volume | np.ndarray, index: int, axis: int = 2, display: bool = True) -> np.ndarray:
    """One 2D slice; with `display`, turned for a RAS+ volume into the radiological view (see module doc)."""
    data = volume.data if isinstance(volume, Volume) else volume
    plane = np.take(data, index, axis=axis)
    return np.ascontiguousarray(plane.T[::-1, ::-1]) if display else plane


def slices(volume: Volume | np.ndarray, axis: int = 2, display: bool = True) -> Iterator[np.ndarray]:
    """Every slice along `axis` (2 = axial for RAS+), in order."""
    data = volume.data if isinstance(volume, Volume) else volume
    for index in range(data.shape[axis]):
        yield slice_at(data, index, axis, display)


def header(path: str | Path) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and affine (voxel order as stored) from the header alone; the voxels are not read."""
    import nibabel as nib

    path = Path(path)
    try:
        image = nib.load(str(path))
    except Exception as exc:  # nibabel raises several types for unreadable files
        raise UserError(f"{path}: cannot read NIfTI header: {exc}") from None
    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        spacing = np.round(np.linalg.norm(affine[:3, :3], axis=0), 6).tolist()
        raise UserError(
            f"{path}: the header places no voxel in space (voxel spacing {spacing} mm, affine not invertible or "
            "not finite); masks on it would have no position or size. Fix the header's pixdim/sform (or qform)"
        )
    return tuple(int(s) for s in image.shape), affine


def read_array(path: str | Path) -> np.ndarray:
    """All voxels as stored (3D, or 4D with channels last as the Decathlon keeps modalities), float32, finite."""
    import nibabel as nib

    path = Path(path)
    try:
        data = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises several types for unreadable or truncated files
        raise UserError(f"{path}: cannot read NIfTI volume: {exc}") from None
    return require_finite(data, str(path))


def aligned_to(path: str | Path, shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """A label volume brought into another volume's voxel order (axes permuted or flipped by nibabel's
    orientation transforms), refused unless it then lies on the same grid: same shape, same affine."""
    import nibabel as nib
    from nibabel.orientations import io_orientation, ornt_transform

    path = Path(path)
    try:
        image = nib.load(str(path))
        image = image.as_reoriented(ornt_transform(io_orientation(image.affine), io_orientation(affine)))
        data = np.asarray(image.dataobj)
    except Exception as exc:  # nibabel raises several types for unreadable files
        raise UserError(f"{path}: cannot read NIfTI volume: {exc}") from None
    if data.shape[:3] != tuple(shape[:3]) or not np.allclose(image.affine, affine, atol=0.05):
        raise UserError(
            f"{path}: not aligned with its series (shape {data.shape[:3]} vs {tuple(shape[:3])}, or a different "
            "position/spacing); export the label on the series' own grid"
        )
    return require_finite(data, str(path))


def write(path: str | Path, data: np.ndarray, affine: np.ndarray, source: str | Path | None = None) -> Path:
    """Save a label volume (uint8) with the source's affine, so viewers overlay it on the source as is.

    With `source` (the NIfTI file it labels) that file's header is copied, as nnU-Net's tools and viewers
    expect of a label volume: its sform and qform codes (which space the affine maps to; nibabel would
    otherwise write 2 and 0), `descrip`, units and the rest, with only what describes the voxels themselves
    made a label's: uint8, no intensity scaling or display range, 3D. Without one (a DICOM series) the
    affine maps to scanner coordinates (codes 1), in mm and seconds.
    """
    import nibabel as nib

    path = Path(path)
    affine = np.asarray(affine, dtype=np.float64)
    labels = np.asarray(data, dtype=np.uint8)
    if source is None:
        image = nib.Nifti1Image(labels, affine)
        image.set_sform(affine, code="scanner")
        image.set_qform(affine, code="scanner")
        image.header.set_xyzt_units("mm", "sec")
    else:
        header = nib.load(str(source)).header.copy()
        codes = int(header["sform_code"]), int(header["qform_code"])
        header.set_data_dtype(np.uint8)
        header.set_slope_inter(1.0, 0.0)
        header["cal_min"], header["cal_max"] = 0.0, float(labels.max(initial=0))
        image = nib.Nifti1Image(labels, affine, header)
        image.set_sform(affine, code=codes[0])
        image.set_qform(affine, code=codes[1])
    nib.save(image, str(path))
    return path

"""Small hospital-format fixtures built in tmp from the real files in ../shared/data (never written there).

- `decathlon`: a few hippocampus cases in the Decathlon's own layout (dataset.json rewritten to list them);
- `nnunet`: the same cases in nnU-Net v2's raw layout (`_0000` channel suffix, `channel_names`);
- `dicom_mixed`: the liver CT series with its two DICOM SEGs (patient 99000) and the 40-slice MR crop
  (patient PGBM-003) with an aligned NIfTI label written in dcm2niix's (column, row, slice) voxel order;
- `mr_series`: a copy of one of the real 22-slice brain MR series, possibly with a slice left out or
  header values changed (two series under one UID), and `series_label` an aligned NIfTI label for it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from conftest import SHARED_DATA

HIPPOCAMPUS = SHARED_DATA / "hippocampus-mri-msd"
LIVER = SHARED_DATA / "dicom-ct-liver-seg"
MR_CROP = SHARED_DATA / "dicom-mr-brain-series" / "11_HCropVolume"
MR_BRAIN = SHARED_DATA / "dicom-mr-brain-series"
T1POST, T2 = "11-T1post-18670", "37830-T2reg-78532"
CASES = tuple(sorted(p.name[: -len(".nii.gz")] for p in (HIPPOCAMPUS / "imagesTr").glob("*.nii.gz"))[:6])


def decathlon(root: Path, cases: tuple[str, ...] = CASES) -> Path:
    meta = json.loads((HIPPOCAMPUS / "dataset.json").read_text())
    for folder in ("imagesTr", "labelsTr"):
        (root / folder).mkdir(parents=True)
        for case in cases:
            shutil.copyfile(HIPPOCAMPUS / folder / f"{case}.nii.gz", root / folder / f"{case}.nii.gz")
    meta["training"] = [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in cases]
    meta["numTraining"], meta["test"], meta["numTest"] = len(cases), [], 0
    (root / "dataset.json").write_text(json.dumps(meta, indent=1))
    return root


def nnunet(root: Path, cases: tuple[str, ...] = CASES) -> Path:
    for folder in ("imagesTr", "labelsTr"):
        (root / folder).mkdir(parents=True)
    for case in cases:
        shutil.copyfile(HIPPOCAMPUS / "imagesTr" / f"{case}.nii.gz", root / "imagesTr" / f"{case}_0000.nii.gz")
        shutil.copyfile(HIPPOCAMPUS / "labelsTr" / f"{case}.nii.gz", root / "labelsTr" / f"{case}.nii.gz")
    meta = {
        "channel_names": {"0": "T1"},
        "labels": {"background": 0, "Anterior": 1, "Posterior": 2},
        "numTraining": len(cases),
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(meta, indent=1))
    return root


def dicom_mixed(root: Path) -> Path:
    """Copies, so a test may also break them; returns `root` holding ct/, mr/ and labels/mr.nii.gz."""
    import nibabel as nib

    from yolo_tools.imaging import dicom_series

    (root / "ct").mkdir(parents=True)
    (root / "mr").mkdir()
    (root / "labels").mkdir()
    for path in LIVER.glob("*.dcm"):
        shutil.copyfile(path, root / "ct" / path.name)
    for path in MR_CROP.glob("*.dcm"):
        shutil.copyfile(path, root / "mr" / path.name)
    series = next(s for s in dicom_series.find(root / "mr").series)
    pixels, geometry = dicom_series.load(series)
    label = mr_label(pixels)
    affine = geometry.affine[:, [2, 1, 0, 3]]  # (column, row, slice) voxel order
    nib.save(nib.Nifti1Image(label.transpose(2, 1, 0), affine), root / "labels" / "mr.nii.gz")
    return root


def mr_label(pixels: np.ndarray) -> np.ndarray:
    """A label for the MR crop in its (slice, row, column) order: the brightest tenth of the voxels."""
    return (pixels > np.percentile(pixels, 90)).astype(np.uint8)


def mr_series(target: Path, series: str = T1POST, drop: int | None = None, **tags) -> list[Path]:
    """The real series `series` copied into `target`; `drop`: the index, in slice order, of a slice left
    out; `tags`: header values set on every file. Returns the copied files in slice order."""
    import pydicom

    target.mkdir(parents=True, exist_ok=True)
    files = sorted((MR_BRAIN / series).glob("*.dcm"), key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))
    copied = []
    for index, path in enumerate(files):
        if index == drop:
            continue
        if tags:
            data = pydicom.dcmread(path)
            for keyword, value in tags.items():
                setattr(data, keyword, value)
            data.save_as(target / path.name)
        else:
            shutil.copyfile(path, target / path.name)
        copied.append(target / path.name)
    return copied


def series_label(series: str, path: Path) -> np.ndarray:
    """An aligned NIfTI label for the real series `series` at `path`, in dcm2niix's voxel order; returns
    the label in the series' own (slice, row, column) order."""
    import nibabel as nib

    from yolo_tools.imaging import dicom_series

    pixels, geometry = dicom_series.load(dicom_series.find(MR_BRAIN / series).series[0])
    label = mr_label(pixels)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(label.transpose(2, 1, 0), geometry.affine[:, [2, 1, 0, 3]]), path)
    return label

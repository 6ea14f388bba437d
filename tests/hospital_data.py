"""Small hospital-format fixtures built in tmp from the real files in ../shared/data (never written there).

- `decathlon`: a few hippocampus cases in the Decathlon's own layout (dataset.json rewritten to list them);
- `nnunet`: the same cases in nnU-Net v2's raw layout (`_0000` channel suffix, `channel_names`);
- `dicom_mixed`: the liver CT series with its two DICOM SEGs (patient 99000) and the 40-slice MR crop
  (patient PGBM-003) with an aligned NIfTI label written in dcm2niix's (column, row, slice) voxel order.
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

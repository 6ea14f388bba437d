"""Bad input for the hospital formats: NIfTI layouts, DICOM series and SEGs, and predict --format."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from bad_input import Case, parametrize, run_case
from conftest import SHARED_DATA
from hospital_data import HIPPOCAMPUS, LIVER, decathlon, nnunet

pytestmark = pytest.mark.skipif(
    not all((SHARED_DATA / d).is_dir() for d in ("hippocampus-mri-msd", "dicom-ct-liver-seg", "dicom-samples")),
    reason="hospital data not present",
)
TWO = ("hippocampus_001", "hippocampus_003")


def _decathlon(root: Path) -> Path:
    return decathlon(root / "ds", TWO)


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _recipe(root: Path, **changes) -> None:
    raw = {
        "name": "hippo",
        "task": "segment",
        "data": {"source": {"kind": "local", "path": "ds"}, "converter": "nifti", "options": {}, "split": {"by": r"^(.+)_s\d+$"}},
        "classes": ["Anterior", "Posterior"],
        "model": "yolov8n-seg.yaml",
    }
    for key, value in changes.items():
        target = raw
        *parents, last = key.split(".")
        for part in parents:
            target = target[part]
        target[last] = value
    (root / "recipe.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def _broken_nifti(root: Path) -> None:
    source = _decathlon(root)
    for case in TWO:
        (source / "imagesTr" / f"{case}.nii.gz").write_bytes(gzip.compress(b"not a nifti header at all" * 20))


def _shapes_differ(root: Path) -> None:
    import nibabel as nib

    source = _decathlon(root)
    for case in TWO:
        label = nib.load(source / "labelsTr" / f"{case}.nii.gz")
        cropped = np.asarray(label.dataobj)[:-3]
        nib.save(nib.Nifti1Image(cropped, label.affine), source / "labelsTr" / f"{case}.nii.gz")


def _dicom_copy(root: Path, *names: str) -> Path:
    folder = root / "dicom"
    folder.mkdir()
    for name in names:
        shutil.copyfile(LIVER / name, folder / name)
    return folder


def _no_pixel_data(root: Path) -> None:
    import pydicom

    folder = _dicom_copy(root, "ct-3slice_01.dcm", "ct-3slice_02.dcm", "ct-3slice_03.dcm", "liver.dcm")
    data = pydicom.dcmread(folder / "ct-3slice_02.dcm")
    del data.PixelData
    data.save_as(folder / "ct-3slice_02.dcm")


def _foreign_seg(root: Path) -> None:
    folder = root / "dicom"
    folder.mkdir()
    samples = SHARED_DATA / "dicom-samples" / "SEG_RTSTRUCT"
    for name in ("CT01.dcm", "DicomSeg_TCGA-08-0360.dcm"):
        shutil.copyfile(samples / name, folder / name)


def _weights(root: Path, model: str = "yolov8n-seg.yaml") -> None:
    from ultralytics import YOLO

    YOLO(model).save(str(root / "model.pt"))


def _weights_and_nifti(root: Path) -> None:
    _weights(root)
    shutil.copyfile(HIPPOCAMPUS / "imagesTr" / "hippocampus_001.nii.gz", root / "case.nii.gz")


def _weights_and_pngs(root: Path, model: str = "yolov8n-seg.yaml") -> None:
    import cv2

    _weights(root, model)
    (root / "pngs").mkdir()
    cv2.imwrite(str(root / "pngs" / "a.png"), np.full((32, 32), 128, np.uint8))


def _convert(fmt: str, folder: str = "ds"):
    return lambda root: ["convert", fmt, str(root / folder), str(root.parent / "datasets" / "out")]


CASES: list[Case] = [
    Case(
        "nifti-folder-missing",
        lambda root: ["convert", "nifti", str(root / "nowhere"), str(root.parent / "datasets" / "out")],
        says=(r"nowhere: no such folder",),
    ),
    Case(
        "nifti-dataset-json-not-json",
        _convert("nifti"),
        setup=lambda root: (_decathlon(root), (root / "ds" / "dataset.json").write_text("{labels: oops")),
        says=(r"dataset\.json: not valid JSON", r"fix or remove"),
    ),
    Case(
        "nifti-decathlon-json-missing-training",
        _convert("nifti"),
        setup=lambda root: (_decathlon(root), _edit_json(root / "ds" / "dataset.json", lambda d: d.pop("training"))),
        says=(r"dataset\.json: missing key\(s\) \['training'\]", r"decathlon layout needs labels, training"),
    ),
    Case(
        "nnunet-json-missing-labels",
        _convert("nifti"),
        setup=lambda root: (nnunet(root / "ds", TWO), _edit_json(root / "ds" / "dataset.json", lambda d: d.pop("labels"))),
        says=(r"dataset\.json: missing key\(s\) \['labels'\]", r"nnunet layout needs labels, channel_names"),
    ),
    Case(
        "nnunet-labels-in-decathlon-form",
        _convert("nifti"),
        setup=lambda root: (
            nnunet(root / "ds", TWO),
            _edit_json(root / "ds" / "dataset.json", lambda d: d.update(labels={"0": "background", "1": "Anterior"})),
        ),
        says=(r"dataset\.json: 'labels' .* do not fit the nnunet layout", r"\{'name': value\}"),
    ),
    Case(
        "decathlon-training-entry-without-label",
        _convert("nifti"),
        setup=lambda root: (
            _decathlon(root),
            _edit_json(root / "ds" / "dataset.json", lambda d: d["training"][0].pop("label")),
        ),
        says=(r"dataset\.json: each 'training' entry needs 'image' and 'label'",),
    ),
    Case(
        "nifti-plain-folder-without-layout",
        _convert("nifti"),
        setup=lambda root: (root / "ds" / "scans").mkdir(parents=True),
        says=(r"ds: no dataset\.json and no 'images/' and 'labels/' folders", r"data\.options\.images"),
    ),
    Case(
        "nifti-broken-volumes",
        lambda root: ["convert", str(root / "recipe.yaml")],
        setup=lambda root: (_broken_nifti(root), _recipe(root)),
        says=(r"none of the 2 cases is usable", r"hippocampus_00\d\.nii\.gz: cannot read NIfTI header"),
    ),
    Case(
        "nifti-image-and-label-shapes-differ",
        lambda root: ["convert", str(root / "recipe.yaml")],
        setup=lambda root: (_shapes_differ(root), _recipe(root)),
        says=(r"hippocampus_00\d\.nii\.gz has shape \(\d+, \d+, \d+\), hippocampus_00\d\.nii\.gz \(\d+, \d+, \d+\); they must match",),
    ),
    Case(
        "nifti-recipe-class-not-a-label",
        lambda root: ["convert", str(root / "recipe.yaml")],
        setup=lambda root: (_decathlon(root), _recipe(root, classes=["Anterior", "Tail"])),
        says=(r"classes \['Tail'\] are not labels of .*dataset\.json", r"data\.options\.label_values"),
    ),
    Case(
        "nifti-recipe-unknown-option",
        lambda root: ["convert", str(root / "recipe.yaml")],
        setup=lambda root: (_decathlon(root), _recipe(root, **{"data.options": {"slice_axes": 2}})),
        says=(r"recipe\.yaml: invalid recipe", r"data\.options\.slice_axes: unknown key; nifti takes: .*slice_axis"),
    ),
    Case(
        "nifti-recipe-label-values-per-class",
        lambda root: ["convert", str(root / "recipe.yaml")],
        setup=lambda root: (_decathlon(root), _recipe(root, **{"data.options": {"label_values": [1]}})),
        says=(r"data\.options\.label_values has 1 entries for 2 classes",),
    ),
    Case(
        "nifti-recipe-channels-and-context",
        lambda root: ["convert", str(root / "recipe.yaml")],
        setup=lambda root: (_decathlon(root), _recipe(root, **{"data.options": {"channels": [0, 1]}, "preprocess": {"context": 1}})),
        says=(r"data\.options\.channels has 2 channels and preprocess\.context", r"choose one"),
    ),
    Case(
        "dicom-without-pixel-data",
        _convert("dicom", "dicom"),
        setup=_no_pixel_data,
        says=(r"ct-3slice_02\.dcm: the DICOM file has no pixel data",),
    ),
    Case(
        "dicom-seg-references-another-series",
        _convert("dicom", "dicom"),
        setup=_foreign_seg,
        says=(r"DicomSeg_TCGA-08-0360\.dcm: this DICOM SEG references series 1\.3\.6\.1\.4\.1\.14519\S+, which is not under", r"put the referenced series next to it"),
    ),
    Case(
        "dicom-series-without-labels",
        _convert("dicom", "dicom"),
        setup=lambda root: _dicom_copy(root, "ct-3slice_01.dcm", "ct-3slice_02.dcm"),
        says=(r"no DICOM SEG and no NIfTI label volume \(labels/<series>\.nii\.gz\)",),
    ),
    Case(
        "dicom-folder-of-non-dicom-files",
        lambda root: ["convert", str(root / "recipe.yaml")],
        setup=lambda root: (
            (root / "ds").mkdir(),
            (root / "ds" / "notes.dcm").write_text("not dicom"),
            _recipe(root, **{"data.converter": "dicom", "classes": ["liver"]}),
        ),
        says=(r"no DICOM image series found \(.*notes\.dcm: cannot read DICOM pixels or header",),
    ),
    Case(
        "predict-unknown-format",
        lambda root: ["predict", str(root / "model.pt"), str(root / "case.nii.gz"), "--format", "nrrd"],
        setup=_weights_and_nifti,
        says=(r"--format 'nrrd' is unknown; allowed: nifti, dicom-seg, coco, rle-csv",),
    ),
    Case(
        "predict-format-out-holds-files",
        lambda root: ["predict", str(root / "model.pt"), str(root / "case.nii.gz"), "--format", "nifti", "--out", str(root / "mine")],
        setup=lambda root: (_weights_and_nifti(root), (root / "mine").mkdir(), (root / "mine" / "case.nii.gz").write_bytes(b"mine")),
        says=(r"--out .*mine: already holds files", r"new or empty folder"),
    ),
    Case(
        "predict-dicom-seg-from-nifti",
        lambda root: ["predict", str(root / "model.pt"), str(root / "case.nii.gz"), "--format", "dicom-seg", "--out", str(root.parent / "runs" / "p")],
        setup=_weights_and_nifti,
        says=(r"--format dicom-seg needs DICOM series as input", r"use --format nifti"),
    ),
    Case(
        "predict-nifti-from-plain-images",
        lambda root: ["predict", str(root / "model.pt"), str(root / "pngs"), "--format", "nifti", "--out", str(root.parent / "runs" / "p")],
        setup=_weights_and_pngs,
        says=(r"pngs: no NIfTI volume and no DICOM image series found",),
    ),
    Case(
        "predict-rle-csv-with-a-detection-model",
        lambda root: ["predict", str(root / "model.pt"), str(root / "pngs"), "--format", "rle-csv", "--out", str(root.parent / "runs" / "p")],
        setup=lambda root: _weights_and_pngs(root, "yolov8n.yaml"),
        says=(r"--format rle-csv writes masks; .*model\.pt is a detect model", r"--format coco"),
    ),
    Case(  # a classifier's predictions are whole images' classes, which no --format holds (it wrote an empty COCO file)
        "predict-coco-with-a-classifier",
        lambda root: ["predict", str(root / "model.pt"), str(root / "pngs"), "--format", "coco", "--out", str(root.parent / "runs" / "p")],
        setup=lambda root: _weights_and_pngs(root, "yolov8n-cls.yaml"),
        says=(r"--format coco writes boxes and masks; .*model\.pt is a classify model", r"detect: coco; segment: nifti, dicom-seg, coco, rle-csv",
              r"predict without --format writes each image's class"),
    ),
    Case(
        "predict-format-with-ensemble",
        lambda root: ["predict", str(root / "model.pt"), str(root / "case.nii.gz"), "--format", "nifti", "--ensemble", str(root / "model.pt")],
        setup=_weights_and_nifti,
        says=(r"--format writes one run's predictions; leave out --ensemble",),
    ),
]


@parametrize(CASES)
def test_case(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    run_case(case, tmp_path, monkeypatch, capfd)

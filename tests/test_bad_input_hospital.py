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
from hospital_data import HIPPOCAMPUS, LIVER, T1POST, T2, decathlon, dicom_mixed, mr_series, nnunet, series_label

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


def _gapped_t1(root: Path, labelled: bool = True) -> None:
    """The real T1 series with its 11th of 22 slices missing, and an aligned label (so it is converted)."""
    mr_series(root / "dicom" / "t1", T1POST, drop=10)
    if labelled:
        series_label(T1POST, root / "dicom" / "labels" / "t1.nii.gz")


def _gapped_beside_good_series(root: Path) -> None:
    _gapped_t1(root)
    mr_series(root / "dicom" / "t2", T2)
    series_label(T2, root / "dicom" / "labels" / "t2.nii.gz")
    _liver_ct(root / "dicom" / "ct")  # a second patient


def _ct_slice_twice(root: Path) -> None:
    src = dicom_mixed(root / "dicom")  # the liver CT with its SEGs, and an MR series: two patients
    shutil.copyfile(src / "ct" / "ct-3slice_02.dcm", src / "ct" / "slice 2 again.dcm")


def _ct_slice_twice_differing(root: Path) -> None:
    import pydicom

    folder = _dicom_copy(root, "ct-3slice_01.dcm", "ct-3slice_02.dcm", "ct-3slice_03.dcm", "liver.dcm")
    data = pydicom.dcmread(folder / "ct-3slice_02.dcm")
    data.PixelData = data.pixel_array[::-1].copy().tobytes()
    data.SOPInstanceUID = "1.2.826.0.1.3680043.2.1125.7"
    data.save_as(folder / "ct-3slice_02b.dcm")


ONE_UID = "1.2.826.0.1.3680043.2.1125.31"


def _two_series_one_uid(root: Path) -> None:
    for name, series in (("t1", T1POST), ("t2", T2)):
        mr_series(root / "dicom" / name, series, SeriesInstanceUID=ONE_UID)
        series_label(series, root / "dicom" / "labels" / f"{name}.nii.gz")
    _liver_ct(root / "dicom" / "ct")  # a second patient


def _two_series_one_uid_one_folder(root: Path) -> None:
    blank = {"SeriesInstanceUID": ONE_UID, "SeriesNumber": None, "SeriesDescription": "", "AcquisitionNumber": None, "EchoNumbers": None}
    mr_series(root / "dicom" / "mixed", T1POST, **blank)
    for path in mr_series(root / "t2", T2, **blank):
        path.rename(root / "dicom" / "mixed" / f"t2_{path.name}")
    (root / "t2").rmdir()
    series_label(T1POST, root / "dicom" / "labels" / "mixed.nii.gz")


def _nan_volume(source: Path, target: Path, share: float) -> None:
    import nibabel as nib

    image = nib.load(source)
    data = np.asarray(image.dataobj, dtype=np.float32)
    data[np.arange(data.size).reshape(data.shape) < int(data.size * share)] = np.nan
    nib.save(nib.Nifti1Image(data, image.affine), target)


THREE = ("hippocampus_001", "hippocampus_003", "hippocampus_004")


def _nan_in_one_case(root: Path) -> None:
    source = decathlon(root / "ds", THREE)
    _nan_volume(HIPPOCAMPUS / "imagesTr" / "hippocampus_003.nii.gz", source / "imagesTr" / "hippocampus_003.nii.gz", 0.2)


def _nan_everywhere(root: Path) -> None:
    source = _decathlon(root)
    for case in TWO:
        _nan_volume(HIPPOCAMPUS / "imagesTr" / f"{case}.nii.gz", source / "imagesTr" / f"{case}.nii.gz", 1.0)


def _header_without_spacing(root: Path) -> None:
    import nibabel as nib

    source = decathlon(root / "ds", THREE)
    for folder in ("imagesTr", "labelsTr"):
        path = source / folder / "hippocampus_004.nii.gz"
        image = nib.load(path)
        flat = nib.Nifti1Image(np.asarray(image.dataobj), None)
        flat.header.set_sform(np.diag([1.0, 1.0, 0.0, 1.0]), code=2)  # no slice spacing; qform unset
        flat.header["qform_code"] = 0
        nib.save(flat, path)


def _weights_and_nan_nifti(root: Path) -> None:
    _weights(root)
    _nan_volume(HIPPOCAMPUS / "imagesTr" / "hippocampus_001.nii.gz", root / "case.nii.gz", 1.0)


def _card(root: Path) -> dict:  # `root` is the case's folder, the inputs are in root/in
    return json.loads((root / "datasets" / "out" / "card.json").read_text())


def _volumes(root: Path) -> dict:
    return json.loads((root / "datasets" / "out" / "volumes.json").read_text())


def _liver_ct(folder: Path) -> None:
    folder.mkdir(parents=True)
    for name in ("ct-3slice_01.dcm", "ct-3slice_02.dcm", "ct-3slice_03.dcm", "liver.dcm"):
        shutil.copyfile(LIVER / name, folder / name)


def _check_gapped_beside_good(root: Path, _: str) -> None:
    card = _card(root)
    assert len(card["skipped"]) == 1 and "series t1 (" in card["skipped"][0]
    assert sorted(_volumes(root)) == ["ct", "t2"]


def _check_slice_twice(root: Path, _: str) -> None:
    ct = _volumes(root)["ct"]
    assert ct["shape"] == [3, 512, 512] and ct["slice_axis"] == 0  # once read as 512 slices across the files


def _check_split(root: Path, _: str) -> None:
    volumes = _volumes(root)
    assert volumes["t1"]["shape"] == volumes["t2"]["shape"] == [22, 320, 280]
    assert volumes["t1"]["series_instance_uid"] == volumes["t2"]["series_instance_uid"] == ONE_UID


def _no_recipe_keys(err: str) -> None:
    assert "data.split" not in err and "data.options" not in err, err


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
        "dicom-one-patient-names-the-flag",  # the command line's path names its flag, never a recipe key
        lambda root: [*_convert("dicom", "dicom")(root), "--split-by", "file"],
        setup=lambda root: _dicom_copy(root, "ct-3slice_01.dcm", "ct-3slice_02.dcm", "ct-3slice_03.dcm", "liver.dcm"),
        says=(r"dicom: the 3 usable samples belong to one patient or study \(as the dicom reader found them; --split-by is 'file'\)",),
        check=lambda root, err: _no_recipe_keys(err),
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
        "dicom-series-missing-a-slice",
        _convert("dicom", "dicom"),
        setup=_gapped_t1,
        says=(
            r"none of the 1 labelled series is usable; first: series t1 \(.*t1\): slice spacing is not uniform: 6\.5 mm "
            r"apart but 13 mm between t1/\d+\.dcm and t1/\d+\.dcm",
            r"slices would lie up to 3\.25 mm from where they belong",
        ),
    ),
    Case(
        "dicom-series-missing-a-slice-beside-good-series",
        _convert("dicom", "dicom"),
        setup=_gapped_beside_good_series,
        says=(r"skipped .*series t1 \(.*\): slice spacing is not uniform",),
        code=0,
        check=_check_gapped_beside_good,
    ),
    Case(
        "dicom-ct-slice-stored-twice",
        _convert("dicom", "dicom"),
        setup=_ct_slice_twice,
        says=(r"left out 1: slices stored twice, kept once, series ct: ct/slice 2 again\.dcm \(the image of ct/ct-3slice_02\.dcm\)",),
        code=0,
        check=_check_slice_twice,
    ),
    Case(
        "dicom-ct-two-images-at-one-position",
        _convert("dicom", "dicom"),
        setup=_ct_slice_twice_differing,
        says=(r"1 slice position\(s\) hold different images \(ct-3slice_02\.dcm and ct-3slice_02b\.dcm\)", r"Give each series its own folder"),
    ),
    Case(
        "dicom-two-series-share-one-uid",
        _convert("dicom", "dicom"),
        setup=_two_series_one_uid,
        says=(rf"SeriesInstanceUID {ONE_UID} holds 2 series, told apart by SeriesNumber/SeriesDescription: read as t1, t2",),
        code=0,
        check=_check_split,
    ),
    Case(
        "dicom-two-series-share-one-uid-and-folder",
        _convert("dicom", "dicom"),
        setup=_two_series_one_uid_one_folder,
        says=(r"series mixed \(.*\): 22 slice position\(s\) hold different images \(mixed/", r"its own folder or SeriesInstanceUID"),
    ),
    Case(
        "nifti-nan-voxels-in-one-case",
        _convert("nifti"),
        setup=_nan_in_one_case,
        says=(r"skipped .*hippocampus_003\.nii\.gz slice 0: .*hippocampus_003\.nii\.gz: [\d,]+ of [\d,]+ voxels are not finite \([\d,]+ NaN, 0 infinite\)", r"Fill them"),
        code=0,
    ),
    Case(
        "nifti-every-volume-nan",
        _convert("nifti"),
        setup=_nan_everywhere,
        says=(r"every one of the \d+ samples was skipped", r"hippocampus_001\.nii\.gz: all [\d,]+ voxels are not finite"),
    ),
    Case(
        "nifti-header-without-spacing",
        _convert("nifti"),
        setup=_header_without_spacing,
        says=(r"hippocampus_004\.nii\.gz: the header places no voxel in space \(voxel spacing \[1\.0, 1\.0, 0\.0\] mm", r"pixdim/sform"),
        code=0,
    ),
    Case(
        "nifti-listed-case-without-its-label",
        _convert("nifti"),
        setup=lambda root: (decathlon(root / "ds", THREE), (root / "ds" / "labelsTr" / "hippocampus_003.nii.gz").unlink()),
        says=(r"left out 1: cases without their image or label file: hippocampus_003 \(hippocampus_003\.nii\.gz\)",),
        code=0,
    ),
    Case(
        "predict-nifti-every-voxel-nan",
        lambda root: ["predict", str(root / "model.pt"), str(root / "case.nii.gz"), "--format", "nifti", "--out", str(root.parent / "runs" / "p")],
        setup=_weights_and_nan_nifti,
        says=(r"case\.nii\.gz: all [\d,]+ voxels are not finite \([\d,]+ NaN, 0 infinite\)",),
    ),
    Case(
        "predict-dicom-series-missing-a-slice",
        lambda root: ["predict", str(root / "model.pt"), str(root / "dicom"), "--format", "nifti", "--out", str(root.parent / "runs" / "p")],
        setup=lambda root: (_weights(root), _gapped_t1(root, labelled=False)),
        says=(r"series t1 \(.*\): slice spacing is not uniform: 6\.5 mm apart but 13 mm",),
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

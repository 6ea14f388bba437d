"""From PACS to PACS against a real Orthanc: pull studies over DICOMweb, convert, train a tiny run, predict on
the studies straight from the server, store SEG and SR back (STOW-RS) and read them back over DICOMweb.

The server holds the DICOM sets of ../shared/data (tests/orthanc_server.py). What is checked is what a
radiologist's viewer would show: SEG frames equal the predicted masks voxel for voxel, SR boxes equal the
predicted boxes, every reference points at a source instance, and a second run stores nothing twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import needs_data

pytest.importorskip("dicomweb_client")
pytest.importorskip("highdicom")
pytestmark = [needs_data("dicom-ct-liver-seg"), needs_data("dicom-mr-brain-series"), needs_data("dicom-samples")]

QUICK = {"epochs": 1, "imgsz": 64, "batch": 16, "workers": 0, "plots": False, "device": "cpu"}
LOW = ["conf=0.001", "imgsz=64"]  # a one-epoch model finds little: a low threshold gives masks and boxes to compare


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory):
    import orthanc_server

    root = tmp_path_factory.mktemp("pacs")
    server = orthanc_server.start(root / "orthanc")
    try:
        studies = orthanc_server.fill(server, root / "made")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("NETRC", str(server.netrc(root / "netrc")))
            patch.delenv("DICOMWEB_TOKEN", raising=False)
            yield server, studies, root
    finally:
        server.stop()


def client(server):
    """The test's own reader: dicomweb-client with the test's login, independent of the workbench's code."""
    import requests
    from dicomweb_client import DICOMwebClient

    session = requests.Session()
    session.auth = ("radiologist", server.password)
    return DICOMwebClient(server.dicomweb, session=session)


@pytest.fixture(scope="module")
def trained(pacs, tmp_path_factory: pytest.TempPathFactory):
    """Pull two studies by a recipe (CT liver with its SEGs, MR brain with the crop's SEG), convert, train 1 epoch."""
    from yolo_tools.cli import main
    from yolo_tools.pipeline import train_recipe

    server, studies, root = pacs
    recipe = {
        "name": "pacs-liver",
        "task": "segment",
        "data": {
            "source": {"kind": "dicomweb", "server": server.dicomweb, "studies": [studies.ct_study, studies.mr_study]},
            "converter": "dicom",
            "split": {"by": "file", "seed": 3},
        },
        "classes": ["liver", "bright"],
        "model": "yolov8n-seg.yaml",
        "train": QUICK,
    }
    path = root / "pacs-liver.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    data_root = root / "data"
    assert main(["pull", str(path), "--data-root", str(data_root)]) == 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("YOLO_TOOLS_DATA", str(data_root))
        run_dir, _ = train_recipe(path, {})
    return run_dir, data_root


def test_pull_caches_every_series_once_with_a_card(pacs, trained, capfd: pytest.CaptureFixture) -> None:
    import pydicom

    from yolo_tools.cli import main

    server, studies, root = pacs
    _, data_root = trained
    (folder,) = [p for p in data_root.iterdir() if p.is_dir()]
    card = json.loads((folder / "card.json").read_text())
    assert card["complete"] and card["studies"] == sorted([studies.ct_study, studies.mr_study])
    by_series = {s["series"]: s for s in card["series"]}
    # CT, its two SEGs, the 5 MR series and the crop's SEG: every series of both studies (none of another set)
    assert len(by_series) == 9 and by_series[studies.ct_series]["instances"] == 3 and by_series[studies.mr_crop_series]["instances"] == 40
    for record in card["series"]:
        files = sorted((folder / record["study"] / record["series"]).glob("*.dcm"))
        assert len(files) == record["instances"] and record["pulled"] and record["bytes"] == sum(f.stat().st_size for f in files)
        assert {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files} == {f.stem for f in files}
    assert "| instances |" in (folder / "card.md").read_text()
    stamps = {f: f.stat().st_mtime_ns for f in folder.rglob("*.dcm")}
    capfd.readouterr()
    url = f"{server.dicomweb}/studies/{studies.ct_study}"
    assert main(["pull", url, "--data-root", str(root / "data2")]) == 0  # a study URL: its own folder
    assert main(["pull", url, "--data-root", str(root / "data2")]) == 0  # again: nothing fetched twice
    assert {f: f.stat().st_mtime_ns for f in folder.rglob("*.dcm")} == stamps
    (other,) = [p for p in (root / "data2").iterdir() if p.is_dir()]
    assert len(json.loads((other / "card.json").read_text())["series"]) == 3
    assert server.password not in capfd.readouterr().err


def stored(server, study: str, modality: str) -> list:
    """Every object of `modality` in `study`, fetched back over DICOMweb (WADO-RS)."""
    web = client(server)
    found = web.search_for_series(study, search_filters={"Modality": modality})
    ours = [s["0020000E"]["Value"][0] for s in found if s.get("0008103E", {}).get("Value", [""])[0].startswith("yolo-tools")]
    return [d for uid in ours for d in web.retrieve_series(study, uid)]


def local_predictions(run_dir: Path, folder: Path, args: dict):
    """The same series predicted from a local copy: what the stored objects must hold."""
    from yolo_tools import engine
    from yolo_tools.outputs import prediction_formats
    from yolo_tools.runs import run_recipe

    recipe = run_recipe(run_dir)
    weights = run_dir / "weights" / "best.pt"
    _, classes = engine.task_and_names(weights)
    inputs = prediction_formats.volume_inputs(folder, recipe)
    return {p.volume.series.uid: p for p in prediction_formats.predict_volumes(weights, inputs, recipe, len(classes), args)}


def test_predict_stores_seg_and_sr_that_match_the_predictions_and_nothing_twice(pacs, trained, capfd: pytest.CaptureFixture) -> None:
    import highdicom as hd

    from yolo_tools.cli import main

    server, studies, root = pacs
    run_dir, data_root = trained
    (folder,) = [p for p in data_root.iterdir() if p.is_dir()]
    ct_url = f"{server.dicomweb}/studies/{studies.ct_study}"
    mr_url = f"{server.dicomweb}/studies?PatientID=PGBM-003&SeriesDescription=HippoCrop"
    for url in (ct_url, mr_url):
        assert main(["predict", str(run_dir), url, "--store", *LOW]) == 0
    assert main(["predict", str(run_dir), ct_url, "--store", "--format", "dicom-sr", *LOW]) == 0
    out = capfd.readouterr().out
    assert out.count("stored on") == 3

    predicted = local_predictions(run_dir, folder, {"conf": 0.001, "imgsz": 64})
    assert set(predicted) >= {studies.ct_series, studies.mr_crop_series}
    sources = {uid: p.volume.series.instance_uids for uid, p in predicted.items()}
    segs = stored(server, studies.ct_study, "SEG") + stored(server, studies.mr_study, "SEG")
    assert len(segs) == 2
    voxels = 0
    for dataset in segs:
        seg = hd.seg.Segmentation.from_dataset(dataset)
        series_uid = str(dataset.ReferencedSeriesSequence[0].SeriesInstanceUID)
        referenced = {uid for _, _, uid in seg.get_source_image_uids()}
        assert referenced == set(sources[series_uid])  # every frame points at a source instance, all are covered
        pixels = seg.get_pixels_by_source_instance(sources[series_uid], ignore_spatial_locations=True).astype(bool)
        expected = np.moveaxis(predicted[series_uid].masks, 0, -1)
        np.testing.assert_array_equal(pixels, expected)
        voxels += int(expected.sum())
        assert dataset.SeriesDescription.startswith("yolo-tools SEG pacs-liver")
        parameters = str(dataset.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmParameters)
        assert "weights_sha256" in parameters and run_dir.name in parameters
    assert voxels > 0, "the predictions hold no mask: the comparison would be empty"

    (report,) = stored(server, studies.ct_study, "SR")
    sr = hd.sr.Comprehensive3DSR.from_dataset(report)
    groups = sr.content.get_planar_roi_measurement_groups()
    boxes = [(i, b, c) for i, s in enumerate(predicted[studies.ct_series].slices) for b, c in zip(s.boxes, s.confidences)]
    assert len(groups) == len(boxes) > 0
    ct_instances = sources[studies.ct_series]
    for group, (index, box, confidence) in zip(groups, boxes):
        x1, y1, x2, y2 = box
        np.testing.assert_allclose(group.roi.value, [[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]], atol=1e-3)
        assert group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ct_instances[index]
        probability = [m.value for m in group.get_measurements() if m.name.meaning == "Probability"]
        assert probability == pytest.approx([float(confidence)], abs=1e-5)
    from yolo_tools.imaging.dicom_series import findings_summary

    assert findings_summary(report) == "All algorithms succeeded; with findings"
    evidence = {i.ReferencedSOPInstanceUID for e in report.CurrentRequestedProcedureEvidenceSequence for s in e.ReferencedSeriesSequence for i in s.ReferencedSOPSequence}
    assert evidence == set(ct_instances)

    before = {m: len(stored(server, s, m)) for s in (studies.ct_study, studies.mr_study) for m in ("SEG", "SR")}
    assert main(["predict", str(run_dir), ct_url, "--store", *LOW]) == 0
    assert main(["predict", str(run_dir), mr_url, "--store", *LOW]) == 0
    again = capfd.readouterr().out
    assert "0 SEG object(s) stored" in again and "already done by these weights, skipped" in again
    assert {m: len(stored(server, s, m)) for s in (studies.ct_study, studies.mr_study) for m in ("SEG", "SR")} == before
    # the login is in the netrc file only: never in a card, a run, a stored object or the output
    written = [f for folder in (run_dir, data_root) for f in folder.rglob("*") if f.is_file() and f.suffix != ".pt"]
    assert not [f for f in written if server.password.encode() in f.read_bytes()]
    assert server.password not in out + again


def test_dicom_sr_and_seg_also_for_a_folder_the_same_as_stored(pacs, trained, tmp_path: Path) -> None:
    """`--format dicom-sr` / `dicom-seg` on a local folder of the same series write what --store stored."""
    import highdicom as hd

    from yolo_tools.cli import main

    server, studies, _ = pacs
    run_dir, data_root = trained
    (folder,) = [p for p in data_root.iterdir() if p.is_dir()]
    series = folder / studies.ct_study / studies.ct_series
    assert main(["predict", str(run_dir), str(series), "--format", "dicom-sr", "--out", str(tmp_path / "sr"), *LOW]) == 0
    (local,) = (tmp_path / "sr").glob("*.sr.dcm")
    (remote,) = stored(server, studies.ct_study, "SR")
    rois = [[g.roi.value.tolist() for g in hd.sr.srread(local).content.get_planar_roi_measurement_groups()]]
    assert rois == [[g.roi.value.tolist() for g in hd.sr.Comprehensive3DSR.from_dataset(remote).content.get_planar_roi_measurement_groups()]]
    assert main(["predict", str(run_dir), str(series), "--format", "dicom-seg", "--out", str(tmp_path / "seg"), *LOW]) == 0
    (seg,) = (tmp_path / "seg").glob("*.seg.dcm")
    (remote_seg,) = stored(server, studies.ct_study, "SEG")
    import pydicom

    assert pydicom.dcmread(seg).SOPInstanceUID == remote_seg.SOPInstanceUID  # the same weights, the same series: the same object
    np.testing.assert_array_equal(pydicom.dcmread(seg).pixel_array, remote_seg.pixel_array)

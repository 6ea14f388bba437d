"""recipes/hippocampus.yaml end to end on a few real Decathlon cases: train, 3D Dice per volume, and
predictions written as NIfTI, DICOM SEG, COCO and RLE CSV, each read back by the library consumers use
and compared voxel for voxel with what the model predicts on the converted dataset's own images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import RECIPES, needs_data
from hospital_data import MR_CROP, decathlon
from yolo_tools import engine, pipeline
from yolo_tools.cli import main
from yolo_tools.imaging.geometry import Geometry, restack
from yolo_tools.locations import datasets_dir

nib = pytest.importorskip("nibabel")
pytestmark = [needs_data("hippocampus-mri-msd"), needs_data("dicom-mr-brain-series"), pytest.mark.slow]

QUICK = {"epochs": 1, "imgsz": 64, "batch": 32, "workers": 0, "plots": False, "fraction": 0.5}
LOW = {"conf": 0.001, "imgsz": 64}  # an hour's model finds little: a low threshold gives masks to compare
SCORED = {**LOW, "retina_masks": True}  # what evaluate and every --format predict with: masks at the image's own size


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("hippocampus")
    source = decathlon(root / "Task04")
    raw = yaml.safe_load((RECIPES / "hippocampus.yaml").read_text())
    raw["data"]["source"]["path"] = str(source)
    recipe = root / "hippocampus.yaml"
    recipe.write_text(yaml.safe_dump(raw, sort_keys=False))
    run_dir, _ = pipeline.train_recipe(recipe, QUICK, name="quick")
    return run_dir, source, datasets_dir() / "hippocampus"


def model_on_dataset_images(run_dir: Path, dataset: Path, volume: str) -> np.ndarray:
    """What Ultralytics predicts on the converted PNGs of one volume: (classes, slices, H, W) bool."""
    slices = pd.read_csv(dataset / "slices.csv").query("volume == @volume").sort_values("slice")
    files = [str(dataset / "images" / row.split / row.image) for row in slices.itertuples()]
    results = list(engine.predict(run_dir / "weights" / "best.pt", files, SCORED))
    return np.stack([r.class_masks(2) for r in results], axis=1)


def test_evaluate_reports_3d_dice_per_volume(run: tuple[Path, Path, Path]) -> None:
    run_dir, _, dataset = run
    out = pipeline.evaluate(run_dir, {"imgsz": 64})
    summary = json.loads((out / "summary.json").read_text())
    per_patient = pd.read_csv(out / "per_patient.csv")
    volumes = json.loads((dataset / "volumes.json").read_text())
    val = set(pd.read_csv(dataset / "slices.csv").query("split == 'val'")["volume"])
    assert set(per_patient["volume"]) == val and set(val) <= set(volumes)
    assert summary["metrics"]["volumes"] == len(val)
    assert 0.0 <= summary["metrics"]["dice_3d"] <= 1.0


def test_nifti_files_reproduce_the_3d_dice_evaluate_reported(run: tuple[Path, Path, Path], tmp_path: Path, monkeypatch) -> None:
    """The label volumes `predict --format nifti` writes for the val cases, scored against the published labels
    with nothing but nibabel and NumPy, give per_patient.csv's 3D Dice: the run's own operating point and
    full-size masks, as evaluate predicted them (the writers once used 0.25 and upsampled low-resolution masks).

    An hour's model draws its masks as whole boxes, where upsampled and full-size masks agree; so the arguments
    both commands hand Ultralytics are compared too."""
    from yolo_tools import operating_point

    run_dir, source, dataset = run
    # An hour's model finds nothing at any confidence Dice would choose, so the run is given a point of its own:
    # per class, the median of the confidences it gives on val, so each class keeps some masks and drops others.
    found = list(engine.predict(run_dir / "weights" / "best.pt", str(dataset / "images" / "val"), SCORED))
    chosen = {}
    for class_id, name in enumerate(("Anterior", "Posterior")):
        levels = np.concatenate([p.confidences[p.classes == class_id] for p in found])
        chosen[name] = round(float(np.median(levels)), 6) if len(levels) else 0.5
    operating_point.save(run_dir, operating_point.per_class("test: the median val confidences", 0.5, chosen, ["Anterior", "Posterior"]))
    asked: dict[str, list[dict]] = {"predict": [], "predict_arrays": []}
    for name in asked:
        def spy(weights, images, args, *more, _real=getattr(engine, name), _name=name, **options):
            asked[_name].append(dict(args))
            return _real(weights, images, args, *more, **options)
        monkeypatch.setattr(engine, name, spy)
    out = pipeline.evaluate(run_dir, {"imgsz": 64})
    per_patient = pd.read_csv(out / "per_patient.csv", dtype={"volume": str}).set_index("volume")
    assert json.loads((out / "summary.json").read_text())["class_conf"] == chosen
    val = tmp_path / "val"
    val.mkdir()
    for case in per_patient.index:
        (val / f"{case}.nii.gz").symlink_to(source / "imagesTr" / f"{case}.nii.gz")
    assert main(["predict", str(run_dir), str(val), "--format", "nifti", "--out", str(tmp_path / "nifti"), "imgsz=64"]) == 0
    scored, written = asked["predict"][-1], asked["predict_arrays"][-1]
    for key in ("conf", "class_conf", "retina_masks", "imgsz", "max_det"):
        assert scored.get(key) == written.get(key), key
    assert written["retina_masks"] is True and written["class_conf"] == chosen
    predicted_any = False
    for case, row in per_patient.iterrows():
        written = np.asarray(nib.load(tmp_path / "nifti" / f"{case}.nii.gz").dataobj)
        truth = np.asarray(nib.load(source / "labelsTr" / f"{case}.nii.gz").dataobj).astype(int)
        predicted_any |= bool(written.any())
        for value, name in ((1, "Anterior"), (2, "Posterior")):
            predicted, true = written == value, truth == value
            total = predicted.sum() + true.sum()
            dice = 2 * (predicted & true).sum() / total if total else 1.0
            assert dice == pytest.approx(row[f"dice_{name}"], abs=1e-9), (case, name)
    assert predicted_any  # the run found something, so the comparison says something
    (run_dir / "operating_point.json").unlink()  # the other tests see the run as trained


def test_nifti_output_overlays_the_input_voxel_for_voxel(run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run_dir, source, dataset = run
    volumes = json.loads((dataset / "volumes.json").read_text())
    case = sorted(volumes)[0]
    code = main(["predict", str(run_dir), str(source / "imagesTr" / f"{case}.nii.gz"), "--format", "nifti", "--out", str(tmp_path / "out"), "conf=0.001", "imgsz=64"])
    assert code == 0
    written = nib.load(tmp_path / "out" / f"{case}.nii.gz")
    given = nib.load(source / "imagesTr" / f"{case}.nii.gz")
    assert written.shape == given.shape and np.allclose(written.affine, given.affine)
    for field in ("sform_code", "qform_code", "descrip", "xyzt_units", "pixdim", "srow_x", "srow_y", "srow_z", "quatern_b", "qoffset_z"):
        np.testing.assert_array_equal(written.header[field], given.header[field], err_msg=field)  # the source header, kept
    labels = np.asarray(written.dataobj)
    expected_masks = model_on_dataset_images(run_dir, dataset, case)
    decided = run_dir / "postprocessing.json"  # the recipe's predict.largest_component: auto, decided by evaluate
    if decided.is_file():
        from yolo_tools import postprocess

        kept = postprocess.class_ids(json.loads(decided.read_text()), ["Anterior", "Posterior"])
        expected_masks = postprocess.keep_largest(expected_masks, kept)
    geometry = Geometry.from_json(volumes[case])
    expected = np.zeros(geometry.shape, np.uint8)
    for class_id in range(2):
        expected[restack(expected_masks[class_id], geometry)] = class_id + 1
    np.testing.assert_array_equal(labels, expected)
    assert expected.any()  # the model found something, so the comparison says something
    assert json.loads((tmp_path / "out" / "classes.json").read_text()) == {"1": "Anterior", "2": "Posterior"}


def test_coco_and_rle_csv_outputs_read_back_as_the_prediction(run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    from yolo_tools.codecs.rle import decode

    run_dir, _, dataset = run
    images = dataset / "images" / "val"
    files = sorted(images.glob("*.png"))[:20]
    subset = tmp_path / "pngs"
    subset.mkdir()
    for path in files:
        (subset / path.name).symlink_to(path)
    predictions = list(engine.predict(run_dir / "weights" / "best.pt", str(subset), SCORED))
    assert main(["predict", str(run_dir), str(subset), "--format", "coco", "--out", str(tmp_path / "coco"), "conf=0.001", "imgsz=64"]) == 0
    truth = COCO(str(tmp_path / "coco" / "coco_images.json"))
    results = truth.loadRes(str(tmp_path / "coco" / "coco_results.json"))
    by_name = {image["file_name"]: image["id"] for image in truth.dataset["images"]}
    assert sorted(by_name) == sorted(p.name for p in files)
    for prediction in predictions:
        anns = results.loadAnns(results.getAnnIds(imgIds=[by_name[prediction.path.name]]))
        assert len(anns) == len(prediction.boxes)
        for ann, mask, class_id in zip(anns, prediction.masks if prediction.masks is not None else [], prediction.classes):
            np.testing.assert_array_equal(results.annToMask(ann).astype(bool), mask)
            assert ann["category_id"] == class_id + 1
    assert main(["predict", str(run_dir), str(subset), "--format", "rle-csv", "--out", str(tmp_path / "rle"), "conf=0.001", "imgsz=64"]) == 0
    table = pd.read_csv(tmp_path / "rle" / "submission.csv", keep_default_na=False)
    assert list(table.columns) == ["id", "class", "segmentation"] and len(table) == 2 * len(files)
    for prediction in predictions:
        masks = prediction.class_masks(2)
        for class_id, name in enumerate(("Anterior", "Posterior")):
            row = table[(table["id"] == prediction.path.stem) & (table["class"] == name)].iloc[0]
            np.testing.assert_array_equal(decode(row["segmentation"], prediction.shape).astype(bool), masks[class_id])
    assert any(p.masks is not None for p in predictions)  # something was compared


def test_dicom_seg_output_references_the_series_and_holds_the_prediction(run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    import highdicom as hd
    import pydicom

    from yolo_tools.imaging import dicom_series
    from yolo_tools.outputs import prediction_formats
    from yolo_tools.recipe import load_recipe

    run_dir, _, _ = run
    assert main(["predict", str(run_dir), str(MR_CROP), "--format", "dicom-seg", "--out", str(tmp_path / "seg"), "conf=0.001", "imgsz=64"]) == 0
    series = dicom_series.find(MR_CROP).series[0]
    seg = hd.seg.segread(tmp_path / "seg" / f"{series.name}.seg.dcm")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.uid
    assert seg.PatientID == pydicom.dcmread(series.files[0]).PatientID
    assert [d.SegmentLabel for d in seg.SegmentSequence] == ["Anterior", "Posterior"]
    stored = seg.get_pixels_by_source_instance(series.instance_uids, ignore_spatial_locations=True)
    inputs = prediction_formats.volume_inputs(MR_CROP, load_recipe(run_dir / "recipe.yaml"))
    expected = next(prediction_formats.predict_volumes(run_dir / "weights" / "best.pt", inputs, load_recipe(run_dir / "recipe.yaml"), 2, SCORED))
    np.testing.assert_array_equal(stored.astype(bool), np.moveaxis(expected.masks, 0, -1))


@pytest.fixture(scope="module")
def nnunet_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The recipe with nnU-Net's options on: left-right mirroring at prediction (trained with it: flipud, since
    image rows run left to right in these axial slices) and the largest component decided on val."""
    root = tmp_path_factory.mktemp("hippocampus-nnunet")
    source = decathlon(root / "Task04")
    raw = yaml.safe_load((RECIPES / "hippocampus.yaml").read_text())
    raw["data"]["source"]["path"] = str(source)
    raw["name"] = "hippocampus-nnunet"
    raw["train"]["flipud"] = 0.5
    raw["predict"] = {"flips": ["vertical"], "largest_component": "auto"}
    recipe = root / "hippocampus-nnunet.yaml"
    recipe.write_text(yaml.safe_dump(raw, sort_keys=False))
    run_dir, _ = pipeline.train_recipe(recipe, QUICK, name="quick")
    return run_dir, source, datasets_dir() / "hippocampus-nnunet"


def test_mirrored_predictions_are_the_vote_of_the_plain_and_mirror_images(nnunet_run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """What predict and evaluate get with predict.flips is the model on each slice and on its mirror image, the mirror
    image's masks flipped back, voted per class (yolo_tools/fusion.py): checked against that made by hand."""
    import cv2

    from yolo_tools import fusion
    from yolo_tools.inference import predictors
    from yolo_tools.recipe import load_recipe

    run_dir, _, dataset = nnunet_run
    weights = run_dir / "weights" / "best.pt"
    files = sorted((dataset / "images" / "val").glob("*.png"))[10:22]
    flipped = tmp_path / "flipped"
    flipped.mkdir()
    for path in files:
        cv2.imwrite(str(flipped / path.name), cv2.imread(str(path))[::-1])
    args = {**LOW, "retina_masks": True}
    mirroring = predictors.mirroring(load_recipe(run_dir / "recipe.yaml"))
    made = list(engine.predict(weights, files, {**args, **mirroring}))
    plain = list(engine.predict(weights, files, args))
    mirror = list(engine.predict(weights, sorted(flipped.iterdir()), args))
    assert [p.path.name for p in made] == [p.name for p in files]
    for fused, one, other in zip(made, plain, mirror):
        expected = fusion.vote_masks([one, other.mirrored("vertical")], 2)
        np.testing.assert_array_equal(fused.class_masks(2), expected)
    assert any(m.masks is not None and m.masks.any() for m in mirror)  # the mirror images gave masks to vote with


def test_largest_component_is_decided_on_val_and_applied_by_evaluate_and_predict(nnunet_run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from scipy import ndimage

    run_dir, source, dataset = nnunet_run
    out = pipeline.evaluate(run_dir, {"imgsz": 64})
    decision = json.loads((run_dir / "postprocessing.json").read_text())
    assert decision["decided_on"] == "val" and decision["dimensions"] == 3 and set(decision["classes"]) == {"Anterior", "Posterior"}
    for name, stats in decision["classes"].items():  # applied exactly where the val volumes' mean Dice rose
        assert stats["cases"] == len(set(pd.read_csv(dataset / "slices.csv").query("split == 'val'")["volume"]))
        assert stats["apply"] == (name in decision["largest_component"]) == (stats["dice_largest"] > stats["dice"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["flips"] == ["vertical"] and summary["postprocessing"] == decision
    per_patient = pd.read_csv(out / "per_patient.csv")
    assert {"hd95_Anterior", "nsd_Posterior", "dice_largest_Anterior"} <= set(per_patient.columns)
    assert {"dice_3d", "dice_3d_Anterior", "dice_3d_Posterior"} <= set(summary["intervals"])

    # Applied to both classes (a decision written by hand): evaluate's volumes and predict's NIfTI hold one piece each.
    forced = {**decision, "largest_component": ["Anterior", "Posterior"]}
    (run_dir / "postprocessing.json").write_text(json.dumps(forced))
    out = pipeline.evaluate(run_dir, {"imgsz": 64, "conf": 0.001}, split="test")
    per_patient = pd.read_csv(out / "per_patient.csv")
    for name in ("Anterior", "Posterior"):  # what is scored is already its largest component
        np.testing.assert_allclose(per_patient[f"dice_largest_{name}"], per_patient[f"dice_{name}"])
    case = pd.read_csv(dataset / "slices.csv").query("split == 'test'")["volume"].iloc[0]
    assert main(["predict", str(run_dir), str(source / "imagesTr" / f"{case}.nii.gz"), "--format", "nifti", "--out", str(tmp_path / "out"), "conf=0.001", "imgsz=64"]) == 0
    labels = np.asarray(nib.load(tmp_path / "out" / f"{case}.nii.gz").dataobj)
    pieces = [ndimage.label(labels == value)[1] for value in (1, 2)]
    assert max(pieces) == 1 and sum(pieces) >= 1, pieces  # something predicted, and never more than one piece
    _, markdown = pipeline.report(run_dir, eval_name="eval-test")  # the test evaluation just made
    text = markdown.read_text()
    assert "test-time mirroring" in text and "largest connected component per volume (3D) kept for: Anterior, Posterior" in text

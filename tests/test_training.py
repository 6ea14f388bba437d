"""A real, short training on a slice of the real kidney-stone set, then val, predict and export on it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import RECIPES, needs_data
from yolo_tools import pipeline
from yolo_tools.engine import load_model
from yolo_tools.errors import UserError

pytestmark = [needs_data("kidney-stones-ct"), pytest.mark.slow]

# About 19 training images (fraction of the converted train split), 1 epoch, small images: seconds on CPU.
QUICK = {"epochs": 1, "imgsz": 160, "fraction": 0.02, "batch": 8, "workers": 0, "plots": False}


@pytest.fixture(scope="module")
def kidney_run(workspace: Path) -> tuple[Path, dict]:
    return pipeline.train_recipe(RECIPES / "kidney.yaml", QUICK, name="quick")


def test_cpu_training_uses_every_core_of_the_process(kidney_run) -> None:
    """Ultralytics alone would leave torch one thread fewer than the cores (one on 2 cores); the training
    above ran with every core the process may use, or the idle ones on a busy machine (engine.use_every_core,
    whose choice is checked in tests/test_cpu_threads.py)."""
    import torch

    from yolo_tools import engine

    assert torch.get_num_threads() == engine.use_every_core()


def test_training_writes_a_complete_run(kidney_run, workspace: Path) -> None:
    run_dir, metrics = kidney_run
    assert run_dir == workspace / "runs" / "kidney" / "quick"
    assert (run_dir / "weights" / "best.pt").is_file()
    assert set(metrics) == {"precision", "recall", "mAP50", "mAP50-95"}
    assert all(0.0 <= value <= 1.0 for value in metrics.values())
    stored = json.loads((run_dir / "metrics.json").read_text())
    assert stored["val"] == metrics
    saved = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    assert saved["train"]["epochs"] == 1 and saved["name"] == "kidney"
    args = yaml.safe_load((run_dir / "args.yaml").read_text())
    assert args["imgsz"] == 160 and args["data"] == str(workspace / "datasets" / "kidney" / "data.yaml")


def test_conversion_is_patient_wise_and_leaves_sources_alone(kidney_run, workspace: Path) -> None:
    converted = workspace / "datasets" / "kidney"
    card = json.loads((converted / "card.json").read_text())
    assert card["counts"]["train"]["images"] + card["counts"]["val"]["images"] == 1064 + 123
    assert card["skipped"] == []
    assert (converted / "labels" / "train.cache").is_file()
    from conftest import SHARED_DATA

    assert not list((SHARED_DATA / "kidney-stones-ct").rglob("*.cache"))
    from yolo_tools.convert.splits import group_keys

    train = [p.stem for p in (converted / "images" / "train").iterdir()]
    val = [p.stem for p in (converted / "images" / "val").iterdir()]
    keys = group_keys(train + val, "acquisition_session")
    assert not set(keys[: len(train)]) & set(keys[len(train) :])


def test_val_of_a_run_uses_its_own_split(kidney_run) -> None:
    run_dir, _ = kidney_run
    metrics = pipeline.validate(run_dir, {"imgsz": 160, "batch": 16})
    assert set(metrics) == {"precision", "recall", "mAP50", "mAP50-95"}
    assert (run_dir / "val").is_dir()


def test_predict_writes_images_csv_and_json(kidney_run, workspace: Path, tmp_path: Path) -> None:
    run_dir, _ = kidney_run
    images = sorted((workspace / "datasets" / "kidney" / "images" / "val").iterdir())[:3]
    source = tmp_path / "in"
    source.mkdir()
    for image in images:
        (source / image.name).write_bytes(image.read_bytes())
    csv_path, json_path, count = pipeline.predict(run_dir, str(source), tmp_path / "out", {"imgsz": 160, "conf": 0.0})
    assert count == 3
    table = pd.read_csv(csv_path)
    assert list(table.columns) == ["image", "class_id", "class_name", "confidence", "x1", "y1", "x2", "y2"]
    assert set(table["image"]) <= {image.name for image in images}
    assert (table["class_name"] == "stone").all()
    assert ((table["x2"] >= table["x1"]) & (table["y2"] >= table["y1"])).all()
    assert table["confidence"].between(0, 1).all()
    assert len(json.loads(json_path.read_text())) == len(table)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == sorted(f"{i.stem}.jpg" for i in images)


def test_export_onnx(kidney_run) -> None:
    run_dir, _ = kidney_run
    path = pipeline.export(run_dir, {"format": "onnx", "imgsz": 160})
    assert path.suffix == ".onnx" and path.stat().st_size > 1_000_000


def test_unavailable_official_weights_say_how_to_train_from_scratch(monkeypatch) -> None:
    # An unreachable proxy makes the download fail here exactly as it does on a machine without internet.
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    with pytest.raises(UserError, match=r"yolov8s\.yaml"):
        load_model("yolov8s.pt")


def test_predict_maps_dicom_like_training(kidney_run, tmp_path: Path) -> None:
    """Ultralytics cannot read DICOM: predict maps it through the run's intensity rules and names outputs after it."""
    from pydicom.data import get_testdata_file

    run_dir, _ = kidney_run
    source = tmp_path / "dicom"
    source.mkdir()
    (source / "ct.dcm").write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    _, json_path, count = pipeline.predict(run_dir, str(source), tmp_path / "dicom-out", {"imgsz": 160, "conf": 0.0})
    assert count == 1
    assert all(finding["image"] == "ct.dcm" for finding in json.loads(json_path.read_text()))
    assert (tmp_path / "dicom-out" / "ct.jpg").is_file()

"""`yolo_tools cv`: patient-wise folds, every fold trained and scored on its own held-out patients, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import RECIPES
from yolo_tools import pipeline
from yolo_tools.cli import main
from yolo_tools.errors import UserError
from yolo_tools.training.crossval import assign_folds


def test_folds_keep_patients_together_and_classes_balanced() -> None:
    patients = pd.Series([f"p{i // 4}" for i in range(200)])
    classes = pd.Series(["a" if i // 4 % 3 else "b" for i in range(200)])
    fold = assign_folds(patients, 5, seed=0, classes=classes)
    assert pd.DataFrame({"p": patients, "f": fold}).groupby("p")["f"].nunique().max() == 1
    shares = pd.crosstab(fold, classes, normalize="index")["b"]
    assert shares.max() - shares.min() < 0.15
    assert np.bincount(assign_folds(patients, 5, seed=0)).tolist() == [40] * 5
    with pytest.raises(UserError, match="at least 5 patients"):
        assign_folds(pd.Series(["a", "a", "b"]), 5, seed=0)


@pytest.mark.slow
def test_demo_cv_two_folds(workspace: Path, tmp_path: Path) -> None:
    text = (RECIPES / "demo.yaml").read_text().replace("name: demo", "name: demo-cv")
    text = text.replace("options: {images: 64, size: 128}", "options: {images: 40, size: 96}").replace("val: 0.25,", "val: 0.25, test: 0.2,")
    recipe = tmp_path / "demo-cv.yaml"
    recipe.write_text(text)
    quick = ["folds=2", "epochs=1", "imgsz=64", "batch=8", "plots=False"]
    assert main(["cv", str(recipe), *quick]) == 0
    root = workspace / "runs" / "demo-cv" / "cv"
    out = root / "cv"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["folds"] == 2 and summary["images"] == 32  # the 8 test images are in no fold
    table = pd.read_csv(out / "summary.csv", index_col="metric")
    assert table.loc["found", "mean"] == pytest.approx(table.loc["found", ["fold1", "fold2"]].mean())
    assert table.loc["found", "sd"] == pytest.approx(table.loc["found", ["fold1", "fold2"]].std(ddof=1))
    oof, folds = pd.read_csv(out / "oof_per_image.csv"), pd.read_csv(out / "folds.csv")
    assert sorted(oof["image"]) == sorted(folds["image"]) and oof["image"].is_unique
    held = dict(zip(folds["image"], folds["fold"] + 1))
    assert (oof["fold"] == oof["image"].map(held)).all()  # each image scored by the model that did not train on it
    test_images = {p.name for p in (workspace / "datasets" / "demo-cv" / "images" / "test").iterdir()}
    assert not test_images & set(folds["image"])

    first_weights = (root / "fold1" / "weights" / "best.pt").stat().st_mtime
    (root / "fold2" / "eval" / "summary.json").unlink()  # as if stopped before fold 2 was scored
    assert main(["cv", str(recipe), *quick]) == 0
    assert (root / "fold1" / "weights" / "best.pt").stat().st_mtime == first_weights  # fold 1 not trained again
    assert (root / "fold2" / "eval" / "summary.json").is_file()
    assert main(["cv", str(recipe), "folds=3", "epochs=1"]) == 2  # other settings under the same name: refused

    with pytest.raises(UserError, match="--split test"):
        pipeline.evaluate(root, {"imgsz": 64})
    ensemble = json.loads((pipeline.evaluate(root, {"imgsz": 64}, split="test") / "summary.json").read_text())
    assert len(ensemble["ensemble_of"]) == 2 and ensemble["split"] == "test" and ensemble["images"] == len(test_images)
    _, _, count = pipeline.predict(root, str(workspace / "datasets" / "demo-cv" / "images" / "test"), tmp_path / "p", {"imgsz": 64})
    assert count == len(test_images)

    from yolo_tools.review import app

    assert app.discover_runs(workspace / "runs")["demo-cv/cv"] == root  # the dashboard offers the folds as one
    loaded = app.ModelCache().get(root)
    assert isinstance(loaded.model, list) and len(loaded.model) == 2 and "ensemble of the 2 fold models" in app.describe_run(root)
    image = sorted((workspace / "datasets" / "demo-cv" / "images" / "test").iterdir())[0]
    result = app.analyse(loaded, image, conf=0.0)
    assert result.overlay.ndim == 3 and list(result.findings.columns)[:2] == ["class", "confidence"]


@pytest.mark.slow
def test_classifier_cv_links_class_folders(workspace: Path, tmp_path: Path) -> None:
    import cv2

    src = tmp_path / "cls"
    rng = np.random.default_rng(2)
    for name, level in (("NORMAL", 60), ("PNEUMONIA", 190)):
        (src / name).mkdir(parents=True)
        for i in range(12):
            image = np.clip(rng.normal(level, 30, (24, 24)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(src / name / f"person{i // 2}_{name}_{i}.png"), image)
    recipe = tmp_path / "cls-cv.yaml"
    recipe.write_text(
        f"name: cls-cv\ntask: classify\ndata:\n  source: {{kind: local, path: {src}}}\n  converter: class_folders\n"
        "  split: {by: '^(person\\d+)_', val: 0.25}\nclasses: [normal, pneumonia]\nmodel: yolov8n-cls.yaml\n"
    )
    out = pipeline.cross_validate(recipe, {"folds": 2, "epochs": 1, "imgsz": 32, "batch": 8, "workers": 0, "plots": False})
    folds = pd.read_csv(out / "folds.csv")
    assert folds.groupby("patient")["fold"].nunique().max() == 1 and len(folds) == 24
    assert pd.crosstab(folds["fold"], folds["class"]).min().min() >= 4  # stratified: both classes in both folds
    fold1 = workspace / "datasets" / "cls-cv" / "cv-k2-s0" / "fold1"
    assert all(p.is_symlink() for p in (fold1 / "val").rglob("*.png"))
    summary = json.loads((out / "summary.json").read_text())
    assert {"accuracy", "roc_auc", "sensitivity"} <= set(summary["mean"])
    assert (out.parent / "fold1" / "operating_point.json").is_file()

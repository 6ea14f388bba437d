"""Test splits: carved patient-wise from a recipe, or kept as published; converted, never trained on."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from yolo_tools.conversion import prepare
from yolo_tools.convert.splits import held_out
from yolo_tools.errors import UserError
from yolo_tools.recipe import load_recipe


def _recipe(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_held_out_carves_whole_patients_in_the_asked_shares() -> None:
    groups = [f"p{i // 3}" for i in range(300)]  # 100 patients, 3 images each
    split = np.array(held_out(groups, [False] * 300, 0.2, 0.15, seed=0))
    patients = pd.DataFrame({"group": groups, "split": split}).drop_duplicates()
    assert patients["group"].is_unique  # no patient on two sides
    assert patients["split"].value_counts().to_dict() == {"train": 65, "val": 20, "test": 15}
    published = [i % 10 == 0 for i in range(300)]
    split = np.array(held_out([str(i) for i in range(300)], published, 0.2, "source", seed=0))
    assert (split == "test").tolist() == published and (split == "val").sum() == 54


def test_recipe_refuses_fractions_that_do_not_fit(tmp_path: Path) -> None:
    base = "name: x\ntask: detect\ndata: {source: {kind: synthetic}, converter: synthetic, split: %s}\nclasses: [a]\n"
    for split, words in (("{by: file, val: 0.5, test: 0.5}", "val + test < 1"), ("{by: source, test: 0.2}", "patient rule")):
        with pytest.raises(UserError, match="data.split") as error:
            load_recipe(_recipe(tmp_path, base % split))
        assert words in str(error.value)


def test_demo_with_a_carved_test_split(workspace: Path, tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "recipes" / "demo.yaml").read_text()
    text = text.replace("name: demo", "name: demo-test").replace("split: {by: file, val: 0.25, seed: 0}", "split: {by: file, val: 0.25, test: 0.25, seed: 0}")
    recipe = load_recipe(_recipe(tmp_path, text))
    before = load_recipe(Path(__file__).parent.parent / "recipes" / "demo.yaml")
    assert recipe.fingerprint() != before.fingerprint()
    data = prepare(recipe)
    spec = yaml.safe_load(data.read_text())
    assert (spec["train"], spec["val"], spec["test"]) == ("images/train", "images/val", "images/test")
    root = data.parent
    counts = {split: len(list((root / "images" / split).iterdir())) for split in ("train", "val", "test")}
    assert counts == {"train": 32, "val": 16, "test": 16}
    patients = pd.read_csv(root / "patients.csv")
    assert patients.groupby("patient")["split"].nunique().max() == 1
    assert patients["split"].value_counts().to_dict() == counts


def _tiny_export(root: Path) -> None:
    """A Roboflow-style YOLO export with train, valid and test folders of 32x32 images."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("valid", 2), ("test", 3)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for i in range(count):
            cv2.imwrite(str(root / split / "images" / f"{split}{i}.png"), rng.integers(0, 255, (32, 32), np.uint8))
            (root / split / "labels" / f"{split}{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("names: [stone]\ntrain: ../train/images\nval: ../valid/images\ntest: ../test/images\n")


def test_published_test_split_of_an_export_is_kept(tmp_path: Path) -> None:
    src = tmp_path / "export"
    _tiny_export(src)
    recipe_text = (
        f"name: export-test\ntask: detect\ndata:\n  source: {{kind: local, path: {src}}}\n  converter: yolo_export\n"
        "  split: {by: source, test: source}\nclasses: [stone]\n"
    )
    data = prepare(load_recipe(_recipe(tmp_path, recipe_text)))
    assert sorted(p.name for p in (data.parent / "images" / "test").iterdir()) == ["test0.png", "test1.png", "test2.png"]
    assert len(list((data.parent / "images" / "train").iterdir())) == 6
    assert sorted(p.name for p in src.iterdir()) == ["data.yaml", "test", "train", "valid"]  # source untouched

    without = recipe_text.replace("name: export-test", "name: export-notest").replace(", test: source", "")
    data = prepare(load_recipe(_recipe(tmp_path, without, "b.yaml")))
    assert not (data.parent / "images" / "test").exists() and "test" not in yaml.safe_load(data.read_text())


def test_class_folders_keep_their_published_test_folder(tmp_path: Path) -> None:
    src = tmp_path / "cls"
    rng = np.random.default_rng(1)
    for split, count in (("train", 6), ("test", 2)):
        for name in ("NORMAL", "PNEUMONIA"):
            (src / split / name).mkdir(parents=True)
            for i in range(count):
                cv2.imwrite(str(src / split / name / f"person{i}_{name}.jpeg"), rng.integers(0, 255, (16, 16), np.uint8))
    text = (
        f"name: cls-test\ntask: classify\ndata:\n  source: {{kind: local, path: {src}}}\n  converter: class_folders\n"
        "  options: {folder: train}\n  split: {by: 'person\\d+', val: 0.3, test: source}\nclasses: [normal, pneumonia]\n"
        "model: yolov8n-cls.yaml\n"
    )
    root = prepare(load_recipe(_recipe(tmp_path, text)))
    tested = sorted(p.relative_to(root / "test").as_posix() for p in (root / "test").rglob("*.jpeg"))
    assert len(tested) == 4 and all(name.split("/")[1].startswith("test_") for name in tested)  # renamed: names clash
    assert len(list((root / "train").rglob("*.jpeg"))) + len(list((root / "val").rglob("*.jpeg"))) == 12

    no_test = text.replace("name: cls-test", "name: cls-none").replace("folder: train", "folder: train, test_folder: missing")
    with pytest.raises(UserError, match="missing"):
        prepare(load_recipe(_recipe(tmp_path, no_test, "b.yaml")))


@pytest.mark.slow
def test_a_run_scored_on_val_its_test_split_and_an_outside_set(workspace: Path, tmp_path: Path) -> None:
    """One epoch of the demo with a test split: val chooses the confidence, test and an outside set reuse it."""
    import json
    import shutil

    from yolo_tools import pipeline

    text = (Path(__file__).parent.parent / "recipes" / "demo.yaml").read_text()
    text = text.replace("name: demo", "name: demo-held").replace("val: 0.25,", "val: 0.25, test: 0.25,")
    text = text.replace("  plots: true", "  plots: true\n  max_det: 1")  # at most one finding per image, everywhere
    run, _ = pipeline.train_recipe(_recipe(tmp_path, text), {"epochs": 1, "imgsz": 64, "plots": False}, name="t")
    val = json.loads((pipeline.evaluate(run, {"imgsz": 64}) / "summary.json").read_text())
    stored = run / "operating_point.json"
    if stored.is_file():  # val's predictions found something: the point chosen on them
        point = json.loads(stored.read_text())
        assert val["conf"] == point["conf"] and point["chosen_on"] == "val" and "predictions on val" in point["rule"]
    else:  # one epoch may find nothing on val: no point then (it once stored 1.0), the default; test and outside reuse one given by hand
        from yolo_tools import operating_point

        assert val["conf"] == 0.25 and val["class_conf"] is None and val["operating_point"] is None
        operating_point.save(run, operating_point.per_class("given by the test", 0.01, {"finding": 0.01}, ["finding"]))
        point = json.loads(stored.read_text())
    assert val["bootstrap"]["patients"] == val["images"] == 16 and val["bootstrap"]["n_boot"] == 1000
    for name in ("ap50", "recall_at_conf", "false_positives_per_image"):
        interval = val["intervals"][name]
        assert interval is None or interval[0] <= val["metrics"][name] + 1e-9 and val["metrics"][name] <= interval[1] + 1e-9

    out = pipeline.evaluate(run, {"imgsz": 64}, split="test")
    test = json.loads((out / "summary.json").read_text())
    assert out == run / "eval-test" and test["split"] == "test" and test["conf"] == point["conf"]
    test_images = sorted(p.name for p in (workspace / "datasets" / "demo-held" / "images" / "test").iterdir())
    assert sorted(pd.read_csv(out / "per_image.csv")["image"]) == test_images
    assert "held-out test split" in test["scored_set"]
    assert pd.read_csv(out / "per_image.csv")["boxes_predicted"].max() <= 1
    _, _, count = pipeline.predict(run, str(workspace / "datasets" / "demo-held" / "images" / "test"), tmp_path / "p", {"imgsz": 64, "conf": 0.0})
    assert count == len(test_images) and pd.read_csv(tmp_path / "p" / "predictions.csv")["image"].value_counts().max() == 1

    outside = tmp_path / "hospital-b"  # the test images again, as a YOLO export someone else made
    dataset = workspace / "datasets" / "demo-held"
    for split in ("train", "valid"):
        (outside / split / "images").mkdir(parents=True)
        (outside / split / "labels").mkdir(parents=True)
    for image in test_images:
        shutil.copyfile(dataset / "images" / "test" / image, outside / "train" / "images" / image)
        shutil.copyfile(dataset / "labels" / "test" / f"{Path(image).stem}.txt", outside / "train" / "labels" / f"{Path(image).stem}.txt")
    (outside / "data.yaml").write_text("names: [finding]\ntrain: train/images\nval: valid/images\n")
    before = sorted(str(p) for p in outside.rglob("*"))
    out = pipeline.evaluate(run, {"imgsz": 64}, data=outside, data_format="yolo")
    other = json.loads((out / "summary.json").read_text())
    assert out == run / "eval-outside-hospital-b" and other["images"] == len(test_images)
    assert other["metrics"]["found"] == test["metrics"]["found"]  # same pixels, same model, same threshold
    assert sorted(str(p) for p in outside.rglob("*")) == before  # nothing written into the source

    html, markdown = pipeline.report(run, eval_name="eval-test")
    assert html.parent == run / "report-test"
    text = markdown.read_text()
    assert "held-out test split" in text and "95% interval" in text


@pytest.mark.slow
def test_a_classifier_scored_on_its_published_test_split_at_the_val_threshold(workspace: Path, tmp_path: Path) -> None:
    import json

    from yolo_tools import pipeline

    src = tmp_path / "cls"
    rng = np.random.default_rng(3)
    for split, count in (("train", 12), ("test", 4)):
        for name, level in (("NORMAL", 70), ("PNEUMONIA", 180)):
            (src / split / name).mkdir(parents=True)
            for i in range(count):
                image = np.clip(rng.normal(level, 40, (24, 24)), 0, 255).astype(np.uint8)
                cv2.imwrite(str(src / split / name / f"{split}{i}_{name}.png"), image)
    text = (
        f"name: cls-held\ntask: classify\ndata:\n  source: {{kind: local, path: {src}}}\n  converter: class_folders\n"
        "  options: {folder: train}\n  split: {by: file, val: 0.3, test: source}\nclasses: [normal, pneumonia]\n"
        "model: yolov8n-cls.yaml\n"
    )
    run, _ = pipeline.train_recipe(_recipe(tmp_path, text), {"epochs": 1, "imgsz": 32, "batch": 8, "workers": 0, "plots": False}, name="t")
    out = pipeline.evaluate(run, {"imgsz": 32}, split="test")  # no threshold yet: val is evaluated first to choose it
    point = json.loads((run / "operating_point.json").read_text())
    assert (run / "eval" / "summary.json").is_file() and point["chosen_on"] == "val"
    test = json.loads((out / "summary.json").read_text())
    assert test["split"] == "test" and test["images"] == 8 and test["operating_point"]["threshold"] == point["threshold"]
    per_image = pd.read_csv(out / "per_image.csv")
    positives = per_image[per_image["truth"] == "pneumonia"]  # p_truth is p(pneumonia) as the model gave it
    assert ((positives["p_truth"] >= point["threshold"]) == (positives["predicted"] == "pneumonia")).all()


def test_the_val_split_is_said_to_have_chosen_the_epoch_only_when_it_did(tmp_path: Path) -> None:
    """A run trained with val=False keeps its last epoch: its evaluation must not say val chose the best one."""
    from yolo_tools.evaluation import _scored_set
    from yolo_tools.runs import chose_best_epoch

    args = tmp_path / "args.yaml"
    args.write_text("val: false\nepochs: 3\n")
    assert not chose_best_epoch(tmp_path)
    assert "no epoch chosen" in _scored_set("val", None, {}, chose_best_epoch(tmp_path))
    args.write_text("val: true\n")
    assert "chose the best epoch" in _scored_set("val", None, {}, chose_best_epoch(tmp_path))
    args.write_text("val: [\n")  # damaged: Ultralytics' default (val=True) is assumed
    assert chose_best_epoch(tmp_path) and chose_best_epoch(tmp_path / "no-run")

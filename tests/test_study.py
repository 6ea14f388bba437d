"""`yolo_tools study`: test split apart, cv, the operating point out of fold, the fold ensemble on test, the pages.

The end-to-end test runs a study of the demo recipe at a tiny budget (2 folds of 24 synthetic images, 1
epoch at 64 px), stops it after the cv, resumes it, and then reads every page against the files of each
step: the numbers the study, the model card, the checklist and the methods print must be those of
cv/cv/summary.json, operating_point.json, test/summary.json and retrained/eval-test/summary.json. A detector
that small finds little, so a two-class classifier study (separable synthetic films) checks the same
agreement on numbers that are not zero, the threshold chosen out of fold, and that the steps after the cv
give the same numbers when done again.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import RECIPES, ROOT, SHARED_DATA, needs_data
from yolo_tools import operating_point
from yolo_tools.cli import main
from yolo_tools.metrics.classification import reliability
from yolo_tools.report.claim import ITEMS
from yolo_tools.training import study

QUICK = ["folds=2", "epochs=1", "imgsz=64", "batch=8", "plots=False"]


def _demo_recipe(folder: Path) -> Path:
    text = (RECIPES / "demo.yaml").read_text().replace("name: demo", "name: demo-study")
    text = text.replace("options: {images: 64, size: 128}", "options: {images: 30, size: 64}").replace("val: 0.25,", "val: 0.25, test: 0.2,")
    recipe = folder / "demo-study.yaml"
    recipe.write_text(text)
    return recipe


def _numbers(summary: dict, name: str) -> str:
    """A test metric as the pages print it: value and 95% interval."""
    value, bounds = summary["metrics"][name], (summary.get("intervals") or {}).get(name)
    return f"{value:.3f}" + (f" [{bounds[0]:.3f}, {bounds[1]:.3f}]" if bounds else "")


def _classifier_recipe(folder: Path) -> Path:
    """Two classes of synthetic films (dark and bright noise), four films a patient, a test split of patients, and
    each patient's sex and age (data.metadata) to break the results down by."""
    import cv2

    src = folder / "cls"
    rng = np.random.default_rng(2)
    for name, level in (("NORMAL", 70), ("PNEUMONIA", 180)):
        (src / name).mkdir(parents=True)
        for i in range(16):
            image = np.clip(rng.normal(level, 30, (24, 24)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(src / name / f"person{i // 2}_{name}_{i}.png"), image)
    rows = [f"person{i},{'FM'[i % 2]},{30 + 7 * i}" for i in range(8)]
    (src / "patients.csv").write_text("patient,sex,age\n" + "\n".join(rows) + "\n")
    recipe = folder / "cls-study.yaml"
    recipe.write_text(
        f"name: cls-study\ntask: classify\ndescription: Tell dark from bright films.\ndata:\n  source: {{kind: local, path: {src}}}\n"
        "  converter: class_folders\n  split: {by: '^(person\\d+)_', val: 0.25, test: 0.25}\n  metadata: {path: patients.csv}\n"
        "classes: [normal, pneumonia]\n"
        "model: yolov8n-cls.yaml\n"
    )
    return recipe


def test_claim_lists_the_44_items_once_in_order() -> None:
    assert [item.number for item in ITEMS] == list(range(1, 45))
    assert len({item.subject for item in ITEMS}) == 44


def test_reliability_counts_the_bins_scikit_learn_draws() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(300), 1)  # ties: some quantile bins collapse
    found = reliability(rng.random(300) < scores, scores)
    assert len(found["count"]) == len(found["predicted"]) == len(found["observed"]) and sum(found["count"]) == 300
    gaps = np.abs(np.array(found["observed"]) - np.array(found["predicted"]))
    assert found["ece"] == pytest.approx(float(np.sum(np.array(found["count"]) * gaps) / 300))
    assert reliability(np.ones(5, bool), np.linspace(0, 1, 5)) is None


def test_the_out_of_fold_threshold_is_chosen_on_every_pooled_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    truth = np.where(rng.random(200) < 0.4, "pneumonia", "normal")
    p_positive = np.clip(np.where(truth == "pneumonia", 0.7, 0.3) + rng.normal(0, 0.2, 200), 0, 1)
    p_truth = np.where(truth == "pneumonia", p_positive, 1 - p_positive)
    pd.DataFrame({"image": [f"{i}.png" for i in range(200)], "truth": truth, "p_truth": p_truth}).to_csv(tmp_path / "oof_per_image.csv")
    chosen = study._oof_threshold(tmp_path, ["normal", "pneumonia"], "sensitivity=0.9")
    expected = operating_point.choose_threshold(truth == "pneumonia", p_positive, "sensitivity=0.9")
    assert chosen == {**expected, "positive": "pneumonia"} and chosen["sensitivity"] >= 0.9


@pytest.mark.slow
def test_demo_study_stops_after_cv_resumes_and_every_page_agrees_with_the_steps(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = _demo_recipe(tmp_path)
    argv = ["study", str(recipe), *QUICK, "--retrain"]
    with monkeypatch.context() as patch:  # stopped (Ctrl-C) right after the cv, before the operating point
        patch.setattr(study, "_choose_point", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
        assert main(argv) == 130
    root = workspace / "runs" / "demo-study" / "study"
    assert (root / "cv" / "cv" / "summary.json").is_file() and not (root / "operating_point.json").exists()
    trained = {fold: (root / "cv" / fold / "weights" / "best.pt").stat().st_mtime for fold in ("fold1", "fold2")}
    cv_seconds = json.loads((root / "compute.json").read_text())["seconds"]["cv"]

    assert main(argv) == 0  # goes on from the operating point: the folds are not trained again
    assert {fold: (root / "cv" / fold / "weights" / "best.pt").stat().st_mtime for fold in trained} == trained
    compute = json.loads((root / "compute.json").read_text())
    assert compute["seconds"]["cv"] == pytest.approx(cv_seconds) and set(compute["seconds"]) == {"convert", "cv", "operating point", "test", "retrain"}

    cv = json.loads((root / "cv" / "cv" / "summary.json").read_text())
    test = json.loads((root / "test" / "summary.json").read_text())
    point = json.loads((root / "operating_point.json").read_text())
    retrained = json.loads((root / "retrained" / "eval-test" / "summary.json").read_text())
    card = json.loads((workspace / "datasets" / "demo-study" / "card.json").read_text())
    pages = {name: (root / name).read_text() for name in ("study.md", "study.html", "model_card.md", "claim.md", "methods.md")}

    # The split: the test patients held out first, the rest in the folds, no image in both.
    folds = pd.read_csv(root / "cv" / "cv" / "folds.csv")
    test_images = {p.name for p in (workspace / "datasets" / "demo-study" / "images" / "test").iterdir()}
    assert test["images"] == len(test_images) == card["counts"]["test"]["images"] and not test_images & set(folds["image"])
    assert cv["images"] == len(folds) == card["counts"]["train"]["images"] + card["counts"]["val"]["images"]
    # The operating point: chosen out of fold on all pooled images, and the one the test was scored at.
    assert point["chosen_on"] == "pooled out-of-fold predictions" and point["images"] == cv["images"] and point["folds"] == 2
    assert test["operating_point"].get("class_conf") == point.get("class_conf") == retrained["operating_point"].get("class_conf")
    assert test["conf"] == point["conf"] and len(test["ensemble_of"]) == 2 and test["split"] == "test"

    headline = [name for name in ("recall_at_conf", "ap50", "ap50_95", "box_iou", "false_positives_per_image") if name in test["metrics"]]
    for name in headline:
        for page in ("study.md", "study.html", "model_card.md", "claim.md", "methods.md"):
            assert _numbers(test, name) in pages[page], f"{page}: test {name} {_numbers(test, name)} not stated"
        cv_text = f"{cv['mean'][name]:.3f} ± {cv['sd'][name]:.3f}"
        for page in ("study.md", "claim.md", "methods.md", "model_card.md"):
            assert cv_text in pages[page], f"{page}: cv {name} {cv_text} not stated"
        assert _numbers(retrained, name) in pages["study.md"]
    for name, value in point.get("class_conf", {}).items():
        assert f"{name} {value:.3f}" in pages["study.md"] and f"{name} {value:.3f}" in pages["model_card.md"]
    if "class_conf" not in point:  # one epoch may find nothing out of fold: said, and Ultralytics' default decides
        assert "none could be chosen" in pages["study.md"] and test["conf"] == 0.25
    patients = card["groups"]
    assert f"{patients['test']} patients ({test['images']} images)" in pages["study.md"]
    assert f"{test['images']} images of {patients['test']} patients" in pages["model_card.md"]
    assert f"{cv['images']} images of {patients['train'] + patients['val']} patients" in pages["model_card.md"]
    assert f"over {test['bootstrap']['patients']} patients" in pages["methods.md"]
    epochs = json.loads((root / "retrained" / "retrain.json").read_text())
    assert epochs["epochs"] == max(1, round(float(np.mean(epochs["best_epochs"])))) and f"for {epochs['epochs']} epoch(s)" in pages["methods.md"]

    # The checklist: all 44 items by number, the ones only authors can answer marked so.
    numbers = [int(n) for n in re.findall(r"^\*\*(\d+)\. ", pages["claim.md"], re.MULTILINE)]
    assert numbers == list(range(1, 45))
    assert "**44. Funding and the funders' role** (for the authors)" in pages["claim.md"]
    assert f"{card['groups']['test']} held-out patients" in pages["claim.md"]
    # One self-contained page: every picture embedded.
    assert "data:image/png;base64," in pages["study.html"] and "data:image/jpeg;base64," in pages["study.html"]
    assert not re.search(r'src="(?!data:)', pages["study.html"])
    assert all((root / "figures" / f).is_file() for f in re.findall(r"\(figures/([^)]+)\)", pages["study.md"]))
    summary = json.loads((root / "summary.json").read_text())
    assert summary["compute"] == compute and summary["test"] == test and summary["operating_point"] == point

    assert main(["study", str(recipe), *QUICK[1:], "folds=3"]) == 2  # other settings in this study folder: refused


@pytest.mark.slow
def test_classifier_study_decides_on_test_at_the_out_of_fold_threshold(workspace: Path, tmp_path: Path) -> None:
    recipe = _classifier_recipe(tmp_path)
    argv = ["study", str(recipe), "folds=2", "epochs=2", "imgsz=32", "batch=8", "workers=0", "plots=False",
            "--operating-point", "sensitivity=0.9"]
    assert main(argv) == 0
    root = workspace / "runs" / "cls-study" / "study"
    cv = json.loads((root / "cv" / "cv" / "summary.json").read_text())
    test = json.loads((root / "test" / "summary.json").read_text())
    point = json.loads((root / "operating_point.json").read_text())
    oof = pd.read_csv(root / "cv" / "cv" / "oof_per_image.csv")
    positive = (oof["truth"] == "pneumonia").to_numpy()
    expected = operating_point.choose_threshold(positive, np.where(positive, oof["p_truth"], 1 - oof["p_truth"]), "sensitivity=0.9")
    assert point["threshold"] == pytest.approx(expected["threshold"]) and point["images"] == len(oof) == cv["images"]
    assert test["operating_point"]["threshold"] == point["threshold"] and len(test["ensemble_of"]) == 2
    per_image = pd.read_csv(root / "test" / "per_image.csv")
    p_positive = np.where(per_image["truth"] == "pneumonia", per_image["p_truth"], 1 - per_image["p_truth"])
    called = np.where(p_positive >= point["threshold"], "pneumonia", "normal")
    assert (per_image["predicted"] == called).all()  # every test image decided at the out-of-fold threshold
    assert test["metrics"]["accuracy"] == pytest.approx((called == per_image["truth"]).mean())

    pages = {name: (root / name).read_text() for name in ("study.md", "study.html", "model_card.md", "claim.md", "methods.md")}
    for name in ("accuracy", "roc_auc", "sensitivity", "specificity"):
        for page, text in pages.items():
            assert _numbers(test, name) in text, f"{page}: test {name} {_numbers(test, name)} not stated"
        cv_text = f"{cv['mean'][name]:.3f} ± {cv['sd'][name]:.3f}"
        assert all(cv_text in pages[page] for page in ("study.md", "claim.md", "methods.md", "model_card.md")), cv_text
    assert f"at least {point['threshold']:.3f}" in pages["study.md"] and f"at least {point['threshold']:.3f}" in pages["claim.md"]
    groups = pd.read_csv(root / "test" / "per_group.csv", dtype={"value": str})  # the test split by patient field
    for row in groups.itertuples():
        assert f"| {row.field} | {row.value} | {row.images} | {row.patients} | {row.accuracy:.3f} |" in pages["study.md"]
    assert "### Patients per split by patient field" in pages["study.md"] and "| sex | F |" in pages["study.md"]
    assert "| age | median (quartiles) |" in pages["study.md"] and "Results are broken down by" in pages["model_card.md"]
    calibration = json.loads((root / "test" / "calibration.json").read_text())
    if "ece" in calibration:
        assert f"expected calibration error {calibration['ece']:.3f}" in pages["methods.md"]

    (root / "operating_point.json").unlink()  # the same settings, done again, give the same point and numbers
    (root / "test" / "summary.json").unlink()
    assert main(argv) == 0
    assert json.loads((root / "operating_point.json").read_text()) == point
    again = json.loads((root / "test" / "summary.json").read_text())
    assert again["metrics"] == test["metrics"] and again["intervals"] == test["intervals"]


def test_the_retraining_set_links_every_pooled_image_into_its_class_folder(tmp_path: Path) -> None:
    from yolo_tools.conversion import prepare_dataset
    from yolo_tools.convert.checks import check
    from yolo_tools.recipe import load_recipe

    recipe = check(load_recipe(_classifier_recipe(tmp_path)))
    dataset = prepare_dataset(recipe)
    linked = study._pooled_dataset(dataset, recipe.classes)
    pooled = dataset.listing(("train", "val"))
    names = sorted(p.name for p in (linked.root / "train").rglob("*.png"))
    assert names == sorted(pooled["image"]) and not set(names) & set(dataset.listing(("test",))["image"])
    for image, split, category in zip(pooled["image"], pooled["split"], pooled["class"]):
        link = linked.root / "train" / category / image
        assert link.is_symlink() and link.resolve() == (dataset.root / split / category / image).resolve()
    assert (linked.root / "val").is_symlink() and (linked.root / "val").resolve() == (linked.root / "train").resolve()
    assert study._pooled_dataset(dataset, recipe.classes) == linked  # made once, then reused


@needs_data("dicom-mr-brain-series")
def test_deidentification_is_read_from_the_sources_dicom_headers() -> None:
    from yolo_tools.report.claim import ITEMS

    found = study._deidentification(SHARED_DATA / "dicom-mr-brain-series")
    assert found["files"] == sum(found["patient_identity_removed"].values()) + found["unreadable"] > 0
    assert found["patient_identity_removed"].get("YES", 0) > 0  # these series say so in (0012,0062)
    answer = ITEMS[10].answer({"data": {"deidentification": found}}, {})
    assert ITEMS[10].number == 11 and f"DICOM headers of {found['files']} files" in answer.text and "YES in" in answer.text
    assert study._deidentification(None) is None


@needs_data("kidney-stones-ct")
def test_the_licence_comes_from_the_source_or_the_recipes_dataset_page() -> None:
    from yolo_tools.recipe import load_recipe

    kidney = load_recipe(RECIPES / "kidney.yaml")
    licence, where = study._licence(kidney, SHARED_DATA / "kidney-stones-ct")
    assert licence == "CC BY 4.0" and Path(where).name.startswith("README")
    heart = load_recipe(RECIPES / "heart.yaml")
    licence, where = study._licence(heart, SHARED_DATA / "heart-cxr-jsrt")
    assert "research use" in licence and Path(where) == ROOT / "docs" / "datasets" / "heart.md"
    assert study._licence(load_recipe(RECIPES / "demo.yaml"), None) == (None, None)

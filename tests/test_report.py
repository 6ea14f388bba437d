"""Real tiny runs evaluated end to end, and the report written from them.

One run per task: the synthetic demo (detect, no data needed), the cardiac MRI volumes (segment, with
slices.csv and so per-patient 3D Dice), heart-seg (segment, overlapping organs) and pneumonia (classify).
Each trains 1 epoch on small images; the numbers are poor, which is fine: what is checked is that every
file agrees with the ground truth on disk, with the predictions, and with the report.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import RECIPES, SHARED_DATA
from yolo_tools import evaluation, pipeline, tasks
from yolo_tools.cli import main
from yolo_tools.metrics.detection import match
from yolo_tools.metrics.segmentation import dice, overlaps
from yolo_tools.metrics.surface import surface_scores
from yolo_tools.report import write_report

pytestmark = pytest.mark.slow

QUICK = {"epochs": 1, "batch": 8, "workers": 0, "plots": False}


def trained(recipe: str, folder: str | None, **overrides) -> Path:
    """A 1-epoch run of a recipe, evaluated; skipped when the recipe or its data is not here."""
    if not (RECIPES / f"{recipe}.yaml").is_file():
        pytest.skip(f"recipes/{recipe}.yaml not present")
    if folder and not (SHARED_DATA / folder).is_dir():
        pytest.skip(f"{SHARED_DATA / folder} not present")
    conf = overrides.pop("conf", None)
    run_dir, _ = pipeline.train_recipe(RECIPES / f"{recipe}.yaml", {**QUICK, **overrides}, name="eval")
    pipeline.evaluate(run_dir, {"imgsz": overrides["imgsz"], **({"conf": conf} if conf is not None else {})})
    return run_dir


@pytest.fixture(scope="module")
def demo_run(workspace: Path) -> Path:
    # After one epoch nothing clears the usual 0.25; a low threshold leaves plenty of false positives to count.
    return trained("demo", None, imgsz=128, conf=0.001)


@pytest.fixture(scope="module")
def cardiac_run(workspace: Path) -> Path:
    return trained("cardiac", "cardiac-mri-acdc", imgsz=96, fraction=0.1, conf=0.001)


@pytest.fixture(scope="module")
def heart_seg_run(workspace: Path) -> Path:
    return trained("heart-seg", "heart-cxr-jsrt", imgsz=96, fraction=0.1, conf=0.001)


@pytest.fixture(scope="module")
def pneumonia_run(workspace: Path) -> Path:
    return trained("pneumonia", "pneumonia-cxr-kermany", imgsz=64, fraction=0.02, batch=32)


def read(run_dir: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    out = run_dir / "eval"
    return (
        json.loads((out / "summary.json").read_text()),
        pd.read_csv(out / "per_image.csv"),
        pd.read_csv(out / "per_class.csv"),
    )


# --- evaluate -----------------------------------------------------------------------------------------


def test_detection_errors_agree_with_labels_and_predictions(demo_run: Path) -> None:
    summary, per_image, per_class = read(demo_run)
    dataset = Path(summary["dataset"])
    assert summary["task"] == "detect" and summary["conf"] == 0.001
    assert sorted(per_image["image"]) == sorted(p.name for p in (dataset / "images" / "val").iterdir())
    truth_lines = {p.stem: len(p.read_text().split("\n")) - 1 for p in (dataset / "labels" / "val").glob("*.txt")}
    assert per_image["boxes_true"].tolist() == [truth_lines[Path(name).stem] for name in per_image["image"]]
    assert (per_image["found"] + per_image["missed"] == per_image["boxes_true"]).all()
    assert (per_image["found"] + per_image["false_positives"] == per_image["boxes_predicted"]).all()
    assert (per_image["errors"] == per_image["false_positives"] + per_image["missed"]).all()
    assert per_image["false_positives"].sum() > 0  # a 1-epoch model at conf 0.001 makes plenty

    findings = pd.read_csv(demo_run / "eval" / "predictions.csv")
    assert len(findings) == per_image["boxes_predicted"].sum() and (findings["confidence"] >= 0.001).all()
    # Recount one image by hand from predictions.csv and its label file.
    name = per_image.sort_values("found").iloc[-1]["image"]
    mine = findings[findings["image"] == name]
    truth, truth_classes = evaluation.truth_boxes(dataset / "labels" / "val" / f"{Path(name).stem}.txt", (128, 128))
    hit, found = match(mine[["x1", "y1", "x2", "y2"]].to_numpy(), mine["class_id"].to_numpy(), mine["confidence"].to_numpy(), truth, truth_classes)
    row = per_image.set_index("image").loc[name]
    assert (hit.sum(), (~hit).sum(), (~found).sum()) == (row["found"], row["false_positives"], row["missed"])

    totals = summary["metrics"]
    assert totals["found"] == per_image["found"].sum() == per_class["found"].sum()
    assert totals["missed"] == per_image["missed"].sum() and totals["false_positives"] == per_image["false_positives"].sum()
    assert totals["images_with_errors"] == (per_image["errors"] > 0).sum()
    # Single class: the validator's per-class row is its overall result.
    assert per_class.loc[0, "precision"] == pytest.approx(summary["validator"]["precision"])
    assert per_class.loc[0, "mAP50-95"] == pytest.approx(summary["validator"]["mAP50-95"])
    assert summary["per_image_metric"] == {"column": "errors", "higher_is_better": False}
    assert (demo_run / "eval" / "confusion_matrix_normalized.png").is_file()  # the validator's plots, same folder
    assert not (demo_run / "eval" / "per_patient.csv").exists()


def test_volume_dice_equals_dice_of_the_restacked_volumes(cardiac_run: Path) -> None:
    summary, per_image, per_class = read(cardiac_run)
    dataset, classes = Path(summary["dataset"]), summary["classes"]
    per_patient = pd.read_csv(cardiac_run / "eval" / "per_patient.csv", dtype={"patient": str, "volume": str})
    slices = pd.read_csv(dataset / "slices.csv", dtype={"patient": str, "volume": str})
    val = slices[slices["split"] == "val"]
    assert len(per_image) == len(val) == summary["images"]
    assert sorted(per_patient["volume"]) == sorted(val["volume"].unique())
    assert summary["metrics"]["patients"] == val["patient"].nunique() == per_patient["patient"].nunique()

    # Reassemble every volume from its slices (saved predicted masks, the published label maps kept with the
    # dataset) and compare.
    assert summary["metrics"]["truth"] == "published masks"
    for volume, rows in val.sort_values("slice").groupby("volume"):
        pred, true = [], []
        for image in rows["image"]:
            stem = Path(image).stem
            shape = cv2.imread(str(dataset / "images" / "val" / image), cv2.IMREAD_GRAYSCALE).shape
            pred.append(evaluation.load_masks(cardiac_run / "eval" / "masks" / f"{stem}.png", len(classes)))
            true.append(evaluation.load_masks(dataset / "masks" / "val" / f"{stem}.png", len(classes)))
            assert true[-1].shape[1:] == shape
        expected = dice(overlaps(np.stack(pred, axis=1), np.stack(true, axis=1)))
        row = per_patient.set_index("volume").loc[volume]
        assert [row[f"dice_{name}"] for name in classes] == pytest.approx(expected.tolist())
        hd95, _ = surface_scores(np.stack(pred, axis=1), np.stack(true, axis=1))  # in 3D, voxels (ACDC has no spacing)
        assert [row[f"hd95_{name}"] for name in classes] == pytest.approx(hd95.tolist(), nan_ok=True)
        assert row["slices"] == len(rows)
    assert per_class["dice_3d_mean"].tolist() == pytest.approx([per_patient[f"dice_{n}"].mean() for n in classes])
    assert summary["metrics"]["dice_3d"] == pytest.approx(per_patient["dice"].mean())


def test_segmentation_per_image_dice_and_the_empty_convention(heart_seg_run: Path) -> None:
    summary, per_image, per_class = read(heart_seg_run)
    dataset, classes = Path(summary["dataset"]), summary["classes"]
    assert classes == ["heart", "left_lung", "right_lung"]
    assert "1 when a class is absent from both" in summary["conventions"]
    assert not (dataset / "slices.csv").exists() and not (heart_seg_run / "eval" / "per_patient.csv").exists()
    for _, row in per_image.head(5).iterrows():
        stem = Path(row["image"]).stem
        pred = evaluation.load_masks(heart_seg_run / "eval" / "masks" / f"{stem}.png", 3)
        # scored against the masks as published (SCR's PNGs at the image's size), not the polygons traced from them
        true = np.stack([cv2.imread(str(SHARED_DATA / "heart-cxr-jsrt" / "masks" / n / f"{stem}.png"), cv2.IMREAD_GRAYSCALE) > 0 for n in classes])
        assert [row[f"dice_{n}"] for n in classes] == pytest.approx(dice(overlaps(pred, true)).tolist())
        assert [row[f"true_px_{n}"] for n in classes] == true.reshape(3, -1).sum(1).tolist()
    assert summary["metrics"]["truth"] == "published masks" and summary["metrics"]["distance_unit"] == "px"
    assert per_class["nsd_mean"].between(0, 1).all() and "hd95" in summary["intervals"]
    # Every val image shows a heart and two lungs.
    assert per_class["images"].tolist() == [len(per_image)] * 3
    assert per_class["dice_mean"].tolist() == pytest.approx([per_image[f"dice_{n}"].mean() for n in classes])
    assert summary["metrics"]["dice"] == pytest.approx(per_class["dice_mean"].mean())
    assert {"precision", "mAP50", "box_mAP50"} <= set(summary["validator"])


def test_a_segmenter_decides_each_class_at_its_own_val_dice_peak(heart_seg_run: Path) -> None:
    run = heart_seg_run.with_name("eval-per-class")
    shutil.copytree(heart_seg_run, run, ignore=shutil.ignore_patterns("eval*", "operating_point.json"))
    pipeline.evaluate(run, {"imgsz": 96})  # no conf=: chosen on val now
    summary, _, per_class = read(run)
    if not (run / "operating_point.json").is_file():
        # One epoch on a tenth of the films may overlap no organ at any confidence of the sweep: then no point is
        # chosen (it once stored 0.99 for every class, hiding everything) and the default applies. The choice
        # itself is checked on made-up counts in tests/test_intervals.py.
        assert summary["conf"] == 0.25 and summary["class_conf"] is None and summary["operating_point"] is None
        return
    point = json.loads((run / "operating_point.json").read_text())
    classes = summary["classes"]
    assert point["rule"] == "max Dice per class, from predictions on val" and list(point["class_conf"]) == classes
    assert point["conf"] == min(point["class_conf"].values()) == summary["conf"]
    assert summary["class_conf"] == point["class_conf"] and "its class's own (heart" in summary["conventions"]
    found = pd.read_csv(run / "eval" / "predictions.csv")
    assert (found["confidence"] >= found["class_name"].map(point["class_conf"]) - 1e-6).all()
    # Each class at its own peak does at least as well on val as every class at the lowest of them.
    pipeline.evaluate(run, {"imgsz": 96, "conf": point["conf"]})
    _, _, single = read(run)
    assert (per_class["dice_mean"].to_numpy() >= single["dice_mean"].to_numpy() - 1e-9).all()


def test_classification_metrics_agree_with_the_validator(pneumonia_run: Path) -> None:
    summary, per_image, per_class = read(pneumonia_run)
    dataset = Path(summary["dataset"])
    on_disk = {name: len(list((dataset / "val" / name).iterdir())) for name in summary["classes"]}
    assert per_class.set_index("class")["images"].to_dict() == on_disk
    assert summary["images"] == len(per_image) == sum(on_disk.values())
    assert per_image["correct"].mean() == pytest.approx(summary["metrics"]["accuracy"])
    assert abs(summary["metrics"]["accuracy_argmax"] - summary["validator"]["top1_accuracy"]) < 0.02
    point = json.loads((pneumonia_run / "operating_point.json").read_text())  # chosen on this val split
    assert point == {**summary["operating_point"], "chosen_on": "val"} and point["positive"] == summary["classes"][1]
    positive = (per_image["truth"] == summary["classes"][1]).to_numpy()
    called = (per_image["predicted"] == summary["classes"][1]).to_numpy()
    assert called[positive].mean() == pytest.approx(summary["metrics"]["sensitivity"])
    matrix = np.array(summary["metrics"]["confusion_matrix"]["rows_truth_columns_predicted"])
    assert matrix.sum() == len(per_image) and np.trace(matrix) == per_image["correct"].sum()
    assert 0 <= summary["metrics"]["roc_auc"] <= 1


@pytest.mark.parametrize("run", ["demo_run", "cardiac_run", "heart_seg_run", "pneumonia_run"])
def test_evaluate_writes_what_the_task_module_declares(run: str, request: pytest.FixtureRequest) -> None:
    """summary.json's intervals are the task module's headline metrics, its ordering column the module's own."""
    summary, per_image, _ = read(request.getfixturevalue(run))
    task = tasks.get(summary["task"])
    assert list(summary["intervals"]) == [name for name in task.headline if name in summary["metrics"]]
    assert summary["per_image_metric"] == task.per_image_metric and task.per_image_metric["column"] in per_image
    assert summary["conventions"] == task.conventions(summary["conf"])


def test_evaluate_needs_a_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "run folder" in capsys.readouterr().err


# --- report -------------------------------------------------------------------------------------------


class Page(HTMLParser):
    """The parts of the page the tests read: tables (by their heading), images and outside references."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.outside: list[str] = []
        self._heading = ""
        self._in: str | None = None
        self._text = ""
        self._row: list[str] | None = None
        self._table: list[list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        for key in ("src", "href"):
            if tag != "a" and attrs.get(key) and not attrs[key].startswith("data:"):
                self.outside.append(attrs[key])
        if tag in ("h2", "h3", "td", "th"):
            self._in, self._text = tag, ""
        if tag == "table":
            self._table = self.tables.setdefault(self._heading, [])
        if tag == "tr":
            self._row = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h2", "h3"):
            self._heading = self._text.strip()
        if tag in ("td", "th") and self._row is not None:
            self._row.append(self._text.strip())
        if tag == "tr" and self._table is not None:
            self._table.append(self._row)
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self._text += data


def shown(value) -> str:
    """How the report must print a number from the metric files: counts whole, the rest to 3 decimals."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(value)
    if pd.isna(value):
        return "—"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def parse(html_path: Path) -> Page:
    page = Page()
    page.feed(html_path.read_text())
    page.close()
    return page


def check_page(run_dir: Path, html: Path, markdown: Path) -> Page:
    summary, per_image, per_class = read(run_dir)
    page = parse(html)
    assert not page.outside, f"the page must be self-contained: {page.outside}"
    assert page.images and all(src.startswith("data:image/") for src in page.images)
    for src in page.images:
        header, data = src.split(",", 1)
        pixels = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert pixels is not None and pixels.size > 0, header

    # The per-class table is per_class.csv, cell for cell, as rounded for display.
    table = page.tables["Per class"]
    assert table[0] == list(per_class.columns)
    integer_columns = {c for c in per_class.columns if re.match(r"^(images|instances|found|false_positives|missed|predicted)$", c)}
    for row, (_, expected) in zip(table[1:], per_class.iterrows()):
        for column, cell in zip(table[0], row):
            value = expected[column]
            if column in integer_columns and not pd.isna(value):
                value = int(value)
            assert cell == shown(value), (column, cell, value)
    # The headline numbers are summary.json's.
    headline = {row[0]: row[1] for row in page.tables["Headline numbers"][1:]}
    for name, value in {**summary["validator"], **summary["metrics"]}.items():
        if not isinstance(value, dict):
            assert headline[name] == shown(value), name

    text = markdown.read_text()
    assert "| " + " | ".join(table[1]) + " |" in text  # the same first row in the Markdown
    for link in re.findall(r"\]\((figures/[^)]+)\)", text):
        assert (markdown.parent / link).is_file(), link
    return page


def test_detection_report(demo_run: Path) -> None:
    html, markdown = write_report(demo_run)
    assert (html, markdown) == (demo_run / "report" / "report.html", demo_run / "report" / "report.md")
    page = check_page(demo_run, html, markdown)
    # Gallery (4 worst + 4 best of 16 val images), training curves, confusion matrix and PR curve.
    assert len(page.images) == 8 + 3
    assert "Worst images by errors" in page.tables
    assert "<h2>Recipe</h2>" in html.read_text() and "name: demo" in html.read_text()
    assert "Images and findings per split" in page.tables  # from the dataset card
    assert "caution" not in html.read_text(), "the demo's split is drawn by file: patient-wise"


def test_a_split_that_may_share_patients_is_cautioned_in_the_report(demo_run: Path, tmp_path: Path) -> None:
    """A summary whose split is not patient-wise (`evaluation.split_caveat`) puts its caution at the top of both pages."""
    run = tmp_path / "demo-run"
    shutil.copytree(demo_run, run, ignore=shutil.ignore_patterns("report"))
    summary = json.loads((run / "eval" / "summary.json").read_text())
    caveat = "not a patient-wise split (test), so these numbers may not hold on unseen patients"
    (run / "eval" / "summary.json").write_text(json.dumps({**summary, "split_caveat": caveat}))
    html, markdown = write_report(run)
    assert f'<dt>caution</dt><dd class="error">{caveat}</dd>' in html.read_text()
    assert f"- **caution**: {caveat}" in markdown.read_text()


def test_report_verb_evaluates_a_run_that_was_not_evaluated(demo_run: Path, workspace: Path) -> None:
    other = workspace / "runs" / "demo" / "eval-copy"
    other.mkdir()
    for name in ("recipe.yaml", "results.csv", "args.yaml"):
        (other / name).write_bytes((demo_run / name).read_bytes())
    (other / "weights").mkdir()
    (other / "weights" / "best.pt").write_bytes((demo_run / "weights" / "best.pt").read_bytes())
    assert main(["report", str(other), "imgsz=128"]) == 0
    assert (other / "eval" / "summary.json").is_file() and (other / "report" / "report.html").is_file()


def test_segmentation_report_with_patients(cardiac_run: Path) -> None:
    html, markdown = write_report(cardiac_run)
    page = check_page(cardiac_run, html, markdown)
    per_patient = pd.read_csv(cardiac_run / "eval" / "per_patient.csv", dtype={"patient": str, "volume": str})
    table = page.tables["Per patient (3D, each volume's slices stacked)"]
    assert [row[1] for row in table[1:]] == per_patient["volume"].tolist()[: len(table) - 1]
    dice_column = table[0].index("dice")
    assert [row[dice_column] for row in table[1:]] == [shown(v) for v in per_patient["dice"]][: len(table) - 1]


def test_classification_report(pneumonia_run: Path) -> None:
    html, markdown = write_report(pneumonia_run)
    check_page(pneumonia_run, html, markdown)
    assert "confusion_matrix.png" in markdown.read_text()  # drawn from summary.json's matrix
    assert "roc_calibration.png" in markdown.read_text() and "95% interval" in markdown.read_text()

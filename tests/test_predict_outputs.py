"""What `predict` writes says what `evaluate` scored: one tiny trained detector, predicted on as a user would.

`--format coco` holds the boxes plain `predict` writes at the run's stored operating point (per class, also
from a file that gives only per-class values); a run whose val predictions find nothing chooses no point and
says so; `save=False` leaves out the annotated images; a class-folder test root is read one level down; an
output folder is known as predict's own by its marker.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# Ultralytics binds its log handler to the sys.stdout of the moment it is first imported (see test_bad_input_predict).
import ultralytics  # noqa: F401, E402
from bad_input import copy_run, train_tiny_run
from yolo_tools import engine, operating_point, pipeline
from yolo_tools.cli import main
from yolo_tools.outputs import predictions
from yolo_tools.prediction import DEFAULT_CONF

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny run (16 synthetic images, 1 epoch at imgsz 32) and the folder of its val images."""
    folder = tmp_path_factory.mktemp("tiny-run")
    run = train_tiny_run(folder)
    return run, folder / "datasets" / "demo" / "images" / "val"


@pytest.fixture
def run(tiny: tuple[Path, Path], tmp_path: Path) -> Path:
    return copy_run(tiny[0], tmp_path / "run")


def _confidences(run: Path, images: Path) -> np.ndarray:
    found = engine.predict(run / "weights" / "best.pt", str(images), {"conf": 0.001, "device": "cpu"})
    return np.concatenate([p.confidences for p in found])


def _csv_boxes(path: Path) -> list[tuple]:
    table = pd.read_csv(path)
    return sorted(
        (row.image, round(row.x1, 2), round(row.y1, 2), round(row.x2 - row.x1, 2), round(row.y2 - row.y1, 2), round(row.confidence, 5))
        for row in table.itertuples()
    )


def _coco_boxes(folder: Path) -> list[tuple]:
    images = {image["id"]: image["file_name"] for image in json.loads((folder / "coco_images.json").read_text())["images"]}
    results = json.loads((folder / "coco_results.json").read_text())
    return sorted((images[r["image_id"]], *(round(v, 2) for v in r["bbox"]), round(r["score"], 5)) for r in results)


@pytest.mark.parametrize("overall", [True, False], ids=["conf-and-class-conf", "class-conf-only"])
def test_format_coco_holds_the_boxes_predict_writes_at_the_runs_point(run: Path, tiny, tmp_path: Path, overall: bool) -> None:
    """The stored point is set between the model's own confidences, so 0.25 (what --format used) gives other boxes."""
    images = tiny[1]
    confidences = _confidences(run, images)
    levels = np.unique(confidences)
    assert len(levels) >= 2 and levels.max() < DEFAULT_CONF, "the tiny model's boxes: fewer or stronger than expected"
    threshold = float(levels[len(levels) // 2 - 1 : len(levels) // 2 + 1].mean())  # between two of them: some boxes pass
    point = operating_point.per_class("test: the median of the model's confidences", threshold, {"finding": threshold}, ["finding"])
    if not overall:
        del point["conf"]  # a hand-written file: per-class values only (once read as no point at all)
    operating_point.save(run, point)

    assert main(["predict", str(run), str(images), "--out", str(tmp_path / "plain"), "device=cpu"]) == 0
    assert main(["predict", str(run), str(images), "--format", "coco", "--out", str(tmp_path / "coco"), "device=cpu"]) == 0
    plain, coco = _csv_boxes(tmp_path / "plain" / predictions.CSV_NAME), _coco_boxes(tmp_path / "coco")
    assert len(plain) == int((confidences >= threshold).sum()) > 0
    assert coco == plain


def test_a_run_whose_val_predictions_find_nothing_chooses_no_point_and_says_so(run: Path, caplog) -> None:
    """The tiny run finds none of val's boxes at confidence 0.001: F1 is 0 everywhere, whose flat 'peak' was 1.0."""
    with caplog.at_level(logging.WARNING, logger="yolo_tools"):
        out = pipeline.evaluate(run, {"device": "cpu"})
    said = [r.getMessage() for r in caplog.records if "no operating point could be chosen on val" in r.getMessage()]
    assert len(said) == 1 and "keeps Ultralytics' default conf=0.25" in said[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["conf"] == DEFAULT_CONF and summary["class_conf"] is None
    assert not (run / operating_point.FILE).exists()


def test_save_false_writes_the_tables_without_annotated_images(run: Path, tiny, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # Ultralytics' own saving would write under the working folder
    assert main(["predict", str(run), str(tiny[1]), "--out", str(tmp_path / "tables"), "save=False", "conf=0.001", "device=cpu"]) == 0
    written = sorted(p.name for p in (tmp_path / "tables").iterdir())
    assert written == sorted([predictions.MARKER, predictions.CSV_NAME, "predictions.json"])
    assert len(pd.read_csv(tmp_path / "tables" / predictions.CSV_NAME)) > 0
    assert main(["predict", str(run), str(tiny[1]), "--out", str(tmp_path / "drawn"), "save=True", "device=cpu"]) == 0
    assert len(list((tmp_path / "drawn").glob("*.jpg"))) == len(list(tiny[1].iterdir()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drawn", "run", "tables"], "something wrote beside --out"


def test_a_class_folder_test_root_is_predicted_one_level_down(run: Path, tiny, tmp_path: Path) -> None:
    """`test/<class>/<image>`, with one file name in both classes: two images, named by their class folder."""
    root = tmp_path / "test"
    files = sorted(tiny[1].iterdir())[:2]
    for label in ("normal", "pneumonia"):
        (root / label).mkdir(parents=True)
        for file in files:
            shutil.copyfile(file, root / label / file.name)
    assert main(["predict", str(run), str(root), "--out", str(tmp_path / "out"), "conf=0.001", "device=cpu"]) == 0
    expected = {f"{label}/{file.name}" for label in ("normal", "pneumonia") for file in files}
    assert set(pd.read_csv(tmp_path / "out" / predictions.CSV_NAME)["image"]) == expected
    drawn = {p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.jpg")}
    assert drawn == {str(Path(name).with_suffix(".jpg").as_posix()) for name in expected}


def test_an_earlier_predict_output_is_written_again_and_a_lookalike_is_not(run: Path, tiny, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["predict", str(run), str(tiny[1]), "--out", str(out), "device=cpu"]) == 0
    assert json.loads((out / predictions.MARKER).read_text())["source"] == str(tiny[1])
    assert main(["predict", str(run), str(tiny[1]), "--out", str(out), "device=cpu"]) == 0  # its own: written again
    lookalike = tmp_path / "mine"
    shutil.copytree(out, lookalike)
    (lookalike / predictions.MARKER).unlink()  # the same files, but not marked: a folder of the user's
    before = (lookalike / predictions.CSV_NAME).read_bytes()
    assert main(["predict", str(run), str(tiny[1]), "--out", str(lookalike), "device=cpu"]) == 2
    assert "not one yolo_tools predict wrote" in capsys.readouterr().err
    assert (lookalike / predictions.CSV_NAME).read_bytes() == before

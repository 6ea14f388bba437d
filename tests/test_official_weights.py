"""Official weights where there is a network, training from scratch (one line says so) where there is none.

Nothing is fetched: Ultralytics' downloader (`safe_download`, which `attempt_download_asset` and
`YOLO("yolov8n.pt")` go through) is replaced by one that fails as it does offline, or by one that writes
a real checkpoint where the download would land.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from conftest import RECIPES, needs_data
from yolo_tools import engine, pipeline
from yolo_tools.errors import UserError
from yolo_tools.recipe import load_recipe

RELEASE = "https://github.com/ultralytics/assets/releases/download/v8.4.0/"


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, Path]]:
    """Ultralytics' weights folder in tmp_path, and every download asked of Ultralytics, failing as offline."""
    from ultralytics.utils import downloads as ultralytics_downloads

    asked: list[tuple[str, Path]] = []

    def offline(url, file=None, **kwargs):  # as Ultralytics' own: the folder is made, then the download fails
        asked.append((url, Path(file)))
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        raise ConnectionError(f"❌  Download failure for {url}. Environment may be offline.")

    monkeypatch.setattr(ultralytics_downloads, "safe_download", offline)
    monkeypatch.setattr(engine.weights, "weights_dir", lambda: tmp_path / "weights")
    monkeypatch.chdir(tmp_path)
    return asked


def test_offline_falls_back_to_the_matching_yaml_with_one_line(downloads, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="yolo_tools.engine.weights"):
        assert engine.training_start("yolo11n-seg.pt") == "yolo11n-seg.yaml"
    assert downloads == [(RELEASE + "yolo11n-seg.pt", engine.weights.weights_dir() / "yolo11n-seg.pt")]
    [line] = [r.getMessage() for r in caplog.records]
    assert "yolo11n-seg.pt could not be downloaded" in line and "from scratch from yolo11n-seg.yaml" in line
    assert str(engine.weights.weights_dir()) in line  # where to put the weights for a pretrained start
    assert not engine.weights.weights_dir().exists()  # the failed download leaves no empty weights/ behind (in a checkout)


def test_pinned_weights_stop_with_what_to_do(downloads) -> None:
    with pytest.raises(UserError, match=r"yolov8n\.pt: official weights could not be downloaded.*model_fallback: false"):
        engine.training_start("yolov8n.pt", fallback=False)


def test_downloaded_weights_are_what_training_starts_from(downloads, monkeypatch) -> None:
    from ultralytics import YOLO
    from ultralytics.utils import downloads as ultralytics_downloads

    def online(url, file=None, **kwargs):  # what a successful download leaves: the checkpoint at `file`
        downloads.append((url, Path(file)))
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        YOLO("yolov8n.yaml").save(file)

    monkeypatch.setattr(ultralytics_downloads, "safe_download", online)
    found = engine.training_start("yolov8n.pt")
    assert downloads == [(RELEASE + "yolov8n.pt", engine.weights.weights_dir() / "yolov8n.pt")]
    assert found == str(engine.weights.weights_dir() / "yolov8n.pt") and engine.load_model(found).task == "detect"
    assert engine.training_start("yolov8n.pt") == found and len(downloads) == 1  # found again, not fetched again


def test_other_models_are_left_as_they_are(downloads) -> None:
    for model in ("yolov8n.yaml", "yolo26n-seg.yaml", "runs/kidney/train/weights/best.pt", "my.pt"):
        assert engine.training_start(model) == model
    assert downloads == []


def test_recipe_pins_and_checks_official_weights(tmp_path: Path) -> None:
    raw = yaml.safe_load((RECIPES / "gi-mini.yaml").read_text())
    assert load_recipe(RECIPES / "gi-mini.yaml").model_fallback is True
    for model, fallback, error in (("yolov8n-seg.pt", False, None), ("yolov8n.pt", True, "does not fit task 'segment'")):
        path = tmp_path / "r.yaml"
        path.write_text(yaml.safe_dump({**raw, "model": model, "model_fallback": fallback}))
        if error:
            with pytest.raises(UserError, match=error):
                load_recipe(path)
        else:
            assert load_recipe(path).model_fallback is False


@needs_data("gi-tract-mri-uwmadison-mini")
def test_a_pinned_recipe_offline_makes_no_run(downloads, tmp_path: Path, workspace: Path) -> None:
    raw = yaml.safe_load((RECIPES / "gi-mini.yaml").read_text())
    path = tmp_path / "gi-mini.yaml"
    path.write_text(yaml.safe_dump({**raw, "model_fallback": False}))
    with pytest.raises(UserError, match="model_fallback: false"):
        pipeline.train_recipe(path, {"epochs": 1, "imgsz": 64}, name="pinned")
    assert not (workspace / "runs" / "gi-mini" / "pinned").exists()


def test_a_users_first_training_starts_from_official_weights() -> None:
    """Every clinical recipe names Ultralytics' pretrained weights (downloaded where there is a network,
    the same model's YAML offline); only the demo pins training from scratch, so its numbers reproduce."""
    for path in sorted(RECIPES.glob("*.yaml")):
        recipe = load_recipe(path)
        if path.stem == "demo":
            assert recipe.model.endswith(".yaml"), path
        else:
            assert engine.is_official(recipe.model) and recipe.model_fallback, f"{path}: model {recipe.model}"


def test_a_recipe_without_a_model_gets_its_tasks_official_weights(tmp_path: Path) -> None:
    raw = yaml.safe_load((RECIPES / "heart-seg.yaml").read_text())
    del raw["model"]
    for task, classes, expected in (("segment", raw["classes"], "yolov8n-seg.pt"), ("detect", ["heart"], "yolov8n.pt"),
                                    ("classify", ["normal", "pneumonia"], "yolov8n-cls.pt")):
        path = tmp_path / f"{task}.yaml"
        path.write_text(yaml.safe_dump({**raw, "task": task, "classes": classes}))
        assert load_recipe(path).model == expected

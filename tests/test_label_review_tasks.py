"""The review loop for masks and class labels against the real Label Studio: a tiny segmentation run (a YOLO
polygon export) and a tiny classifier (class folders), each converted by its real converter, trained for one
epoch, sent with `inspect --annotate`, edited through the REST API as the reviewer's browser does, loaded, and
converted into the corrected version."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from conftest import isolate_fiftyone
from yolo_tools import pipeline
from yolo_tools.convert.corrections import same_line
from yolo_tools.dataset import Dataset, home
from yolo_tools.review import label_review

pytestmark = pytest.mark.slow

QUICK = {"epochs": 1, "imgsz": 64, "batch": 4, "workers": 0, "plots": False, "device": "cpu"}


def _blob(rng: np.random.Generator, size: int, blobs: int) -> tuple[np.ndarray, list[np.ndarray]]:
    image = rng.normal(60, 10, (size, size)).clip(0, 255).astype(np.uint8)
    outlines = []
    for _ in range(blobs):
        mask = np.zeros_like(image)
        centre = tuple(int(v) for v in rng.uniform(0.3, 0.7, 2) * size)
        axes = tuple(int(v) for v in rng.uniform(0.1, 0.18, 2) * size)
        cv2.ellipse(mask, centre, axes, 0, 0, 360, 255, -1)
        image[mask > 0] = 220
        contour = max(cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0], key=cv2.contourArea)
        outlines.append(contour.reshape(-1, 2)[::3] / size)
    return image, outlines


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory, label_studio):
    folder = tmp_path_factory.mktemp("review-tasks")
    with pytest.MonkeyPatch.context() as patch:
        isolate_fiftyone(patch, folder / "fiftyone")
        for name in ("datasets", "runs", "corrections"):
            patch.setenv(f"YOLO_TOOLS_{name.upper()}", str(folder / name))
        patch.setenv("YOLO_TOOLS_DATA", str(folder / "data"))
        patch.setenv("LABEL_STUDIO_URL", label_studio.url)
        patch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
        yield folder, label_studio


def _recipe(folder: Path, name: str, task: str, converter: str, classes: list[str], model: str, split: dict) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "task": task, "data": {"source": {"kind": "local", "path": name}, "converter": converter, "split": split},
        "classes": classes, "model": model, "train": QUICK,
    }, sort_keys=False))  # fmt: skip
    return path


def _annotate_and_edit(run: Path, server, edit) -> tuple[dict, Path]:
    review = label_review.annotate(run, {"conf": 0.001, "device": "cpu"}, worst=2)
    tasks = sorted(server.api("GET", "/api/tasks", params={"project": review["project"], "fields": "all"})["tasks"], key=lambda t: t["id"])
    result = copy.deepcopy(tasks[0]["predictions"][0]["result"])
    edit(result)
    server.api("POST", f"/api/tasks/{tasks[0]['id']}/annotations", json={"result": result, "lead_time": 3.0})
    server.api("POST", f"/api/tasks/{tasks[1]['id']}/annotations", json={"result": tasks[1]["predictions"][0]["result"], "lead_time": 1.0})
    return review, label_review.load(run, review["key"])


def test_masks_are_reviewed_as_polygons(place) -> None:
    folder, server = place
    rng = np.random.default_rng(0)
    export = folder / "data" / "blobs-seg"
    for split, count in (("train", 12), ("valid", 4)):
        (export / split / "images").mkdir(parents=True)
        (export / split / "labels").mkdir(parents=True)
        for i in range(count):
            image, outlines = _blob(rng, 64, 1 + i % 2)
            cv2.imwrite(str(export / split / "images" / f"{split}_{i}.png"), image)
            lines = ["0 " + " ".join(f"{v:.6f}" for v in outline.ravel()) for outline in outlines]
            (export / split / "labels" / f"{split}_{i}.txt").write_text("\n".join(lines) + "\n")
    (export / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnames: [blob]\n")
    recipe = _recipe(folder, "blobs-seg", "segment", "yolo_export", ["blob"], "yolov8n-seg.yaml", {"by": "source"})
    run, _ = pipeline.train_recipe(recipe)

    def edit(result: list[dict]) -> None:
        region = next(r for r in result if r["id"] == "t0")
        assert region["type"] == "polygonlabels" and len(region["value"]["points"]) >= 3
        region["value"]["points"][0] = [region["value"]["points"][0][0] + 5.0, region["value"]["points"][0][1]]

    review, path = _annotate_and_edit(run, server, edit)
    first = review["tasks"][min(review["tasks"], key=int)]
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["action"], r["image"]) for r in records] == [("changed", first["image"])]
    old, new = records[0]["old"], records[0]["new"]
    assert old == first["truth"]["t0"] and not same_line(old, new)
    assert float(new.split()[1]) == pytest.approx(float(old.split()[1]) + 0.05, abs=1e-5)
    assert new.split()[2:] == [f"{float(v):.6f}" for v in old.split()[2:]]  # the other points as they were
    card = json.loads((pipeline.convert(recipe).parent / "card.json").read_text())
    assert card["corrections"]["changed"] == 1
    lines = Dataset(home("blobs-seg"), "segment").label_file("val", first["image"]).read_text().splitlines()
    assert any(same_line(line, new) for line in lines) and not any(same_line(line, old) for line in lines)


def test_class_labels_are_reviewed_as_choices(place) -> None:
    folder, server = place
    rng = np.random.default_rng(1)
    source = folder / "data" / "blobs-cls"
    for index, name in enumerate(("clear", "blob")):
        (source / name).mkdir(parents=True)
        for i in range(10):
            image, _ = _blob(rng, 64, 2 * index)
            cv2.imwrite(str(source / name / f"{name}_{i}.png"), image)
    recipe = _recipe(folder, "blobs-cls", "classify", "class_folders", ["clear", "blob"], "yolov8n-cls.yaml", {"by": "file", "val": 0.3})
    run, _ = pipeline.train_recipe(recipe)
    moved: dict[str, str] = {}

    def edit(result: list[dict]) -> None:
        region = result[0]
        assert region["type"] == "choices"
        moved["old"] = region["value"]["choices"][0]
        region["value"]["choices"] = ["blob" if moved["old"] == "clear" else "clear"]

    review, path = _annotate_and_edit(run, server, edit)
    project = server.api("GET", f"/api/projects/{review['project']}")
    assert "Choices" in project["label_config"] and "$model" in project["label_config"]
    first = review["tasks"][min(review["tasks"], key=int)]
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["action"], r["image"], r["old"]) for r in records] == [("changed", first["image"], moved["old"])]
    pipeline.convert(recipe)
    card = json.loads((home("blobs-cls") / "card.json").read_text())
    assert card["corrections"]["changed"] == 1
    val = Dataset(home("blobs-cls"), "classify").listing(("val",))
    assert val.loc[val["image"].map(lambda n: Path(n).stem) == first["image"], "class"].tolist() == [records[0]["new"]]

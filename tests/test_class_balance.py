"""Class balance for classifiers: the smaller classes' training images are repeated until every class has
as many as the largest, in Ultralytics' own classification trainer; validation is left as it is."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from yolo_tools import engine
from yolo_tools.recipe import load_recipe


def test_every_class_reaches_the_largest_and_each_image_is_repeated_evenly() -> None:
    classes = np.array([0] * 10 + [1] * 3 + [2] * 1 + [3] * 0 + [4] * 4)
    picked = engine.oversampled(classes, seed=0)
    counts = np.bincount(classes[picked], minlength=5)
    assert counts.tolist() == [10, 10, 10, 0, 10]
    for c in (0, 1, 2, 4):
        seen = np.bincount(picked[classes[picked] == c], minlength=len(classes))[classes == c]
        assert seen.max() - seen.min() <= 1, f"class {c}: images repeated unevenly {seen}"
    assert np.array_equal(np.sort(picked[classes[picked] == 0]), np.arange(10)), "the largest class is kept once"
    assert np.array_equal(picked, engine.oversampled(classes, seed=0)), "seeded: the same draw every time"


@pytest.mark.slow
def test_a_classifier_trains_on_the_balanced_set(tmp_path: Path, caplog) -> None:
    """A real one-epoch training through the recipe: the trainer logs the counts before and after (the CLI
    shows the workbench's log lines)."""
    import cv2

    from yolo_tools import pipeline

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for name, count in (("normal", 2), ("pneumonia", 6)):
        for i in range(count):
            folder = data / name
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{name}{i}_p{i}.png"), rng.integers(0, 255, (32, 32), np.uint8))
    recipe = tmp_path / "balanced.yaml"
    recipe.write_text(
        "name: balanced\ntask: classify\nclass_balance: oversample\n"
        f"data: {{source: {{kind: local, path: {data}}}, converter: class_folders, split: {{by: file, val: 0.25, seed: 0}}}}\n"
        "classes: [normal, pneumonia]\nmodel: yolov8n-cls.yaml\n"
        "train: {epochs: 1, imgsz: 32, batch: 4, workers: 0, device: cpu, plots: false}\n"
    )
    run_dir, _ = pipeline.train_recipe(recipe)
    said = re.search(r"class balance: training images per class oversampled from normal (\d+), pneumonia (\d+) "
                     r"to normal (\d+), pneumonia (\d+)", caplog.text)
    assert said, caplog.text[-2000:]
    normal, pneumonia, normal_after, pneumonia_after = map(int, said.groups())
    assert normal < pneumonia and normal_after == pneumonia_after == pneumonia
    assert load_recipe(run_dir / "recipe.yaml").class_balance == "oversample", "a resume trains the same way"

"""The embedded default: the whole chain on a synthetic set, with no data, key, GPU or network.

It runs the same code paths as a real recipe (convert, train, val, predict), so a fresh install can be
checked end to end in a few CPU minutes.
"""

from __future__ import annotations

import time
from typing import Any

from yolo_tools import pipeline
from yolo_tools.conversion import prepare_dataset
from yolo_tools.recipe import bundled_recipe, load_recipe

DEMO_RECIPE = bundled_recipe("demo")


def run(overrides: dict[str, Any] | None = None) -> dict[str, float]:
    started = time.perf_counter()
    run_dir, metrics = pipeline.train_recipe(DEMO_RECIPE, overrides, name=None)
    pipeline.validate(run_dir, {"batch": 16})
    val_images = prepare_dataset(load_recipe(DEMO_RECIPE), run_dir=run_dir).images("val")  # the run's own version
    pipeline.predict(run_dir, str(val_images), run_dir / "predict")
    print(f"demo finished in {time.perf_counter() - started:.0f} s; everything is in {run_dir}")
    return metrics

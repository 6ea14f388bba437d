"""A small synthetic detection set made on the fly, so the workbench runs end to end with no data at all.

Bright ellipses ("stones") on a smooth, noisy body-like background: easy enough that a model trained
from scratch for a few CPU minutes finds them, which proves the whole chain works.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from yolo_tools.convert.options import ConverterOptions, parse
from yolo_tools.convert.writer import Sample
from yolo_tools.recipe import Recipe


class Options(ConverterOptions):
    images: int = Field(64, ge=2, description="how many scenes (each its own patient)")
    size: int = Field(128, ge=32, description="scene width and height in pixels")


def _scene(seed: int, size: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    body = 90 * np.exp(-(((xx - 0.5) / 0.35) ** 2 + ((yy - 0.5) / 0.45) ** 2))
    image = body + rng.normal(0, 8, (size, size))
    lines = []
    for _ in range(rng.integers(1, 4)):
        rx, ry = rng.uniform(0.05, 0.1, 2)
        cx, cy = rng.uniform(0.15, 0.85, 2)
        inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
        image[inside] = rng.uniform(190, 240)
        lines.append(f"0 {cx:.6f} {cy:.6f} {2 * rx:.6f} {2 * ry:.6f}")
    return np.clip(image, 0, 255).astype(np.uint8), lines


def samples(src: Path | None, recipe: Recipe) -> list[Sample]:
    """`options.images` scenes of `options.size` pixels; each scene is its own 'patient'."""
    options = parse(Options, recipe)
    count, size = options.images, options.size
    seed = int(recipe.data.split.seed)
    return [
        Sample(
            name=f"synthetic_{i:04d}",
            image=lambda i=i: _scene(seed * 100_003 + i, size)[0],
            labels=lambda i=i: _scene(seed * 100_003 + i, size)[1],
            group=f"synthetic_{i:04d}",
            source=f"synthetic scene {i}",
        )
        for i in range(count)
    ]

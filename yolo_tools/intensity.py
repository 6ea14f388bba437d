"""Map 16-bit, float or Hounsfield intensities to the 8-bit channels YOLO reads, as a radiologist would.

Ultralytics reads images as 8-bit and silently truncates 16-bit PNGs; a CT stone at 1,000 HU and fat at
-100 HU then become the same grey. A recipe instead says how values become grey levels: a window
(centre/width, as on a PACS viewer), robust percentiles (MRI, which has no absolute scale), min-max, or
several windows stacked as the three channels so the network sees bone, soft tissue and lung at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Spec):
    """A display window in the image's own units (HU for CT): values outside it saturate."""

    mode: Literal["window"] = "window"
    center: float = Field(description="the window's centre, in the image's units")
    width: float = Field(gt=0, description="the window's width, in the image's units")


class Windows(_Spec):
    """Up to three windows, one per channel (e.g. soft tissue, bone, lung for CT)."""

    mode: Literal["windows"] = "windows"
    windows: list[tuple[float, float]] = Field(min_length=1, max_length=3, description="[center, width] pairs")


class Percentile(_Spec):
    """Scale between two percentiles of the image itself: robust to MRI's arbitrary scale and bright outliers."""

    mode: Literal["percentile"] = "percentile"
    low: float = Field(0.5, ge=0, lt=100, description="the percentile that becomes black")
    high: float = Field(99.5, gt=0, le=100, description="the percentile that becomes white")


class MinMax(_Spec):
    """Scale between the image's own lowest and highest value."""

    mode: Literal["minmax"] = "minmax"


Intensity = Annotated[Window | Windows | Percentile | MinMax, Field(discriminator="mode")]


def window(pixels: np.ndarray, center: float, width: float) -> np.ndarray:
    low = center - width / 2
    if pixels.dtype == np.uint8:
        # The 256 values an 8-bit image can hold, mapped once by the same arithmetic: OpenCV's lookup gives
        # the same bytes as mapping each pixel, a few times faster (converters map every image they write).
        import cv2  # on first use: recipe.py reads this module's rules, and reading a recipe must stay quick

        return cv2.LUT(pixels, _scaled(np.arange(256, dtype=np.float32), low, width))
    return _scaled(pixels.astype(np.float32), low, width)


def _scaled(values: np.ndarray, low: float, width: float) -> np.ndarray:
    scaled = np.subtract(values, low)  # float32, or float64 when `low` is a NumPy float64 (percentiles)
    scaled *= 255.0 / width
    np.clip(scaled, 0, 255, out=scaled)
    return np.round(scaled, out=scaled).astype(np.uint8)


def percentile(pixels: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    lo, hi = np.percentile(pixels, (low, high))
    return window(pixels, (lo + hi) / 2, max(float(hi - lo), 1e-6))


def minmax(pixels: np.ndarray) -> np.ndarray:
    lo, hi = float(pixels.min()), float(pixels.max())
    return window(pixels, (lo + hi) / 2, max(hi - lo, 1e-6))


def windows(pixels: np.ndarray, pairs: Sequence[tuple[float, float]]) -> np.ndarray:
    """H x W x 3: each window one channel; fewer than three windows repeat the last."""
    channels = [window(pixels, c, w) for c, w in pairs]
    channels += [channels[-1]] * (3 - len(channels))
    return np.stack(channels, axis=-1)


def to_uint8(pixels: np.ndarray, spec: Window | Windows | Percentile | MinMax | None) -> np.ndarray:
    """Apply a recipe's intensity spec; without one, only data that already is 8-bit passes unchanged."""
    if spec is None:
        if pixels.dtype == np.uint8:
            return pixels
        return minmax(pixels)
    if isinstance(spec, Window):
        return window(pixels, spec.center, spec.width)
    if isinstance(spec, Windows):
        return windows(pixels, spec.windows)
    if isinstance(spec, Percentile):
        return percentile(pixels, spec.low, spec.high)
    return minmax(pixels)

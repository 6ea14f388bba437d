"""2.5D input: a slice and its neighbours in the same volume as the three channels YOLO reads.

YOLO takes three channels; for a greyscale scan all three are the same slice unless the recipe asks for
context (`preprocess.context: 1`): then red is the slice `context_stride` below, green the slice itself
and blue the slice above, so the network sees a little of the third dimension (how the best UW-Madison
GI tract solutions worked). At the ends of a volume, or where a neighbour is not available, the slice
itself stands in for it.

Examples:
    >>> channel_indices(0, lambda i: 0 <= i < 40, context=1, stride=2)
    [0, 0, 2]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from yolo_tools.intensity import to_uint8
from yolo_tools.recipe import Preprocess


def channel_indices(index: int, available: Callable[[int], bool], context: int, stride: int) -> list[int]:
    """Slice numbers for the channels: [index] without context, else [below, index, above]."""
    if not context:
        return [index]
    below, above = index - stride * context, index + stride * context
    return [below if available(below) else index, index, above if available(above) else index]


def to_channels(slices: list[np.ndarray], preprocess: Preprocess) -> np.ndarray:
    """One slice (HxW) or a stack of three (HxWx3) as uint8, mapped by the recipe's intensity spec.

    The stack is mapped as a whole (percentiles over all three slices), so the channels stay comparable.
    """
    pixels = slices[0] if len(slices) == 1 else np.stack(slices, axis=-1)
    return to_uint8(pixels, preprocess.intensity)

"""3D volumes with label masks into 2D YOLO-seg slices: what the NIfTI and DICOM converters share.

A converter finds volumes and says how to load one (image channels in the source's voxel order, and one
boolean mask per recipe class); this module slices along the volume's `Geometry.slice_axis`, maps
intensities to 8-bit once per volume (so slices of a volume stay comparable), stacks neighbouring
slices (`preprocess.context`) or several channels (modalities) as the three channels YOLO reads, and
traces each class mask into polygons. Every slice is kept, empty ones too, so predictions can be
restacked into a volume of the source's shape; `slice_of` and the volume's geometry go to `slices.csv`
and `volumes.json`. Predicting on a volume maps it through `slice_images` too, so a model always sees
what it was trained on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from yolo_tools.codecs.polygons import traced_lines
from yolo_tools.convert.context import channel_indices
from yolo_tools.convert.writer import Sample, SkipSample
from yolo_tools.imaging.geometry import Geometry, slices_first
from yolo_tools.intensity import Intensity, Percentile, Window, to_uint8
from yolo_tools.recipe import Preprocess


@dataclass(frozen=True)
class Loaded:
    channels: list[np.ndarray]  # one float array per channel (modality), each of the geometry's shape
    masks: np.ndarray | None  # (classes, *shape) bool, or None without labels
    window: tuple[float, float] | None = None  # the source's own display window (DICOM), used without a recipe one


def slice_images(loaded: Loaded, geometry: Geometry, preprocess: Preprocess) -> np.ndarray:
    """Every slice as YOLO input: (slices, H, W) uint8, or (slices, H, W, 3) with context or several channels."""
    spec: Intensity = preprocess.intensity or (Window(center=loaded.window[0], width=loaded.window[1]) if loaded.window else Percentile())
    mapped = [slices_first(to_uint8(channel, spec), geometry) for channel in loaded.channels]
    if len(mapped) > 1:
        mapped += [mapped[-1]] * (3 - len(mapped))
        return np.stack(mapped[:3], axis=-1)
    volume = mapped[0]
    if not preprocess.context:
        return volume
    count = len(volume)
    order = [channel_indices(i, lambda j: 0 <= j < count, preprocess.context, preprocess.context_stride) for i in range(count)]
    return np.stack([volume[np.asarray(order)[:, c]] for c in range(3)], axis=-1)


def slice_labels(masks: np.ndarray, index: int, geometry: Geometry, min_area: int) -> list[str]:
    planes = ((class_id, slices_first(mask, geometry)[index].astype(np.uint8)) for class_id, mask in enumerate(masks))
    return traced_lines(planes, min_area)


class _LastVolume(threading.local):
    """The writer hands a volume's slices, in order, to one of its threads: keeping each thread's last volume
    loaded (and mapped) reads each file once, however many volumes are being written at once.

    A volume that cannot be loaded is remembered too, so its other slices are skipped without reading again.
    """

    def __init__(self) -> None:
        self.key: object = None
        self.value: tuple[Loaded, np.ndarray] | SkipSample | None = None

    def get(self, key: object, load: Callable[[], Loaded], geometry: Geometry, preprocess: Preprocess):
        if self.key != key:
            self.key, self.value = None, None
            try:
                loaded = load()
                value: tuple[Loaded, np.ndarray] | SkipSample = (loaded, slice_images(loaded, geometry, preprocess))
            except SkipSample as reason:
                value = reason
            self.key, self.value = key, value
        if isinstance(self.value, SkipSample):
            raise SkipSample(str(self.value))
        return self.value


def volume_samples(
    volume: str,
    group: str,
    source: str,
    geometry: Geometry,
    load: Callable[[], Loaded],
    preprocess: Preprocess,
    min_area: int,
    cache: _LastVolume,
) -> list[Sample]:
    """One Sample per slice of one volume, loading it once when its first slice is written."""

    def sample(index: int) -> Sample:
        def image() -> np.ndarray:
            return cache.get(volume, load, geometry, preprocess)[1][index]

        def labels() -> list[str]:
            loaded = cache.get(volume, load, geometry, preprocess)[0]
            return [] if loaded.masks is None else slice_labels(loaded.masks, index, geometry, min_area)

        def masks() -> np.ndarray:  # the label volume's own slice: what evaluation scores against
            loaded = cache.get(volume, load, geometry, preprocess)[0]
            return np.stack([slices_first(mask, geometry)[index] for mask in loaded.masks])

        return Sample(
            name=f"{volume}_s{index:03d}",
            image=image,
            labels=labels,
            group=group,
            source=f"{source} slice {index}",
            slice_of=(volume, index),
            masks=masks,
            spacing=geometry.in_plane_spacing,  # so evaluation measures HD95 and surface Dice in mm
        )

    return [sample(index) for index in range(geometry.slice_count)]


def new_cache() -> _LastVolume:
    return _LastVolume()


def broken(volume: str, group: str, source: str, reason: str) -> Sample:
    """A placeholder the writer skips, so a bad volume is named on the card instead of stopping the rest."""

    def fail():
        raise SkipSample(reason)

    return Sample(name=volume, image=fail, labels=fail, group=group, source=source)

"""Read 3D volumes published as HDF5 files (an image array and a label map) into 2D YOLO-seg slices.

Used for two published sets, which differ only in options:

- ACDC cine MRI: `volumes/patientNNN_frameNN.h5`, `image` float32 (slices, H, W), `label` uint8 with
  0 background, 1 right ventricle, 2 myocardium, 3 left ventricle (`slice_axis: 0`, the default);
- LA 2018 LGE-MRI: `<CASE>/mri_norm2.h5`, `image` float32 (H, W, slices), `label` 0/1 (`slice_axis: -1`).

Each slice along `slice_axis` becomes one image; each class is traced on its own mask
(`polygons.mask_to_polygons`), one instance per region, with holes kept (the myocardium is a ring).
Intensities become 8-bit through the recipe's `preprocess.intensity`, over the whole volume by default
(`intensity_scope: volume`, so slices of a volume stay comparable) or per slice; `preprocess.context: 1`
stacks the neighbouring slices as the other two channels. Every slice, including the ones with nothing
labelled, is kept by default, and `slices.csv` in the converted dataset says which volume and slice each
image is, so per-patient 3D Dice can stack slice predictions back into volumes.

A volume's name is the file's stem, or its folder's name when every file has the same stem (LA's
`mri_norm2.h5`). A file that cannot be read, lacks a key, has label and image of different shapes, holds
label values that are not classes, or has image values that are not finite (NaN or inf voxels, which
would turn the 8-bit mapping of the whole volume black) is skipped, named with the reason.

Options: `files` (glob under the source, default `**/*.h5`), `image_key` (`image`), `label_key`
(`label`), `slice_axis` (0), `label_values` (the label value of each recipe class, in order; default
1, 2, ...), `min_area` (pixels, default 4), `empty` (`keep` or `drop` slices with no label, default
`keep`), `intensity_scope` (`volume` or `slice`, default `volume`).

Examples:
    >>> from yolo_tools.recipe import load_recipe
    >>> found = samples(Path("../shared/data/cardiac-mri-acdc"), load_recipe("recipes/cardiac.yaml"))
    >>> found[0].name, found[0].slice_of
    ('patient002_frame01_s000', ('patient002_frame01', 0))
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from yolo_tools.codecs.polygons import traced_lines
from yolo_tools.convert.context import channel_indices, to_channels
from yolo_tools.convert.options import ConverterOptions, parse
from yolo_tools.convert.writer import Sample, SampleList, SkipSample
from yolo_tools.errors import UserError
from yolo_tools.intensity import to_uint8
from yolo_tools.recipe import Recipe

class Options(ConverterOptions):
    files: str = Field("**/*.h5", description="glob under the source")
    image_key: str = Field("image", description="the HDF5 dataset holding the image volume")
    label_key: str = Field("label", description="the HDF5 dataset holding the label map")
    slice_axis: int = Field(0, ge=-3, le=2, description="the axis that numbers the slices")
    label_values: list[int] | None = Field(None, description="the label value of each recipe class, in order")
    min_area: int = Field(4, ge=0, description="regions under this many pixels are dropped as specks")
    empty: Literal["keep", "drop"] = Field("keep", description="slices with no label: keep (3D metrics need every slice) or drop")
    intensity_scope: Literal["volume", "slice"] = Field(
        "volume", description="preprocess.intensity over the whole volume (slices stay comparable) or per slice"
    )


def _options(recipe: Recipe) -> Options:
    options = parse(Options, recipe)
    values = options.label_values or list(range(1, len(recipe.classes) + 1))
    if len(values) != len(recipe.classes) or len(set(values)) != len(values):
        raise UserError(
            f"{recipe.path}: data.options.label_values {values}: give one distinct label value per class {recipe.classes}"
        )
    return options.model_copy(update={"label_values": values})


def _volume_names(files: list[Path], src: Path) -> list[str]:
    stems = [f.stem for f in files]
    if len(set(stems)) == len(stems):
        return stems
    folders = [f.parent.name for f in files]
    if len(set(folders)) == len(folders):
        return folders
    return ["_".join(f.relative_to(src).with_suffix("").parts) for f in files]


def _header(path: Path, options: Options) -> int:
    """Number of slices, from the file's metadata only (nothing is loaded); problems raise SkipSample."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            shapes = {}
            for key in (options.image_key, options.label_key):
                if key not in handle:
                    raise SkipSample(f"no dataset '{key}' (it has {sorted(handle.keys())})")
                shapes[key] = handle[key].shape
    except OSError as exc:
        raise SkipSample(f"cannot be read as HDF5: {exc}") from None
    image_shape, label_shape = shapes.values()
    if len(image_shape) != 3:
        raise SkipSample(f"'{options.image_key}' has shape {image_shape}; a volume has 3 axes")
    if image_shape != label_shape:
        raise SkipSample(f"image {image_shape} and label {label_shape} differ in shape")
    return image_shape[options.slice_axis]


class _Last(threading.local):
    """The writer hands a volume's slices, in order, to one of its threads, so keeping each thread's last
    volume read (and its 8-bit version) means each file is read once. Keys include the file's modification
    time, so a file replaced in place is read again."""

    def __init__(self) -> None:
        self.raw: dict[tuple, tuple[np.ndarray, np.ndarray] | str] = {}  # or why the file cannot be used
        self.mapped: dict[tuple, np.ndarray] = {}


_LAST = _Last()


def _load(path: Path, image_key: str, label_key: str, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Image and label with the slice axis first."""
    import h5py

    key = (path, path.stat().st_mtime_ns, image_key, label_key, axis)
    raw = _LAST.raw
    if key not in raw:
        raw.clear()
        try:
            with h5py.File(path, "r") as handle:
                image = np.moveaxis(np.asarray(handle[image_key]), axis, 0)
                label = np.moveaxis(np.asarray(handle[label_key]), axis, 0)
            bad = int(image.size - np.count_nonzero(np.isfinite(image))) if image.dtype.kind == "f" else 0
            raw[key] = (
                f"'{image_key}' holds {bad} NaN or infinite voxels, which leave its 8-bit mapping meaningless; "
                "fix the volume or remove the file"
                if bad
                else (image, label)
            )
        except (OSError, KeyError) as exc:
            raw[key] = f"cannot be read: {exc}"
    found = raw[key]
    if isinstance(found, str):
        raise SkipSample(found)
    return found


def _volume_uint8(path: Path, image_key: str, label_key: str, axis: int, spec) -> np.ndarray:
    """The whole volume mapped to 8-bit at once (one set of percentiles per volume)."""
    spec_key = spec.model_dump_json() if spec is not None else None
    key = (path, path.stat().st_mtime_ns, image_key, label_key, axis, spec_key)
    mapped = _LAST.mapped
    if key not in mapped:
        image, _ = _load(path, image_key, label_key, axis)
        mapped.clear()
        mapped[key] = to_uint8(image, spec)
    return mapped[key]


def samples(src: Path, recipe: Recipe) -> SampleList:
    """One Sample per slice of every volume under `src`; labels are per-class polygons of the label map."""
    options = _options(recipe)
    files = sorted(p for p in src.glob(options.files) if p.is_file())
    if not files:
        raise UserError(f"{src}: no files match '{options.files}' (data.options.files)")
    values = options.label_values
    axis = options.slice_axis
    keys = (options.image_key, options.label_key, axis)
    preprocess = recipe.preprocess
    per_volume = options.intensity_scope == "volume"

    @lru_cache(maxsize=8)  # the writer's threads each take a volume's slices in order
    def stray_values(path: Path) -> dict[int, list[int]]:
        """Label values that are no class, by slice, found once per volume."""
        _, label = _load(path, *keys)
        small = label.dtype.kind == "u" and label.dtype.itemsize <= 2  # then a count per value is one cheap pass
        top = int(label.max()) if small else None
        if top is not None and top <= max(values) and set(range(top + 1)) <= {0, *values}:
            return {}  # every value up to the largest present is 0 or a class (one pass, no count): the usual volume
        present = np.flatnonzero(np.bincount(label.ravel())) if small else np.unique(label)
        if set(present.tolist()) <= {0, *values}:  # the usual volume: no per-slice table to build
            return {}
        stray = ~np.isin(label, [0, *values])
        return {int(i): np.unique(label[i][stray[i]]).tolist() for i in np.flatnonzero(stray.any(axis=(1, 2)))}

    def loader(path: Path, index: int, count: int) -> tuple[Callable, Callable, Callable]:
        def image() -> np.ndarray:
            numbers = channel_indices(index, lambda i: 0 <= i < count, preprocess.context, preprocess.context_stride)
            if per_volume:
                volume = _volume_uint8(path, *keys, preprocess.intensity)
                return volume[index] if len(numbers) == 1 else np.stack([volume[i] for i in numbers], axis=-1)
            volume, _ = _load(path, *keys)
            return to_channels([volume[i] for i in numbers], preprocess)

        def labels() -> list[str]:
            _, label = _load(path, *keys)
            plane = label[index]
            stray = stray_values(path).get(index)
            if stray:
                raise SkipSample(f"label values {stray} are not classes (label_values {values})")
            return traced_lines(((class_id, plane == value) for class_id, value in enumerate(values)), options.min_area)

        def masks() -> np.ndarray:  # the label map as published, one mask per class: what evaluation scores against
            _, label = _load(path, *keys)
            return label[index][None] == np.asarray(values)[:, None, None]

        return image, labels, masks

    found = SampleList()
    dropped = 0
    for path, volume in zip(files, _volume_names(files, src)):
        try:
            count = _header(path, options)
        except SkipSample as reason:
            found.append(_broken(volume, path, str(reason)))
            continue
        if options.empty == "drop":
            try:
                _, label = _load(path, *keys)
            except SkipSample as reason:
                found.append(_broken(volume, path, str(reason)))
                continue
            labelled = np.isin(label, values).reshape(count, -1).any(axis=1)
        for index in range(count):
            if options.empty == "drop" and not labelled[index]:
                dropped += 1
                continue
            image, labels, masks = loader(path, index, count)
            found.append(
                Sample(
                    name=f"{volume}_s{index:03d}",
                    image=image,
                    labels=labels,
                    source=f"{path} slice {index}",
                    slice_of=(volume, index),
                    masks=masks,
                )
            )
    found.left_out["slices with no label (options.empty: drop)"] = dropped
    found.left_out = {k: v for k, v in found.left_out.items() if v}
    return found


def _broken(volume: str, path: Path, reason: str) -> Sample:
    def fail():
        raise SkipSample(reason)

    return Sample(name=volume, image=fail, labels=fail, source=str(path))

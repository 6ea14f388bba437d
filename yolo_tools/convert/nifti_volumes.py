"""NIfTI volumes in the layouts medical segmentation uses (Decathlon, nnU-Net v2, plain folders) into YOLO-seg slices.

Three layouts, found from `dataset.json` (or told with `options.layout`):

- Medical Segmentation Decathlon: `dataset.json` with `labels` ({"0": "background", "1": "Anterior"}),
  `modality` and `training` (image/label pairs, `./imagesTr/<case>.nii.gz`); several modalities are a
  4th axis of one image file (BraTS);
- nnU-Net v2 raw: `dataset.json` with `labels` ({"background": 0, "Anterior": 1}, a list of values for a
  region) and `channel_names`; `imagesTr/<case>_0000.nii.gz` (one file per channel), `labelsTr/<case>.nii.gz`;
- plain folders: `images/` and `labels/` (options) holding volumes matched by name (a `_0000` channel
  suffix is ignored); classes from the label values found.

Each case is one volume and one patient (the split keeps a case on one side). It is sliced along
`slice_axis`, by default the axis with the largest spacing (the acquisition plane; the last axis when
the volume is isotropic, e.g. the hippocampus). Label values become classes: a recipe class named as a
label takes that label's values; `label_values` (one entry per class, an int or a list to merge, as
the Decathlon's regions are) overrides. `channels` picks which channels (modalities) fill YOLO's three
channels, mapped each by the recipe's intensity rule (without one, 0.5-99.5 percentiles of the volume:
NIfTI carries no display window). Cases whose image and label differ in shape or
grid, whose header gives no spacing, whose voxels hold NaN or infinite values, or whose label holds
values no class takes, are skipped and named on the card; a listed case whose image or label file is
missing is left out and named too. Volume geometry (shape, spacing, affine in RAS+ mm, slice axis) goes
into `volumes.json`.

Examples:
    >>> from yolo_tools.recipe import load_recipe
    >>> found = samples(Path("../shared/data/hippocampus-mri-msd"), load_recipe("recipes/hippocampus.yaml"))
    >>> found[0].slice_of, found.volumes["hippocampus_001"]["spacing_mm"]
    (('hippocampus_001', 0), [1.0, 1.0, 1.0])
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, ValidationError

from yolo_tools.convert.options import ConverterOptions
from yolo_tools.convert.volume_slices import Loaded, broken, new_cache, volume_samples
from yolo_tools.convert.writer import SampleList, SkipSample
from yolo_tools.errors import UserError
from yolo_tools.imaging import nifti
from yolo_tools.imaging.geometry import Geometry
from yolo_tools.recipe import Recipe

SUFFIXES = (".nii.gz", ".nii")
CHANNEL_SUFFIX = re.compile(r"_(\d{4})$")


class Options(ConverterOptions):
    """`data.options` of a `converter: nifti` recipe."""

    layout: Literal["auto", "decathlon", "nnunet", "folders"] = Field(
        "auto", description="'auto': nnunet if dataset.json has channel_names, decathlon if it has training, else folders"
    )
    images: str = Field("imagesTr", description="image folder under the source (folders layout: default 'images' if present)")
    labels: str = Field("labelsTr", description="label folder under the source (folders layout: default 'labels' if present)")
    channels: list[int] = Field([0], min_length=1, max_length=3, description="channels (modalities) as YOLO's channels")
    slice_axis: Literal["auto", 0, 1, 2] = Field("auto", description="array axis to slice; 'auto' = largest spacing")
    label_values: list[int | list[int]] | None = Field(None, description="per class, its label value(s); lists merge")
    min_area: int = Field(4, ge=0, description="regions smaller than this many pixels are dropped as specks")


def options_of(recipe: Recipe) -> Options:
    try:
        options = Options(**recipe.data.options)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"{recipe.path or 'convert nifti'}: data.options: {problems}") from None
    if len(options.channels) > 1 and recipe.preprocess.context:
        raise UserError(
            f"{recipe.path}: data.options.channels has {len(options.channels)} channels and preprocess.context "
            "stacks neighbouring slices; both fill YOLO's 3 channels, choose one"
        )
    return options


@dataclass(frozen=True)
class Case:
    name: str
    images: list[Path]  # one file per channel, or one (possibly 4D) file
    label: Path | None


def _dataset_json(src: Path) -> dict | None:
    path = src / "dataset.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); fix or remove it") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: must be a JSON object with 'labels' and 'training' or 'channel_names'")
    return data


def _layout(options: Options, meta: dict | None, src: Path) -> str:
    if options.layout != "auto":
        if options.layout != "folders" and meta is None:
            raise UserError(f"{src / 'dataset.json'}: missing; layout '{options.layout}' needs it")
        return options.layout
    if meta is None:
        return "folders"
    return "nnunet" if "channel_names" in meta else "decathlon"


def _require(meta: dict, keys: tuple[str, ...], src: Path, layout: str) -> None:
    missing = [key for key in keys if key not in meta]
    if missing:
        raise UserError(
            f"{src / 'dataset.json'}: missing key(s) {missing}; the {layout} layout needs {', '.join(keys)} "
            "(see the Medical Segmentation Decathlon / nnU-Net v2 dataset format)"
        )


def dataset_labels(meta: dict, layout: str, src: Path) -> dict[str, list[int]]:
    """Label name -> its values, background left out, in value order."""
    raw = meta["labels"]
    if not isinstance(raw, dict):
        raise UserError(f"{src / 'dataset.json'}: 'labels' must be an object")
    pairs: list[tuple[str, list[int]]] = []
    try:
        for key, value in raw.items():
            if layout == "nnunet":  # {"name": value or [values]}
                values = [int(v) for v in value] if isinstance(value, list) else [int(value)]
                pairs.append((str(key), values))
            else:  # Decathlon: {"value": "name"}
                pairs.append((str(value), [int(key)]))
    except (TypeError, ValueError):
        raise UserError(
            f"{src / 'dataset.json'}: 'labels' {raw} do not fit the {layout} layout "
            + ("({'name': value})" if layout == "nnunet" else "({'value': 'name'})")
        ) from None
    pairs = [(name, values) for name, values in pairs if values != [0]]
    return dict(sorted(pairs, key=lambda item: min(item[1])))


def volume_stem(path: Path) -> str:
    name = path.name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _volumes_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(SUFFIXES)) if folder.is_dir() else []


def _missing(case: str, *files: Path) -> str:
    return f"{case} ({', '.join(f.name for f in files if not f.is_file())})"


def find_cases(src: Path, options: Options) -> tuple[list[Case], str, dict | None, list[str]]:
    """The labelled cases, the layout, dataset.json, and each case left out for a missing file ("case (file)")."""
    meta = _dataset_json(src)
    layout = _layout(options, meta, src)
    if layout == "decathlon":
        _require(meta, ("labels", "training"), src, layout)
        cases, missing = [], []
        for pair in meta["training"]:
            if not (isinstance(pair, dict) and "image" in pair and "label" in pair):
                raise UserError(f"{src / 'dataset.json'}: each 'training' entry needs 'image' and 'label' paths, not {pair}")
            image, label = src / pair["image"], src / pair["label"]
            if not image.is_file() or not label.is_file():
                missing.append(_missing(volume_stem(image), image, label))
                continue
            cases.append(Case(volume_stem(image), [image], label))
        return cases, layout, meta, missing
    if layout == "nnunet":
        _require(meta, ("labels", "channel_names"), src, layout)
        ending = str(meta.get("file_ending", ".nii.gz"))
        image_dir, label_dir = src / options.images, src / options.labels
        if not label_dir.is_dir():
            raise UserError(f"{label_dir}: no such folder; nnU-Net v2 keeps labels in labelsTr/ (data.options.labels)")
        cases, missing = [], []
        for label in sorted(label_dir.glob(f"*{ending}")):
            case = label.name[: -len(ending)]
            files = [image_dir / f"{case}_{c:04d}{ending}" for c in range(len(meta["channel_names"]))]
            if not all(f.is_file() for f in files):
                missing.append(_missing(case, *files))
                continue
            cases.append(Case(case, files, label))
        return cases, layout, meta, missing
    image_dir = src / (options.images if (src / options.images).is_dir() or options.images != "imagesTr" else "images")
    label_dir = src / (options.labels if (src / options.labels).is_dir() or options.labels != "labelsTr" else "labels")
    if not image_dir.is_dir() or not label_dir.is_dir():
        raise UserError(
            f"{src}: no dataset.json and no '{image_dir.name}/' and '{label_dir.name}/' folders of NIfTI volumes; "
            "give a Decathlon/nnU-Net folder or set data.options.images and data.options.labels"
        )
    labels = {volume_stem(p): p for p in _volumes_in(label_dir)}
    by_case: dict[str, list[Path]] = {}
    for image in _volumes_in(image_dir):
        by_case.setdefault(CHANNEL_SUFFIX.sub("", volume_stem(image)), []).append(image)
    cases = [Case(name, files, labels[name]) for name, files in sorted(by_case.items()) if name in labels]
    missing = [f"{name} (no label in {label_dir.name}/)" for name in sorted(by_case) if name not in labels]
    missing += [f"{name} (a label with no image in {image_dir.name}/)" for name in sorted(labels) if name not in by_case]
    return cases, "folders", meta, missing


def classes(src: Path, options: dict) -> list[str]:
    """Class names for `convert nifti` without a recipe: dataset.json's labels, else the label values found."""
    parsed = Options(**{k: v for k, v in options.items() if k in Options.model_fields})
    cases, layout, meta, _ = find_cases(src, parsed)
    if meta is not None and layout != "folders":
        names = list(dataset_labels(meta, layout, src))
        if names:
            return names
    values: set[int] = set()
    for case in cases:
        values |= set(np.unique(nifti.read_array(case.label)).astype(int).tolist())
    values.discard(0)
    if not values:
        raise UserError(f"{src}: no label volume holds a non-zero value; nothing to segment")
    return [f"label_{v}" for v in sorted(values)]


def class_values(recipe: Recipe, options: Options, meta: dict | None, layout: str, src: Path) -> list[list[int]]:
    """Per recipe class, the label values it takes (several when regions are merged)."""
    where = f"{recipe.path or src}: data.options.label_values"
    if options.label_values is not None:
        values = [v if isinstance(v, list) else [v] for v in options.label_values]
        if len(values) != len(recipe.classes):
            raise UserError(f"{where} has {len(values)} entries for {len(recipe.classes)} classes {recipe.classes}")
        return values
    if meta is not None and layout != "folders":
        known = {name.lower(): values for name, values in dataset_labels(meta, layout, src).items()}
        if all(name.lower() in known for name in recipe.classes):
            return [known[name.lower()] for name in recipe.classes]
        unknown = [name for name in recipe.classes if name.lower() not in known]
        raise UserError(
            f"{recipe.path or src}: classes {unknown} are not labels of {src / 'dataset.json'} "
            f"({', '.join(known) or 'none'}); rename them or give data.options.label_values"
        )
    return [[int(name.rsplit("_", 1)[-1])] if re.fullmatch(r"label_\d+", name) else [i + 1] for i, name in enumerate(recipe.classes)]


def _grid(case: Case, options: Options) -> Geometry:
    """Geometry from the headers; image channels and label must share one grid."""
    shape, affine = nifti.header(case.images[0])  # refuses a header that gives no spacing
    for other in [*case.images[1:], case.label]:
        other_shape, other_affine = nifti.header(other)
        if other_shape[:3] != shape[:3]:
            raise SkipSample(f"{other.name} has shape {other_shape[:3]}, {case.images[0].name} {shape[:3]}; they must match")
        if not np.allclose(other_affine, affine, atol=1e-3):
            raise SkipSample(f"{other.name} and {case.images[0].name} lie on different grids (affines differ); resample the label")
    channels = len(case.images) if len(case.images) > 1 else (shape[3] if len(shape) == 4 else 1)
    if len(shape) not in (3, 4) or max(options.channels) >= channels:
        raise SkipSample(f"shape {shape}: has {channels} channel(s), data.options.channels asks for {options.channels}")
    axis = None if options.slice_axis == "auto" else int(options.slice_axis)
    return Geometry.from_affine(affine, shape[:3], axis)


def load_case(case: Case, options: Options, values: list[list[int]] | None) -> Loaded:
    """The case's chosen channels and, with `values`, one mask per class; unreadable voxels skip the case."""
    try:
        return _load_case(case, options, values)
    except UserError as error:
        raise SkipSample(str(error)) from None


def _load_case(case: Case, options: Options, values: list[list[int]] | None) -> Loaded:
    if len(case.images) > 1:
        channels = [nifti.read_array(case.images[c]) for c in options.channels]
    else:
        array = nifti.read_array(case.images[0])
        channels = [array[..., c] for c in options.channels] if array.ndim == 4 else [array]
    masks = None
    if values is not None and case.label is not None:
        label = np.rint(nifti.read_array(case.label)).astype(np.int32)
        stray = np.setdiff1d(np.unique(label), [0, *[v for group in values for v in group]])
        if stray.size:
            raise SkipSample(f"{case.label.name}: label values {stray.tolist()} are not classes (label_values {values})")
        masks = np.stack([np.isin(label, group) for group in values])
    return Loaded(channels=channels, masks=masks)


def samples(src: Path, recipe: Recipe) -> SampleList:
    """One Sample per slice of every labelled case; geometry per volume in `found.volumes`."""
    options = options_of(recipe)
    cases, layout, meta, missing = find_cases(src, options)
    if not cases:
        raise UserError(f"{src}: no labelled NIfTI cases found ({layout} layout); check the folder and data.options")
    values = class_values(recipe, options, meta, layout, src)
    shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
    found = SampleList(left_out={f"cases without their image or label file: {shown}": len(missing)})
    cache = new_cache()
    problems = []
    for case in cases:
        try:
            geometry = _grid(case, options)
        except (SkipSample, UserError) as reason:
            problems.append(f"{case.images[0]}: {reason}" if isinstance(reason, SkipSample) else str(reason))
            found.append(broken(case.name, case.name, str(case.images[0]), str(reason)))
            continue
        found.volumes[case.name] = {**geometry.to_json(), "source": str(case.images[0]), "label": str(case.label)}
        found += volume_samples(
            case.name,
            case.name,
            str(case.images[0]),
            geometry,
            lambda case=case: load_case(case, options, values),
            recipe.preprocess,
            options.min_area,
            cache,
        )
    if len(problems) == len(cases):
        raise UserError(f"none of the {len(cases)} cases is usable; first: {problems[0]}")
    return found

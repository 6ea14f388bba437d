"""DICOM series with their segmentations (DICOM SEG, or an aligned NIfTI label volume) into YOLO-seg slices.

Every series under the source is found by `imaging.dicom_series` (any folder structure, grouped by
SeriesInstanceUID and split where one UID holds several series, ordered by ImagePositionPatient along
the slice normal, multi-frame files as volumes), put into modality units (Hounsfield for CT) and sliced
like a NIfTI volume (`volume_slices`): by default into the files' own images, the plane the scanner
acquired or reconstructed, whatever the spacings (a thin-slice CT's slices are closer than its pixels;
the largest spacing would cut it across). Labels come from:

- DICOM SEG objects referencing the series (highdicom): each segment becomes the recipe class of the
  same name (`segments` maps other segment labels to classes, several to one to merge); segments may
  overlap, as YOLO-seg instances may;
- a NIfTI label volume per series in `label_folder` named after the series' folder or its
  SeriesInstanceUID (`.nii.gz`/`.nii`), brought to the series' voxel order and checked to lie on its grid;
  label values become classes as in the NIfTI converter (`label_values`).

A series with neither is left out (counted on the card): unlabelled is not the same as empty. A series
whose slices are not one volume (a missing slice, different images at one position, NaN voxels) is
skipped and named on the card with the reason, the others converted; a slice stored twice with identical
pixels is kept once and counted as left out, by file. The split keeps each PatientID on one side. Without a recipe intensity rule the series' own window
(WindowCenter/Width of its first file) maps it to 8-bit, else 0.5-99.5 percentiles.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, ValidationError

from yolo_tools.convert.options import ConverterOptions
from yolo_tools.convert.volume_slices import Loaded, broken, new_cache, volume_samples
from yolo_tools.convert.writer import SampleList, SkipSample
from yolo_tools.errors import UserError
from yolo_tools.imaging import dicom, dicom_series, nifti
from yolo_tools.imaging.dicom_series import Found, Series
from yolo_tools.imaging.geometry import Geometry
from yolo_tools.recipe import Recipe

LOG = logging.getLogger(__name__)

class Options(ConverterOptions):
    """`data.options` of a `converter: dicom` recipe."""

    labels: Literal["auto", "seg", "nifti"] = Field("auto", description="where labels come from; auto: SEG, else NIfTI")
    label_folder: str = Field("labels", description="NIfTI labels: <label_folder>/<series folder or UID>.nii.gz")
    segments: dict[str, str] | None = Field(None, description="SEG segment label -> recipe class (several may merge)")
    label_values: list[int | list[int]] | None = Field(None, description="NIfTI labels: per class, its value(s)")
    slice_axis: Literal["auto", 0, 1, 2] = Field("auto", description="auto, 0 = the files' own images; 1, 2 = across them")
    min_area: int = Field(4, ge=0, description="regions smaller than this many pixels are dropped as specks")


def options_of(recipe: Recipe) -> Options:
    try:
        return Options(**recipe.data.options)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"{recipe.path or 'convert dicom'}: data.options: {problems}") from None


def _nifti_label(src: Path, options: Options, series: Series) -> Path | None:
    folder = src / options.label_folder
    for stem in (series.name, series.uid):
        for suffix in (".nii.gz", ".nii"):
            if (folder / f"{stem}{suffix}").is_file():
                return folder / f"{stem}{suffix}"
    return None


def _check_references(found: Found, src: Path) -> None:
    """A SEG whose series is not here cannot label anything: refuse rather than silently drop it."""
    known = {s.uid for s in found.series}
    for seg in found.segs:
        if seg.series_uid not in known:
            raise UserError(
                f"{seg.path}: this DICOM SEG references series {seg.series_uid or '(none)'}, which is not under {src}; "
                "put the referenced series next to it, or remove the SEG"
            )


def classes(src: Path, options: dict) -> list[str]:
    """Class names for `convert dicom` without a recipe: the SEG segment labels, else NIfTI label values."""
    parsed = Options(**{k: v for k, v in options.items() if k in Options.model_fields})
    found = dicom_series.find(src)
    names: list[str] = []
    for seg in found.segs:
        for label in seg.labels:
            name = (parsed.segments or {}).get(label, label)
            if name not in names:
                names.append(name)
    if names:
        return names
    values: set[int] = set()
    for series in found.series:
        label = _nifti_label(src, parsed, series)
        if label is not None:
            values |= set(np.unique(nifti.read_array(label)).astype(int).tolist())
    values.discard(0)
    if not values:
        raise UserError(
            f"{src}: no DICOM SEG and no NIfTI label volume ({parsed.label_folder}/<series>.nii.gz) found; "
            "nothing to segment"
        )
    return [f"label_{v}" for v in sorted(values)]


def _seg_loader(found: Found, series: Series, recipe: Recipe, options: Options):
    wanted = {name.lower(): i for i, name in enumerate(recipe.classes)}
    mapping = {label.lower(): cls.lower() for label, cls in (options.segments or {}).items()}

    def masks(shape: tuple[int, ...]) -> np.ndarray:
        out = np.zeros((len(recipe.classes), *shape), bool)
        for seg in found.segs_of(series):
            for label, mask in dicom_series.segment_masks(seg, series).items():
                name = mapping.get(label.lower(), label.lower())
                if name in wanted:
                    out[wanted[name]] |= mask
        return out

    return masks


def _nifti_loader(path: Path, recipe: Recipe, options: Options):
    values = options.label_values or [i + 1 for i in range(len(recipe.classes))]
    if len(values) != len(recipe.classes):
        raise UserError(f"{recipe.path}: data.options.label_values has {len(values)} entries for classes {recipe.classes}")
    groups = [v if isinstance(v, list) else [v] for v in values]

    def masks(geometry: Geometry) -> np.ndarray:
        label = np.rint(nifti.aligned_to(path, geometry.shape, geometry.affine)).astype(np.int32)
        stray = np.setdiff1d(np.unique(label), [0, *[v for g in groups for v in g]])
        if stray.size:
            raise SkipSample(f"{path.name}: label values {stray.tolist()} are not classes (label_values {groups})")
        return np.stack([np.isin(label, g) for g in groups])

    return masks


def load_series(series: Series) -> tuple[np.ndarray, Geometry, tuple[float, float] | None]:
    """Pixels in modality units, geometry, and the series' own display window (from its first file)."""
    pixels, geometry = dicom_series.load(series)
    return pixels, geometry, dicom.file_window(dicom.dataset(series.files[0], pixels=False))


def samples(src: Path, recipe: Recipe) -> SampleList:
    """One Sample per slice of every labelled series; geometry per volume in `found.volumes`."""
    options = options_of(recipe)
    found = dicom_series.find(src)
    if not found.series:
        detail = f" ({found.skipped[0]})" if found.skipped else ""
        raise UserError(f"{src}: no DICOM image series found{detail}; give a folder of .dcm image files")
    _check_references(found, src)
    if options.segments:
        unknown = sorted(set(options.segments.values()) - set(recipe.classes))
        if unknown:
            raise UserError(f"{recipe.path or src}: data.options.segments maps to {unknown}, not classes {recipe.classes}")
    result = SampleList()
    unlabelled = 0
    problems: list[str] = []
    cache = new_cache()
    axis = 0 if options.slice_axis == "auto" else int(options.slice_axis)
    for note in found.notes:
        LOG.warning(note)
    for series in found.series:
        has_seg = options.labels in ("auto", "seg") and bool(found.segs_of(series))
        label_file = _nifti_label(src, options, series) if options.labels in ("auto", "nifti") and not has_seg else None
        if not has_seg and label_file is None:
            unlabelled += 1
            continue
        name = series.name
        try:  # headers alone do not give a multi-frame file's frame count: the pixels are read here and again on writing
            pixels, found_geometry = dicom_series.load(series)
        except UserError as error:
            problems.append(str(error))
            result.append(broken(name, series.patient_id, str(series.files[0]), str(error)))
            continue
        geometry = Geometry.from_affine(found_geometry.affine, pixels.shape, axis)
        del pixels
        masks_of = _seg_loader(found, series, recipe, options) if has_seg else _nifti_loader(label_file, recipe, options)

        def load(series=series, geometry=geometry, masks_of=masks_of, has_seg=has_seg) -> Loaded:
            try:
                pixels, _, window = load_series(series)
                masks = masks_of(pixels.shape) if has_seg else masks_of(geometry)
            except UserError as error:
                raise SkipSample(str(error)) from None
            return Loaded(channels=[pixels], masks=masks, window=window)

        result.volumes[name] = {
            **geometry.to_json(),
            "source": str(series.files[0].parent),
            "series_instance_uid": series.uid,
            "modality": series.modality,  # what a run trained on, so predicting on a PACS picks such series
            "patient_id": series.patient_id,
            "label": str(label_file) if label_file else [str(seg.path) for seg in found.segs_of(series)],
        }
        result += volume_samples(name, series.patient_id, str(series.files[0].parent), geometry, load, recipe.preprocess, options.min_area, cache)
    result.left_out = {k: v for k, v in {"series without a DICOM SEG or NIfTI label": unlabelled}.items() if v}
    for series in found.series:
        if series.dropped and series.name in result.volumes:
            result.left_out[f"slices stored twice, kept once, series {series.name}: {', '.join(series.dropped)}"] = len(series.dropped)
    if problems and not result.volumes:
        raise UserError(f"none of the {len(problems)} labelled series is usable; first: {problems[0]}")
    if not result:
        raise UserError(
            f"{src}: none of the {len(found.series)} series has labels: put a DICOM SEG of the series under {src} "
            f"or a NIfTI label volume at {options.label_folder}/<series folder>.nii.gz"
        )
    return result


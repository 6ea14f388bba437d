"""Predictions in the files other tools read: NIfTI and DICOM SEG label volumes, COCO results, UW-Madison RLE CSV.

`yolo_tools predict RUN SRC --format F`:

- `nifti`: for each input volume (a NIfTI file, or a DICOM series found under SRC) one label volume
  `<volume>.nii.gz` on the input's own voxel grid and affine, value = class index + 1 (0 background;
  where classes overlap, the later class wins), with `classes.json` naming the values; a NIfTI input's
  header is kept (sform/qform codes, description, units: `imaging.nifti.write`). Read by nibabel,
  ITK-SNAP, 3D Slicer, nnU-Net's evaluation;
- `dicom-seg`: for each input DICOM series one `<volume>.seg.dcm` (highdicom), one binary segment per
  class (overlaps kept), each frame referencing its source instance; read by highdicom, OHIF, 3D Slicer
  and a PACS;
- `dicom-sr`: for each input DICOM series one `<volume>.sr.dcm`, a TID 1500 measurement report (highdicom):
  one finding per box (a detector's or a segmenter's instances; a classifier's decided class on the whole
  image) with its class as a coded concept, the box as a planar ROI in the image's pixel space, its
  probability and the threshold it was kept at, referencing the source instance; a series without findings
  gets a report that says so. Slices must be the files' own images (slice axis 0). A detector or
  classifier writes dicom-sr where a `dicom-*` object is asked for; `yolo_tools/pacs.py` stores them in a PACS;
- `coco`: `coco_results.json`, the COCO results list (`image_id`, `category_id`, `bbox` [x, y, w, h],
  `score`, and `segmentation` as COCO RLE for masks) plus `coco_images.json` (images and categories) so
  pycocotools' `COCO.loadRes` reads it as is. Images or volume slices (`<volume>_sNNN`), detect or segment;
- `rle-csv`: the UW-Madison GI competition's submission, `id,class,segmentation` with one row per image
  and class, runs `start length`, 1-based, row-major; `id` from the scan path as the competition names it
  (`case123_day20_slice_0001`), else the file's stem.

Detect models write `coco` only (boxes); segment models any format; a classifier's predictions are the
classes of whole images, which none of these formats holds (`predict` without `--format` writes them).
Every format is made from the predictions `evaluate` scores (`predictors.prediction_args`: the run's operating
point, masks at the image's own size).

Volumes are sliced and mapped exactly as the run's converter did (`convert.volume_slices`: slice axis,
intensity rule, 2.5D context), slice predictions merged per class and stacked back into the source's
voxel order (`imaging.geometry.restack`). A volume that cannot be placed or read as the converters
would refuse it (a DICOM series with a missing slice, NaN voxels, a header without spacing) is skipped
with a warning naming it and why, as unreadable images are; it is refused when it is the only one, and
so is a source none of whose volumes is usable.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yolo_tools import __version__, engine, postprocess, tasks
from yolo_tools.codecs.rle import encode as rle_encode
from yolo_tools.errors import UserError
from yolo_tools.imaging import dicom, dicom_series, nifti
from yolo_tools.imaging.geometry import Geometry, restack
from yolo_tools.imaging.model_input import image_files, mapped_inputs, readable_images
from yolo_tools.inference import predictors
from yolo_tools.prediction import CLASS_CONF, Prediction
from yolo_tools.recipe import Preprocess, Recipe

FORMATS = ("nifti", "dicom-seg", "dicom-sr", "coco", "rle-csv")
VOLUME_FORMATS = ("nifti", "dicom-seg", "dicom-sr")
DICOM_FORMATS = ("dicom-seg", "dicom-sr")  # objects that reference their DICOM source (what a PACS stores)
# What each format can hold, by what a model's finding is (its task's `labels`): masks, boxes or the image's class.
FORMAT_LABELS = {
    "nifti": ("masks",), "dicom-seg": ("masks",), "dicom-sr": ("boxes", "masks", "classes"),
    "coco": ("boxes", "masks"), "rle-csv": ("masks",),
}
SCAN_PATH = re.compile(r"(case\d+_day\d+)[/\\]scans[/\\]slice_(\d+)_")
LOG = logging.getLogger(__name__)


@dataclass
class VolumeInput:
    name: str
    geometry: Geometry
    load: Callable[[], Any]  # -> convert.volume_slices.Loaded; called when the volume's turn comes
    series: dicom_series.Series | None = None  # set for DICOM inputs (what a SEG references)
    header_of: Path | None = None  # a NIfTI input's file, whose header a NIfTI output keeps


@dataclass
class VolumePrediction:
    volume: VolumeInput
    masks: np.ndarray  # (classes, *geometry.shape) bool, in the source's voxel order
    slices: list[Prediction]  # per slice, in slice order


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UserError(f"--format '{fmt}' is unknown; allowed: {', '.join(FORMATS)}")


def labels_of(task: str) -> str | None:
    """What a model of `task` finds (boxes, masks or classes); None for a task the workbench does not evaluate."""
    spec = tasks.TASKS.get(task)
    return spec.labels if spec else None


def check_task(fmt: str, task: str, weights: Path) -> None:
    """Refuse a format that cannot hold what a model of `task` predicts, naming the formats that suit which task."""
    labels = labels_of(task)
    if labels in FORMAT_LABELS[fmt]:
        return
    suits = "; ".join(
        f"{name}: {', '.join(f for f, held in FORMAT_LABELS.items() if spec.labels in held)}" for name, spec in tasks.TASKS.items()
    )
    what = "boxes and masks" if fmt == "coco" else "masks"
    instead = (
        "use --format dicom-sr, or predict without --format: it writes each image's class and probabilities (predictions.csv, predictions.json)"
        if labels == "classes" else "use --format coco or dicom-sr for boxes" if labels == "boxes" else "predict without --format"
    )
    raise UserError(f"--format {fmt} writes {what}; {weights} is a {task} model ({suits}). {instead[0].upper()}{instead[1:]}")


def _slicing(recipe: Recipe | None) -> tuple[int | None, Preprocess, list[int]]:
    """Slice axis (None: auto, the largest spacing for NIfTI, the files' own images for DICOM), preprocess and
    channels as the run's converter used them."""
    if recipe is None:
        return None, Preprocess(), [0]
    options = recipe.data.options if recipe.data.converter in ("nifti", "dicom") else {}
    axis = options.get("slice_axis", "auto")
    return (None if axis == "auto" else int(axis)), recipe.preprocess, list(options.get("channels", [0]))


def _is_nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def _is_volume_source(path: Path) -> bool:
    """A NIfTI file, a folder holding NIfTI files, or a folder whose images are in sub-folders (DICOM series)."""
    if path.is_dir():
        return any(_is_nifti(p) for p in path.iterdir()) or not image_files(path)
    return _is_nifti(path)


def volume_inputs(source: Path, recipe: Recipe | None) -> list[VolumeInput]:
    """NIfTI files (SRC itself, or in SRC; `_0000`, `_0001` ... files of one case as its channels) or DICOM series."""
    from yolo_tools.convert.nifti_volumes import CHANNEL_SUFFIX, volume_stem

    axis, _, channels = _slicing(recipe)
    files = [source] if source.is_file() else sorted(p for p in source.iterdir() if p.is_file()) if source.is_dir() else []
    niftis = [p for p in files if _is_nifti(p)]
    if niftis:
        cases: dict[str, list[Path]] = {}
        for path in niftis:
            cases.setdefault(CHANNEL_SUFFIX.sub("", volume_stem(path)), []).append(path)
        found, problems = [], []
        for name, paths in cases.items():
            try:
                shape, affine = nifti.header(paths[0])
            except UserError as error:
                problems.append(_skip(error, len(cases)))
                continue
            if max(channels) >= (shape[3] if len(paths) == 1 and len(shape) == 4 else len(paths)):
                raise UserError(f"{paths[0]}: the run reads channels {channels}; this case has fewer")
            geometry = Geometry.from_affine(affine, shape[:3], axis)
            found.append(VolumeInput(name, geometry, lambda p=paths: _nifti_channels(p, channels), header_of=paths[0]))
        return _some(found, problems, source)
    if not source.is_dir():
        raise UserError(f"{source}: volume formats need a NIfTI file, a folder of NIfTI files or a folder of DICOM series")
    found_series = dicom_series.find(source)
    if not found_series.series:
        raise UserError(f"{source}: no NIfTI volume and no DICOM image series found; give volumes for --format nifti/dicom-seg")
    for note in found_series.notes:
        LOG.warning(note)
    inputs, problems = [], []
    for series in found_series.series:
        try:
            pixels, geometry = dicom_series.load(series)  # the frame count needs the pixels; read again in turn
        except UserError as error:
            problems.append(_skip(error, len(found_series.series)))
            continue
        for copy in series.dropped:
            LOG.warning("series %s: a slice stored twice is read once: left out %s", series.name, copy)
        # the files' own images, as the DICOM converter slices them (an explicit slice_axis still wins)
        geometry = Geometry.from_affine(geometry.affine, pixels.shape, 0 if axis is None else axis)
        inputs.append(VolumeInput(series.name, geometry, lambda s=series: _dicom_channels(s), series))
    return _some(inputs, problems, source)


def _skip(error: UserError, candidates: int) -> str:
    """A volume that cannot be used: refused when it is the only one, else skipped with a warning."""
    if candidates == 1:
        raise error
    LOG.warning("skipped %s", error)
    return str(error)


def _some(inputs: list[VolumeInput], problems: list[str], source: Path) -> list[VolumeInput]:
    if not inputs and problems:
        raise UserError(f"{source}: none of its {len(problems)} volumes is usable; nothing was written. First: {problems[0]}")
    return inputs


def _nifti_channels(paths: list[Path], channels: list[int]):
    from yolo_tools.convert.volume_slices import Loaded

    arrays = [nifti.read_array(p) for p in paths]
    if len(arrays) == 1 and arrays[0].ndim == 4:
        return Loaded([arrays[0][..., c] for c in channels], None)
    return Loaded([arrays[c] for c in channels] if len(arrays) > 1 else arrays, None)


def _dicom_channels(series: dicom_series.Series):
    from yolo_tools.convert.volume_slices import Loaded

    pixels, _ = dicom_series.load(series)
    return Loaded([pixels], None, dicom.file_window(dicom.dataset(series.files[0], pixels=False)))


def predict_volumes(weights: Path, inputs: list[VolumeInput], recipe: Recipe | None, n_classes: int, args: dict) -> Iterator[VolumePrediction]:
    """Each volume's slices through the model, masks merged per class and restacked into voxel order; the classes
    the run's post-processing names (decided on volumes: yolo_tools/postprocess.py) cut to their largest 3D component."""
    from yolo_tools.convert.volume_slices import slice_images

    _, preprocess, _ = _slicing(recipe)
    decision = predictors.postprocessing(recipe, [weights])
    kept = postprocess.class_ids(decision, list(recipe.classes)) if decision and decision["dimensions"] == 3 else []
    problems: list[str] = []
    for volume in inputs:
        try:
            loaded = volume.load()
        except UserError as error:  # NaN voxels are only seen once the voxels are read
            problems.append(_skip(error, len(inputs)))
            continue
        images = slice_images(loaded, volume.geometry, preprocess)
        bgr = (cv2.cvtColor(i, cv2.COLOR_GRAY2BGR) if i.ndim == 2 else np.ascontiguousarray(i[..., ::-1]) for i in images)
        named = ((Path(f"{volume.name}_s{index:03d}.png"), image) for index, image in enumerate(bgr))
        slices = postprocess.apply(list(enumerate(engine.predict_arrays(weights, named, args))), kept)
        stacked = np.stack([p.class_masks(n_classes) for p in slices], axis=1)  # (classes, slices, H, W)
        masks = np.stack([restack(per_class, volume.geometry) for per_class in stacked])
        yield VolumePrediction(volume, masks, slices)
    if len(problems) == len(inputs) and problems:
        raise UserError(f"none of the {len(inputs)} volumes is usable; nothing was written. First: {problems[0]}")


def label_map(masks: np.ndarray) -> np.ndarray:
    """(classes, ...) bool -> uint8 values 1..C (0 background); a later class wins where classes overlap."""
    out = np.zeros(masks.shape[1:], np.uint8)
    for class_id, mask in enumerate(masks):
        out[mask] = class_id + 1
    return out


def write_nifti(prediction: VolumePrediction, out_dir: Path) -> Path:
    volume = prediction.volume
    return nifti.write(out_dir / f"{volume.name}.nii.gz", label_map(prediction.masks), volume.geometry.affine, volume.header_of)


def write_dicom_seg(
    prediction: VolumePrediction, out_dir: Path, names: list[str], algorithm: dicom_series.Algorithm | None = None
) -> Path:
    volume = prediction.volume
    if volume.series is None:
        raise UserError(f"{volume.name}: --format dicom-seg needs DICOM series as input (a SEG references its images); use --format nifti")
    masks = np.moveaxis(prediction.masks, 0, -1)  # (slices, rows, cols, segments): the series' own order
    return dicom_series.write_seg(out_dir / f"{volume.name}.seg.dcm", volume.series, masks, names, __version__, algorithm)


def default_dicom_format(task: str) -> str:
    """A segmenter writes a SEG, a detector or classifier a structured report."""
    return "dicom-seg" if labels_of(task) == "masks" else "dicom-sr"


def check_dicom_format(fmt: str, task: str, weights: Path) -> None:
    if fmt == "dicom-seg" and labels_of(task) != "masks":
        raise UserError(f"--format dicom-seg writes masks; {weights} is a {task} model: use --format dicom-sr (a structured report)")
    if fmt not in DICOM_FORMATS:
        raise UserError(f"--format {fmt}: a PACS stores DICOM objects; use dicom-seg (segment) or dicom-sr (detect, classify, segment)")


def weights_digest(weights: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with weights.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def algorithm_of(weights: Path, recipe: Recipe | None, args: dict[str, Any], point: dict | None = None) -> dicom_series.Algorithm:
    """What stored objects name: the recipe, the run (the folder above weights/), the weights' SHA-256, the version,
    and the thresholds the findings were kept at (a classifier's stored `point`, else the predict confidences)."""
    run = weights.parent.parent.name if weights.parent.name == "weights" else weights.stem
    used = f"conf {args['conf']:g}" if isinstance(args.get("conf"), (int, float)) else ""
    if args.get(CLASS_CONF):
        used += " per class " + ", ".join(f"{k} {v:g}" for k, v in args[CLASS_CONF].items())
    if point and "threshold" in point:
        used = f"threshold {point['threshold']:g} ({point.get('rule', 'stored')})"
    return dicom_series.Algorithm(recipe.name if recipe else weights.stem, run, weights_digest(weights), __version__, used.strip())


def findings_of(prediction: VolumePrediction, names: list[str], task: str, args: dict[str, Any], point: dict | None) -> list[dicom_series.Finding]:
    """Each slice's boxes (detect, segment) or decided class (classify) as findings on the series' images.

    A classifier's finding is its decided class (the stored operating point's threshold for two classes, else
    the most probable) when that is not the first class, which is the negative one by the operating point's
    convention; with more than two classes every decision is a finding.
    """
    from yolo_tools import operating_point

    volume = prediction.volume
    if volume.geometry.slice_axis != 0:
        raise UserError(
            f"{volume.name}: the run slices this series along axis {volume.geometry.slice_axis}, not the files' own "
            "images, so its boxes lie on no stored image; --format dicom-sr needs slice_axis 0 (or use dicom-seg / nifti)"
        )
    per_class = args.get(CLASS_CONF) or {}
    conf = float(args.get("conf", engine.PREDICT_DEFAULTS["conf"]))
    found: list[dicom_series.Finding] = []
    classifies = labels_of(task) == "classes"
    for index, slice_ in enumerate(prediction.slices):
        if classifies:
            if slice_.probabilities is None:
                continue
            decided = operating_point.decide(slice_.probabilities, point)
            binary = len(names) == 2
            if binary and decided == 0:
                continue
            threshold = float(point["threshold"]) if binary and point and "threshold" in point else None
            found.append(dicom_series.Finding(index, names[decided], decided, None, float(slice_.probabilities[decided]), threshold))
            continue
        for box, class_id, confidence in zip(slice_.boxes, slice_.classes, slice_.confidences):
            name = names[int(class_id)]
            x1, y1, x2, y2 = (float(v) for v in box)
            found.append(dicom_series.Finding(index, name, int(class_id), (x1, y1, x2, y2), float(confidence), float(per_class.get(name, conf))))
    return found


def write_dicom_sr(prediction: VolumePrediction, out_dir: Path, findings: list[dicom_series.Finding], algorithm: dicom_series.Algorithm) -> Path:
    volume = prediction.volume
    if volume.series is None:
        raise UserError(f"{volume.name}: --format dicom-sr needs DICOM series as input (a report references its images)")
    return dicom_series.write_sr(out_dir / f"{volume.name}.sr.dcm", volume.series, findings, __version__, algorithm)


def coco_records(predictions: list[Prediction]) -> tuple[list[dict], list[dict]]:
    """COCO results (one per instance) and the images they refer to; masks as COCO RLE (pycocotools)."""
    from pycocotools import mask as coco_mask

    results, images = [], []
    for image_id, prediction in enumerate(predictions, start=1):
        height, width = prediction.shape
        images.append({"id": image_id, "file_name": prediction.path.name, "height": height, "width": width})
        for index, (box, class_id, score) in enumerate(zip(prediction.boxes, prediction.classes, prediction.confidences)):
            x1, y1, x2, y2 = (float(v) for v in box)
            record = {
                "image_id": image_id,
                "category_id": int(class_id) + 1,
                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                "score": round(float(score), 5),
            }
            if prediction.masks is not None:
                rle = coco_mask.encode(np.asfortranarray(prediction.masks[index].astype(np.uint8)))
                record["segmentation"] = {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}
            results.append(record)
    return results, images


def write_coco(predictions: list[Prediction], names: list[str], out_dir: Path) -> Path:
    results, images = coco_records(predictions)
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(names)]
    (out_dir / "coco_images.json").write_text(json.dumps({"images": images, "annotations": [], "categories": categories}))
    path = out_dir / "coco_results.json"
    path.write_text(json.dumps(results))
    return path


def submission_id(path: Path) -> str:
    """The competition's id for a scan path (`case123_day20_slice_0001`), else the file's stem."""
    match = SCAN_PATH.search(str(path))
    return f"{match.group(1)}_slice_{match.group(2)}" if match else path.name.split(".")[0]


def write_rle_csv(predictions: list[Prediction], names: list[str], out_dir: Path) -> Path:

    path = out_dir / "submission.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "class", "segmentation"])
        for prediction in predictions:
            masks = prediction.class_masks(len(names))
            for name, mask in zip(names, masks):
                writer.writerow([submission_id(prediction.path), name, rle_encode(mask)])
    return path


def _run_point(weights: Path) -> dict | None:
    """A classifier run's stored operating point (weights/ sits in the run folder)."""
    from yolo_tools import operating_point

    return operating_point.load(weights.parent.parent) if weights.parent.name == "weights" else None


def predict_to(fmt: str, weights: Path, recipe: Recipe | None, source: str, out_dir: Path, args: dict) -> tuple[list[Path], int]:
    """Predict on `source` and write `fmt`'s files into `out_dir`; returns the files and the images seen."""
    check_format(fmt)
    task, classes = engine.task_and_names(weights)
    names = [classes[i] for i in sorted(classes)]
    check_task(fmt, task, weights)
    source_path = Path(source)
    volume_input = fmt in VOLUME_FORMATS or _is_volume_source(source_path)
    if volume_input:
        inputs = volume_inputs(source_path, recipe)
        if fmt in DICOM_FORMATS:
            missing = [v.name for v in inputs if v.series is None]
            if missing:
                raise UserError(f"{source}: --format {fmt} needs DICOM series as input (it references their images); use --format nifti")
    point = _run_point(weights) if fmt == "dicom-sr" and labels_of(task) == "classes" else None
    algorithm = algorithm_of(weights, recipe, args, point) if fmt in DICOM_FORMATS else None
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if volume_input:
        slices: list[Prediction] = []
        for prediction in predict_volumes(weights, inputs, recipe, len(names), args):
            slices += prediction.slices
            if fmt == "nifti":
                written.append(write_nifti(prediction, out_dir))
            elif fmt == "dicom-seg":
                written.append(write_dicom_seg(prediction, out_dir, names, algorithm))
            elif fmt == "dicom-sr":
                written.append(write_dicom_sr(prediction, out_dir, findings_of(prediction, names, task, args, point), algorithm))
        if fmt == "nifti":
            (out_dir / "classes.json").write_text(json.dumps({str(i + 1): n for i, n in enumerate(names)}, indent=1))
    else:
        files = readable_images(source)
        mapped = mapped_inputs(files, recipe.preprocess if recipe else None)
        slices = list(engine.predict_arrays(weights, mapped, args) if mapped else engine.predict(weights, files, args))
        decision = predictors.postprocessing(recipe, [weights])
        if decision and decision["dimensions"] == 2:  # decided on images: each image's own largest components
            kept = postprocess.class_ids(decision, names)
            slices = [postprocess.apply([(0, p)], kept)[0] for p in slices]
    if fmt == "coco":
        written.append(write_coco(slices, names, out_dir))
    elif fmt == "rle-csv":
        written.append(write_rle_csv(slices, names, out_dir))
    return written, len(slices)


"""Any image file as the model's input: mapped to 8-bit BGR exactly as the run's training images were.

The converters, `predict` and the dashboard all go through here, so a model trained on percentile-
stretched MRI or windowed CT is never shown raw pixels. DICOM goes through `dicom` (rescale slope/
intercept, the recipe's intensity or the file's window, MONOCHROME1 inverted); 16-bit and float files
through the recipe's intensity spec. 8-bit files are used as stored unless the spec is scale-free
(percentiles, min-max): a window is in scanner units (HU) that an 8-bit export no longer carries.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from yolo_tools.errors import UserError
from yolo_tools.imaging import IMAGE_SUFFIXES, dicom
from yolo_tools.imaging.pillow import pillow_open
from yolo_tools.intensity import Intensity, MinMax, Percentile, to_uint8
from yolo_tools.recipe import Preprocess

LOG = logging.getLogger(__name__)

DICOM_SUFFIXES = (".dcm", ".dicom")


def needs_mapping(pixels: np.ndarray, spec: Intensity | None) -> bool:
    """Whether stored pixels differ from what the model saw in training."""
    return pixels.dtype != np.uint8 or isinstance(spec, (Percentile, MinMax))


@dataclass(frozen=True)
class ModelInput:
    """One file as the model sees it, with what a person should know about how it got there."""

    image: np.ndarray  # uint8 H x W x 3, BGR: what the model is given
    notes: list[str]  # how the pixels were mapped, for the page
    spacing: tuple[float, float] | None  # mm per pixel (rows, columns) when the file says so


def is_dicom(path: Path) -> bool:
    """By suffix, or by the 'DICM' marker after the 128-byte preamble (many DICOM files have no suffix)."""
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES or suffix in IMAGE_SUFFIXES:
        return suffix in DICOM_SUFFIXES
    with path.open("rb") as handle:
        return handle.read(132)[128:132] == b"DICM"


def _bgr(pixels: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR) if pixels.ndim == 2 else np.ascontiguousarray(pixels[..., :3])


def read_model_input(path: Path, preprocess: Preprocess) -> ModelInput:
    """A file (image or DICOM) as the model's input, mapped as the run's training data was (predict, app)."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    found = _read_dicom(path, preprocess) if is_dicom(path) else _read_image(path, preprocess)
    if preprocess.context:
        found.notes.append(
            "this run was trained on 2.5D stacks (neighbouring slices as channels); a single slice "
            "fills all three channels, so expect weaker results than in validation"
        )
    return found


def _read_dicom(path: Path, preprocess: Preprocess) -> ModelInput:
    image = dicom.read(path)
    notes = [f"DICOM {image.modality or 'image'}, {image.photometric}, values after rescale slope/intercept"]
    if not image.photometric.startswith("MONOCHROME"):
        colour = image.pixels if image.pixels.ndim == 3 else image.pixels[len(image.pixels) // 2]
        rgb = np.clip(colour, 0, 255).astype(np.uint8)
        return ModelInput(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), notes, image.spacing)
    if image.pixels.ndim == 3:
        frame = len(image.pixels) // 2
        notes.append(f"multi-frame file: frame {frame + 1} of {len(image.pixels)} (the middle one)")
        image = replace(image, pixels=image.pixels[frame])
    spec = preprocess.intensity
    if spec is not None:
        notes.append(f"intensity: the run's recipe ({spec.mode})")
    elif image.window:
        notes.append(f"intensity: the file's window, centre {image.window[0]:g}, width {image.window[1]:g}")
    else:
        notes.append("intensity: 0.5-99.5 percentiles (no window in the recipe or the file)")
    if image.photometric == "MONOCHROME1":
        notes.append("MONOCHROME1: inverted so that high values are bright")
    return ModelInput(_bgr(dicom.to_uint8(image, spec)), notes, image.spacing)


def _read_image(path: Path, preprocess: Preprocess) -> ModelInput:
    bomb = bomb_header(path)  # refused before OpenCV allocates its pixels
    if bomb:
        raise UserError(f"{path.name}: {bomb}")
    try:
        pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error:  # OpenCV refuses headers over its pixel limit with an exception, not None
        pixels = None
    if pixels is None:
        raise UserError(f"{path.name}: neither an image OpenCV can read (PNG, JPEG, ...) nor a DICOM file")
    spec = preprocess.intensity
    # 8-bit files are what the converters pass through unchanged, except for scale-free mappings
    # (percentiles, min-max) that the run applied to every training image; a window is in scanner units
    # (HU) that an 8-bit export no longer carries.
    if not needs_mapping(pixels, spec):
        notes = ["8-bit image, used as stored"]
        if spec is not None:
            notes.append(f"the run's {spec.mode} intensity is in scanner units: upload the DICOM, not an 8-bit export")
        return ModelInput(_bgr(pixels), notes, None)
    mapping = f"the run's recipe ({spec.mode})" if spec else "min-max (the recipe sets none)"
    return ModelInput(_bgr(map_pixels(pixels, spec)), [f"{pixels.dtype} image, intensity: {mapping}"], None)


def map_pixels(pixels: np.ndarray, spec: Intensity | None) -> np.ndarray:
    """Stored pixels (any bit depth, grey or BGR) as the 8-bit grey image the model sees; colour becomes grey."""
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels[..., :3].astype(np.float32), cv2.COLOR_BGR2GRAY)
    return to_uint8(pixels, spec)


def image_files(source: str | Path) -> list[Path]:
    """The files a predict source names: one file, a folder's images (sorted), or a glob."""
    path = Path(source)
    if path.is_file():
        return [path]
    candidates = sorted(path.iterdir()) if path.is_dir() else sorted(Path(p) for p in glob.glob(str(source)))
    return [p for p in candidates if p.is_file() and (p.suffix.lower() in IMAGE_SUFFIXES or is_dicom(p))]


def bomb_header(path: Path) -> str | None:
    """Why a file is refused as a decompression bomb (a header claiming more pixels than Pillow's limit,
    `Image.MAX_IMAGE_PIXELS` x 2), else None; only the header is read. Whether the rest decodes is OpenCV's."""
    from PIL import Image

    try:
        with pillow_open(path):
            return None
    except Image.DecompressionBombError as exc:
        return f"a decompression bomb? {exc}".split(", could be")[0]
    except Exception:  # noqa: BLE001 - not an image Pillow knows: OpenCV, which reads it next, decides
        return None


def unreadable(path: Path) -> str | None:
    """Why an image file cannot be predicted on (None when it can): empty, not an image, cut short, or a
    decompression bomb (see `bomb_header`).

    Decoded in full with Pillow, whose bomb check runs on the header before any pixel is allocated; OpenCV,
    which reads the pixels afterwards, would try to allocate such an image or raise on its header, and
    decodes a truncated JPEG as grey without a word. DICOM files are checked by pydicom when they are read
    (`read_model_input`).
    """
    from PIL import Image

    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    if is_dicom(path):
        return None
    try:
        with pillow_open(path) as image:
            image.load()
    except Image.DecompressionBombError as exc:
        return f"a decompression bomb? {exc}".split(", could be")[0]
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types (OSError, SyntaxError, ValueError...) for bad files
        # A file Pillow cannot read may still be one OpenCV reads (some TIFF variants); a truncated one is
        # not taken from OpenCV, which would return its missing part as grey.
        if "truncated" in str(exc) or not _opencv_reads(path):
            return f"not a readable image ({type(exc).__name__}: {str(exc)[:120]})"
    return None


def _opencv_reads(path: Path) -> bool:
    try:
        return cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is not None
    except cv2.error:  # e.g. a header over OpenCV's own pixel limit
        return False


def readable_images(source: str | Path) -> list[Path]:
    """The images of a predict source that can be read; each one that cannot is skipped with a warning.

    A folder with no image of its own but images in its sub-folders (a class-folder test split,
    `test/<class>/*.jpeg`) is read one level down, as Ultralytics' classification dataset reads its root;
    one line says so. A source that names nothing, or a folder or glob without images, is one message;
    so is a source none of whose images can be read.
    """
    path = Path(source)
    if not path.exists() and not glob.glob(str(source)):
        raise UserError(f"{source}: no such image, folder or glob")
    files = image_files(source)
    if not files and path.is_dir():
        folders = sorted(p for p in path.iterdir() if p.is_dir())
        files = [file for folder in folders for file in image_files(folder)]
        if files:
            LOG.info("%s: no images of its own; predicting the %d in its sub-folders (%s), one level down as for "
                     "class folders", source, len(files), ", ".join(sorted({f.parent.name for f in files})))
    if not files:
        raise UserError(
            f"{source}: no images in it or in its sub-folders (looked for {', '.join(sorted(IMAGE_SUFFIXES))} and DICOM "
            "files); give a folder of images, a folder of class folders of images, one image, or a glob such as 'scans/*.png'"
        )
    readable = []
    for file in files:
        problem = unreadable(file)
        if problem:
            LOG.warning("skipped %s: %s", file, problem)
        else:
            readable.append(file)
    if not readable:
        raise UserError(f"{source}: none of its {len(files)} image(s) can be read (see the warnings above); nothing was written")
    return readable


def mapped_inputs(files: list[Path], preprocess: Preprocess | None) -> Iterator[tuple[Path, np.ndarray]] | None:
    """Each file mapped as in training, or None when Ultralytics can read them as they are.

    Mapping is needed for DICOM (Ultralytics cannot read it) and whenever the run's recipe sets an
    intensity rule; plain 8-bit images for a recipe without one go straight to Ultralytics' own loader.
    A file that cannot be mapped is skipped with a warning naming it.
    """
    preprocess = preprocess or Preprocess()
    if preprocess.intensity is None and not any(is_dicom(f) for f in files):
        return None
    return _mapped(files, preprocess)


def _mapped(files: list[Path], preprocess: Preprocess) -> Iterator[tuple[Path, np.ndarray]]:
    for file in files:
        try:
            yield file, read_model_input(file, preprocess).image
        except UserError as error:
            LOG.warning("skipped %s: %s", file, error)

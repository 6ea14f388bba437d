"""Image files as a converter meets them: read once, checked before anything is counted.

Every image file is read into memory once (`load`, cached for the last few files, so a converter asking
for an image's size and the writer copying or decoding the same file share that read) and checked the
way Ultralytics' own dataset check (`ultralytics.data.utils.check_image`) does: PIL identifies the file
and verifies its structure (a PNG's chunks and checksums), the image must be at least 10 pixels a side
and of an image format, and a JPEG must end with its end-of-image marker. Ultralytics' function is not
called itself: it takes a path and opens the file twice more, and "restores" a JPEG by rewriting it in
place, which must never happen to a source file; here the same steps run on the bytes already read.

A zero-byte file, a file Pillow does not identify as an image (a text file named `.jpg`), an image of a
format Ultralytics does not train on (a GIF named `.png`) and a header claiming more pixels than PIL's
decompression-bomb limit are turned into a `SkipSample` with that reason, without decoding anything.
Pillow is called as it ships (`imaging.pillow`): Ultralytics' patched `open` would try to install a HEIF
plugin for a file it cannot identify. (OpenCV used to be asked first for that reason; it opened every
file a second time, a twentieth of a copy-only conversion.)

A file copied as stored is written from the checked bytes; a file that must be mapped to 8-bit is
decoded from them, once (`decode`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from yolo_tools.convert.samples import SkipSample
from yolo_tools.imaging.pillow import TRAINABLE_FORMATS, pillow_open

MIN_SIDE = 10  # Ultralytics drops smaller images ("image size <10 pixels")
EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr"})
JPEG_END = b"\xff\xd9"


@dataclass(frozen=True)
class Checked:
    """An image file's bytes, once they passed the checks, and what its header says."""

    data: bytes
    width: int
    height: int
    eight_bit: bool


def load(path: Path) -> Checked:
    """The file's bytes and header, checked; SkipSample naming what makes it unusable for Ultralytics."""
    try:
        stat = path.stat()
    except OSError:
        raise SkipSample(f"image file {path} is missing") from None
    return _load(path, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=8)
def _load(path: Path, size: int, mtime_ns: int) -> Checked:
    if size == 0:
        raise SkipSample("empty image file (0 bytes)")
    data = path.read_bytes()
    # Between one and two times Pillow's limit `open` only warns (printed once); the size is checked here.
    # A `warnings.catch_warnings` around it is not safe on the writer's threads (it swaps process-wide state).
    try:
        with pillow_open(io.BytesIO(data)) as image:
            (width, height), kind, mode = image.size, image.format or "", image.mode
            if width * height > Image.MAX_IMAGE_PIXELS:
                raise Image.DecompressionBombWarning
            image.verify()
    except Image.UnidentifiedImageError:
        raise SkipSample(f"not an image file (its bytes are no {path.suffix or 'image'} format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise SkipSample(
            f"header claims more than {Image.MAX_IMAGE_PIXELS:,} pixels (a decompression bomb, or a damaged header)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - whatever PIL raises for a damaged file, as Ultralytics' check does
        raise SkipSample(f"damaged image ({exc})") from None
    if kind.lower() not in TRAINABLE_FORMATS:
        raise SkipSample(f"a {kind or 'unknown'} image, which Ultralytics does not train on; save it as PNG")
    if min(width, height) < MIN_SIDE:
        raise SkipSample(f"image is {width}x{height} pixels; Ultralytics needs at least {MIN_SIDE} a side")
    if kind == "JPEG" and not data.endswith(JPEG_END):
        raise SkipSample("JPEG does not end with its end-of-image marker (truncated, or bytes after it); re-save it")
    return Checked(data, width, height, mode in EIGHT_BIT_MODES)


def decode(path: Path) -> np.ndarray:
    """The pixels as stored (any bit depth), decoded from the checked bytes; SkipSample when they cannot be."""
    checked = load(path)
    try:
        pixels = cv2.imdecode(np.frombuffer(checked.data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise SkipSample(f"image cannot be decoded: {exc}") from None
    if pixels is None:
        raise SkipSample("image cannot be decoded (damaged, or not the format its name says)")
    if pixels.shape[:2] != (checked.height, checked.width):
        raise SkipSample(
            f"image decodes to {pixels.shape[1]}x{pixels.shape[0]} but its header says {checked.width}x{checked.height}"
        )
    return pixels

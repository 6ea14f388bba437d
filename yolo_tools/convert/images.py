"""Image files as a converter meets them: checked once, from the header, before anything is counted.

A file named `.jpg` that holds text, a zero-byte file, a header claiming billions of pixels (a
decompression bomb) or an image under 10 pixels a side is turned into a `SkipSample` with that reason
here, the first time any part of the workbench looks at the file. The header (PIL, which reads no
pixels) also gives the size that box and mask converters measure labels against and whether the pixels
are 8-bit, so a file that is copied as stored is never decoded at all; the writer then verifies the copy
with Ultralytics' own check (`yolo.check_image`), which also catches a truncated JPEG. Files that must be
mapped to 8-bit are decoded once, by `decode`.

The last few headers are cached (keyed by path, size and modification time), so a converter asking for
an image's size and the writer checking the same file read its header once.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from yolo_tools.convert.samples import SkipSample

MIN_SIDE = 10  # Ultralytics drops smaller images ("image size <10 pixels")
EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr"})


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    format: str
    eight_bit: bool


def header(path: Path) -> Header:
    """The image's size and kind from its header; SkipSample for anything Ultralytics could not train on."""
    try:
        stat = path.stat()
    except OSError:
        raise SkipSample(f"image file {path} is missing") from None
    return _header(path, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=16)
def _header(path: Path, size: int, mtime_ns: int) -> Header:
    if size == 0:
        raise SkipSample("empty image file (0 bytes)")
    # OpenCV knows the file's kind from its first bytes. Asking it first also keeps PIL from being handed
    # a non-image: once Ultralytics is imported, PIL's open tries to install a HEIF plugin for those.
    if not cv2.haveImageReader(str(path)):
        raise SkipSample(f"not an image file (its bytes are no {path.suffix or 'image'} format)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                found = Header(width, height, image.format or "", image.mode in EIGHT_BIT_MODES)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise SkipSample(
            f"header claims more than {Image.MAX_IMAGE_PIXELS:,} pixels (a decompression bomb, or not an image)"
        ) from None
    except UnidentifiedImageError:
        raise SkipSample(f"not an image file (its bytes are no {path.suffix or 'image'} format)") from None
    except OSError as exc:
        raise SkipSample(f"unreadable image: {exc}") from None
    if width * height > Image.MAX_IMAGE_PIXELS:
        raise SkipSample(f"header claims {width}x{height} pixels, more than {Image.MAX_IMAGE_PIXELS:,} (a decompression bomb?)")
    if min(width, height) < MIN_SIDE:
        raise SkipSample(f"image is {width}x{height} pixels; Ultralytics needs at least {MIN_SIDE} a side")
    return found


def decode(path: Path) -> np.ndarray:
    """The pixels as stored (any bit depth), after the header check; SkipSample when they cannot be decoded."""
    expected = header(path)
    try:
        pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise SkipSample(f"image cannot be decoded: {exc}") from None
    if pixels is None:
        raise SkipSample("image cannot be decoded (damaged, or not the format its name says)")
    if pixels.shape[:2] != (expected.height, expected.width):
        raise SkipSample(f"image decodes to {pixels.shape[1]}x{pixels.shape[0]} but its header says {expected.width}x{expected.height}")
    if path.suffix.lower() in (".jpg", ".jpeg") and not _jpeg_complete(path):
        raise SkipSample("truncated JPEG (no end-of-image marker): part of the picture is missing")
    return pixels


def _jpeg_complete(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-2, 2)
        return handle.read() == b"\xff\xd9"

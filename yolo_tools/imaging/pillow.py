"""Pillow's own `Image.open`, and the image formats Ultralytics trains on, as Pillow names them.

Once imported, Ultralytics replaces `PIL.Image.open` with one that pip-installs a HEIF plugin whenever
Pillow cannot identify a file (`ultralytics.utils.patches.image_open`); a file that is simply not an image
must be refused, not trigger an install. Checks that open files call the original here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

from PIL import Image

# `ultralytics.data.utils.IMG_FORMATS` plus the JPEG 2000 its `check_image` adds, as Pillow's `Image.format`
# reads lower-cased (Pillow says "mpo" for a JPEG holding several pictures): Ultralytics drops an image of
# any other format (a GIF named .png) when it trains, so the converters refuse it first, with the reason.
# Kept as text so that converting does not import Ultralytics; tests/test_imaging.py compares the two.
TRAINABLE_FORMATS = frozenset(
    {"avif", "bmp", "dng", "heic", "heif", "jp2", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "jpeg2000"}
)


def pillow_open(source: Path | IO[bytes]) -> Image.Image:
    """`PIL.Image.open` as Pillow ships it, whether or not Ultralytics has patched it."""
    return getattr(sys.modules.get("ultralytics.utils.patches"), "_image_open", Image.open)(source)

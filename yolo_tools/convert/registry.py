"""The one registry of the readers of published formats (`CONVERTERS`), and the modules they are in.

Every list of converters the workbench shows or checks reads this: the recipe check (convert/checks.py),
`convert FORMAT` (yolo_tools/conversion.py), outside sets (outside_data.py), the command line's choices and
the recipe reference. It imports no reader (`converter` imports one when it is used), so the command line and
reading a recipe stay quick.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Converter:
    """One reader: its name in a recipe (`data.converter`) and module, and what the rest of the workbench asks of it."""

    name: str
    module: str
    format: str | None = None  # its name for `evaluate --data SRC --format F` (an outside set), if it reads one
    standalone: bool = False  # `convert FORMAT SRC DST` offers it: it finds the classes in the folder itself
    tasks: tuple[str, ...] = ()  # the tasks whose labels it reads from an outside set (the first: what `convert
    # FORMAT` makes); class folders give a detector no boxes, so such a pairing is refused
    reread: tuple[str, ...] = ()  # options that say where a recipe's own copy keeps its files and how its publisher
    # laid them out, or that only shape a training set: an outside folder is read with their defaults
    slices: bool = False  # knows a slice's neighbours, which a 2.5D run (`preprocess.context`) sees as red and blue
    upstream: bool = False  # reads another recipe's converted dataset (the module's `upstream(recipe)` names that
    # recipe; the orchestrator converts it first and hands its folder to `samples`)


# In this order the formats are listed in messages and on the command line.
CONVERTERS: dict[str, Converter] = {
    c.name: c
    for c in (
        Converter("yolo_export", "yolo_tools.convert.yolo_export", "yolo", tasks=("detect", "segment"), reread=("tiles",)),
        Converter("coco", "yolo_tools.convert.coco", "coco", True, ("detect", "segment"), ("annotations", "images")),
        Converter("mask_images", "yolo_tools.convert.mask_images", "masks", True, ("segment",), ("images", "masks", "layout", "folders")),
        Converter("box_csv", "yolo_tools.convert.box_csv", "box-csv", True, ("detect",), ("csv", "images")),
        Converter("class_folders", "yolo_tools.convert.class_folders", "class-folders", True, ("classify",), ("folder", "test_folder")),
        # Decathlon / nnU-Net v2 / plain folders of NIfTI volumes
        Converter("nifti", "yolo_tools.convert.nifti_volumes", "nifti", True, ("segment",), ("layout", "images", "labels"), slices=True),
        # DICOM series with DICOM SEG or aligned NIfTI labels
        Converter("dicom", "yolo_tools.convert.dicom_volumes", "dicom", True, ("segment",), ("labels", "label_folder"), slices=True),
        Converter("synthetic", "yolo_tools.convert.synthetic"),
        Converter("uw_madison_gi", "yolo_tools.convert.uw_madison_gi", reread=("csv", "scans"), slices=True),
        Converter("hdf5_volumes", "yolo_tools.convert.hdf5_volumes", reread=("files", "image_key", "label_key"), slices=True),
        # a cascade's crops: regions found by one run in another recipe's converted images, judged by a classifier
        Converter("region_crops", "yolo_tools.convert.region_crops", upstream=True),
    )
}
# The readers of published formats by format name (`evaluate --data SRC --format F`), in CONVERTERS' order.
FORMATS: dict[str, Converter] = {c.format: c for c in CONVERTERS.values() if c.format}


def converter(name: str) -> ModuleType:
    """The module of a converter named in CONVERTERS."""
    return importlib.import_module(CONVERTERS[name].module)

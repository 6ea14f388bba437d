"""The converters by name, and the check a recipe's `data` section gets when the recipe is read.

One module per published format parses it into Samples (`writer.Sample`); `convert.conversion` turns a
recipe into a dataset folder with them. This package's own module stays light on purpose: it only names
the converter modules (imported when used), so reading a recipe does not load every converter, and
`yolo_tools.recipe` needs no import of the converters (the check runs where a recipe is loaded for use:
`pipeline`, `sources.pull`, and `conversion.prepare` for recipes handed over as objects).

Each converter module has `samples(src, recipe)` and `Options`, the schema of its `data.options`
(`convert.options.ConverterOptions`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from yolo_tools.convert.options import parse
from yolo_tools.errors import UserError
from yolo_tools.recipe import Recipe

CONVERTERS: dict[str, str] = {
    "yolo_export": "yolo_tools.convert.yolo_export",
    "synthetic": "yolo_tools.convert.synthetic",
    "box_csv": "yolo_tools.convert.box_csv",
    "mask_images": "yolo_tools.convert.mask_images",
    "class_folders": "yolo_tools.convert.class_folders",
    "coco": "yolo_tools.convert.coco",
    "uw_madison_gi": "yolo_tools.convert.uw_madison_gi",
    "hdf5_volumes": "yolo_tools.convert.hdf5_volumes",
    "nifti": "yolo_tools.convert.nifti_volumes",  # Decathlon / nnU-Net v2 / plain folders of NIfTI volumes
    "dicom": "yolo_tools.convert.dicom_volumes",  # DICOM series with DICOM SEG or aligned NIfTI labels
    "region_crops": "yolo_tools.cascade",  # a cascade's crops: regions found by one run, judged by a classifier
}


def converter(name: str) -> ModuleType:
    """The module of a converter named in CONVERTERS."""
    return importlib.import_module(CONVERTERS[name])


def check(recipe: Recipe) -> Recipe:
    """The recipe, once its converter is known and its `data.options` fit that converter's schema, as it is
    used now: with the label corrections made for it attached (`convert.corrections.attach`; a recipe that lists
    its own, as a run's does, keeps them), so that its fingerprint names the corrected dataset version."""
    from yolo_tools.convert import corrections

    name = recipe.data.converter
    if name not in CONVERTERS:
        raise UserError(
            f"{recipe.path or 'recipe'}: invalid recipe\n  data.converter: '{name}' is unknown; "
            f"allowed: {', '.join(sorted(CONVERTERS))}"
        )
    parse(converter(name).Options, recipe)
    return corrections.attach(recipe)

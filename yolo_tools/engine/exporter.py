"""Ultralytics' exporter (ONNX, TensorRT, ...) and its dataset converters (COCO annotations, label-map masks),
which the workbench's readers call to write YOLO label files the way Ultralytics writes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yolo_tools.engine.weights import load_model
from yolo_tools.errors import UserError


def export(weights: Path, args: dict[str, Any]) -> Path:
    """Ultralytics' exporter; the ValueErrors it raises are about the arguments (an unknown format, an option
    the format does not support), so they are shown as messages."""
    yolo = load_model(weights)
    try:
        return Path(yolo.export(**args))
    except ValueError as exc:
        raise UserError(f"export {weights}: {exc}") from None


def convert_coco(json_file: Path, out_dir: Path, use_segments: bool) -> Path:
    """Ultralytics' COCO converter on one annotation file; returns the folder of YOLO label files it wrote.

    `out_dir` must not exist yet (Ultralytics would otherwise write to `out_dir2`). Category ids are kept
    as they are, minus one (no COCO-91 to COCO-80 mapping), so the caller maps them to its own classes.
    """
    import shutil

    from ultralytics.data.converter import convert_coco as ultralytics_convert_coco

    annotations = out_dir / "annotations"
    annotations.mkdir(parents=True)
    shutil.copyfile(json_file, annotations / "coco.json")
    ultralytics_convert_coco(str(annotations), str(out_dir / "converted"), use_segments=use_segments, cls91to80=False)
    return out_dir / "converted" / "labels" / "coco"


def convert_label_masks(masks_dir: Path, out_dir: Path, classes: int) -> Path:
    """Ultralytics' converter for label-map masks (pixel value = class index + 1, 0 = background).

    One class per pixel and outer outlines only; for overlapping classes or holes use
    `yolo_tools.codecs.polygons` instead. Returns the folder of YOLO label files it wrote.
    """
    from ultralytics.data.converter import convert_segment_masks_to_yolo_seg

    convert_segment_masks_to_yolo_seg(str(masks_dir), str(out_dir), classes)
    return out_dir

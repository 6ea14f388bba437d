"""Two-stage diagnosis: a detector or segmenter finds the regions (lungs, heart), a classifier judges the crop.

A whole chest film holds labels, tubes, arms and the abdomen; a classifier that only sees the lung
fields has less to be misled by. A cascade is a classify recipe whose data come from the
`region_crops` converter: it takes another classify recipe's converted images (same classes, same
patient-wise train/val split), runs a region model from a run of its own on each image, joins the
boxes of the chosen region classes, adds a margin and keeps that crop. An image where no region is
found keeps its whole frame, so no image drops out of training or evaluation. `yolo_tools predict` on
a run of such a recipe runs the same chain image by image (`predict` below), so training, evaluation
and prediction crop the same way.

Recipe (see recipes/pneumonia-lungs.yaml):
    task: classify
    data:
      converter: region_crops
      options:
        recipe: pneumonia.yaml             # images, classes and split (a path relative to this recipe)
        regions: runs/heart-seg/cpu-10min  # run folder or weights of a detect or segment model
        classes: [left_lung, right_lung]   # region classes to join (default: all)
        margin: 0.1                        # of the joined box's width and height, on each side
      split: {by: source}                  # keep the base recipe's split

The crops for training are made by the `region_crops` converter (yolo_tools/convert/region_crops.py), whose
region model and crop rule this module reuses.
"""


from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import pandas as pd
from tqdm import tqdm

from yolo_tools import engine
from yolo_tools.convert.region_crops import options_of, region_boxes, region_model
from yolo_tools.recipe import Recipe

CONVERTER = "region_crops"
CSV_COLUMNS = ["image", "class_name", "confidence", "region", "region_confidence", "x1", "y1", "x2", "y2"]


def is_cascade(recipe: Recipe | None) -> bool:
    return recipe is not None and recipe.data.converter == CONVERTER


def predict(
    recipe: Recipe, classifier: Path, source: str | list[Path], out_dir: Path, args: dict[str, Any], save_images: bool = True
) -> tuple[Path, Path, int]:
    """The whole chain on images: regions, crop, classify; one row per image, annotated images with the crop drawn
    (unless `save_images` is false: Ultralytics' `save=False`)."""
    options = options_of(recipe)
    weights, keep = region_model(options, recipe.path)
    model = engine.load_model(classifier)
    classify_args = {k: v for k, v in args.items() if k in ("imgsz", "device", "half")}
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    regions = region_boxes(weights, source, keep, options.margin, args, keep_image=True)
    for region, box, region_conf in tqdm(regions, desc="cascade", unit="img"):
        image = region.image
        crop = image if box is None else image[box[1] : box[3], box[0] : box[2]]
        finding = engine.predict_array(model, crop, classify_args)
        top = int(finding.probabilities.argmax())
        x1, y1, x2, y2 = box or (0, 0, image.shape[1], image.shape[0])
        record = {
            "image": region.path.name,
            "class_name": finding.names[top],
            "confidence": float(finding.probabilities[top]),
            "region": "found" if box else "none (whole image)",
            "region_confidence": region_conf,
            "x1": x1, "y1": y1, "x2": x2, "y2": y2,
            "probabilities": {finding.names[i]: float(p) for i, p in enumerate(finding.probabilities)},
        }
        records.append(record)
        if not save_images:
            continue
        drawn = image.copy()
        cv2.rectangle(drawn, (x1, y1), (x2 - 1, y2 - 1), (0, 200, 255), 2)
        label = f"{record['class_name']} {record['confidence']:.2f}"
        cv2.putText(drawn, label, (x1 + 4, y1 + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 200, 255), 2)
        cv2.imwrite(str(out_dir / f"{region.path.stem}.jpg"), drawn)
    csv_path, json_path = out_dir / "predictions.csv", out_dir / "predictions.json"
    pd.DataFrame(records).reindex(columns=CSV_COLUMNS).to_csv(csv_path, index=False)
    json_path.write_text(json.dumps(records, indent=1))
    return csv_path, json_path, len(records)

"""Write what a model found: annotated images plus one CSV row per finding and the same as JSON.

The CSV is for spreadsheets and quick greps; the JSON keeps segment outlines and class probabilities
that do not fit a flat table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import pandas as pd
from tqdm import tqdm

from yolo_tools.operating_point import decide
from yolo_tools.yolo import Prediction

CSV_NAME = "predictions.csv"  # also what marks a folder as an earlier predict output
CSV_COLUMNS = ["image", "class_id", "class_name", "confidence", "x1", "y1", "x2", "y2"]


def _records(prediction: Prediction, point: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    image = prediction.path.name
    names = prediction.names
    if prediction.probabilities is not None:
        probs = prediction.probabilities
        top = decide(probs, point)
        return [
            {
                "image": image,
                "class_id": top,
                "class_name": names[top],
                "confidence": float(probs[top]),
                "probabilities": {names[i]: float(p) for i, p in enumerate(probs)},
            }
        ]
    outlines = prediction.outlines if prediction.outlines is not None else [None] * len(prediction.boxes)
    records = []
    for box, confidence, class_id, outline in zip(prediction.boxes, prediction.confidences, prediction.classes, outlines):
        record = {
            "image": image,
            "class_id": int(class_id),
            "class_name": names[int(class_id)],
            "confidence": float(confidence),
            **dict(zip(("x1", "y1", "x2", "y2"), map(float, box))),
        }
        if outline is not None:
            record["polygon"] = outline.round(1).tolist()
        records.append(record)
    return records


def write(
    predictions: Iterable[Prediction], out_dir: Path, save_images: bool = True, point: dict[str, Any] | None = None
) -> tuple[Path, Path, int]:
    """Consume streamed predictions; returns the CSV path, the JSON path and the number of images.

    `save_images` writes each one's drawing (`Prediction.draw`: predict with `draw=True`, or keep the image).
    `point`, a run's stored operating point, decides a two-class classifier's class (its threshold
    instead of the most probable class; see yolo_tools/operating_point.py).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    count = 0
    for prediction in tqdm(predictions, desc="predict", unit="img"):
        count += 1
        records.extend(_records(prediction, point))
        if save_images:
            cv2.imwrite(str(out_dir / f"{prediction.path.stem}.jpg"), prediction.draw())
    table = pd.DataFrame(records)
    table = table.reindex(columns=[c for c in CSV_COLUMNS if c in table.columns] or CSV_COLUMNS)
    csv_path, json_path = out_dir / CSV_NAME, out_dir / "predictions.json"
    table.to_csv(csv_path, index=False)
    json_path.write_text(json.dumps(records, indent=1))
    return csv_path, json_path, count

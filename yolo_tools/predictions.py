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

CSV_COLUMNS = ["image", "class_id", "class_name", "confidence", "x1", "y1", "x2", "y2"]


def _records(result: Any, point: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    image = Path(result.path).name
    names = result.names
    if result.probs is not None:
        probs = result.probs.data.cpu().numpy()
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
    if result.boxes is None:
        return []
    boxes = result.boxes.xyxy.cpu().numpy()
    confidences = result.boxes.conf.cpu().numpy()
    classes = result.boxes.cls.cpu().numpy().astype(int)
    outlines = result.masks.xy if result.masks is not None else [None] * len(boxes)
    records = []
    for box, confidence, class_id, outline in zip(boxes, confidences, classes, outlines):
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
    results: Iterable[Any], out_dir: Path, save_images: bool = True, point: dict[str, Any] | None = None
) -> tuple[Path, Path, int]:
    """Consume streamed results; returns the CSV path, the JSON path and the number of images.

    `point`, a run's stored operating point, decides a two-class classifier's class (its threshold
    instead of the most probable class; see yolo_tools/operating_point.py).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    count = 0
    for result in tqdm(results, desc="predict", unit="img"):
        count += 1
        records.extend(_records(result, point))
        if save_images:
            cv2.imwrite(str(out_dir / f"{Path(result.path).stem}.jpg"), result.plot())
    table = pd.DataFrame(records)
    table = table.reindex(columns=[c for c in CSV_COLUMNS if c in table.columns] or CSV_COLUMNS)
    csv_path, json_path = out_dir / "predictions.csv", out_dir / "predictions.json"
    table.to_csv(csv_path, index=False)
    json_path.write_text(json.dumps(records, indent=1))
    return csv_path, json_path, count

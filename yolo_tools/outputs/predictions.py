"""Write what a model found: annotated images plus one CSV row per finding and the same as JSON.

The CSV is for spreadsheets and quick greps; the JSON keeps segment outlines and class probabilities
that do not fit a flat table. A folder `predict` writes into carries `MARKER`, so that a later `predict
--out` into it knows it as its own, as a converted dataset is known by its card: a folder of the user's
that merely holds a file called predictions.csv is not.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import pandas as pd
from tqdm import tqdm

from yolo_tools import __version__, engine
from yolo_tools.operating_point import decide
from yolo_tools.prediction import Prediction

CSV_NAME = "predictions.csv"
CSV_COLUMNS = ["image", "class_id", "class_name", "confidence", "x1", "y1", "x2", "y2"]
MARKER = ".yolo_tools-predict.json"  # in a folder predict wrote: what wrote it, from which source


def mark(out_dir: Path, source: str) -> None:
    """Make `out_dir` (if new) and mark it as predict's own, before anything else is written into it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if not is_marked(out_dir):
        (out_dir / MARKER).write_text(json.dumps({"written_by": f"yolo_tools {__version__} predict", "source": source}, indent=1))


def is_marked(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def _records(prediction: Prediction, point: dict[str, Any] | None = None, image: str | None = None) -> list[dict[str, Any]]:
    image = image or prediction.path.name
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
    predictions: Iterable[Prediction],
    out_dir: Path,
    save_images: bool = True,
    point: dict[str, Any] | None = None,
    root: Path | None = None,
) -> tuple[Path, Path, int]:
    """Consume streamed predictions; returns the CSV path, the JSON path and the number of images.

    `save_images` writes each one's drawing (`Prediction.draw`: predict with `draw=True`, or keep the image).
    `point`, a run's stored operating point, decides a two-class classifier's class (its threshold
    instead of the most probable class; see yolo_tools/operating_point.py). With `root` (a folder read one
    level down: `<class>/<image>`), images are named by their path under it, in the rows and as drawings in
    the same sub-folders, so that the same file name in two class folders stays two images.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    count = 0
    for prediction in tqdm(predictions, desc="predict", unit="img"):
        count += 1
        name = _under(prediction.path, root)
        records.extend(_records(prediction, point, name))
        if save_images:
            drawing = out_dir / Path(name).with_suffix(".jpg")
            drawing.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(drawing), engine.draw(prediction))
    table = pd.DataFrame(records)
    table = table.reindex(columns=[c for c in CSV_COLUMNS if c in table.columns] or CSV_COLUMNS)
    csv_path, json_path = out_dir / CSV_NAME, out_dir / "predictions.json"
    table.to_csv(csv_path, index=False)
    json_path.write_text(json.dumps(records, indent=1))
    return csv_path, json_path, count


def _under(path: Path, root: Path | None) -> str:
    """The image's name: its path under `root` (`<class>/<image>`) when given, else the file name."""
    if root is not None:
        for base, file in ((root, path), (root.resolve(), path.resolve())):
            if file.is_relative_to(base):
                return file.relative_to(base).as_posix()
    return path.name

"""A review by rule, not by a radiologist: annotate a review's tasks in Label Studio through its REST API.

    LABEL_STUDIO_URL=... LABEL_STUDIO_API_KEY=... python -m benchmarks.label_rule PROJECT --accept-top 20
    python -m benchmarks.label_rule --sheet corrections/kidney/KEY.jsonl --dataset datasets/kidney@VERSION --out sheet.png

Used for the measured correction pass in docs/labels.md. The tasks are those `yolo_tools inspect RUN
--annotate` made: each image's published labels (regions t0, t1, ...) and the model's false findings
(regions m0, m1, ..., labelled 'model: <class>', with the model's confidence as the region's score). The rule:

- a false finding is accepted as a stone the labels miss when it is among the `accept_top` most confident
  false findings of the review, is stone-sized (width and height each between the 5th and 95th percentile
  of the published boxes in the review), and overlaps no published box (IoU < 0.1: a finding that overlaps
  a label is a box drawn differently, not a missing stone);
- every published box is kept, the missed ones too: from pixels alone a rule cannot tell a stone the model
  missed from a label that is wrong.

Every task gets an annotation (so the review counts it as reviewed), as the reviewer's browser would send it:
the pre-annotation with the accepted findings relabelled to their class and the other findings dropped.

`--sheet` draws what a rule added, so a reader can judge it by eye: one tile per added box, cut around it from
the image as the review saw it, the published labels in green and the added box in orange.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np

from yolo_tools.convert import corrections
from yolo_tools.dataset import Dataset
from yolo_tools.review import label_studio

MODEL_PREFIX = "model: "


def _box(region: dict) -> np.ndarray:
    value = region["value"]
    return np.array([value["x"], value["y"], value["x"] + value["width"], value["y"] + value["height"]], float) / 100


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def review(project: int, accept_top: int) -> dict:
    server = label_studio.connect()
    tasks = list(label_studio.project_tasks(server, project))
    regions = {task["id"]: (task["predictions"][-1]["result"] if task["predictions"] else []) for task in tasks}
    labels = [r for found in regions.values() for r in found if not r["id"].startswith("m")]
    sides = np.array([[r["value"]["width"], r["value"]["height"]] for r in labels]) / 100
    low, high = np.percentile(sides, 5, axis=0), np.percentile(sides, 95, axis=0)
    findings = []
    for task_id, found in regions.items():
        truth = [_box(r) for r in found if not r["id"].startswith("m")]
        for region in found:
            if not region["id"].startswith("m"):
                continue
            box = _box(region)
            size = box[2:] - box[:2]
            sized = bool(np.all(size >= low) and np.all(size <= high))
            apart = all(_iou(box, other) < 0.1 for other in truth)
            findings.append((float(region.get("score") or 0.0), task_id, region["id"], sized and apart))
    candidates = sorted((f for f in findings if f[3]), reverse=True)[:accept_top]
    accepted = {(task_id, region_id) for _, task_id, region_id, _ in candidates}
    for task_id, found in regions.items():
        result = []
        for region in copy.deepcopy(found):
            if region["id"].startswith("m"):
                if (task_id, region["id"]) not in accepted:
                    continue
                key = region["type"]
                region["value"][key] = [name.removeprefix(MODEL_PREFIX) for name in region["value"][key]]
            result.append(region)
        server.call("POST", f"/api/tasks/{task_id}/annotations", f"annotate task {task_id}", json={"result": result, "lead_time": 0.0})
    return {
        "tasks": len(tasks), "labels": len(labels), "false_findings": len(findings),
        "stone_sized_and_apart": sum(f[3] for f in findings), "accepted": len(accepted),
        "accepted_confidence": [round(c, 3) for c, *_ in candidates],
        "size_range": {"width": [float(low[0]), float(high[0])], "height": [float(low[1]), float(high[1])]},
    }  # fmt: skip


def _added_box(line: object) -> tuple[float, ...] | None:
    """The box of an added YOLO label line (class cx cy w h), or None where it is none (a polygon, a class name)."""
    try:
        _, coords = corrections.parse_line(str(line))
    except (ValueError, IndexError):
        return None
    return coords if len(coords) == 4 else None


def sheet(corrections_file: Path, dataset: Path, out: Path, side: int = 200, columns: int = 5) -> int:
    """A contact sheet of the boxes a review added (see the module's docstring); returns how many tiles. Boxes
    only (a detect recipe's review); a message, not a traceback, when the file or the dataset does not fit."""
    from PIL import Image, ImageDraw

    try:
        records = [json.loads(line) for line in corrections_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SystemExit(f"{corrections_file}: not a corrections file (JSON Lines) that can be read: {exc}") from None
    converted = Dataset(dataset, "detect")
    tiles = []
    for record in (r for r in records if isinstance(r, dict) and r.get("action") == "added"):
        found = sorted(converted.images(str(record.get("split"))).glob(f"{record.get('image')}.*"))
        new = _added_box(record.get("new"))
        if not found or new is None:
            why = f"no image {record.get('image')} in its {record.get('split')} split" if not found else f"the added label {record.get('new')!r} is no box"
            raise SystemExit(f"{corrections_file}: {why} of {dataset}; give the dataset version the review saw "
                             "(datasets/<recipe>@<version>, the run's), of a detect recipe")
        image = Image.open(found[0]).convert("RGB")
        width, height = image.size
        draw = ImageDraw.Draw(image)
        published = [(tuple(coords), (60, 220, 60)) for _, coords in converted.labels(record["split"], record["image"]) if len(coords) == 4]
        for (cx, cy, w, h), colour in [*published, (new, (255, 140, 0))]:
            draw.rectangle([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], outline=colour, width=2)
        cx, cy = new[:2]
        left = int(np.clip(cx * width - side / 2, 0, max(width - side, 0)))
        top = int(np.clip(cy * height - side / 2, 0, max(height - side, 0)))
        tiles.append(image.crop((left, top, left + side, top + side)))
    rows = -(-len(tiles) // columns)
    canvas = Image.new("RGB", (columns * side, max(rows, 1) * side), (0, 0, 0))
    for i, tile in enumerate(tiles):
        canvas.paste(tile, ((i % columns) * side, (i // columns) * side))
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, quality=85)
    return len(tiles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=int, nargs="?", help="the Label Studio project inspect --annotate made")
    parser.add_argument("--accept-top", type=int, default=20, help="how many of the most confident qualifying findings to accept")
    parser.add_argument("--sheet", type=Path, metavar="JSONL", help="draw the boxes this corrections file added instead")
    parser.add_argument("--dataset", type=Path, help="with --sheet: the converted dataset version the review saw")
    parser.add_argument("--out", type=Path, default=Path("label-rule-sheet.jpg"), help="with --sheet: the picture to write")
    args = parser.parse_args()
    if args.sheet:
        if args.dataset is None:
            parser.error("--sheet needs --dataset (the dataset version the review saw, datasets/<recipe>@<version>)")
        print(f"{sheet(args.sheet, args.dataset, args.out)} added boxes drawn: {args.out}")
        return
    if args.project is None:
        parser.error("give the Label Studio project, or --sheet")
    print(json.dumps(review(args.project, args.accept_top), indent=1))


if __name__ == "__main__":
    main()

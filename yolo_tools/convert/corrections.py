"""Label corrections: an overlay over the published labels, kept beside the data, applied by the converter.

A correction says which image, the label it had, the label it gets, who made it and when. Corrections come
back from a review in Label Studio (`yolo_tools inspect RUN --load KEY`, yolo_tools/review/label_review.py), one
file per review, and are never written into the source: the published labels stay as they are, and the
corrected set is another version of the dataset.

Where: `corrections/<recipe>/` in the working folder (`$YOLO_TOOLS_CORRECTIONS` moves it), beside
`datasets/` and `runs/`. Not under the data root, which holds raw data as published and may be a shared,
read-only copy (`../shared/data` here); a corrections folder inside it, or inside the recipe's source, is
refused. Each review is one JSON Lines file, `<key>.jsonl`, written whole or not at all and never
rewritten; a line:

    {"image": "IMG_0042", "split": "val", "action": "changed", "old": "0 0.41 0.52 0.03 0.04",
     "new": "0 0.42 0.52 0.05 0.04", "who": "reviewer@example.org", "when": "2026-01-05T10:15:00Z",
     "review": "ls-20260105-101500", "task": 17}

`action` is `changed`, `added` (no `old`) or `removed` (no `new`); labels are YOLO label lines (detect,
segment: class and box or polygon, normalised) or class names (classify).

Versions: a recipe whose `data.corrections` is left out gets every file here when it is converted or trained
for use (`attach`, called by `convert.checks.check`); the list, with each file's SHA-256, becomes part of its
fingerprint, so the corrected set is a new dataset version and a run records exactly the files it was
trained on (its recipe.yaml). `data.corrections: []` keeps the published labels. A listed file that is gone or
changed is refused: that version can no longer be made.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from yolo_tools import tasks
from yolo_tools.convert.samples import Sample, SampleList
from yolo_tools.errors import UserError
from yolo_tools.locations import corrections_dir, data_root
from yolo_tools.recipe import CorrectionFile, Recipe

SUFFIX = ".jsonl"
ACTIONS = ("changed", "added", "removed")
TOLERANCE = 1e-6  # label lines match when their class is the same and every coordinate within this


def folder(recipe_name: str) -> Path:
    """`corrections/<recipe>/`: this recipe's correction files."""
    return corrections_dir() / recipe_name


def check_place(recipe_name: str, sources: Iterable[Path] = ()) -> Path:
    """The recipe's corrections folder, if the workbench may write there: never inside the data root or a source."""
    target = folder(recipe_name)
    for protected, what in [(data_root(), "the data root"), *((Path(s).resolve(), "the source") for s in sources)]:
        if target == protected or target.is_relative_to(protected) or protected.is_relative_to(target):
            raise UserError(
                f"{target}: label corrections would be written inside {what} {protected}, which holds data as "
                "published (and may be shared and read-only). Point YOLO_TOOLS_CORRECTIONS at a folder of your "
                "own (default: ./corrections)"
            )
    return target


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def current(recipe_name: str) -> list[CorrectionFile]:
    """Every correction file of the recipe, oldest first (names start with the review's time)."""
    place = folder(recipe_name)
    paths = sorted(place.glob(f"*{SUFFIX}")) if place.is_dir() else []
    return [CorrectionFile(file=path.name, sha256=digest(path)) for path in paths]


def attach(recipe: Recipe) -> Recipe:
    """The recipe as it is used now: with the corrections found for it, unless it lists its own (a run's recipe,
    or `[]` for the published labels). Nothing found: the recipe unchanged, its version that of the published labels."""
    if recipe.data.corrections is not None:
        return recipe
    found = current(recipe.name)
    if not found:
        return recipe
    return recipe.model_copy(update={"data": recipe.data.model_copy(update={"corrections": found})})


def without(recipe: Recipe) -> Recipe:
    """The recipe with the published labels only (`data.corrections: []`)."""
    return recipe.model_copy(update={"data": recipe.data.model_copy(update={"corrections": []})})


def write(recipe_name: str, key: str, records: Sequence[dict[str, Any]], sources: Iterable[Path] = ()) -> Path:
    """One review's corrections as `corrections/<recipe>/<key>.jsonl`, whole or not at all; never over a file."""
    place = check_place(recipe_name, sources)
    path = place / f"{key}{SUFFIX}"
    if path.exists():
        raise UserError(f"{path}: the corrections of review {key} are already there; they are never rewritten")
    place.mkdir(parents=True, exist_ok=True)
    partial = place / f".{path.name}.partial-{os.getpid()}"
    try:
        partial.write_text("".join(json.dumps(record, sort_keys=True) + "\n" for record in records), encoding="utf-8")
        os.link(partial, path)  # fails if another process wrote the same key meanwhile, never replaces it
    except FileExistsError:
        raise UserError(f"{path}: the corrections of review {key} are already there; they are never rewritten") from None
    finally:
        partial.unlink(missing_ok=True)
    return path


def read(recipe_name: str, listed: CorrectionFile) -> list[dict[str, Any]]:
    """The records of one listed file, checked: it must be there, unchanged, and every line a correction."""
    path = folder(recipe_name) / listed.file
    fix = ("restore it, or convert with the corrections as they are now (leave data.corrections out of the recipe), "
           "or without any (data.corrections: [])")
    if not path.is_file():
        raise UserError(f"{path}: this dataset version applies that corrections file, which is gone; {fix}")
    if digest(path) != listed.sha256:
        raise UserError(f"{path}: changed since this dataset version was made (its SHA-256 differs); {fix}")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise UserError(f"{path}, line {number}: not a JSON object; each line is one correction") from None
        if not isinstance(record, dict) or record.get("action") not in ACTIONS or not record.get("image"):
            raise UserError(f"{path}, line {number}: a correction needs 'image' and 'action' ({', '.join(ACTIONS)})")
        record["_where"] = f"{path}, line {number}"
        records.append(record)
    return records


def parse_line(line: str) -> tuple[int, tuple[float, ...]]:
    tokens = line.split()
    return int(tokens[0]), tuple(float(token) for token in tokens[1:])


def same_line(a: str, b: str) -> bool:
    """Two YOLO label lines for the same object: same class, coordinates equal within TOLERANCE."""
    (class_a, coords_a), (class_b, coords_b) = parse_line(a), parse_line(b)
    return class_a == class_b and len(coords_a) == len(coords_b) and all(abs(x - y) <= TOLERANCE for x, y in zip(coords_a, coords_b))


def corrected_lines(lines: list[str], records: Sequence[dict[str, Any]]) -> list[str]:
    """`lines` with the records applied in order; a record whose old label is not there is refused."""
    result = [line.strip() for line in lines if line.strip()]
    for record in records:
        if record["action"] in ("changed", "removed"):
            index = next((i for i, line in enumerate(result) if same_line(line, record["old"])), None)
            if index is None:
                raise UserError(
                    f"{record['_where']}: image {record['image']} has no label {record['old']!r} any more (its "
                    "published labels changed since the review); review that image again, or remove the line"
                )
            if record["action"] == "removed":
                del result[index]
            else:
                result[index] = record["new"]
        else:
            result.append(record["new"])
    return result


def _labels_after(sample: Sample, records: Sequence[dict[str, Any]]) -> Sample:
    """The sample with its corrections applied, read now: a correction that no longer fits fails before anything is written."""
    if sample.labels is None:  # classify: the class is the folder the image lies in
        category = sample.category
        for record in records:
            if record["action"] != "changed" or record["old"] != category:
                raise UserError(
                    f"{record['_where']}: image {record['image']} is of class {category!r}, not {record['old']!r} "
                    "(its published class changed since the review); review it again, or remove the line"
                )
            category = record["new"]
        return dataclasses.replace(sample, category=category)
    lines = corrected_lines(sample.labels(), records)
    return dataclasses.replace(sample, labels=lambda: list(lines), masks=None)


def apply(samples: Sequence[Sample], recipe: Recipe) -> Sequence[Sample]:
    """The converter's samples with the recipe's corrections applied; counts in `.corrections` for the card.

    A correction naming an image the source no longer has, or a label the image no longer has, is refused
    with the file and line: a corrected set is made whole or not at all. A segmentation sample with a
    correction is scored against its corrected polygons (its published mask no longer says what is true).
    """
    listed = recipe.data.corrections or []
    if not listed:
        return samples
    by_image: dict[str, list[dict[str, Any]]] = {}
    for entry in listed:
        for record in read(recipe.name, entry):
            by_image.setdefault(str(record["image"]), []).append(record)
    names = {sample.name for sample in samples}
    gone = [records[0] for image, records in by_image.items() if image not in names]
    if gone:
        raise UserError(
            f"{gone[0]['_where']}: image {gone[0]['image']} is no longer in the source of recipe '{recipe.name}'"
            f"{f' (and {len(gone) - 1} more)' if len(gone) > 1 else ''}; restore it, or remove its corrections "
            "(or convert without corrections: data.corrections: [])"
        )
    for records in by_image.values():
        for record in records:
            _check_record(record, recipe)
    corrected = SampleList(
        [_labels_after(sample, by_image[sample.name]) if sample.name in by_image else sample for sample in samples],
        getattr(samples, "left_out", {}),
    )
    corrected.volumes = getattr(samples, "volumes", {})
    counts = Counter(record["action"] for records in by_image.values() for record in records)
    corrected.corrections = {
        "files": [entry.model_dump() for entry in listed],
        "images": len(by_image),
        **{action: counts.get(action, 0) for action in ACTIONS},
    }
    return corrected


SIDES = {"changed": ("old", "new"), "added": ("new",), "removed": ("old",)}


def _check_record(record: dict[str, Any], recipe: Recipe) -> None:
    """The labels a record names are labels of this recipe's task and classes."""
    for side in SIDES[record["action"]]:
        value = record.get(side)
        if tasks.get(recipe.task).label_lines is None:  # a class per image (classify), not label lines
            if value not in recipe.classes:
                raise UserError(f"{record['_where']}: {side} class {value!r} is not one of the recipe's classes {recipe.classes}")
            continue
        try:
            class_id, coords = parse_line(str(value))
        except (ValueError, IndexError):
            raise UserError(f"{record['_where']}: {side} label {value!r} is not a YOLO label line") from None
        if not 0 <= class_id < len(recipe.classes) or len(coords) < 4:
            raise UserError(f"{record['_where']}: {side} label {value!r} names no class of {recipe.classes} with a box or polygon")

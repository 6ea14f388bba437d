"""Per-image results broken down by patient fields (age, sex, site, ...): where does the model fail?

A model can look good on average and fail one group of patients. Given the per-image results of
`yolo_tools evaluate` and a dataset's `metadata.csv` (joined from the recipe's `data.metadata`), each
field's values become groups, and each group gets the task's numbers (its module says which): detect counts findings, misses and
false positives (recall = found / (found + missed)); segment averages per-image Dice and IoU; classify
gives accuracy and the mean probability of the true class. Numeric fields with many values (age) are cut
into quartiles; a blank value is its own group, `(unknown)`, so no image silently drops out.

Examples:
    >>> breakdown(per_image, pd.read_csv("datasets/pneumonia/metadata.csv", dtype=str), tasks.get("classify").group_numbers)
       field   value  images  patients  accuracy  p_truth
    0    sex       F      40        12     0.900    0.810
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

OWN_COLUMNS = ("image", "split", "patient")
UNKNOWN = "(unknown)"
MAX_DISTINCT = 6  # a numeric field with more values than this is cut into quartiles


def _values(column: pd.Series) -> pd.Series:
    """The group of each image: the value as written, or a quartile range for many-valued numbers."""
    text = column.fillna("").astype(str).str.strip()
    numbers = pd.to_numeric(text.where(text != ""), errors="coerce")
    is_numeric = numbers.notna().sum() == (text != "").sum() and numbers.nunique() > MAX_DISTINCT
    if not is_numeric:
        return text.replace("", UNKNOWN)
    edges = np.unique(np.quantile(numbers.dropna(), [0, 0.25, 0.5, 0.75, 1]))
    names = [f"{low:g}-{high:g}" for low, high in zip(edges[:-1], edges[1:])]
    bins = pd.cut(numbers, edges, labels=names, include_lowest=True)
    return bins.astype(str).where(numbers.notna(), UNKNOWN)


def _order(value: str) -> tuple[int, float, str]:
    """Numbers (and quartile ranges) by value, then text, then `(unknown)` last."""
    if value == UNKNOWN:
        return (2, 0.0, value)
    number = re.match(r"-?\d+(\.\d*)?(e[-+]?\d+)?", value)
    return (0, float(number.group()), value) if number else (1, 0.0, value)


def breakdown(
    per_image: pd.DataFrame, metadata: pd.DataFrame, numbers: Callable[[pd.DataFrame], dict[str, float]]
) -> pd.DataFrame | None:
    """One row per (field, value): images, patients and the task's numbers; None when no field applies.

    `per_image` is evaluate's table (its `image` may carry a class folder, as for classify);
    `metadata` has `image`, `patient` and one column per field; `numbers` is the task's own summary of a
    group of per-image rows (yolo_tools/tasks/: `Task.group_numbers`).
    """
    fields = [c for c in metadata.columns if c not in OWN_COLUMNS]
    if not fields or per_image.empty:
        return None
    names = per_image["image"].map(lambda image: Path(str(image)).name)
    # the dataset's metadata names each image's patient; a `patient` column of the scores would be duplicated
    joined = per_image.drop(columns=["patient"], errors="ignore").assign(_name=names).merge(
        metadata.drop_duplicates("image").rename(columns={"image": "_name"}), on="_name", how="left"
    )
    rows = []
    for name in fields:
        values = _values(joined[name])
        for value, group in sorted(joined.groupby(values), key=lambda item: _order(item[0])):
            rows.append(
                {
                    "field": name,
                    "value": value,
                    "images": len(group),
                    "patients": int(group["patient"].nunique()),
                    **numbers(group),
                }
            )
    return pd.DataFrame(rows)

"""Per-patient fields (age, sex, scanner, site, ...) joined to every converted image via `metadata.csv`.

A model that is good on average can fail one group of patients; to see that, evaluation, the report and
FiftyOne need each image's patient fields. A recipe names a CSV with one row per patient
(`data.metadata: {path: patients.csv, key: patient}`); the key column holds the same patient or study
ids the split groups by (with `split.by: file`, the image name without its extension). The writer then
puts `metadata.csv` beside the dataset: one row per image with `image, split, patient` and the joined
fields, blank where the CSV has no row for that patient, and counts the matches on the dataset card.

The CSV is read once before conversion starts, so a wrong file or column fails before any work. Edits
to the CSV alone do not change the recipe: convert again with `--force` to refresh the dataset.

Examples:
    >>> table = read(recipe, source_folder)                  # None when the recipe names no metadata
    >>> summary = write(table, rows, dataset_folder / METADATA_CSV)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from yolo_tools.dataset import METADATA_CSV
from yolo_tools.errors import UserError
from yolo_tools.recipe import Recipe

__all__ = ["METADATA_CSV", "read", "write"]
IMAGE_COLUMNS = ("image", "split", "patient")


def read(recipe: Recipe, source: Path | None) -> pd.DataFrame | None:
    """The recipe's per-patient table indexed by patient id (strings, as written), or None without one."""
    spec = recipe.data.metadata
    if spec is None:
        return None
    path = Path(spec.path).expanduser()
    if not path.is_absolute():
        if source is None:
            kind = recipe.data.source.kind
            raise UserError(f"{recipe.path}: data.metadata.path must be absolute for a {kind} source")
        path = source / path
    if not path.is_file():
        raise UserError(f"{recipe.path}: data.metadata.path: no such file {path}")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"{path}: not a readable CSV: {exc}") from None
    table.columns = [str(column).strip() for column in table.columns]
    if spec.key not in table.columns:
        raise UserError(f"{path}: no key column '{spec.key}' (data.metadata.key); columns: {', '.join(table.columns)}")
    columns = spec.columns if spec.columns is not None else [c for c in table.columns if c != spec.key]
    missing = [c for c in columns if c not in table.columns]
    clashing = [c for c in columns if c in IMAGE_COLUMNS]
    if missing or clashing:
        problem = f"no column {missing}" if missing else f"columns {clashing} clash with metadata.csv's own"
        raise UserError(f"{path}: data.metadata.columns: {problem}; columns: {', '.join(table.columns)}")
    keys = table[spec.key].str.strip()
    duplicated = keys[keys.duplicated()]
    if len(duplicated):
        raise UserError(
            f"{path}: {len(duplicated)} repeated patient ids in '{spec.key}' (first: {duplicated.iloc[0]}); "
            "the table needs one row per patient"
        )
    table = table[columns].set_index(keys.rename("patient"))
    table.attrs["path"] = str(path)
    return table


def write(table: pd.DataFrame, rows: Sequence[tuple[str, str, str]], target: Path) -> dict:
    """`metadata.csv` for the written images (image, split, patient) with the joined fields; a card summary."""
    images = pd.DataFrame(list(rows), columns=list(IMAGE_COLUMNS)).astype(str)
    joined = images.join(table, on="patient")
    joined.to_csv(target, index=False)
    patients = set(images["patient"])
    matched = patients & set(table.index)
    return {
        "file": table.attrs.get("path", ""),
        "columns": list(table.columns),
        "patients": len(patients),
        "patients_matched": len(matched),
        "images_without_metadata": int((~images["patient"].isin(matched)).sum()),
        "rows_unused": len(set(table.index) - patients),
    }

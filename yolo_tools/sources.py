"""Find a recipe's raw data under the data root, or say exactly how to get it."""

from __future__ import annotations

from pathlib import Path

from yolo_tools.errors import UserError
from yolo_tools.locations import DATA_ENV, data_root
from yolo_tools.recipe import Recipe, Source


def default_folder(source: Source) -> str:
    """Where a source lives under the data root when the recipe does not say."""
    if source.path:
        return source.path
    return f"{source.project}-v{source.version}"


def locate(recipe: Recipe, root: str | Path | None = None) -> Path | None:
    """The folder holding the recipe's raw data as published (None for synthetic data)."""
    source = recipe.data.source
    if source.kind == "synthetic":
        return None
    folder = Path(default_folder(source))
    path = folder if folder.is_absolute() else data_root(root) / folder
    if path.is_dir():
        return path
    how = [f"{recipe.path}: data for '{recipe.name}' not found at {path}"]
    how.append(f"  Point {DATA_ENV} (or --data-root) at the folder that holds '{folder}'")
    if source.kind == "roboflow":
        how.append(
            f"  or pull it from Roboflow: yolo_tools pull {source.workspace}/{source.project}/{source.version}"
            " (needs ROBOFLOW_API_KEY)"
        )
    if source.url:
        how.append(f"  or download it by hand from {source.url}")
    raise UserError("\n".join(how))

"""The base of every converter's `data.options` schema, and the one message a wrong option gets.

Each converter module declares `class Options(ConverterOptions)` with its keys, types and defaults, so an
unknown key (`min_aera`) or a wrong type (`min_area: ten`) is refused when the recipe is read, naming the
recipe file and the key, instead of being ignored or failing after the data was located or pulled.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from yolo_tools.errors import UserError
from yolo_tools.recipe import Recipe


class ConverterOptions(BaseModel):
    """Options of one converter: unknown keys are errors, values keep their declared types."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Model = TypeVar("Model", bound=ConverterOptions)


def parse(model: type[Model], recipe: Recipe) -> Model:
    """`recipe.data.options` as `model`; any problem is one UserError naming the recipe file and each key."""
    try:
        return model(**recipe.data.options)
    except ValidationError as exc:
        raise UserError(describe(exc, model, recipe)) from None


def describe(error: ValidationError, model: type[ConverterOptions], recipe: Recipe) -> str:
    allowed = ", ".join(model.model_fields) or "none (remove data.options)"
    lines = [f"{recipe.path or 'recipe'}: invalid recipe"]
    for item in error.errors():
        key = ".".join(["data", "options", *map(str, item["loc"])])
        if item["type"] == "extra_forbidden":
            message = f"unknown key; {recipe.data.converter} takes: {allowed}"
        else:
            message = f"{item['msg'].removeprefix('Value error, ')} (got {item['input']!r})"
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)

"""The base of every converter's `data.options` schema, and the one message a wrong option gets.

Each converter module declares `class Options(ConverterOptions)` with its keys, types and defaults, so an
unknown key (`min_aera`) or a wrong type (`min_area: ten`) is refused when the recipe is read, naming the
recipe file and the key, instead of being ignored or failing after the data was located or pulled.
Without a recipe (`convert FORMAT`, `evaluate --data`) the same options come from the command line as
`--option KEY=VALUE` (`read_pairs`), and a wrong one is named as that flag (`checked_options`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import yaml
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


def read_pairs(items: Sequence[str], flag: str = "--option") -> dict[str, Any]:
    """`KEY=VALUE` pairs from the command line as converter options, each value read as YAML
    (`layout=folders`, `slice_axis=2`, `label_values=[1,2]`, `segments={Liver: liver}`)."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} {item}: give KEY=VALUE, e.g. {flag} layout=folders")
        try:
            options[key.strip()] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            raise UserError(f"{flag} {item}: the value is not readable (a word, a number, or a list such as [1,2])") from None
    return options


def checked_options(model: type[ConverterOptions], options: dict[str, Any], converter: str, given: dict[str, Any], flag: str = "--option") -> dict[str, Any]:
    """`options` if they fit `model`; else one UserError naming each key as `flag KEY` where it came from the
    command line (`given`), or as data.options.KEY where it came from the recipe."""
    try:
        model(**options)
    except ValidationError as exc:
        allowed = ", ".join(model.model_fields) or "none"
        lines = [f"{converter} options (the data.options of its recipe):"]
        for item in exc.errors():
            key = str(item["loc"][0]) if item["loc"] else ""
            where = f"{flag} {key}" if key in given else f"data.options.{key}"
            if item["type"] == "extra_forbidden":
                lines.append(f"  {where}: unknown key; {converter} takes: {allowed}")
            else:
                lines.append(f"  {where}: {item['msg'].removeprefix('Value error, ')} (got {item['input']!r})")
        raise UserError("\n".join(lines)) from None
    return options

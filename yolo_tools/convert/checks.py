"""The check a recipe's `data` section gets where the recipe is loaded for use (`pipeline`, `sources.pull`, and
`conversion.prepare` for recipes handed over as objects): its converter is one of the registry's and its
`data.options` fit that converter's schema. `yolo_tools.recipe` imports no converter, so reading a recipe
stays cheap; this is where the converter is loaded.
"""

from __future__ import annotations

from yolo_tools.convert import corrections
from yolo_tools.convert.options import parse
from yolo_tools.convert.registry import CONVERTERS, converter
from yolo_tools.errors import UserError
from yolo_tools.recipe import Recipe


def check(recipe: Recipe) -> Recipe:
    """The recipe, once its converter is known and its `data.options` fit that converter's schema, as it is
    used now: with the label corrections made for it attached (`convert.corrections.attach`; a recipe that lists
    its own, as a run's does, keeps them), so that its fingerprint names the corrected dataset version."""
    name = recipe.data.converter
    if name not in CONVERTERS:
        raise UserError(
            f"{recipe.path or 'recipe'}: invalid recipe\n  data.converter: '{name}' is unknown; "
            f"allowed: {', '.join(sorted(CONVERTERS))}"
        )
    parse(converter(name).Options, recipe)
    return corrections.attach(recipe)

"""Write docs/reference/recipe.md, the recipe reference, from the schemas that check a recipe.

Every key a recipe may hold is declared once, as a pydantic model: `yolo_tools.recipe.Recipe` and the
models under it, the intensity rules, and each converter's `Options`. This script turns those models into
the reference page, so the page names exactly what a recipe is checked against and cannot drift from it:
`tests/test_docs.py` fails while the committed page differs from what `render()` gives. Written by hand
because MkDocs plugins that render pydantic models (mkdocstrings and its pydantic extension) document Python
classes, not the YAML keys, nesting and defaults a recipe writer needs.

    python docs/recipe_reference.py            # rewrite the page after a schema changed
"""

from __future__ import annotations

import inspect
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reference" / "recipe.md"
ULTRALYTICS_TRAIN = "https://docs.ultralytics.com/modes/train/#train-settings"


def _type(annotation: Any, inner: bool = False) -> str:
    """A field's type as a recipe writer reads it: `text`, `whole number`, one of listed values, a list of...
    (`inner`: inside a list or mapping, where a union gets brackets so that it reads as one item)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0], inner)
    if origin is typing.Literal:
        values = ", ".join(f"`{_yaml(a)}`" for a in args)
        return values if len(args) == 1 else f"one of {values}"
    if origin in (typing.Union, types.UnionType):
        named = [a for a in args if a is not type(None)]
        text = " or ".join(_type(a, inner) for a in named) + (" or `null`" if len(named) < len(args) else "")
        return f"({text})" if inner and len(args) > 1 else text
    if origin is tuple:
        return "[" + ", ".join(_type(a, True) for a in args if a is not Ellipsis) + "]"
    if origin is list:
        return f"list of {_type(args[0], True)}"
    if origin is dict:
        return f"mapping of {_type(args[0], True)} to {_type(args[1], True)}" if args else "mapping"
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return f"mapping ([{_title(annotation)}](#{_anchor(annotation)}))"
    names = {str: "text", int: "whole number", float: "number", bool: "`true` or `false`", Path: "path", Any: "anything"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _field_type(field: FieldInfo) -> str:
    """A field's type; a text field whose values come from a registry (a recipe's `task`: yolo_tools/tasks/) lists
    them, as a fixed choice would."""
    listed = (field.json_schema_extra or {}).get("enum") if isinstance(field.json_schema_extra, dict) else None
    if listed:
        return "one of " + ", ".join(f"`{_yaml(value)}`" for value in listed)
    return _type(field.annotation)


def _yaml(value: Any) -> str:
    """A value as it is written in a recipe (YAML flow style: `window`, `0.5`, `true`, `[0]`, `{}`)."""
    if isinstance(value, str):
        return value if value and value.strip() == value and not value[0] in "*&!{[" else json.dumps(value)
    return json.dumps(value, default=str)


def _limits(field: FieldInfo) -> str:
    """Bounds and patterns declared on the field (ge, gt, le, lt, lengths, pattern)."""
    words = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "at least", "max_length": "at most"}
    parts = []
    for item in field.metadata:
        for attr, word in words.items():
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{word} {value}" + ((" item" if value == 1 else " items") if "length" in attr else ""))
        pattern = getattr(item, "pattern", None)
        if pattern:
            parts.append(f"matches `{pattern}`")
    return "; ".join(parts)


def _text(text: str) -> str:
    """A description as table text: `<recipe>` is not an HTML tag, `*.csv` no emphasis, `|` no new cell."""
    return text.replace("<", "&lt;").replace("*", "\\*").replace("|", "/")


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return "(its defaults)"
    return f"`{_yaml(value)}`"


def _title(model: type[BaseModel]) -> str:
    return model.__name__


def _anchor(model: type[BaseModel]) -> str:
    return f"{model.__module__.rsplit('.', 1)[-1]}-{model.__name__}".lower().replace("_", "-")


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field's type holds (in a union, a list, Optional...), in order."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += [m for m in _models_in(arg) if m not in found]
    return found


def _is_list(annotation: Any) -> bool:
    """Whether a field holds a list (of models): its keys are then written `key[].sub`."""
    if typing.get_origin(annotation) is list:
        return True
    return any(_is_list(arg) for arg in typing.get_args(annotation))


def _doc(model: type[BaseModel]) -> str:
    """The model's own docstring (not one inherited from a base class)."""
    doc = model.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if doc else ""


def _table(model: type[BaseModel], prefix: str, skip: frozenset[str] = frozenset()) -> list[str]:
    lines = ["| key | type | default | what it is |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in skip or field.exclude:
            continue
        what = " ".join(filter(None, [field.description or "", f"({_limits(field)})" if _limits(field) else ""]))
        lines.append(f"| `{prefix}{name}` | {_field_type(field)} | {_default(field)} | {_text(what)} |")
    return lines


def _section(model: type[BaseModel], heading: str, prefix: str, out: list[str], seen: set[type[BaseModel]], level: int = 3) -> None:
    """One model's table, then a section for each model nested in its fields (each model once)."""
    seen.add(model)
    out += ["", f"{'#' * level} {heading} {{#{_anchor(model)}}}", ""]
    if _doc(model):
        out += [_doc(model), ""]
    out += _table(model, prefix)
    for name, field in model.model_fields.items():
        for nested in _models_in(field.annotation):
            if nested not in seen:
                key = f"{prefix}{name}" + ("[]" if _is_list(field.annotation) else "")
                _section(nested, f"`{key}`: {_title(nested)}", f"{key}.", out, seen, level)


def render() -> str:
    from yolo_tools.convert import registry as convert
    from yolo_tools.engine.args import RESERVED, WORKBENCH_KEYS
    from yolo_tools.recipe import Recipe

    out = [
        "# Recipe reference",
        "",
        "<!-- Written by docs/recipe_reference.py from the schemas; edit those, then run it again. -->",
        "",
        "Every key a recipe may hold, as the schemas that check it declare it (`yolo_tools/recipe.py`, the",
        "intensity rules in `yolo_tools/intensity.py`, each converter's `Options`). A key that is not listed is",
        "refused when the recipe is read, naming the file and the key. How to write one: [Writing a recipe](../recipes/index.md).",
        "",
        "## The recipe",
    ]
    seen: set[type[BaseModel]] = set()
    out += ["", f"### Top level {{#{_anchor(Recipe)}}}", ""]
    out += _table(Recipe, "", skip=frozenset({"path"}))
    for name, field in Recipe.model_fields.items():
        for nested in _models_in(field.annotation):
            if nested not in seen:
                _section(nested, f"`{name}`: {_title(nested)}", f"{name}.", out, seen)
    out += [
        "",
        "## `train`: Ultralytics' train arguments",
        "",
        f"`train:` takes any of [Ultralytics' train arguments]({ULTRALYTICS_TRAIN}), checked by Ultralytics' own",
        "`check_cfg` when the recipe is read. These are set by the workbench from the recipe and the run layout,",
        "and refused in `train:` and on the command line: " + ", ".join(f"`{k}`" for k in sorted(RESERVED)) + ".",
        "",
        "## Keys the workbench adds on the command line",
        "",
        "Given as `key=value` after a verb, read and checked like Ultralytics' own (`yolo_tools/engine/args.py`).",
        "",
        "| key | kind | what it takes |",
        "|---|---|---|",
    ]
    out += [f"| `{key}` | {spec.kind} | {_text(spec.what)} |" for key, spec in WORKBENCH_KEYS.items()]
    out += ["", "## Converters: `data.converter` and `data.options`", ""]
    out += ["`data.options` is checked against the schema of the converter `data.converter` names. The same keys",
            "are given as `--option KEY=VALUE` to `convert FORMAT` and `evaluate --data`.", ""]
    for name in convert.CONVERTERS:
        module = convert.converter(name)
        options = module.Options
        summary = inspect.cleandoc(module.__doc__ or "").split("\n\n", 1)[0].replace("\n", " ")
        out += [f"### `{name}` {{#converter-{name.replace('_', '-')}}}", "", summary, "", f"Module: `{module.__name__}`.", ""]
        if not options.model_fields:
            out += ["No options.", ""]
            continue
        out += _table(options, "data.options.") + [""]
        nested_seen: set[type[BaseModel]] = set()
        for key, field in options.model_fields.items():
            for nested in _models_in(field.annotation):
                if nested not in nested_seen:
                    nested_seen.add(nested)
                    out += [f"#### `data.options.{key}`: {_title(nested)} {{#{_anchor(nested)}}}", ""]
                    out += [_doc(nested), ""] if _doc(nested) else []
                    out += _table(nested, f"data.options.{key}.") + [""]
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")

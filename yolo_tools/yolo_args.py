"""Ultralytics' own arguments: which names exist, how `yolo` reads `key=value`, and its type checks.

No second set of rules: names come from Ultralytics' `cfg/default.yaml`, values typed on the command line
are read by its `smart_value` (so `lr0=1e-3` is the float 0.001, as with `yolo`), and types and ranges
are checked by its `check_cfg` (and `check_imgsz`), the checks `yolo` runs itself.

Reading a recipe must stay cheap (convert, report and pull read one without training anything), and
importing Ultralytics pulls in torch. So the names are read from `default.yaml` as a plain file, found
with `importlib.util.find_spec` without importing the package, whenever a recipe is read; values and types
go through Ultralytics' functions only in the verbs that load it anyway (train, val, predict, evaluate,
export, inspect), before any conversion or training starts. This module is separate from `yolo.py` for
that reason: `recipe.py` imports it, and it must not import numpy, torch or Ultralytics at import time.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import yaml

from yolo_tools.errors import UserError

# Arguments the workbench sets itself from the recipe and the run layout; a recipe or a command line that
# set them would silently be overridden, so they are refused instead.
RESERVED = frozenset({"data", "model", "task", "mode", "project", "name"})
# What to do instead, per reserved name, for the message that refuses it.
INSTEAD = {
    "name": "name the run with --name NAME (runs/<recipe>/NAME)",
    "project": "runs go to runs/<recipe>/; YOLO_TOOLS_RUNS moves the runs folder",
    "data": "the recipe's data: section says what to train on",
    "model": "the recipe's model: key says what to start from (or model= on the train command line)",
    "task": "the recipe's task: key says it",
    "mode": "the verb (train, val, predict, ...) says it",
}


@functools.cache
def default_args() -> dict[str, Any]:
    """Ultralytics' arguments and defaults, from its `cfg/default.yaml` read as a file (no import)."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("Ultralytics is not installed: .venv/bin/pip install -r requirements.lock")
    path = Path(next(iter(spec.submodule_search_locations))) / "cfg" / "default.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def check_names(args: dict[str, Any], origin: str, allowed: frozenset[str] = frozenset()) -> None:
    """Refuse unknown or reserved argument names (ValueError naming the key) before a long run starts."""
    known = default_args()
    for key in args:
        if key in allowed:
            continue
        if key in RESERVED:
            raise ValueError(f"'{key}' is set by yolo-tools from the recipe; remove it from {origin}: {INSTEAD[key]}")
        if key not in known:
            close = sorted(k for k in known if k.startswith(str(key)[:3]))[:5]
            hint = f" (did you mean: {', '.join(close)}?)" if close else ""
            raise ValueError(f"'{key}' is not an Ultralytics train argument{hint}")


def parse_pairs(items: list[str]) -> dict[str, Any]:
    """`key=value` pairs read as `yolo` reads them (Ultralytics' `smart_value`): 1e-3 a float, True a bool."""
    if not items:
        return {}
    from ultralytics.cfg import smart_value

    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise UserError(f"'{item}': arguments after the recipe or run are key=value, e.g. epochs=3 imgsz=320")
        if not value:
            raise UserError(f"'{item}': give '{key}' a value, e.g. {key}=3, or leave it out")
        parsed[key] = smart_value(value)
    return parsed


def check_types(args: dict[str, Any], where: str) -> dict[str, Any]:
    """Ultralytics' own type and range checks, one key at a time so the message names it; returns the values
    as Ultralytics canonicalises them (e.g. `epochs=1e2` → 100).

    `where` prefixes the key in the message: "command line: " or "<recipe file>: train.".
    """
    from ultralytics.cfg import check_cfg
    from ultralytics.utils.checks import check_imgsz

    checked = {}
    for key, value in args.items():
        one = {key: value}
        if key == "imgsz" and value == "auto":  # chosen from the data before training (yolo_tools/input_size.py)
            checked.update(one)
            continue
        try:
            check_cfg(one, hard=True)
            if key == "imgsz" and value is not None:
                check_imgsz(value, stride=1, max_dim=2)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{where}{key}: {exc}{_yaml_hint(value)}") from None
        checked.update(one)
    return checked


def _yaml_hint(value: Any) -> str:
    """YAML 1.1 reads `1e-3` (no dot) as text, where `yolo` reads a number: say how to write it."""
    if not isinstance(value, str):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    return f"\n  (YAML reads '{value}' as text; write it with a dot, e.g. {number!r}, or {number:.1e})"

"""Ultralytics' own arguments: which names exist, how `yolo` reads `key=value`, and its type checks.

No second set of rules: names come from Ultralytics' `cfg/default.yaml`, values typed on the command line
are read by its `smart_value` (so `lr0=1e-3` is the float 0.001, as with `yolo`), and types and ranges
are checked by its `check_cfg` (and `check_imgsz`), the checks `yolo` runs itself.

Reading a recipe must stay cheap (convert, report and pull read one without training anything), and
importing Ultralytics pulls in torch. So the names are read from `default.yaml` as a plain file, found
with `importlib.util.find_spec` without importing the package, whenever a recipe is read; values and types
go through Ultralytics' functions only in the verbs that load it anyway (train, val, predict, evaluate,
export, inspect), before any conversion or training starts. This module imports Ultralytics only inside
its functions for that reason: `recipe.py` imports it, and it must not import torch or Ultralytics at import
time (the engine's other modules, which its package imports with it, do neither).

The keys the workbench adds beyond Ultralytics' own (`folds=`, `slice=`, `use_ray=`, `space=`, ...) are
declared here too, in `WORKBENCH_KEYS`, and `check_command_line` takes every `key=value` of a verb through
one path: Ultralytics' keys by its own checks, the workbench's by the same rules (`smart_value` reads them,
a whole number may be written `1e2` but not `2.5`, True/False is a bool), so no module reads one itself.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import numbers
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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


def check_train_args(args: dict[str, Any], origin: str = "train") -> None:
    """Refuse unknown or reserved Ultralytics arguments before a long run starts, not after.

    Names only, from Ultralytics' default.yaml read as a file, so reading a recipe never imports
    Ultralytics; their types are checked by Ultralytics itself when a training starts (`check_types`).
    """
    check_names(args, origin)
    pretrained = args.get("pretrained")
    if not (pretrained is None or isinstance(pretrained, bool) or str(pretrained).endswith(".pt")):
        raise ValueError(
            "'pretrained' is true, false or weights whose matching layers start the model "
            "(a .pt file, e.g. runs/pneumonia/<run>/weights/best.pt or yolov8n.pt)"
        )


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
        if key == "imgsz" and value == "auto":  # chosen from the data before training (yolo_tools/training/input_size.py)
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


@dataclass(frozen=True)
class Key:
    """A `key=value` argument the workbench reads itself, and what its value must be.

    `kind` follows Ultralytics' own `check_cfg`: an "int" is a whole number (an integral float such as
    `1e2` is taken, `2.5` is not), a "float" any number, a "bool" True or False. `what` is the message's
    second half: what the key means and an example. `low` is the smallest value allowed, `below` a bound
    the value must stay under; `check` looks inside a value of the right kind (a search space).
    """

    kind: Literal["int", "float", "bool", "mapping", "text"]
    what: str
    low: float | None = None
    below: float | None = None
    check: Callable[[Any], str | None] | None = None


def search_space_problem(space: dict[Any, Any]) -> str | None:
    """What is wrong with a search space given as `{'lr0': (1e-5, 1e-2), 'momentum': (0.7, 0.98, 0.3)}`, or None.

    The form Ultralytics' own tuner takes: each key an Ultralytics train argument holding a number, each
    value (min, max) or (min, max, gain) with min < max and a gain from 0 to 1 (`tune.py` hands the same
    bounds to Ray Tune as its ranges).
    """
    if not space:
        return "an empty search space (leave space= out for Ultralytics' own)"
    defaults = default_args()
    for key, bounds in space.items():
        if key not in defaults:
            return f"'{key}' is not an Ultralytics train argument"
        if isinstance(defaults[key], bool) or not isinstance(defaults[key], (int, float)):
            return f"'{key}' is not a number Ultralytics trains with (its default is {defaults[key]!r}), so it cannot be searched"
        numeric = isinstance(bounds, (tuple, list)) and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in bounds
        )
        if not numeric or len(bounds) not in (2, 3):
            return f"'{key}': {bounds!r} is not (min, max) or (min, max, gain)"
        if not bounds[0] < bounds[1]:
            return f"'{key}': the minimum {bounds[0]} is not below the maximum {bounds[1]}"
        if len(bounds) == 3 and not 0 <= bounds[2] <= 1:
            return f"'{key}': the gain {bounds[2]} is not from 0 to 1"
    return None


def search_alg_problem(name: str) -> str | None:
    """A Ray Tune search algorithm Ultralytics' `run_ray_tune` does not know, named now rather than after Ray started."""
    from ultralytics.utils.tuner import RAY_SEARCH_ALG_REQUIREMENTS

    if name.strip().lower() not in RAY_SEARCH_ALG_REQUIREMENTS:
        return f"not one of Ultralytics' Ray Tune search algorithms ({', '.join(sorted(RAY_SEARCH_ALG_REQUIREMENTS))})"
    return None


SPACE_EXAMPLE = "space=\"{'lr0': (1e-5, 1e-2), 'mosaic': (0.0, 1.0)}\""

# Every key the workbench adds to Ultralytics' own, by the verb that reads it (cv, predict/evaluate, tune).
WORKBENCH_KEYS: dict[str, Key] = {
    "folds": Key("int", "the number of cross-validation folds, a whole number: at least 2 folds (e.g. folds=5)", low=2),
    "fold_seed": Key("int", "the seed that draws the folds, a whole number (e.g. fold_seed=1)"),
    "slice": Key("int", "the size of a slice in pixels, a whole number of at least 32 pixels (e.g. slice=320)", low=32),
    "slice_overlap": Key("float", "a fraction of a slice shared with its neighbour, from 0 up to (not including) 1 "
                         "(e.g. slice_overlap=0.2)", low=0, below=1),
    "iterations": Key("int", "the number of trials, a whole number >= 1 (e.g. iterations=20)", low=1),
    "use_ray": Key("bool", "True or False"),
    "space": Key("mapping", f"the hyperparameters to search with their (min, max) bounds, e.g. {SPACE_EXAMPLE}",
                 check=search_space_problem),
    "grace_period": Key("int", "the epochs a Ray trial runs before ASHA may stop it, a whole number >= 1 "
                        "(e.g. grace_period=5)", low=1),
    "gpu_per_trial": Key("float", "the GPUs each Ray trial gets, a number >= 0 (e.g. gpu_per_trial=1)", low=0),
    "search_alg": Key("text", "a Ray Tune search algorithm by name (e.g. search_alg=optuna)", check=search_alg_problem),
}


def _typed(value: Any, spec: Key) -> Any:
    """`value` as `spec` wants it (an integral float as an int, as `check_cfg` does), or ValueError saying why not."""
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(spec.what)
        return value
    if spec.kind in ("mapping", "text"):
        if not isinstance(value, dict if spec.kind == "mapping" else str):
            raise ValueError(f"not {'a mapping' if spec.kind == 'mapping' else 'a name'}; give {spec.what}")
        problem = spec.check(value) if spec.check else None
        if problem:
            raise ValueError(f"{problem}; give {spec.what}")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(spec.what)
    if spec.kind == "int":
        if not float(value).is_integer():
            raise ValueError(spec.what)
        value = int(value)
    else:
        value = float(value)
    if (spec.low is not None and value < spec.low) or (spec.below is not None and value >= spec.below):
        raise ValueError(spec.what)
    return value


THREADS_ENV = "YOLO_TOOLS_THREADS"  # CPU threads for torch, when the automatic choice (`yolo.cpu_threads`) is not wanted


def requested_threads() -> int | None:
    """YOLO_TOOLS_THREADS as a number of threads (None when unset); anything else is refused, naming it."""
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"{THREADS_ENV}={text}: give a whole number of CPU threads (1 or more), e.g. {THREADS_ENV}=2, or unset it")
    return int(text)


def check_command_line(
    args: dict[str, Any], workbench: Collection[str] = (), passed: Collection[str] = ()
) -> dict[str, Any]:
    """A verb's `key=value` arguments, each through one checked path, before any work: Ultralytics' own by
    name and by its type checks, the workbench keys this verb reads (`workbench`, names in WORKBENCH_KEYS)
    by the same rules, and `passed` (paths such as model= and data=, checked where they are used) as they
    are. Returns the values canonicalised; any problem is one UserError naming the key. YOLO_TOOLS_THREADS,
    read when the first model loads, is checked here too: before any work.
    """
    requested_threads()
    ultralytics = {k: v for k, v in args.items() if k not in workbench and k not in passed}
    try:
        check_train_args(ultralytics, origin="the command line")
    except ValueError as exc:
        raise UserError(f"command line: {exc}") from None
    checked = {**args, **check_types(ultralytics, "command line: ")}
    for key in workbench:
        if key in args:
            try:
                checked[key] = _typed(args[key], WORKBENCH_KEYS[key])
            except ValueError as exc:
                raise UserError(f"command line: {key}={_shown(args[key])}: {exc}") from None
    return checked


def _shown(value: Any) -> str:
    """A value as the user typed it (smart_value read `True` as True, `(1, 2)` as a tuple)."""
    return value if isinstance(value, str) else repr(value)

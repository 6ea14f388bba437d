"""How a run's predictions are made: which predictor (chosen once: one model, a fold ensemble, sliced inference,
or a cascade), with which arguments, and which post-processing decided on val they get.

`predict` and `evaluate` (and the operating point `evaluate` chooses on val) ask `choose` once, which also refuses
a combination that would ignore `slice=`, and hand the `Predictor` on, so the verbs cannot drift apart. What each does
lives in its own module: the engine predicts with one model (yolo_tools/engine/predictor.py), an ensemble
fuses its members' predictions (ensemble.py), sliced inference runs sahi over overlapping slices (sliced.py),
and a cascade finds a region, crops and classifies it (cascade.py), writing its own rows.

A cascade's chain runs on raw images only: its converted dataset already holds the crops, which `evaluate`
scores with the classifier alone (`raw_images=False`).

Every prediction of a run is made with the same arguments (`prediction_args`) in `predict`, `predict --format`,
`evaluate`, `inspect`, `app` and the PACS loop, so a file handed on holds what the evaluation scored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from yolo_tools import engine, operating_point, postprocess, tasks
from yolo_tools.errors import UserError
from yolo_tools.inference import cascade, ensemble, sliced
from yolo_tools.operating_point import Slicing
from yolo_tools.prediction import MIRROR, Mirroring, Prediction
from yolo_tools.recipe import Recipe
from yolo_tools.runs import CV_FILE, weights_of

Kind = Literal["model", "ensemble", "sliced", "cascade"]


@dataclass(frozen=True)
class Predictor:
    """How a run's predictions are made: `kind`, the first model's weights, every member as given (an ensemble's
    runs or weights, each read for its own operating point), and the slice size and overlap of sliced inference."""

    kind: Kind
    weights: Path
    members: tuple[str | Path, ...]
    slicing: Slicing = None

    def predict(
        self, source: str | Path | list[Path], args: dict[str, Any], draw: bool = False,
        mapped: Iterable[tuple[Path, np.ndarray]] | None = None,
    ) -> Iterator[Prediction]:
        """The predictions of `source` (a folder, or a list of image files), image by image. `mapped`: the images
        already decoded by the workbench's own intensity rules (one model only); `draw` plots each as it comes."""
        if self.kind == "ensemble":
            return ensemble.predict(self.members, source, args)
        if self.kind == "sliced":
            files = source if isinstance(source, list) else sorted(Path(source).iterdir())
            return sliced.predict(self.weights, files, args, *self.slicing)
        if self.kind == "cascade":
            raise ValueError("a cascade writes its own rows (cascade.predict), not a stream of Predictions")
        if mapped is not None:
            return engine.predict_arrays(self.weights, mapped, args, draw=draw)
        return engine.predict(self.weights, source, args, draw=draw)


# What `slice=` with a predictor that would ignore it says, per verb.
_SLICE_REFUSED = {
    "predict": "command line: slice={size}: sliced inference predicts with one detection run; an ensemble, a cv folder "
               "or a cascade would ignore it. Leave out slice= or predict with one run",
    "evaluate": "command line: slice={size}: sliced inference scores one run; an ensemble or a cv folder would ignore "
                "it. Leave out slice= or evaluate one run",
}


def choose(
    weights: Path, members: Sequence[str | Path], recipe: Recipe | None, slicing: Slicing, verb: Literal["predict", "evaluate"],
    run_dir: Path | None = None, raw_images: bool = True,
) -> Predictor:
    """The predictor for `members` (one run or weights, or an ensemble's; `weights`: the first one's), the first
    run's `recipe` (in `run_dir`) and the command line's slicing. A combination that would ignore `slice=` is
    refused before any work, in the words of the verb that asked (`verb`; `predict` leaves a non-detection model to sliced inference's own check
    of the weights). `raw_images`: the images are the user's own, so a cascade runs its whole chain; not for its
    converted dataset, whose crops the classifier alone scores."""
    members = tuple(members)
    is_cascade = raw_images and cascade.is_cascade(recipe)
    if slicing:
        if verb == "evaluate" and recipe is not None and not tasks.get(recipe.task).slices:
            raise UserError(f"command line: slice={slicing[0]}: sliced inference is for detection runs; {run_dir} is a {recipe.task} run")
        if len(members) > 1 or is_cascade:
            raise UserError(_SLICE_REFUSED[verb].format(size=slicing[0]))
        return Predictor("sliced", weights, members, slicing)
    if len(members) > 1:
        return Predictor("ensemble", weights, members)
    return Predictor("cascade" if is_cascade else "model", weights, members)


def prediction_args(
    task: str, recipe: Recipe | None, run_dir: Path | None, given: dict[str, Any], slicing: Slicing = None
) -> dict[str, Any]:
    """The arguments every prediction of a run is made with, in `predict`, `predict --format`, `evaluate`,
    `inspect` and `app` alike, so a file handed on holds what the evaluation scored: the run's operating point
    and `max_det` (`operating_point.predict_args`; `given`, the command line's, win), what the task's
    predictions need (segment: masks at the image's own size, not low-resolution ones upsampled) and the
    recipe's test-time mirroring (`mirroring`)."""
    needed = tasks.TASKS[task].predict_args if task in tasks.TASKS else {}
    return {**operating_point.predict_args(recipe, run_dir, given, slicing), **needed, **mirroring(recipe, slicing is not None)}


def mirroring(recipe: Recipe | None, sliced: bool = False) -> dict[str, Any]:
    """The prediction argument for the recipe's test-time mirroring (`predict.flips`), fused by its task's `fuse`;
    none without flips, and none for sliced inference (sahi predicts the tiles itself)."""
    if recipe is None or not recipe.predict.flips or sliced:
        return {}
    return {MIRROR: Mirroring(tuple(recipe.predict.flips), tasks.get(recipe.task).fuse)}


def postprocessing_folder(members: Sequence[str | Path]) -> Path | None:
    """Where the post-processing of these models is decided: a run's own folder, or the cv folder whose folds they
    all are (every fold); None for other ensembles, for which nothing is decided."""
    runs = [weights_of(member)[1] for member in members]
    if any(run is None for run in runs):
        return None
    if len(runs) == 1:
        return runs[0]
    root = runs[0].parent
    if not (root / CV_FILE).is_file() or any(run.parent != root for run in runs):
        return None
    return root if len(set(runs)) == int(json.loads((root / CV_FILE).read_text()).get("folds", 0)) else None


def postprocessing(recipe: Recipe | None, members: Sequence[str | Path]) -> dict[str, Any] | None:
    """The decision these models' predictions get: None unless the recipe asks for one and it was made."""
    if recipe is None or recipe.predict.largest_component == "off":
        return None
    folder = postprocessing_folder(members)
    return postprocess.load(folder, [weights_of(member)[0] for member in members]) if folder else None

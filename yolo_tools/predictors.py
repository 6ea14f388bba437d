"""Which predictor makes a run's predictions, chosen once: one model, a fold ensemble, sliced inference, or a cascade.

`predict` and `evaluate` (and the operating point `evaluate` chooses on val) used to pick among these each on
its own, with their own refusals; now each asks `choose` once and hands the `Predictor` on. What each does
lives in its own module: the engine predicts with one model (yolo_tools/engine/predictor.py), an ensemble
fuses its members' predictions (ensemble.py), sliced inference runs sahi over overlapping slices (sliced.py),
and a cascade finds a region, crops and classifies it (cascade.py), writing its own rows.

A cascade's chain runs on raw images only: its converted dataset already holds the crops, which `evaluate`
scores with the classifier alone (`raw_images=False`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from yolo_tools import cascade, engine, ensemble, sliced
from yolo_tools.errors import UserError
from yolo_tools.operating_point import Slicing
from yolo_tools.prediction import Prediction
from yolo_tools.recipe import Recipe

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
        if verb == "evaluate" and recipe is not None and recipe.task != "detect":
            raise UserError(f"command line: slice={slicing[0]}: sliced inference is for detection runs; {run_dir} is a {recipe.task} run")
        if len(members) > 1 or is_cascade:
            raise UserError(_SLICE_REFUSED[verb].format(size=slicing[0]))
        return Predictor("sliced", weights, members, slicing)
    if len(members) > 1:
        return Predictor("ensemble", weights, members)
    return Predictor("cascade" if is_cascade else "model", weights, members)

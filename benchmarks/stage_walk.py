"""Which stages a training walks through, in what order: a trace of `pipeline.train_recipe`, counted.

    nice -n 10 .venv/bin/python -m benchmarks.stage_walk                 # the demo recipe, 1 epoch at imgsz=64
    nice -n 10 .venv/bin/python -m benchmarks.stage_walk --raw           # every module-level step as well

The issue that asked for the stage folders (#28) measures them by this: following a recipe through a
training, the code should visit each stage once, in order, not go back and forth between conversion, the
recipe's fingerprint and the dataset. A profiler answers how long, not where control goes next, so this
traces it: `sys.settrace` sees every Python call, only the workbench's own frames are followed (a frame of
Ultralytics, torch or the standard library is skipped where it starts, so a callback of ours that Ultralytics
calls still counts), and on each call into and return out of a workbench frame the stage now running is the
innermost frame's on the stack that belongs to a stage.

A stage is one of the pipeline's folders or modules (docs/architecture.md's data flow): `recipe` (recipe.py,
intensity.py), `sources`, `conversion` (conversion.py and the readers in convert/), `dataset`, `engine`,
`training`; older trees' names map to theirs (`yolo` is the engine, `tracking` is training). The rest is
looked up by a stage rather than being one: the verbs that call the stages in turn (cli.py, pipeline.py), and
what every stage shares (errors, locations, runs, tasks, codecs, imaging, ...); time spent in those counts
for the stage that called them. Consecutive steps in the same stage are one visit, and the same steps
repeated back to back (the writer asking the dataset where each image's label file goes) are one loop,
counted once: the count is about the code's walk, not the dataset's size (the unfolded count is printed
beside it). Reported: the visits in order, the transitions between them, and the revisits (entering a
stage that ran before), each with the function that re-entered it. Only the main thread is traced: the
demo trains with workers=0, and the writer's staging threads run one sample's checks and image inside
the conversion that started them.

Runs in a scratch folder (datasets and runs there, nothing else written) and needs no data: the demo's
images are made on the fly. `--tree DIR` traces another checkout's yolo_tools (an older commit unpacked with
`git archive`) with this same script, so a before and an after are counted alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

# Top-level module or folder under yolo_tools → stage. What is not here is shared, or a verb: not a stage.
STAGES = {
    "recipe": "recipe", "intensity": "recipe",
    "sources": "sources", "roboflow_pull": "sources", "dicomweb": "sources",
    "conversion": "conversion", "convert": "conversion",
    "dataset": "dataset",
    "engine": "engine", "yolo": "engine", "yolo_args": "engine",
    "training": "training", "tracking": "training", "crossval": "training", "tune": "training",
    "input_size": "training",
}
QUICK = {"epochs": 1, "imgsz": 64, "batch": 16, "workers": 0, "plots": False, "device": "cpu"}


class StageWalk:
    """Follows the workbench's frames under `package_dir` and records each change of stage (and of module)."""

    def __init__(self, package_dir: Path) -> None:
        self.prefix = str(package_dir) + os.sep
        self.units: dict[str, str | None] = {}  # file → top-level unit (None: not ours)
        self.stage_steps: list[tuple[str, str]] = []  # (stage, the function that entered it)
        self.unit_steps: list[str] = []

    def _unit(self, filename: str) -> str | None:
        if filename not in self.units:
            if filename.startswith(self.prefix):
                self.units[filename] = Path(filename[len(self.prefix):]).parts[0].removesuffix(".py")
            else:
                self.units[filename] = None
        return self.units[filename]

    def _now(self, frame: FrameType | None) -> tuple[str | None, str | None]:
        """The innermost stage on the stack from `frame` out, and the innermost workbench unit."""
        unit = None
        while frame is not None:
            here = self._unit(frame.f_code.co_filename)
            if here is not None:
                unit = unit or here
                if here in STAGES:
                    return STAGES[here], unit
            frame = frame.f_back
        return None, unit

    def _step(self, frame: FrameType | None, entered: str) -> None:
        stage, unit = self._now(frame)
        if unit is not None and (not self.unit_steps or self.unit_steps[-1] != unit):
            self.unit_steps.append(unit)
        if stage is not None and (not self.stage_steps or self.stage_steps[-1][0] != stage):
            self.stage_steps.append((stage, entered))

    def _local(self, frame: FrameType, event: str, arg: Any) -> Callable | None:
        if event == "return":  # back in the caller (a generator's yield is a return too)
            self._step(frame.f_back, f"back from {frame.f_code.co_qualname}")
        return self._local

    def trace(self, frame: FrameType, event: str, arg: Any) -> Callable | None:
        if event != "call" or self._unit(frame.f_code.co_filename) is None:
            return None  # not ours: not followed, its lines and returns cost nothing
        unit = self._unit(frame.f_code.co_filename)
        self._step(frame, f"{unit}.{frame.f_code.co_qualname}")
        frame.f_trace_lines = False
        return self._local

    def summary(self) -> dict[str, Any]:
        folded = fold(self.stage_steps)
        once = [step for item in folded for step in (item[0] if isinstance(item, Loop) else [item])]
        walk = [stage for i, (stage, _) in enumerate(once) if i == 0 or once[i - 1][0] != stage]
        return {
            "steps": len(self.stage_steps),
            "revisits_unfolded": len(revisits(self.stage_steps)),
            "walk": [render(item) for item in folded],
            "transitions": max(0, len(walk) - 1),
            "revisits": revisits([step for i, step in enumerate(once) if i == 0 or once[i - 1][0] != step[0]]),
            "module_steps": len(self.unit_steps),
        }


Step = tuple[str, str]  # (stage, the function whose call or return entered it)


class Loop(tuple):
    """(body, times): the same steps, entered by the same functions, repeated back to back (one per sample)."""


def fold(steps: list[Step], longest: int = 8) -> list[Step | Loop]:
    """Back-to-back repeats of the same steps folded into one Loop, so that a stage asked once per image
    (the writer asking the dataset's layout where each label file goes) counts as one visit, not one per
    image: the count is about the code's walk, not the dataset's size."""
    out: list[Step | Loop] = []
    i = 0
    while i < len(steps):
        best = (1, 1)
        for period in range(1, longest + 1):
            times = 1
            while steps[i + times * period:i + (times + 1) * period] == steps[i:i + period]:
                times += 1
            if times > 1 and times * period > best[0] * best[1]:
                best = (times, period)
        times, period = best
        out.append(Loop((steps[i:i + period], times)) if times > 1 else steps[i])
        i += times * period
    return out


def revisits(steps: list[Step]) -> list[str]:
    """Each entry into a stage that ran before, with the function that entered it."""
    seen: set[str] = set()
    again = []
    for stage, entered in steps:
        if stage in seen:
            again.append(f"{stage} (entered by {entered})")
        seen.add(stage)
    return again


def render(item: Step | Loop) -> str:
    if isinstance(item, Loop):
        body, times = item
        return f"({' → '.join(stage for stage, _ in body)}) ×{times}"
    return item[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tree", type=Path, help="a checkout whose yolo_tools is traced (default: this one)")
    p.add_argument("--raw", action="store_true", help="also print every change of top-level module")
    p.add_argument("--json", type=Path, help="write the counts there as JSON")
    args = p.parse_args(argv)
    root = (args.tree or Path(__file__).resolve().parent.parent).resolve()
    sys.path.insert(0, str(root))
    for name in [m for m in sys.modules if m == "yolo_tools" or m.startswith("yolo_tools.")]:
        del sys.modules[name]
    scratch = Path(tempfile.mkdtemp(prefix="stage-walk-"))
    os.environ["YOLO_TOOLS_DATASETS"] = str(scratch / "datasets")
    os.environ["YOLO_TOOLS_RUNS"] = str(scratch / "runs")
    os.chdir(scratch)  # Ultralytics' own downloads or files, if any, land in the scratch folder

    import yolo_tools
    from yolo_tools import pipeline

    walk = StageWalk(Path(yolo_tools.__file__).parent)
    sys.settrace(walk.trace)
    try:
        pipeline.train_recipe(root / "recipes" / "demo.yaml", dict(QUICK))
    finally:
        sys.settrace(None)
        os.chdir(root)
        shutil.rmtree(scratch, ignore_errors=True)
    result = walk.summary()
    print(f"traced: {Path(yolo_tools.__file__).parent} (train recipes/demo.yaml {' '.join(f'{k}={v}' for k, v in QUICK.items())})")
    if args.raw:
        print("modules:", " → ".join(walk.unit_steps))
    print("stages:", " → ".join(result["walk"]))
    print(
        f"transitions: {result['transitions']}   revisits: {len(result['revisits'])}   "
        f"(unfolded: {result['steps']} stage steps, {result['revisits_unfolded']} revisits)"
    )
    for revisit in result["revisits"]:
        print(f"  revisit: {revisit}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

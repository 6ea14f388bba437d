"""Full-size trainings on a GPU: what `benchmarks/gpu.sh` measured, read from its run folders into gpu.json.

`benchmarks/gpu.sh` runs the `yolo_tools` commands themselves (convert, train for a fixed time at the
recipe's own image size, evaluate, inspect --no-app), timing each step; this reads what they left:

    .venv/bin/python -m benchmarks.gpu --runs RUNS --timings TIMINGS.tsv --name gpu-full --minutes "1 0.75 1"

- per recipe: device, image size, epochs done in the time given, seconds of each step and its exit code;
- the validator's metrics of the best weights (metrics.json) and evaluate's own (eval/summary.json);
- whether `inspect` finished (its exit code; FiftyOne's evaluation is meant to run on the GPU machine);
  a step cut by its time limit shows exit 124, one the time budget left no room for shows "skipped".

`python -m benchmarks.report` shows them in RESULTS.md under "Full-size trainings (GPU)".
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml

from benchmarks import common

TOPIC = "gpu"
RECIPES = ("kidney", "heart", "pneumonia")
# evaluate's numbers shown per task (eval/summary.json "metrics"), beside the validator's.
EVALUATE_SHOWN = {
    "detect": ("found", "missed", "false_positives", "ap50"),
    "segment": ("dice", "iou", "dice_3d"),
    "classify": ("accuracy", "f1", "roc_auc"),
}


def _timings(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """`recipe step seconds exit-code` lines as {recipe: {step: {"s": seconds, "exit": code or "skipped"}}}."""
    steps: dict[str, dict[str, dict[str, Any]]] = {}
    if path.is_file():
        for recipe, step, seconds, code in csv.reader(path.open(), delimiter="\t"):
            steps.setdefault(recipe, {})[step] = {"s": int(seconds), "exit": int(code) if code.lstrip("-").isdigit() else code}
    return steps


def read_run(run_dir: Path) -> dict[str, Any]:
    """What one run folder says about its training and evaluation; missing files leave their fields out."""
    row: dict[str, Any] = {}
    if (run_dir / "args.yaml").is_file():
        args = yaml.safe_load((run_dir / "args.yaml").read_text())
        row |= {"task": args.get("task"), "imgsz": args.get("imgsz"), "batch": args.get("batch"), "device": args.get("device")}
    if (run_dir / "results.csv").is_file():
        with open(run_dir / "results.csv") as handle:
            epochs = list(csv.DictReader(handle, skipinitialspace=True))
        row |= {"epochs": len(epochs), "train_time_s": float(epochs[-1]["time"]) if epochs else None}
    if (run_dir / "metrics.json").is_file():
        row["validator"] = json.loads((run_dir / "metrics.json").read_text()).get("val", {})
    summary = run_dir / "eval" / "summary.json"
    if summary.is_file():
        metrics = json.loads(summary.read_text())["metrics"]
        row["evaluate"] = {k: metrics[k] for k in EVALUATE_SHOWN.get(row.get("task"), ()) if k in metrics}
    return row


def collect(
    runs: Path, timings: Path, name: str, minutes: list[float], argv: list[str] | None = None, results_dir: Path | None = None
) -> Path:
    payload = common.header(TOPIC, argv, {"recipes": list(RECIPES), "train_minutes": dict(zip(RECIPES, minutes)), "run": name})
    payload["command"] = "bash benchmarks/gpu.sh"
    steps = _timings(timings)
    payload["results"] = [
        {"recipe": recipe, "steps": steps.get(recipe, {}), **read_run(runs / recipe / name)} for recipe in RECIPES
    ]
    return common.save(TOPIC, payload, results_dir)


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, required=True, help="the runs folder gpu.sh trained into")
    p.add_argument("--timings", type=Path, required=True, help="gpu.sh's timings.tsv")
    p.add_argument("--name", default="gpu-full", help="the run name gpu.sh used")
    p.add_argument("--minutes", default="", help="training minutes per recipe, as gpu.sh was given them")
    args = p.parse_args(argv)
    collect(args.runs, args.timings, args.name, [float(m) for m in args.minutes.split()], argv, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

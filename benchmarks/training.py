"""Training: seconds per epoch and per run of `yolo_tools train` against plain Ultralytics with the same
arguments (the workbench must add no measurable overhead), what every core brings over Ultralytics'
default CPU threads, and the effect of image caching (cache=ram).

    nice -n 5 .venv/bin/python -m benchmarks.training              # 3 rounds x 4 trainings, ~4 min on 2 cores
    nice -n 5 .venv/bin/python -m benchmarks.training --epochs 5 --fraction 0.1

Data: the kidney recipe's own conversion (recipes/kidney.yaml) with a 5 % validation split so that the
validation passes do not drown the epochs (written as `bench-kidney.yaml` in the work folder). Model:
yolov8n.yaml from scratch (speed does not depend on accuracy). Every training runs in its own process;
Ultralytics and the workbench are imported before the clock starts.

Cases, taking turns within each round:
- `yolo_tools train`: `pipeline.train_recipe(recipe, overrides)`: conversion check, run folder, recipe
  copy, train, final metrics;
- plain Ultralytics: `YOLO("yolov8n.yaml").train(data=<same data.yaml>, **<same merged arguments>)`, with
  the torch threads Ultralytics sets on the CPU (one fewer than the cores: 1 on 2 cores), and again with
  as many threads as `yolo_tools` gives it (`engine.use_every_core`): the like-for-like overhead check;
- `yolo_tools train cache=ram`: the first case with Ultralytics' RAM image cache.

Seconds per epoch come from Ultralytics' results.csv (its `time` column, cumulative): the median over the
epochs before the last (with val=False only the last epoch validates). "Run" is the whole call.
"""

from __future__ import annotations

import csv
import os
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

from benchmarks import common

TOPIC = "training"
MODEL = "yolov8n.yaml"  # from scratch in both cases: the recipe's official weights would download, or fall back to it


def bench_recipe(work: Path, val: float = 0.05) -> Path:
    """recipes/kidney.yaml with its own name and a smaller validation split."""
    recipe = yaml.safe_load((common.ROOT / "recipes" / "kidney.yaml").read_text())
    recipe["name"] = "bench-kidney"
    recipe["data"]["split"]["val"] = val
    path = work / "recipes" / "bench-kidney.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def epoch_seconds(run_dir: Path) -> dict[str, Any]:
    """Per-epoch seconds from results.csv (cumulative `time`); the last epoch also validates."""
    with open(run_dir / "results.csv") as handle:
        times = [float(row["time"]) for row in csv.DictReader(handle, skipinitialspace=True)]
    per_epoch = [b - a for a, b in zip([0.0] + times[:-1], times)]
    train_only = per_epoch[:-1] or per_epoch
    return {"epoch_s": per_epoch, "s_per_epoch": statistics.median(train_only), "train_time_s": times[-1]}


def workbench_train(recipe: str, overrides: dict[str, Any], name: str) -> dict[str, Any]:
    """Child case: `yolo_tools train <recipe> key=value ... --name <name>`."""
    from yolo_tools import pipeline

    run_dir, _ = pipeline.train_recipe(recipe, overrides, name=name)
    return epoch_seconds(run_dir)


def plain_train(model: str, data: str, args: dict[str, Any], project: str, name: str,
                threads: int | None = None) -> dict[str, Any]:
    """Child case: plain Ultralytics with the same model, data and arguments; `threads` replaces the torch
    threads Ultralytics sets for CPU work (one fewer than the cores: 1 on 2 cores)."""
    from ultralytics import YOLO
    from ultralytics.utils import torch_utils

    if threads:
        torch_utils.NUM_THREADS = threads
    YOLO(model).train(data=data, project=project, name=name, exist_ok=True, **args)
    return epoch_seconds(Path(project) / name)


def run(repeats: int | None = None, quick: bool = False, epochs: int = 3, imgsz: int = 160,
        fraction: float = 0.05, results: Path | None = None, argv: list[str] | None = None) -> dict[str, Any]:
    repeats = repeats or (1 if quick else 3)
    if quick:
        epochs, fraction = 2, min(fraction, 0.02)
    work = common.work_dir()
    common.isolate_outputs(work)
    from yolo_tools.conversion import prepare
    from yolo_tools.recipe import load_recipe

    recipe_path = bench_recipe(work)
    recipe = load_recipe(recipe_path)
    data = prepare(recipe)
    overrides = {"model": MODEL, "epochs": epochs, "imgsz": imgsz, "fraction": fraction, "batch": 16, "workers": 0,
                 "plots": False, "val": False, "device": "cpu"}
    merged = {k: v for k, v in {**recipe.train, **overrides}.items() if k != "model"}  # what train_recipe hands to Ultralytics
    runs = work / "runs"
    plain_project = runs / "plain"
    plain_project.mkdir(parents=True, exist_ok=True)
    counter = iter(range(10**6))

    def workbench(extra: dict[str, Any]):
        def case() -> dict[str, Any]:
            name = f"bench-{next(counter)}"
            try:
                return common.in_subprocess("benchmarks.training:workbench_train",
                                            {"recipe": str(recipe_path), "overrides": {**overrides, **extra},
                                             "name": name}, imports=("yolo_tools.pipeline", "ultralytics"))
            finally:
                shutil.rmtree(runs / recipe.name / name, ignore_errors=True)
        return case

    def plain(threads: int | None = None):
        def case() -> dict[str, Any]:
            name = f"plain-{next(counter)}"
            try:
                return common.in_subprocess("benchmarks.training:plain_train",
                                            {"model": MODEL, "data": str(data), "args": merged, "project": str(plain_project),
                                             "name": name, "threads": threads}, imports=("ultralytics",),
                                            cwd=plain_project)
            finally:
                shutil.rmtree(plain_project / name, ignore_errors=True)
        return case

    cores = min(len(os.sched_getaffinity(0)), 8)  # what engine.use_every_core gives torch
    cases = {"yolo_tools train": workbench({}), "plain Ultralytics train": plain(),
             f"plain Ultralytics train, {cores} threads": plain(cores),
             "yolo_tools train cache=ram": workbench({"cache": "ram"})}
    print(f"\n== {epochs} epochs, imgsz {imgsz}, fraction {fraction} of {recipe.name} train split")
    samples = common.interleave(cases, repeats)
    summaries = {}
    for name, s in samples.items():
        summary = common.summarize(s)
        summary["s_per_epoch"] = statistics.median(x["s_per_epoch"] for x in s)
        summary["train_time_s"] = statistics.median(x["train_time_s"] for x in s)
        summaries[name] = summary
    same = f"plain Ultralytics train, {cores} threads"
    comparisons = [
        common.comparison("yolo_tools train", same, samples,
                          "yolo_tools train vs plain Ultralytics on as many threads, whole run", not_slower=True),
        common.comparison("yolo_tools train", same, samples,
                          "yolo_tools train vs plain Ultralytics on as many threads, s/epoch", key="s_per_epoch", not_slower=True),
        common.comparison("yolo_tools train", "plain Ultralytics train", samples,
                          "yolo_tools train (every core) vs plain Ultralytics (its default threads), s/epoch", key="s_per_epoch"),
        common.comparison("yolo_tools train cache=ram", "yolo_tools train", samples,
                          "cache=ram vs no cache, s/epoch", key="s_per_epoch"),
        common.comparison("yolo_tools train cache=ram", "yolo_tools train", samples,
                          "cache=ram vs no cache, whole run (includes filling the cache)"),
    ]
    card = yaml.safe_load((data.parent / "card.json").read_text())
    payload = common.header(TOPIC, argv, {"repeats": repeats, "recipe": "recipes/kidney.yaml, val split 0.05",
                                          "train_images": card["counts"]["train"]["images"],
                                          "val_images": card["counts"]["val"]["images"], "model": MODEL,
                                          "arguments": merged, "quick": quick})
    payload["cases"], payload["comparisons"] = summaries, comparisons
    print_report(payload)
    common.save(TOPIC, payload, results)
    return payload


def print_report(payload: dict[str, Any]) -> None:
    common.print_cases(payload, [("median_s", "run s", ".1f"), ("s_per_epoch", "s/epoch", ".2f"),
                                 ("train_time_s", "train loop s", ".1f"), ("import_s", "imports s", ".1f"),
                                 ("peak_rss_mb", "peak RSS MB", ".0f")])


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--imgsz", type=int, default=160)
    p.add_argument("--fraction", type=float, default=0.05, help="fraction of the train split each epoch uses")
    args = p.parse_args(argv)
    run(args.repeats, args.quick, args.epochs, args.imgsz, args.fraction, args.results, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())

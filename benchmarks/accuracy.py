"""Accuracy: train every recipe in recipes/ under one fixed small CPU budget and print its validation
metrics, so that a regression in a converter, a recipe or the training path shows as a drop.

    nice -n 5 .venv/bin/python -m benchmarks.accuracy                   # every recipe, CPU budget
    nice -n 5 .venv/bin/python -m benchmarks.accuracy --recipes kidney heart
    nice -n 5 .venv/bin/python -m benchmarks.accuracy --epochs 100 --max-images 256  # a larger budget
    .venv/bin/python -m benchmarks.accuracy --full                      # the recipes' own settings, on a GPU

The budget (same for every recipe): the recipe's model from scratch (yolov8n), imgsz 160, 30 epochs (1 of
warm-up), at most 96 training images per epoch (Ultralytics' `fraction`), batch 16, validation only after
the last epoch, CPU, seed 0 with Ultralytics' deterministic mode, so a rerun on the same machine gives the
same numbers. One to a few minutes per recipe on 2 free cores (segmentation is the slowest), several
times that when the cores are shared; a recipe whose data converts to fewer than 8 training images here
(gi: only 2 of its scans are in the shared copy) is skipped with the reason. Validation is on the
recipe's whole patient-wise val split, by Ultralytics' validator, plus `yolo_tools evaluate` for
segmentation (Dice); the last epoch's training losses are kept too. These are regression numbers, not the
task's attainable accuracy: 30 short epochs from scratch at 160 px learn large structures (the heart:
mAP50 near 0.9) but not tiny ones (kidney stones), so there the losses are the number to watch. Five
epochs, tried first, left every box and mask mAP at zero: too small a budget to show a regression.

`--full` trains with each recipe's own arguments (imgsz 640 / 100 epochs for kidney, ...), on the GPU
when there is one, and records device, epochs, imgsz and time beside the published numbers of each task;
without a GPU it refuses unless `--allow-cpu`. The conversion of each recipe's data is done first and
timed apart; a recipe whose data is absent or does not convert is reported as skipped with the reason.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks import common

TOPIC = "accuracy"
BUDGET = {"epochs": 30, "warmup_epochs": 1, "imgsz": 160, "batch": 16, "workers": 0, "val": False, "plots": False,
          "device": "cpu", "seed": 0, "deterministic": True}
MAX_TRAIN_IMAGES = 96
MIN_TRAIN_IMAGES = 8  # fewer converted training images than this (a partial copy of the data): skipped

# Published results of each task, keyed by the data folder the recipe reads.
PUBLISHED: dict[str, dict[str, Any]] = {
    "kidney-stones-ct": {"reference": "kidney stones, YOLOv8", "precision": 0.772, "recall": 0.711, "mAP50": 0.74},
    "gi-tract-mri-uwmadison": {"reference": "GI tract, U-Net", "dice": 0.775},
    "pneumonia-cxr-kermany": {"reference": "Kermany et al. 2018, transfer learning", "accuracy": 0.928},
}

# The numbers shown per task: (where, key, heading); `validator` is Ultralytics', `evaluate` yolo_tools'.
SHOWN = {
    "detect": [("validator", "precision", "P"), ("validator", "recall", "R"), ("validator", "mAP50", "mAP50"),
               ("validator", "mAP50-95", "mAP50-95")],
    "segment": [("validator", "precision", "P(mask)"), ("validator", "recall", "R(mask)"),
                ("validator", "mAP50", "mAP50(mask)"), ("evaluate", "dice", "Dice")],
    "classify": [("validator", "top1_accuracy", "top1 acc")],
}


def _train_images(card: dict[str, Any], task: str) -> int:
    train = card["counts"]["train"]
    return int(train["images"]) if task != "classify" else int(sum(train.values()))


def train_and_evaluate(recipe: str, name: str, budget: dict[str, Any] | None, max_train_images: int) -> dict[str, Any]:
    """Child case: convert (timed apart), train under `budget` (None: the recipe's own settings), evaluate."""

    from yolo_tools import pipeline
    from yolo_tools.conversion import dataset_dir, prepare
    from yolo_tools.locations import runs_dir
    from yolo_tools.recipe import load_recipe

    loaded = load_recipe(recipe)
    started = time.perf_counter()
    prepare(loaded)
    convert_s = time.perf_counter() - started
    card = json.loads((dataset_dir(loaded) / "card.json").read_text())
    train_images = _train_images(card, loaded.task)
    val_images = _train_images({"counts": {"train": card["counts"]["val"]}}, loaded.task)
    if train_images < MIN_TRAIN_IMAGES:
        reasons = "; ".join(f"{n} {why}" for why, n in card.get("left_out", {}).items())
        return {"skipped": f"only {train_images} training image(s) convert from this copy of the data"
                           + (f" (left out: {reasons})" if reasons else "")}
    overrides = dict(budget or {})
    if budget and train_images > max_train_images:
        overrides["fraction"] = round(max_train_images / train_images, 4)
    shutil.rmtree(runs_dir() / loaded.name / name, ignore_errors=True)
    started = time.perf_counter()
    run_dir, validator = pipeline.train_recipe(recipe, overrides, name=name)
    train_s = time.perf_counter() - started
    args = yaml.safe_load((run_dir / "args.yaml").read_text())
    with open(run_dir / "results.csv") as handle:
        last = list(csv.DictReader(handle, skipinitialspace=True))[-1]
    losses = {k.removeprefix("train/"): float(v) for k, v in last.items() if k.startswith("train/")}
    evaluated: dict[str, Any] = {}
    eval_error = None
    if loaded.task == "segment" and hasattr(pipeline, "evaluate"):  # Dice; detect/classify: the validator's
        try:
            eval_args = {"imgsz": args["imgsz"], "batch": 16}
            if budget:
                eval_args["device"] = budget["device"]
            out = pipeline.evaluate(run_dir, eval_args)
            summary = json.loads((out / "summary.json").read_text())
            evaluated = {k: v for k, v in summary.get("metrics", {}).items() if isinstance(v, (int, float))}
        except Exception as exc:  # the training numbers still count when the extra scoring fails
            eval_error = f"{exc.__class__.__name__}: {exc}"
    return {
        "task": loaded.task, "source": loaded.data.source.path,
        "model": yaml.safe_load((run_dir / "recipe.yaml").read_text())["model"],  # what it started from (offline: a YAML)
        "train_images": train_images, "val_images": val_images,
        "train_images_used": round(train_images * float(args.get("fraction") or 1.0)),
        "epochs": args["epochs"], "imgsz": args["imgsz"], "batch": args["batch"], "device": str(args["device"]),
        "convert_s": convert_s, "train_s": train_s, "validator": validator, "evaluate": evaluated,
        "evaluate_error": eval_error, "train_losses": losses, "run": str(run_dir),
    }


def recipes(names: list[str] | None) -> list[Path]:
    found = sorted((common.ROOT / "recipes").glob("*.yaml"))
    if names:
        wanted = {Path(n).stem for n in names}
        found = [p for p in found if p.stem in wanted]
        missing = wanted - {p.stem for p in found}
        if missing:
            raise SystemExit(f"no such recipe in recipes/: {', '.join(sorted(missing))}")
    return found


def run(names: list[str] | None = None, full: bool = False, allow_cpu: bool = False, quick: bool = False,
        results: Path | None = None, argv: list[str] | None = None, epochs: int | None = None,
        imgsz: int | None = None, max_train_images: int | None = None) -> dict[str, Any]:
    if full and not allow_cpu:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--full trains at each recipe's own size (hours on a CPU): it needs a GPU; "
                             "pass --allow-cpu to run it anyway")
    work = common.work_dir()
    common.isolate_outputs(work)
    budget = None if full else {**BUDGET, "epochs": 1} if quick else dict(BUDGET)
    if budget and epochs:
        budget["epochs"] = epochs
    if budget and imgsz:
        budget["imgsz"] = imgsz
    max_train = max_train_images or (16 if quick else MAX_TRAIN_IMAGES)
    topic = f"{TOPIC}-full" if full else TOPIC
    payload = common.header(topic, argv, {"mode": "full (recipe's own train arguments)" if full else "budget",
                                          "budget": budget, "max_train_images": None if full else max_train})
    payload["recipes"] = {}
    for path in recipes(names):
        print(f"\n== {path.stem}")
        name = "bench-full" if full else "bench-budget"
        try:
            result = common.in_subprocess(
                "benchmarks.accuracy:train_and_evaluate",
                {"recipe": str(path), "name": name, "budget": budget, "max_train_images": max_train})
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()[-1][:300]
            print(f"  skipped: {reason}")
            payload["recipes"][path.stem] = {"skipped": reason}
            continue
        if "skipped" in result:
            print(f"  skipped: {result['skipped']}")
            payload["recipes"][path.stem] = {"skipped": result["skipped"]}
            continue
        for key in ("seconds", "cpu_s", "import_s", "peak_increase_mb", "rss_before_mb"):
            result.pop(key, None)
        if result.get("source") in PUBLISHED:
            result["published"] = PUBLISHED[result["source"]]
        payload["recipes"][path.stem] = result
        print("  " + _metrics_line(result))
    print_report(payload)
    common.save(topic, payload, results)
    return payload


def _metrics_line(result: dict[str, Any]) -> str:
    parts = []
    for where, key, heading in SHOWN[result["task"]]:
        value = result.get(where, {}).get(key)
        parts.append(f"{heading} {value:.3f}" if isinstance(value, (int, float)) else f"{heading} -")
    losses = result.get("train_losses") or {}
    if losses:
        parts.append("loss " + "/".join(f"{v:.2f}" for v in losses.values()))
    return "  ".join(parts)


def print_report(payload: dict[str, Any]) -> None:
    rows = []
    for name, result in payload["recipes"].items():
        if "skipped" in result:
            rows.append({"recipe": name, "metrics": f"skipped: {result['skipped'][:80]}"})
            continue
        rows.append({"recipe": name, "task": result["task"], "train": result["train_images_used"],
                     "val": result["val_images"], "epochs": result["epochs"], "imgsz": result["imgsz"],
                     "device": result["device"], "train_s": result["train_s"], "metrics": _metrics_line(result)})
    print()
    print(common.table(rows, [("recipe", "recipe", ""), ("task", "task", ""), ("train", "train imgs", "d"),
                              ("val", "val imgs", "d"), ("epochs", "epochs", "d"), ("imgsz", "imgsz", "d"),
                              ("device", "device", ""), ("train_s", "train s", ".0f"), ("metrics", "metrics", "")]))


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--recipes", nargs="*", help="recipe names (default: every recipes/*.yaml)")
    p.add_argument("--full", action="store_true", help="each recipe's own train arguments, on the GPU")
    p.add_argument("--allow-cpu", action="store_true", help="with --full: run even without a GPU")
    p.add_argument("--epochs", type=int, help=f"a larger (or smaller) budget: epochs (default {BUDGET['epochs']})")
    p.add_argument("--imgsz", type=int, help=f"budget image size (default {BUDGET['imgsz']})")
    p.add_argument("--max-images", type=int, help=f"training images per epoch at most (default {MAX_TRAIN_IMAGES})")
    args = p.parse_args(argv)
    if args.full and (args.epochs or args.imgsz or args.max_images):
        p.error("--full uses each recipe's own train arguments; --epochs/--imgsz/--max-images set the CPU budget")
    run(args.recipes, args.full, args.allow_cpu, args.quick, args.results, argv, args.epochs, args.imgsz,
        args.max_images)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""nnU-Net's lessons measured on a volumetric recipe: input size, 2.5D context, mirroring, largest component, folds.

    nice -n 15 .venv/bin/python -m benchmarks.nnunet --recipe hippocampus --epochs 5 --variants shipped flip-64 ctx0-64 flip-128 flip-auto
    nice -n 15 .venv/bin/python -m benchmarks.nnunet --recipe hippocampus --epochs 40 --variants flip-128 --test
    nice -n 15 .venv/bin/python -m benchmarks.nnunet --recipe hippocampus --epochs 5 --variants flip-64 --cv 5 --test
    nice -n 15 .venv/bin/python -m benchmarks.nnunet --recipe hippocampus --compare ctx0-64-e5:flip-64-e5 flip-64-e5:flip-128-e5
    nice -n 15 .venv/bin/python -m benchmarks.nnunet --recipe hippocampus --compare 128-e10:s-128-e10 --test

Each variant is the recipe as shipped (its patient-wise val and test splits) with what the variant changes
(`--list`), trained for a FIXED number of epochs (never `time=`, whose epochs depend on the machine), seed 0, on
the CPU, with validation only after the last epoch (`val=False`: the last epoch's weights are scored). Its
process CPU time (user + system, all threads) is recorded beside the wall time: on a shared machine wall time
measures the scheduler, CPU time the work, so CPU-hours are compared across variants and machines.

Then the weights are scored by `yolo_tools evaluate` (3D Dice per volume and 3D HD95, 95% intervals over
patients) on val, and with `--test` on the test split, each way:
- `plain`: no mirroring, no post-processing;
- `mirrored`: with the variant's `predict.flips` (trained with the matching flip augmentation);
- the largest component per class: each evaluation also scores every volume with only each class's largest 3D
  component kept (`dice_largest_*` in per_patient.csv), so its gain is read off the same predictions; with
  `--test`, the run decides it on val (postprocessing.json) and the test split is scored with that decision.
Each gain is the mean of the per-volume differences with a 95% bootstrap interval over patients (paired: both
ways score the same volumes). The cost of mirroring is the CPU time of one prediction pass over the split,
plain against mirrored. With `--cv K` the variant is also cross-validated by patient (`yolo_tools cv`, the
same epochs per fold) and the fold ensemble (each fold at its own operating point, post-processing decided on
the pooled out-of-fold predictions) is scored on the test split against the single model.

A detector (`--recipe heart`) goes through the same steps with its box IoU in place of Dice: no masks, so no
largest component, and no mirroring where the recipe allows none.

Results: `benchmarks/results/nnunet-<recipe>.json`, saved after every variant (a rerun keeps the variants
already there); `python -m benchmarks.report` renders them. Runs and converted data go under the benchmark
work folder (git-ignored).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from benchmarks import common

TOPIC = "nnunet"
COMMON = {"seed": 0, "workers": 0, "device": "cpu", "val": False, "plots": False}
# What each variant changes in the shipped recipe, per recipe: the model, train arguments, preprocess and predict keys.
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "hippocampus": {
        "shipped": {"about": "the recipe as shipped (64 px, 2.5D context, no flips)"},
        "flip-64": {"about": "left-right mirroring in training and at prediction, 64 px",
                    "train": {"flipud": 0.5}, "predict": {"flips": ["vertical"]}},
        "ctx0-64": {"about": "flip-64 without 2.5D context (one slice, grey)",
                    "train": {"flipud": 0.5}, "predict": {"flips": ["vertical"]}, "preprocess": {"context": 0}},
        "flip-128": {"about": "flip-64 at 128 px", "train": {"flipud": 0.5, "imgsz": 128}, "predict": {"flips": ["vertical"]}},
        "flip-auto": {"about": "flip-64 at imgsz=auto (the median structure 4 cells of the stride-8 head)",
                      "train": {"flipud": 0.5, "imgsz": "auto"}, "predict": {"flips": ["vertical"]}},
        "128": {"about": "the recipe at 128 px (no flips)", "train": {"imgsz": 128}},
        # With 2.5D context the red and blue channels are the neighbouring slices: Ultralytics' colour augmentation
        # (hue turned up to 2.7 degrees, saturation scaled by 0.3 to 1.7) changes how they differ from the middle one.
        "128-grey-aug": {"about": "128 px without hue and saturation augmentation (hsv_h=0, hsv_s=0; brightness kept)",
                         "train": {"imgsz": 128, "hsv_h": 0.0, "hsv_s": 0.0}},
        # Capacity: 40 and 60 epochs of yolov8n-seg at 128 score alike on val, and its masks' grid could hold far more
        # (benchmarks/mask_grid.py), so the small model itself may be what stops it.
        "s-128": {"about": "128 px with yolov8s-seg (3.4 times the parameters of n) from scratch",
                  "model": "yolov8s-seg.yaml", "train": {"imgsz": 128}},
    },
    # JSRT: one film per patient; a test split of 15% of the films is kept apart (the recipe as shipped has none).
    # Left and right lung are classes and the heart lies left: no mirror image is anatomy, so no flips.
    "heart-seg": {
        "shipped-256": {"about": "as shipped, at 256 px (CPU), 15% of the films kept apart as a test split",
                        "train": {"imgsz": 256}, "split": {"test": 0.15}},
        "shipped-512": {"about": "as shipped (512 px), 15% of the films kept apart as a test split",
                        "split": {"test": 0.15}},
    },
    # The heart detector on the same JSRT films (the same 15% kept apart: same files, seed and share), scored by how
    # well its one box fits the heart's (box IoU); the heart lies left of the midline, so no flips.
    "heart": {
        "shipped-512": {"about": "the detector as shipped (512 px, one box per film), 15% of the films kept apart as a test split",
                        "split": {"test": 0.15}},
    },
    # ACDC: a mirror image puts the right ventricle on the wrong side of the heart, so no flips.
    "cardiac": {
        "shipped": {"about": "the recipe as shipped (256 px, one slice)"},
        "ctx1": {"about": "2.5D context (the neighbouring slices as red and blue)", "preprocess": {"context": 1}},
        "auto": {"about": "imgsz=auto", "train": {"imgsz": "auto"}},
        # The same three with 15% of the patients kept apart first (the recipe as shipped has no test split).
        "held": {"about": "as shipped, 15% of the patients kept apart as a test split", "split": {"test": 0.15}},
        "held-ctx1": {"about": "held with 2.5D context (the neighbouring slices as red and blue)",
                      "preprocess": {"context": 1}, "split": {"test": 0.15}},
        "held-auto": {"about": "held at imgsz=auto", "train": {"imgsz": "auto"}, "split": {"test": 0.15}},
    },
}


def variant_recipe(recipe: str, name: str, work: Path) -> Path:
    """The shipped recipe with the variant's changes, written beside the runs (its path is in the command)."""
    raw = yaml.safe_load((common.ROOT / "recipes" / f"{recipe}.yaml").read_text(encoding="utf-8"))
    change = VARIANTS[recipe][name]
    if "model" in change:
        raw["model"] = change["model"]
    raw["train"] = {**raw.get("train", {}), **change.get("train", {})}
    raw["preprocess"] = {**raw.get("preprocess", {}), **change.get("preprocess", {})}
    raw["predict"] = {**raw.get("predict", {}), **change.get("predict", {})}
    if raw["task"] == "segment":  # a detector has no masks to keep the largest component of
        raw["predict"]["largest_component"] = "auto"
    raw["data"]["split"] = {**raw["data"].get("split", {}), **change.get("split", {})}
    path = work / "recipes" / f"{recipe}-{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


@contextlib.contextmanager
def predicting(run_dir: Path, flips: list[str], largest: str) -> Iterator[None]:
    """The run's recipe.yaml with these predict settings while the block runs (the benchmark's own runs only)."""
    path = run_dir / "recipe.yaml"
    kept = path.read_text()
    raw = yaml.safe_load(kept)
    raw["predict"] = {"flips": flips, "largest_component": largest}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    try:
        yield
    finally:
        path.write_text(kept)


def _cpu() -> float:
    return time.process_time()


def cases(eval_dir: Path) -> pd.DataFrame:
    """What an evaluation scored, one row per case: each volume (per_patient.csv), or each image of a set of
    images (per_image.csv; the image is its own case, and its patient as the dataset lists it)."""
    volumes = eval_dir / "per_patient.csv"
    if volumes.is_file():
        return pd.read_csv(volumes, dtype={"patient": str, "volume": str})
    images = pd.read_csv(eval_dir / "per_image.csv")  # each image its own patient: one film per patient (JSRT)
    return images.assign(volume=images["image"].astype(str), patient=images["image"].astype(str))


def _scored(eval_dir: Path) -> dict[str, Any]:
    """The headline numbers of an evaluation with their 95% intervals over patients: 3D per volume (dice_3d,
    hd95_3d, per class) as `evaluate` gives them, or for images the per-image means (dice, box_iou per class; a
    detector's box_iou)."""
    from yolo_tools.metrics.bootstrap import Bootstrap

    summary = json.loads((eval_dir / "summary.json").read_text())
    metrics, intervals = summary["metrics"], summary.get("intervals") or {}
    if "dice_3d" in metrics:
        wanted = [k for k in metrics if k.startswith(("dice_3d", "hd95_3d", "nsd_3d"))]
        numbers, bounds = {k: metrics[k] for k in wanted}, {k: intervals[k] for k in wanted if intervals.get(k)}
    else:
        table, names = cases(eval_dir), summary["classes"]
        columns = ["dice", "hd95", "box_iou", *[f"{m}_{n}" for m in ("dice", "hd95", "box_iou") for n in names]]
        boot = Bootstrap(table["patient"].tolist())
        numbers = {c: float(table[c].mean()) for c in columns if c in table}
        bounds = {c: list(boot.mean(table[c].to_numpy(np.float64)) or []) for c in columns if c in table}
    return {
        "set": summary.get("scored_set"), "volumes": metrics.get("volumes", summary.get("images")),
        "patients": metrics.get("patients", (summary.get("bootstrap") or {}).get("patients")),
        "metrics": numbers, "intervals": {k: v for k, v in bounds.items() if v},
        "conf": summary.get("conf"), "class_conf": summary.get("class_conf"), "flips": summary.get("flips"),
        "postprocessing": (summary.get("postprocessing") or {}).get("largest_component"),
    }


def paired_gain(before: pd.DataFrame, after: pd.DataFrame, column: str, after_column: str | None = None) -> dict[str, Any]:
    """Mean per-volume difference (after - before) with a 95% bootstrap interval over patients."""
    from yolo_tools.metrics.bootstrap import Bootstrap

    joined = before.merge(after, on=["patient", "volume"], suffixes=("_a", "_b"))
    first = f"{column}_a" if f"{column}_a" in joined else column
    second = f"{after_column or column}_b" if f"{after_column or column}_b" in joined else (after_column or column)
    diff = joined[second].to_numpy(np.float64) - joined[first].to_numpy(np.float64)
    interval = Bootstrap(joined["patient"].astype(str).tolist()).mean(diff)
    return {"gain": float(np.nanmean(diff)), "interval": list(interval) if interval else None, "volumes": int(len(diff))}


def _gains(plain: pd.DataFrame, other: pd.DataFrame | None, names: list[str]) -> dict[str, Any]:
    gains: dict[str, Any] = {}
    for name in ["", *names]:
        suffix = f"_{name}" if name else ""
        if f"dice{suffix}" not in plain:  # a detector: no masks, no Dice
            continue
        if other is not None:
            gains[f"mirroring dice{suffix}"] = paired_gain(plain, other, f"dice{suffix}")
        if name:
            gains[f"largest component dice{suffix}"] = paired_gain(plain, plain, f"dice{suffix}", f"dice_largest{suffix}")
    return gains


def _prediction_cpu(run_dir: Path, images: list[Path], mirrored: bool) -> dict[str, float]:
    """CPU and wall seconds per image of one prediction pass, as evaluate makes it (plain or mirrored)."""
    from yolo_tools import engine, operating_point
    from yolo_tools.inference import predictors
    from yolo_tools.runs import run_recipe

    recipe = run_recipe(run_dir)
    args = {**operating_point.predict_args(recipe, run_dir, {}), "retina_masks": True}
    if mirrored:
        args |= predictors.mirroring(recipe)
    cpu, wall = _cpu(), time.perf_counter()
    for _ in engine.predict(run_dir / "weights" / "best.pt", images, args):
        pass
    return {"cpu_s_per_image": (_cpu() - cpu) / len(images), "wall_s_per_image": (time.perf_counter() - wall) / len(images)}


def evaluate_ways(run_dir: Path, split: str, names: list[str], flips: list[str], decide: bool) -> dict[str, Any]:
    """Plain and mirrored evaluations of one split, their per-volume gains, and with `decide` the recipe's way:
    mirrored (when it mirrors) with the largest component decided on val."""
    from yolo_tools import pipeline

    out: dict[str, Any] = {}
    tables: dict[str, pd.DataFrame] = {}
    ways = [("plain", [], "off"), *([("mirrored", flips, "off")] if flips else []), *([("recipe", flips, "auto")] if decide else [])]
    for way, way_flips, largest in ways:
        with predicting(run_dir, way_flips, largest):
            cpu = _cpu()
            eval_dir = pipeline.evaluate(run_dir, {}, split=split)
            spent = _cpu() - cpu
        kept = run_dir / f"bench-{split}-{way}"
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(eval_dir, kept, ignore=shutil.ignore_patterns("masks", "*.png", "*.jpg"))
        out[way] = {**_scored(eval_dir), "evaluate_cpu_s": round(spent, 1)}
        tables[way] = cases(eval_dir)
    out["gains"] = _gains(tables["plain"], tables.get("mirrored"), names)
    if decide:
        out["gains"] |= {f"recipe's way dice{s}": paired_gain(tables["plain"], tables["recipe"], f"dice{s}")
                         for s in ["", *[f"_{n}" for n in names]]}
        decision = run_dir / "postprocessing.json"
        out["postprocessing_decision"] = json.loads(decision.read_text()) if decision.is_file() else None
    return out


def run_variant(recipe: str, name: str, epochs: int, test: bool, folds: int, work: Path, reuse: dict | None = None) -> dict[str, Any]:
    """Train the variant (or, with `reuse`, the training figures of an earlier call whose run is still there), then
    score it every way asked for."""
    from yolo_tools import pipeline
    from yolo_tools.locations import runs_dir
    from yolo_tools.recipe import load_recipe

    path = variant_recipe(recipe, name, work)
    loaded = load_recipe(path)
    names, flips = list(loaded.classes), list(loaded.predict.flips)
    overrides = {**COMMON, "epochs": epochs}
    run_name = f"{name}-e{epochs}"
    run_dir = runs_dir() / recipe / run_name
    if reuse is not None and (run_dir / "weights" / "last.pt").is_file():  # trained by an earlier call: scored again
        train = reuse
    else:
        shutil.rmtree(run_dir, ignore_errors=True)  # this benchmark's earlier run
        load_before = os.getloadavg()[0]
        cpu, wall = _cpu(), time.perf_counter()
        run_dir, _ = pipeline.train_recipe(path, overrides, name=run_name)
        train = {"cpu_s": round(_cpu() - cpu, 1), "wall_s": round(time.perf_counter() - wall, 1),
                 "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    trained = yaml.safe_load((run_dir / "args.yaml").read_text())
    args = " ".join(f"{k}={v}" for k, v in overrides.items())
    result: dict[str, Any] = {
        "about": VARIANTS[recipe][name]["about"], "epochs": epochs, "imgsz": trained.get("imgsz"), "train": train,
        "recipe": str(path.relative_to(common.ROOT)) if path.is_relative_to(common.ROOT) else str(path),
        "command": f"yolo_tools train {path.name} {args} --name {run_name}",
        "val": evaluate_ways(run_dir, "val", names, flips, decide=False),
    }
    images = sorted(Path(_dataset_of(run_dir).image_source("val")).iterdir())[:300]
    result["prediction_cost"] = {"images": len(images), "plain": _prediction_cpu(run_dir, images, False)}
    if flips:
        result["prediction_cost"]["mirrored"] = _prediction_cpu(run_dir, images, True)
    if test:
        result["test"] = evaluate_ways(run_dir, "test", names, flips, decide=loaded.task == "segment")  # a detector has no masks
    if folds:
        result["cv"] = run_cv(path, recipe, name, epochs, folds, run_dir, names)
    return result


def _task(recipe: str) -> str:
    return yaml.safe_load((common.ROOT / "recipes" / f"{recipe}.yaml").read_text(encoding="utf-8"))["task"]


def _dataset_of(run_dir: Path):
    from yolo_tools.conversion import prepare_dataset
    from yolo_tools.runs import run_recipe

    return prepare_dataset(run_recipe(run_dir), run_dir=run_dir)


def run_cv(path: Path, recipe: str, name: str, epochs: int, folds: int, single: Path, names: list[str]) -> dict[str, Any]:
    """K folds by patient over train + val, then the fold ensemble on test against the single model (recipe's way)."""
    from yolo_tools import pipeline
    from yolo_tools.locations import runs_dir

    cv_name = f"{name}-e{epochs}-cv{folds}"
    overrides = {**COMMON, "epochs": epochs, "folds": folds}
    cpu, wall = _cpu(), time.perf_counter()
    pipeline.cross_validate(path, dict(overrides), name=cv_name)
    cv_root = runs_dir() / recipe / cv_name
    spent = {"cpu_s": round(_cpu() - cpu, 1), "wall_s": round(time.perf_counter() - wall, 1)}
    eval_dir = pipeline.evaluate(cv_root, {}, split="test")
    ensemble, alone = cases(eval_dir), cases(single / "bench-test-recipe")
    decision = cv_root / "postprocessing.json"
    return {
        "folds": folds, "train_and_evaluate": spent,
        "command": f"yolo_tools cv {path.name} {' '.join(f'{k}={v}' for k, v in overrides.items())} --name {cv_name}; "
                   f"yolo_tools evaluate runs/{recipe}/{cv_name} --split test",
        "summary": json.loads((cv_root / "cv" / "summary.json").read_text())["mean"],
        "ensemble_test": _scored(eval_dir),
        "postprocessing_decision": json.loads(decision.read_text()) if decision.is_file() else None,
        "gains": {f"fold ensemble dice{s}": paired_gain(alone, ensemble, f"dice{s}") for s in ["", *[f"_{n}" for n in names]]},
    }


def compare(recipe: str, pairs: list[str], results: Path, argv: list[str] | None, split: str = "val") -> dict:
    """Paired gains between variants (`A:B`, B's per-volume Dice minus A's on the same volumes, both plain),
    from the evaluations each variant's run kept: what changing the input size or the 2.5D context gains. Val
    decides; on the test split (both runs trained with `--test`) it is only reported."""
    from yolo_tools.locations import runs_dir

    work = common.work_dir()
    common.isolate_outputs(work)
    topic = f"{TOPIC}-{recipe}"
    path = results / f"{topic}.json"
    payload = json.loads(path.read_text())
    shown = " ".join(sys.argv[1:] if argv is None else argv)
    found = payload.setdefault("comparisons", {})
    for pair in pairs:
        first, _, second = pair.partition(":")
        if not first or not second:
            raise SystemExit(f"--compare {pair}: give two scored runs as A:B (e.g. 128-e10:s-128-e10)")
        folders = [runs_dir() / recipe / v / f"bench-{split}-plain" for v in (first, second)]
        for folder in folders:
            if not folder.is_dir():
                trained = "with --test " if split == "test" else ""
                raise SystemExit(f"--compare {pair}: {folder} is missing; score that variant first "
                                 f"(--variants NAME --epochs N {trained}makes it)")
        tables = [cases(folder) for folder in folders]
        names = [c[len("dice_"):] for c in tables[0] if c.startswith("dice_") and not c.startswith("dice_largest")]
        found[pair if split == "val" else f"{pair} on {split}"] = {
            "from": first, "to": second, "split": split, "way": "plain",
            "command": f"nice -n 15 .venv/bin/python -m benchmarks.{TOPIC} {shown}".strip(),
            "gains": {f"dice{s}": paired_gain(tables[0], tables[1], f"dice{s}") for s in ["", *[f"_{n}" for n in names]]},
        }
    common.save(topic, payload, results)
    return payload


def run(recipe: str, names: list[str], epochs: int, test: bool, folds: int, results: Path, argv: list[str] | None,
        reuse: bool = False) -> dict:
    work = common.work_dir()
    common.isolate_outputs(work)
    topic = f"{TOPIC}-{recipe}"
    path = results / f"{topic}.json"
    payload = json.loads(path.read_text()) if path.is_file() else {"variants": {}}
    header = common.header(topic, argv, {"recipe": recipe, "common": COMMON}, probe_gpu=False)
    shown = " ".join(sys.argv[1:] if argv is None else argv)
    header["command"] = f"nice -n 15 .venv/bin/python -m benchmarks.{TOPIC} {shown}".strip()
    for name in names:
        earlier = [v["train"] for k, v in payload.get("variants", {}).items() if k.startswith(f"{name}-e{epochs}") and v.get("epochs") == epochs]
        result = run_variant(recipe, name, epochs, test, folds, work, earlier[0] if reuse and earlier else None)
        key = f"{name}-e{epochs}" + ("-test" if test else "") + (f"-cv{folds}" if folds else "")
        payload = {**payload, **header, "variants": {**payload.get("variants", {}), key: {**result, "machine": header["machine"],
                                                                                          "benchmark_command": header["command"]}}}
        common.save(topic, payload, results)
    return payload


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="hippocampus")
    p.add_argument("--variants", nargs="*", default=["shipped"])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--test", action="store_true", help="also score the test split, with the largest component decided on val "
                   "(with --compare: compare on the test split, reported only)")
    p.add_argument("--cv", type=int, default=0, help="also cross-validate with K folds and score the fold ensemble on test")
    p.add_argument("--reuse", action="store_true", help="score a variant's run trained by an earlier call again, without training")
    p.add_argument("--compare", nargs="*", default=[], metavar="A:B",
                   help="only compare variants' runs already scored (e.g. flip-64-e5:flip-128-e5), paired per val volume")
    p.add_argument("--list", action="store_true")
    args = p.parse_args(argv)
    if args.list:
        for recipe, variants in VARIANTS.items():
            for name, change in variants.items():
                print(f"{recipe:12} {name:10} {change['about']}")
        return 0
    if args.recipe not in VARIANTS:
        p.error(f"no variants for recipe {args.recipe}; --list shows them")
    if (args.cv or args.compare) and _task(args.recipe) != "segment":
        p.error(f"--cv and --compare score masks by Dice; {args.recipe} is a {_task(args.recipe)} recipe: run its variants without them")
    if args.compare:
        compare(args.recipe, args.compare, args.results, argv, "test" if args.test else "val")
        return 0
    unknown = [v for v in args.variants if v not in VARIANTS[args.recipe]]
    if unknown:
        p.error(f"unknown variants {unknown}; --list shows them")
    run(args.recipe, args.variants, args.epochs, args.test, args.cv, args.results, argv, args.reuse)
    return 0


if __name__ == "__main__":
    sys.exit(main())

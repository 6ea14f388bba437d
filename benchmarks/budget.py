"""Quality within a fixed CPU budget: recipe variants side by side, each trained for the same time.

    nice -n 5 .venv/bin/python -m benchmarks.budget --hours 0.25                       # rank every variant
    nice -n 5 .venv/bin/python -m benchmarks.budget --hours 2 --variants kidney/tiles-320 heart/transfer-cls
    nice -n 5 .venv/bin/python -m benchmarks.budget --hours 2 --side-by-side 2 --variants kidney/v8n-320 kidney/v8n-160-then-320
    nice -n 5 .venv/bin/python -m benchmarks.budget --list                             # the variants and what they change

Epoch counts do not carry between machines (a `time=` cap reaches 4 epochs on one and 24 on another), a
time budget does: what a user without a GPU gets in an afternoon. Every variant trains for `--hours`
(Ultralytics' `time=`, which stops the run and recomputes its learning-rate schedule to fit that time;
epochs is only an upper bound), on the CPU, seed 0, with validation only after the last epoch so the
whole budget goes into training. The best weights are then validated on the recipe's patient-wise val
split (Ultralytics' validator) and scored by `yolo_tools evaluate` (Dice per organ for segmentation;
found/missed boxes and recall at the threshold for detection, with sliced inference for tiled variants;
ROC AUC, sensitivity and specificity for classification). The epochs each variant reached are recorded.

A variant is a recipe plus what it changes: the model family (YOLOv8n, YOLO11n, YOLO26n as the pinned
Ultralytics ships their YAMLs, and their -seg/-cls), the image size, progressive resizing (part of the
time at a smaller size, then the rest at full size from those weights: the epochs of both stages are
counted together), `cache`, `rect`, official weights
(offline they fall back to training from scratch, recorded as `started_from`), transfer from another
variant's best weights (`pretrained=`), and tiles at native resolution with sliced inference (kidney).
Class balance for pneumonia (1,341 normal vs 3,875 pneumonia films): `evaluate` scores a two-class
classifier at the threshold it chose on val (Youden's J, yolo_tools/operating_point.py), so sensitivity
and specificity are listed beside the validator's argmax top-1; the `-balanced` variant trains with the
recipe's `class_balance: oversample` (Ultralytics' `cls_pw` class weights reach detection losses only).
`--side-by-side 2` trains two variants at once, each pinned to half the cores (one each on 2 cores): a
pair for a two-hour confirmation then takes two hours, and both get the same share of the machine.
Variants that change the data (tiles) or a recipe key get a recipe of their own, written beside the runs;
its path is in the command. Rank variants at
a short budget first, then confirm the best at two hours (`--variants`).

Results: `benchmarks/results/budget-<minutes>min.json`, one file per budget, saved after every variant; a rerun
at the same budget keeps the variants already there (so a ranking can be run in batches or resumed), and
`python -m benchmarks.report` renders each budget as its own table in `benchmarks/RESULTS.md`. The CPU
time each variant's process got and the load average before and after are stored beside it: the budget
is wall time, so on a busy machine a variant may have had less of the cores than another. Runs and
converted data go under the benchmark work folder.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from benchmarks import common

TOPIC = "budget"
# Common to every variant: only the time differs between a ranking and a confirming run.
BASE = {"epochs": 1000, "patience": 1000, "device": "cpu", "workers": 2, "seed": 0, "deterministic": True,
        "val": False, "plots": False}
TILES = {"size": 320, "overlap": 0.2, "min_visible": 0.5, "background": 0.1}


@dataclass(frozen=True)
class Variant:
    """A recipe and what this variant changes in it (all else as the recipe says)."""

    recipe: str
    model: str | None = None
    train: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # data.options (a new dataset: the recipe gets a new name)
    evaluate: dict[str, Any] = field(default_factory=dict)  # extra `evaluate` arguments (slice=, conf=)
    pretrained_from: str | None = None  # another variant whose best weights start this one (pretrained=)
    note: str = ""
    recipe_keys: dict[str, Any] = field(default_factory=dict)  # top-level recipe keys (class_balance); same data
    first_imgsz: int | None = None  # progressive resizing: the first `first_share` of the time at this size,
    first_share: float = 0.5  # then the rest at `imgsz`, starting from those weights
    split: dict[str, Any] = field(default_factory=dict)  # data.split (another dataset: the recipe gets a new name)


def _families(recipe: str, suffix: str, imgsz: int, **train: Any) -> dict[str, Variant]:
    return {f"{recipe}/{family}{suffix}-{imgsz}": Variant(recipe, f"{model}{suffix}.yaml", {"imgsz": imgsz, **train})
            for family, model in (("v8n", "yolov8n"), ("11n", "yolo11n"), ("26n", "yolo26n"))}


VARIANTS: dict[str, Variant] = {
    **_families("kidney", "", 320),
    "kidney/v8n-640": Variant("kidney", "yolov8n.yaml", {"imgsz": 640}),
    "kidney/v8n-320-cache-rect": Variant("kidney", "yolov8n.yaml", {"imgsz": 320, "cache": "ram", "rect": True}),
    "kidney/v8n-official-320": Variant("kidney", "yolov8n.pt", {"imgsz": 320}, note="official weights; offline: from scratch"),
    "kidney/v8n-160-then-320": Variant("kidney", "yolov8n.yaml", {"imgsz": 320}, first_imgsz=160,
                                       note="progressive resizing: half the time at 160 px, then 320 px from those weights"),
    "kidney/tiles-320": Variant("kidney", "yolov8n.yaml", {"imgsz": 320}, {"tiles": TILES}, {"slice": 320},
                                note="native-resolution tiles, sliced inference on whole val images"),
    "kidney/v8n-160-then-320-published-split": Variant(
        "kidney", "yolov8n.yaml", {"imgsz": 320}, first_imgsz=160, split={"by": "source"},
        note="Roboflow's own train/valid split (one examination on both sides), as the published mAP50 0.74 was measured"),
    **_families("heart", "", 256),
    "heart/transfer-cls": Variant("heart", "yolov8n.yaml", {"imgsz": 256}, pretrained_from="pneumonia/v8n-cls-128",
                                  note="backbone of the pneumonia classifier"),
    **_families("heart-seg", "-seg", 256),
    **_families("pneumonia", "-cls", 128, batch=64),
    "pneumonia/v8n-cls-128-balanced": Variant("pneumonia", "yolov8n-cls.yaml", {"imgsz": 128, "batch": 64},
                                              recipe_keys={"class_balance": "oversample"},
                                              note="normal films repeated to match pneumonia (class_balance)"),
    **_families("gi-mini", "-seg", 320, batch=8),
    "gi-mini/transfer-seg-320": Variant("gi-mini", "yolov8n-seg.yaml", {"imgsz": 320, "batch": 8},
                                        pretrained_from="heart-seg/v8n-seg-256",
                                        note="from the heart-seg variant's weights (3 classes too): 24 slices are too few from scratch"),
}


def _recipe_file(variant: Variant, key: str, work: Path) -> Path:
    """The variant's recipe: the bundled one, or (when it changes the data) a copy with its own name."""
    bundled = common.ROOT / "recipes" / f"{variant.recipe}.yaml"
    if not (variant.options or variant.recipe_keys or variant.split):
        return bundled
    raw = {**yaml.safe_load(bundled.read_text()), **variant.recipe_keys}
    raw["data"]["source"] = {**raw["data"]["source"], "kind": "local"}  # a copy reads the data already here
    if variant.options or variant.split:  # another dataset, under another name; else the recipe's own data is reused
        raw["name"] = key.replace("/", "-")
        raw["data"]["options"] = {**raw["data"].get("options", {}), **variant.options}
        if variant.split:
            raw["data"]["split"] = variant.split
    path = work / "recipes" / f"{key.replace('/', '-')}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _command(recipe: Path, overrides: dict[str, Any], name: str) -> str:
    where = recipe.relative_to(common.ROOT) if recipe.is_relative_to(common.ROOT) else recipe
    return f"yolo_tools train {where} " + " ".join(f"{k}={v}" for k, v in overrides.items()) + f" --name {name}"


def _numbers(eval_dir: Path) -> dict[str, float]:
    """evaluate's numbers, and per class the masks' box fit (`box_iou_<class>`: a heart box from heart-seg
    set beside heart's detector on the same val films)."""
    summary = json.loads((eval_dir / "summary.json").read_text())
    numbers = {k: v for k, v in summary.get("metrics", {}).items() if isinstance(v, (int, float))}
    with open(eval_dir / "per_class.csv") as handle:
        for row in csv.DictReader(handle):
            if row.get("box_iou_mean"):
                numbers[f"box_iou_{row['class']}"] = float(row["box_iou_mean"])
    return numbers


def train_variant(key: str, variant: dict[str, Any], hours: float, recipe: str, pretrained: str | None) -> dict[str, Any]:
    """Child case: train one variant for `hours`, validate its best weights, evaluate them."""
    from yolo_tools import pipeline
    from yolo_tools.locations import runs_dir
    from yolo_tools.recipe import load_recipe

    v = Variant(**variant)
    loaded = load_recipe(recipe)
    name = "budget-" + key.split("/", 1)[1]
    overrides = {**BASE, **v.train, "time": hours}
    if v.model:
        overrides["model"] = v.model
    if pretrained:
        overrides["pretrained"] = pretrained
    stages = [(name, overrides)]
    if v.first_imgsz:  # progressive resizing: small first, then full size from its weights, in the same total time
        first = {**overrides, "imgsz": v.first_imgsz, "time": hours * v.first_share}
        stages = [(f"{name}-first", first), (name, {**overrides, "time": hours * (1 - v.first_share),
                                                     "pretrained": str(runs_dir() / loaded.name / f"{name}-first" / "weights" / "best.pt")})]
    train_s, epochs, commands = 0.0, 0, []
    for stage, stage_overrides in stages:
        shutil.rmtree(runs_dir() / loaded.name / stage, ignore_errors=True)
        started = time.perf_counter()
        run_dir, validator = pipeline.train_recipe(recipe, stage_overrides, name=stage)
        train_s += time.perf_counter() - started
        with open(run_dir / "results.csv") as handle:
            epochs += len(list(csv.DictReader(handle)))
        commands.append(_command(Path(recipe), stage_overrides, stage))
    started_from = yaml.safe_load((run_dir / "recipe.yaml").read_text())["model"]
    eval_args = {"imgsz": v.train.get("imgsz", loaded.train.get("imgsz", 640)), "device": "cpu", **v.evaluate}
    evaluated = _numbers(pipeline.evaluate(run_dir, eval_args))
    return {
        "variant": key, "recipe": loaded.name, "task": loaded.task, "model": v.model or loaded.model,
        "started_from": started_from, "changes": {k: val for k, val in asdict(v).items() if val and k != "recipe"},
        "hours": hours, "epochs_reached": epochs, "train_s": train_s, "validator": validator, "evaluate": evaluated,
        "cores": len(os.sched_getaffinity(0)),
        "command": " && ".join(commands),
        "evaluate_command": f"yolo_tools evaluate {run_dir.relative_to(runs_dir().parent) if run_dir.is_relative_to(runs_dir().parent) else run_dir} "
                            + " ".join(f"{k}={val}" for k, val in eval_args.items()),
        "run": str(run_dir),
    }


def run(keys: list[str] | None, hours: float, results: Path | None = None, argv: list[str] | None = None,
        variants: dict[str, Variant] | None = None, isolated: bool = True, side_by_side: int = 1) -> dict[str, Any]:
    """Train the chosen variants (default: all) for `hours` each, in order; a variant another one starts
    from runs first. `side_by_side` variants train at once, each pinned to its share of the cores (`lanes`):
    on 2 cores a pair takes the wall time of one. `isolated` runs each in its own process (the benchmark);
    tests call it in-process."""
    table = variants or VARIANTS
    unknown = sorted(set(keys or []) - set(table))
    if unknown:
        raise SystemExit(f"no such variant: {', '.join(unknown)} (see --list)")
    chosen = list(keys or table)
    for key in list(chosen):  # a transfer needs its source trained in this run
        source = table[key].pretrained_from
        if source and source not in chosen:
            chosen.insert(chosen.index(key), source)
    sources = {table[k].pretrained_from for k in chosen}
    chosen.sort(key=lambda k: k not in sources)  # sources first, the rest in the order asked
    work = common.work_dir()
    common.isolate_outputs(work)
    payload = common.header(TOPIC, argv, {"hours": hours, "base": BASE})
    earlier = _earlier(results, hours)
    payload["variants"] = {k: r for k, r in earlier.get("variants", {}).items() if "skipped" not in r or k not in chosen}
    if payload["variants"]:  # the table holds earlier batches too: name every command that made it
        payload["command"] = f"{earlier['command']}, then {payload['command']}"
    for key in chosen:
        if key in payload["variants"]:
            print(f"\n== {key}: kept from the earlier run at the same budget")
    pending = [key for key in chosen if key not in payload["variants"]]
    free = lanes(side_by_side)
    running: dict[Future, tuple[str, set[int] | None, float]] = {}
    with ThreadPoolExecutor(max_workers=len(free)) as pool:
        while pending or running:
            busy = {key for key, _, _ in running.values()}
            ready = [k for k in pending if table[k].pretrained_from not in busy | set(pending)]  # a transfer waits for its source
            while free and ready:
                key = ready.pop(0)
                pending.remove(key)
                source = payload["variants"].get(table[key].pretrained_from or "", {})
                if table[key].pretrained_from and not source.get("run"):  # never train from scratch under a transfer's name
                    payload["variants"][key] = {"variant": key, "skipped": f"its source {table[key].pretrained_from} was not trained"}
                    common.save(topic(hours), payload, results)
                    continue
                lane = free.pop(0)
                print(f"\n== {key} ({hours * 60:g} min)" + (f" on core(s) {sorted(lane)}" if lane else ""))
                kwargs = {"key": key, "variant": asdict(table[key]), "hours": hours,
                          "recipe": str(_recipe_file(table[key], key, work)),
                          "pretrained": str(Path(source["run"]) / "weights" / "best.pt") if source.get("run") else None}
                call = (partial(common.in_subprocess, "benchmarks.budget:train_variant", kwargs, cpus=lane) if isolated
                        else partial(train_variant, **kwargs))
                running[pool.submit(call)] = (key, lane, os.getloadavg()[0])
            if not running and pending:
                raise SystemExit(f"variants that wait on each other's weights: {', '.join(pending)}")
            if running:
                for future in wait(running, return_when=FIRST_COMPLETED).done:
                    key, lane, load_before = running.pop(future)
                    free.append(lane)
                    payload["variants"][key] = _finished(key, future, load_before)
                    common.save(topic(hours), payload, results)  # after every variant: a long ranking survives an interruption
    return payload


def lanes(side_by_side: int) -> list[set[int] | None]:
    """The cores of each of `side_by_side` variants trained at once: this process's cores split evenly, so
    each variant gets the same share (its training, data loading and evaluation stay on them); [None] (no
    pinning) trains one variant at a time."""
    if side_by_side <= 1:
        return [None]
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < side_by_side:
        raise SystemExit(f"--side-by-side {side_by_side}: this process may use {len(cores)} cores")
    share = len(cores) // side_by_side
    return [set(cores[i * share:(i + 1) * share]) for i in range(side_by_side)]


def _finished(key: str, future: Future, load_before: float) -> dict[str, Any]:
    """A trained variant's row, or why it was skipped (data absent, ...): one failing variant does not stop the rest."""
    try:
        result = future.result()
    except Exception as exc:  # noqa: BLE001
        reason = str(exc).strip().splitlines()[-1][:300]
        print(f"  {key} skipped: {reason}")
        return {"variant": key, "skipped": reason}
    for extra in ("seconds", "import_s", "peak_increase_mb", "rss_before_mb"):
        result.pop(extra, None)
    # The budget is wall time; what the variant really got is its CPU time and the load beside it.
    result["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(f"  {key}: {result['epochs_reached']} epochs in {result['train_s']:.0f} s: {headline(result)}")
    return result


def _earlier(results: Path | None, hours: float) -> dict[str, Any]:
    """The results saved at this budget by an earlier (interrupted, or other batch) run, or {}: its variants
    are kept, not retrained, except a chosen one that was skipped then, which is tried again."""
    path = Path(results or common.RESULTS_DIR) / f"{topic(hours)}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def topic(hours: float) -> str:
    """One results file per budget, so a two-hour confirmation sits beside the short ranking."""
    return f"{TOPIC}-{hours * 60:g}min"


# The numbers shown per task: (where, key, heading).
SHOWN = {
    "detect": [("validator", "precision", "P"), ("validator", "recall", "R"), ("validator", "mAP50", "mAP50"),
               ("evaluate", "recall_at_conf", "recall@conf"), ("evaluate", "box_iou", "box IoU")],
    "segment": [("validator", "mAP50", "mAP50(mask)"), ("evaluate", "dice", "Dice"),
                ("evaluate", "box_iou_heart", "heart box IoU")],
    "classify": [("validator", "top1_accuracy", "top1 (argmax)"), ("evaluate", "roc_auc", "ROC AUC"),
                 ("evaluate", "sensitivity", "sens"), ("evaluate", "specificity", "spec")],
}


def headline(result: dict[str, Any]) -> str:
    parts = []
    for where, key, heading in SHOWN[result["task"]]:
        value = (result.get(where) or {}).get(key)
        if isinstance(value, (int, float)):
            parts.append(f"{heading} {value:.3f}")
    return ", ".join(parts) or "-"


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--hours", type=float, default=0.25, help="training time per variant, in hours (default 0.25)")
    p.add_argument("--variants", nargs="*", help="variant names (default: all; see --list)")
    p.add_argument("--list", action="store_true", help="print the variants and exit")
    p.add_argument("--side-by-side", type=int, default=1, metavar="N",
                   help="train N variants at once, each on its own share of the cores (default 1: one at a time, every core)")
    args = p.parse_args(argv)
    if args.list:
        for key, v in VARIANTS.items():
            print(f"{key:32} {v.model or '(recipe model)':20} {json.dumps(v.train)} {json.dumps(v.options) if v.options else ''} {v.note}")
        return 0
    run(args.variants, args.hours, args.results, argv, side_by_side=args.side_by_side)
    return 0


if __name__ == "__main__":
    sys.exit(main())

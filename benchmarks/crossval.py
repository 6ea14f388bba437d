"""Patient-wise cross-validation figures (mean ± SD over folds) of recipes under a small CPU budget.

    nice -n 5 .venv/bin/python -m benchmarks.crossval --recipes heart --folds 5 --epochs 20 --imgsz 128

Each recipe goes through `yolo_tools cv` exactly as a user runs it (`yolo_tools cv recipes/heart.yaml
folds=5 epochs=20 imgsz=128 seed=0 workers=0 device=cpu`), into `<work>/runs/<recipe>/<name>`; a cv that
stopped resumes at its first unfinished fold, so `wall_s` covers only the folds trained in this call
(`folds_trained_now` says how many; finished folds are only evaluated again if their evaluation is missing). The figures are cross-validation over the recipe's train + val
patients; a recipe's held-out test split, if it keeps one, is scored separately (`evaluate --split test`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import common

TOPIC = "crossval"
DEFAULT_RECIPES = ("heart",)
# Headline numbers per task, as summary.json names them.
SHOWN = {
    "detect": ("mAP50", "mAP50-95", "ap50", "recall_at_conf", "false_positives_per_image"),
    "segment": ("dice", "dice_pooled", "hd95", "nsd"),
    "classify": ("accuracy", "roc_auc", "sensitivity", "specificity"),
}


def run_recipe(name: str, folds: int, epochs: int, imgsz: int, cv_name: str) -> dict[str, Any]:
    from yolo_tools.locations import runs_dir
    from yolo_tools.training.crossval import cross_validate

    overrides = {"folds": folds, "epochs": epochs, "imgsz": imgsz, "seed": 0, "workers": 0, "device": "cpu"}
    root = runs_dir() / name / cv_name
    done_before = sum((root / f"fold{i}" / "metrics.json").is_file() for i in range(1, folds + 1))  # trained
    started = time.perf_counter()
    out = cross_validate(common.ROOT / "recipes" / f"{name}.yaml", overrides, cv_name)
    wall = time.perf_counter() - started
    summary = json.loads((out / "summary.json").read_text())
    train_s = 0.0
    for fold in summary["fold_runs"]:  # Ultralytics' results.csv: `time` is the seconds since the fold started
        lines = (Path(fold) / "results.csv").read_text().splitlines()
        header, last = lines[0].split(","), lines[-1].split(",")
        train_s += float(last[header.index("time")]) if "time" in header else float("nan")
    return {
        "task": summary["task"],
        "cli": f"yolo_tools cv recipes/{name}.yaml " + " ".join(f"{k}={v}" for k, v in overrides.items()) + f" --name {cv_name}",
        "folds": summary["folds"],
        "images": summary["images"],
        "mean": summary["mean"],
        "sd": summary["sd"],
        "wall_s": round(wall, 1),
        "train_s": round(train_s, 1),
        "folds_trained_now": folds - done_before,
        "summary": str(out),
    }


def run(recipes: list[str] | None, folds: int, epochs: int, imgsz: int, cv_name: str, results: Path,
        argv: list[str] | None) -> dict[str, Any]:
    common.isolate_outputs(common.work_dir())
    settings = {"folds": folds, "epochs": epochs, "imgsz": imgsz, "device": "cpu", "seed": 0, "name": cv_name}
    payload = {**common.header(TOPIC, argv, settings), "recipes": {}}
    for name in recipes or DEFAULT_RECIPES:
        payload["recipes"][name] = run_recipe(name, folds, epochs, imgsz, cv_name)
    common.save(TOPIC, payload, results)
    return payload


def rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per recipe: the headline numbers as mean ± SD over folds."""
    out = []
    for name, r in payload["recipes"].items():
        numbers = [f"{k} {r['mean'][k]:.3f} ± {r['sd'][k]:.3f}" for k in SHOWN[r["task"]] if r["mean"].get(k) is not None]
        out.append({"recipe": name, "task": r["task"], "folds": r["folds"], "images": r["images"], "train_s": r["train_s"],
                    "trained_now": f"{r['folds_trained_now']} of {r['folds']}",
                    "metrics": ", ".join(numbers), "cli": f"`{r['cli']}`"})
    return out


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--recipes", nargs="*", help=f"recipe names (default: {', '.join(DEFAULT_RECIPES)})")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--imgsz", type=int, default=128)
    p.add_argument("--name", default="bench", help="cv folder name under runs/<recipe>/ (a finished one is reused)")
    args = p.parse_args(argv)
    run(args.recipes, args.folds, args.epochs, args.imgsz, args.name, args.results, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())

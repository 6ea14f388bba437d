"""Val against held-out test figures of recipes under a small CPU budget: how far a val number carries.

    nice -n 5 .venv/bin/python -m benchmarks.heldout --recipes heart pneumonia --epochs 20 4 --imgsz 128

Each recipe is run as written except that its split also keeps a patient-wise test set apart
(`data.split.test`, 15% of patients by default, carved before val by the recipe's own patient rule). The
run is trained as a user trains it, val picks the best epoch and the operating point, and then the same
weights are scored on val (`yolo_tools evaluate RUN`) and on the test patients it never saw
(`yolo_tools evaluate RUN --split test`), both with 95% bootstrap intervals over patients.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks import common

TOPIC = "heldout"
DEFAULT_RECIPES = ("heart", "pneumonia")
SHOWN = {
    "detect": ("ap50", "recall_at_conf", "precision_at_conf", "false_positives_per_image"),
    "segment": ("dice", "dice_pooled", "hd95"),
    "classify": ("accuracy", "roc_auc", "sensitivity", "specificity"),
}


def variant(name: str, test: float, work: Path) -> Path:
    """The recipe as shipped, with a test split kept apart, written into the benchmark's work folder."""
    raw = yaml.safe_load((common.ROOT / "recipes" / f"{name}.yaml").read_text(encoding="utf-8"))
    raw["name"] = f"{name}-heldout"
    raw["data"].setdefault("split", {})["test"] = test
    path = work / "recipes" / f"{name}-heldout.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def _scored(eval_dir: Path, task: str) -> dict[str, Any]:
    summary = json.loads((eval_dir / "summary.json").read_text())
    metrics, intervals = summary["metrics"], summary.get("intervals") or {}
    return {
        "set": summary.get("scored_set"),
        "images": summary.get("images"),
        "patients": (summary.get("bootstrap") or {}).get("patients"),
        "metrics": {k: metrics[k] for k in SHOWN[task] if metrics.get(k) is not None},
        "intervals": {k: intervals[k] for k in SHOWN[task] if intervals.get(k)},
    }


def run_recipe(name: str, epochs: int, imgsz: int, test: float, work: Path) -> dict[str, Any]:
    from yolo_tools import pipeline
    from yolo_tools.locations import runs_dir

    overrides = {"epochs": epochs, "imgsz": imgsz, "seed": 0, "workers": 0, "device": "cpu"}
    recipe = variant(name, test, work)
    shutil.rmtree(runs_dir() / f"{name}-heldout" / f"e{epochs}", ignore_errors=True)  # this benchmark's earlier run
    started = time.perf_counter()
    run, _ = pipeline.train_recipe(recipe, overrides, name=f"e{epochs}")
    trained_s = time.perf_counter() - started
    task = yaml.safe_load(recipe.read_text())["task"]
    val = _scored(pipeline.evaluate(run, {"imgsz": imgsz}), task)
    held = _scored(pipeline.evaluate(run, {"imgsz": imgsz}, split="test"), task)
    args = " ".join(f"{k}={v}" for k, v in overrides.items())
    return {
        "task": task,
        "test_fraction": test,
        "train_s": round(trained_s, 1),
        "cli": f"yolo_tools train {name}-heldout.yaml {args} --name e{epochs}; yolo_tools evaluate RUN imgsz={imgsz} [--split test]",
        "val": val,
        "test": held,
    }


def run(recipes: list[str], epochs: list[int], imgsz: int, test: float, results: Path, argv: list[str] | None) -> dict:
    work = common.work_dir()
    common.isolate_outputs(work)
    settings = {"epochs": dict(zip(recipes, epochs)), "imgsz": imgsz, "test": test, "device": "cpu", "seed": 0}
    payload = {**common.header(TOPIC, argv, settings), "recipes": {}}
    for name, count in zip(recipes, epochs):
        payload["recipes"][name] = run_recipe(name, count, imgsz, test, work)
    common.save(TOPIC, payload, results)
    return payload


def _cell(scored: dict[str, Any]) -> str:
    parts = []
    for key, value in scored["metrics"].items():
        low_high = scored["intervals"].get(key)
        parts.append(f"{key} {value:.3f}" + (f" [{low_high[0]:.3f}, {low_high[1]:.3f}]" if low_high else ""))
    return ", ".join(parts)


def rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, r in payload["recipes"].items():
        for split in ("val", "test"):
            scored = r[split]
            out.append({"recipe": name, "split": split, "patients": scored["patients"], "images": scored["images"],
                        "metrics": _cell(scored), "cli": f"`{r['cli']}`" if split == "val" else ""})
    return out


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--recipes", nargs="*", default=list(DEFAULT_RECIPES))
    p.add_argument("--epochs", nargs="*", type=int, default=[20, 4], help="per recipe, in the order of --recipes")
    p.add_argument("--imgsz", type=int, default=128)
    p.add_argument("--test", type=float, default=0.15, help="share of patients kept apart as the test split")
    args = p.parse_args(argv)
    if len(args.epochs) != len(args.recipes):
        p.error("give one --epochs value per recipe")
    run(args.recipes, args.epochs, args.imgsz, args.test, args.results, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())

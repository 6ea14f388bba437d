"""Two runs of one recipe on the same patients and the same labels: each metric's change, with a paired interval.

`yolo_tools compare RUN OTHER` scores both runs on the val split of one dataset version, the recipe's labels
as corrected so far (yolo_tools/convert/corrections.py; the published ones where there are no corrections):
a run trained on that version is scored by its own `eval/`, an older one by `evaluate --corrected`
(`eval-corrected/`), each evaluated first where that is missing or was made on another version. Both at
their own operating points (the confidence each chose on val). Then, image for image:

    change = metric(OTHER) - metric(RUN)

with a 95% paired bootstrap interval over patients (yolo_tools/metrics/bootstrap.py): one draw of patients
scores both runs, so the interval is that of the difference on the same patients, narrower than two
separate intervals would suggest when the runs err on the same hard images. Files:
`<OTHER>/compare-<RUN name>/summary.json` and `summary.md`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from yolo_tools import evaluation, tasks
from yolo_tools.conversion import run_version
from yolo_tools.convert import corrections
from yolo_tools.dataset import Dataset
from yolo_tools.errors import UserError
from yolo_tools.metrics.bootstrap import Bootstrap
from yolo_tools.recipe import Recipe
from yolo_tools.runs import run_recipe, weights_of

def _run(run: str | Path) -> tuple[Path, Recipe]:
    _, run_dir = weights_of(run)
    recipe = run_recipe(run_dir) if run_dir else None
    if recipe is None:
        raise UserError(f"{run}: compare needs run folders made by yolo_tools train (runs/<recipe>/<name>)")
    return run_dir, recipe


def _scored(run_dir: Path, recipe: Recipe, target: str, overrides: dict[str, Any]) -> Path:
    """The run's evaluation on dataset version `target`: made now where it is missing or on another version."""
    own = run_version(recipe, run_dir) == target
    folder = run_dir / (evaluation.EVAL_DIR if own else evaluation.CORRECTED_DIR)
    summary = folder / evaluation.SUMMARY_FILE
    fresh = summary.is_file() and json.loads(summary.read_text()).get("dataset_fingerprint") == target and not overrides
    if not fresh:
        evaluation.evaluate(run_dir, overrides, corrected=not own)
    return folder


def compare_runs(run: str | Path, other: str | Path, overrides: dict[str, Any] | None = None) -> Path:
    """Score both runs on the same val patients and labels, and write each metric's paired change; returns the folder."""
    (first_dir, first), (second_dir, second) = _run(run), _run(other)
    if first_dir == second_dir:
        raise UserError(f"{first_dir}: give two different runs to compare")
    if (first.name, first.task) != (second.name, second.task):
        raise UserError(f"{first_dir} is a run of recipe '{first.name}' ({first.task}), {second_dir} of '{second.name}' "
                        f"({second.task}); compare runs of one recipe, which share patients and labels")
    now = corrections.attach(first.model_copy(update={"data": first.data.model_copy(update={"corrections": None})}))
    target = now.fingerprint()
    folders = [_scored(first_dir, first, target, dict(overrides or {})), _scored(second_dir, second, target, dict(overrides or {}))]
    tables = [pd.read_csv(folder / "per_image.csv") for folder in folders]
    images = [set(table["image"]) for table in tables]
    if images[0] != images[1]:
        raise UserError(
            f"{folders[0]} and {folders[1]} scored different images ({len(images[0] ^ images[1])} differ): the runs' val "
            "splits are not the same patients (another split rule or seed?); compare runs of the same split"
        )
    first_table = tables[0].set_index("image")
    second_table = tables[1].set_index("image").loc[first_table.index]
    summary = json.loads((folders[1] / evaluation.SUMMARY_FILE).read_text())
    listing = Dataset(Path(summary["dataset"]), first.task).patients()
    names = [Path(str(image)).name for image in first_table.index]
    patients: dict[str, str] = {}
    if listing is not None:  # each image its own patient where the dataset lists none
        patients = dict(listing[listing["split"] == "val"].drop_duplicates("image")[["image", "patient"]].itertuples(index=False))
    boot = Bootstrap([patients.get(name, name) for name in names])
    rows = []
    for metric, ratio in tasks.get(first.task).paired.items():  # the task says which metrics pair
        a, b = ratio(first_table.reset_index()), ratio(second_table.reset_index())
        value_a = float(a[0].sum() / a[1].sum()) if a[1].sum() else float("nan")
        value_b = float(b[0].sum() / b[1].sum()) if b[1].sum() else float("nan")
        interval = boot.paired_difference(a, b)
        rows.append({"metric": metric, "run": value_a, "other": value_b, "change": value_b - value_a,
                     "interval": list(interval) if interval else None})  # fmt: skip
    out = second_dir / f"compare-{first_dir.name}"
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "run": str(first_dir), "other": str(second_dir), "recipe": first.name, "dataset_fingerprint": target,
        "scored_with": [str(folder) for folder in folders], "images": len(first_table), "patients": boot.patients,
        "metrics": rows, "bootstrap": {**boot.describe(), "paired": True},
        "versions_trained_on": [run_version(first, first_dir), run_version(second, second_dir)],
    }  # fmt: skip
    evaluation.write_atomic(out / evaluation.SUMMARY_FILE, json.dumps(evaluation.json_ready(result), indent=2))
    lines = [
        f"# {second_dir.name} vs {first_dir.name} ({first.name})",
        "",
        f"Both scored on the val split of dataset version {target} ({len(first_table)} images, {boot.patients} patients); "
        "change = other - run, 95% paired bootstrap interval over patients (1,000 draws, seed 0).",
        "",
        f"| metric | {first_dir.name} | {second_dir.name} | change [95% CI] |",
        "|---|---|---|---|",
    ]
    for row in rows:
        shown = f"[{row['interval'][0]:+.3f}, {row['interval'][1]:+.3f}]" if row["interval"] else "(no interval)"
        lines.append(f"| {row['metric']} | {row['run']:.3f} | {row['other']:.3f} | {row['change']:+.3f} {shown} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[2:]))
    print(f"comparison: {out}")
    return out

"""Rebuild benchmarks/RESULTS.md from benchmarks/results/*.json, so no number in it is typed by hand.

    .venv/bin/python -m benchmarks.report
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks import common

RESULTS_MD = common.ROOT / "benchmarks" / "RESULTS.md"
TOPICS = ("convert", "inference", "training", "accuracy", "accuracy-full", "gpu", "crossval", "heldout", "mask_grid")


def _md_table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> list[str]:
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |",
             "|" + "|".join("---:" if spec else "---" for _, _, spec in columns) + "|"]
    for row in rows:
        cells = []
        for key, _, spec in columns:
            value = row.get(key)
            cells.append("-" if value is None else format(value, spec) if spec else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _ratios(comparisons: list[dict[str, Any]]) -> list[str]:
    rows = [{"what": c["what"], "ratio": f"**{c['ratio']:.2f}**", "range": f"{c['ratio_min']:.2f}-{c['ratio_max']:.2f}",
             "cpu": f"{c['cpu_ratio']:.2f} ({c['cpu_ratio_min']:.2f}-{c['cpu_ratio_max']:.2f})" if "cpu_ratio" in c else None,
             "rounds": c["rounds"], "verdict": common.verdict(c)} for c in comparisons]
    columns = [("what", "comparison", ""), ("ratio", "baseline / candidate, wall time (median)", ""),
               ("range", "range over rounds", ""), ("cpu", "CPU time (median, range)", ""), ("rounds", "rounds", "d")]
    if any("met" in c for c in comparisons):
        columns.append(("verdict", f"not slower? (CPU-time ratio >= {common.NOT_SLOWER})", ""))
    return _md_table(rows, columns)


def _where(payload: dict[str, Any], measured: str = "Measured") -> list[str]:
    m = payload["machine"]
    gpu = m.get("gpu") or "no GPU"
    return [f"Command: `{payload['command']}`  ",
            f"{measured} {payload['date']} on {m.get('cpu_cores')} CPU cores ({m.get('cpu')}), {gpu}, "
            f"{m.get('memory_gb', '?')} GB RAM, load average {m.get('load_avg_1m')} at the start; "
            f"torch {m.get('torch')}, ultralytics {m.get('ultralytics')}, onnxruntime {m.get('onnxruntime')}."]


def _convert(p: dict[str, Any]) -> list[str]:
    out = ["## Conversion", "", *_where(p), ""]
    rows, comparisons, checks, skipped = [], [], [], []
    for name, group in p["groups"].items():
        if "skipped" in group:
            skipped.append(f"- {name}: skipped ({group['skipped']})")
            continue
        rows += [{"case": case, **s} for case, s in group["cases"].items()]
        comparisons += group["comparisons"]
        checks += [(check, r) for check, r in group.get("checks", {}).items()]
    out += _ratios(comparisons) + [""]
    out += _md_table(rows, [("case", "case", ""), ("items", "slices", ",d"), ("median_s", "median s", ".3f"),
                            ("per_s", "slices/s", ",.0f"), ("peak_rss_mb", "peak RSS MB", ".0f"),
                            ("peak_increase_mb", "+MB during the call", ".0f"), ("import_s", "imports s", ".1f")])
    for check, r in checks:
        out += ["", f"Check, {check}: median {r['median_s']:.1f} s for {r['rows']:,} rows "
                    f"(limit {r['limit_s']:.0f} s): **{'passed' if r['passed'] else 'FAILED'}**."]
    out += ["", "Reading the table: times exclude imports, which are listed apart. A workbench case imports its "
            "converters, pandas and scikit-learn (for the patient-wise split), not Ultralytics or torch, which "
            "only training and prediction load; \"+MB during the call\" is the conversion's own memory. "
            + ("Every case wrote into a RAM disk (/dev/shm) from sources already in the page cache, so the "
               "ratios compare code, not a shared disk's speed between rounds."
               if p["settings"].get("written_to") == "RAM disk" else
               "Copy-heavy conversions (kidney, pneumonia: thousands of files created) are bound by the file "
               "system, whose speed on a shared disk varies most between rounds.")]
    out += [""] + skipped if skipped else []
    return out


def _inference(p: dict[str, Any]) -> list[str]:
    s = p["settings"]
    out = ["## Inference", "", *_where(p),
           f"{s['images']} kidney val slices at imgsz {s['imgsz']}, {s['device']}, weights: {s['weights']}.", ""]
    out += _ratios(p["comparisons"]) + [""]
    rows = [{"case": name, **summary} for name, summary in p["cases"].items()]
    out += _md_table(rows, [("case", "case", ""), ("median_s", "median s", ".3f"), ("per_s", "images/s", ".1f"),
                            ("min_s", "min s", ".3f"), ("max_s", "max s", ".3f")])
    return out


def _training(p: dict[str, Any]) -> list[str]:
    s = p["settings"]
    a = s["arguments"]
    out = ["## Training", "", *_where(p),
           f"{s['recipe']}: {s['train_images']} train / {s['val_images']} val slices; {s['model']}, "
           f"epochs {a['epochs']}, imgsz {a['imgsz']}, fraction {a.get('fraction')}, batch {a['batch']}, "
           f"workers {a['workers']}, device {a['device']}.", ""]
    out += _ratios(p["comparisons"]) + [""]
    rows = [{"case": name, **summary} for name, summary in p["cases"].items()]
    out += _md_table(rows, [("case", "case", ""), ("median_s", "whole run s", ".1f"), ("s_per_epoch", "s/epoch", ".2f"),
                            ("train_time_s", "training loop s", ".1f"), ("import_s", "imports s", ".1f"),
                            ("peak_rss_mb", "peak RSS MB", ".0f")])
    return out


def _accuracy_rows(p: dict[str, Any]) -> list[dict[str, Any]]:
    from benchmarks.accuracy import SHOWN

    rows = []
    for name, r in p["recipes"].items():
        if "skipped" in r:
            rows.append({"recipe": name, "metrics": f"skipped: {r['skipped']}"})
            continue
        metrics = []
        for where, key, heading in SHOWN[r["task"]]:
            value = r.get(where, {}).get(key)
            metrics.append(f"{heading} {value:.3f}" if isinstance(value, (int, float)) else f"{heading} -")
        losses = r.get("train_losses") or {}
        published = r.get("published")
        rows.append({"recipe": name, "task": r["task"], "train": r["train_images_used"], "val": r["val_images"],
                     "epochs": r["epochs"], "imgsz": r["imgsz"], "device": r["device"], "train_s": r["train_s"],
                     "metrics": ", ".join(metrics),
                     "losses": "/".join(f"{v:.2f}" for v in losses.values()) if losses else "-",
                     "published": ", ".join(f"{k} {v}" for k, v in published.items()) if published else ""})
    return rows


def _gpu(p: dict[str, Any] | None) -> list[str]:
    """benchmarks/gpu.sh: fixed-time full-size trainings, evaluate and inspect on one GPU (benchmarks/gpu.py)."""
    if p is None:
        return ["**`bash benchmarks/gpu.sh` has not been run yet:** no GPU was lent to the session that wrote it. "
                "On a GPU machine it trains kidney, heart and pneumonia at their recipes' own image size for a fixed "
                "time (2.75 minutes in all), runs `evaluate` and `inspect --no-app` on each (under 8 minutes on one "
                "H200), and records the figures here.", ""]
    rows = []
    for r in p["results"]:
        steps = r.get("steps", {})
        shown = {**(r.get("validator") or {}), **(r.get("evaluate") or {})}
        rows.append({"recipe": r["recipe"], "device": r.get("device"), "imgsz": r.get("imgsz"), "epochs": r.get("epochs"),
                     "train_s": r.get("train_time_s"),
                     "steps": ", ".join(f"{k} skipped" if v["exit"] == "skipped" else f"{k} {v['s']} s" + (f" (exit {v['exit']})" if v["exit"] else "")
                                        for k, v in steps.items()) or None,
                     "metrics": ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()) or None})
    minutes = ", ".join(f"{k} {v} min" for k, v in p["settings"]["train_minutes"].items())
    return [*_where(p), f"Training time given: {minutes}; the rest of each row is what the run folders hold.", "",
            *_md_table(rows, [("recipe", "recipe", ""), ("device", "device", ""), ("imgsz", "imgsz", "d"),
                              ("epochs", "epochs", "d"), ("train_s", "train s", ".0f"), ("steps", "steps (wall)", ""),
                              ("metrics", "validation and evaluate", "")]), ""]


def _accuracy(p: dict[str, Any], full: dict[str, Any] | None, gpu: dict[str, Any] | None = None) -> list[str]:
    b = p["settings"]["budget"]
    out = ["## Accuracy", "", "### Fixed small CPU budget (regression check)", "", *_where(p),
           f"Budget: epochs {b['epochs']}, imgsz {b['imgsz']}, at most {p['settings']['max_train_images']} training "
           f"images per epoch, batch {b['batch']}, device {b['device']}, seed {b['seed']}, deterministic. "
           "Losses are the last epoch's training losses (box/seg/cls/dfl as the task has them).", ""]
    out += _md_table(_accuracy_rows(p), [("recipe", "recipe", ""), ("task", "task", ""), ("train", "train imgs", "d"),
                                         ("val", "val imgs", "d"), ("epochs", "epochs", "d"), ("imgsz", "imgsz", "d"),
                                         ("train_s", "train s", ".0f"), ("metrics", "validation", ""),
                                         ("losses", "train losses", "")])
    out += ["", "These are regression numbers, not what the tasks can reach: from scratch at this budget, large "
            "structures are learnt and tiny ones (kidney stones) are not, so for those the training losses are "
            "what moves when a converter, a recipe or the training path regresses. A larger budget: "
            "`nice -n 5 .venv/bin/python -m benchmarks.accuracy --epochs 100 --max-images 256`.",
            "", "### Full-size trainings (GPU)", ""]
    out += _gpu(gpu)
    from benchmarks.accuracy import PUBLISHED

    if full is None:
        out += ["**Not measured yet.** No GPU was available to the sessions that produced these numbers; "
                "`.venv/bin/python -m benchmarks.accuracy --full` on a GPU machine records them here (device, "
                "epochs, imgsz, time) beside the published numbers:", ""]
        out += _md_table([{"data": k, **v, "metrics": ", ".join(f"{m} {x}" for m, x in v.items() if m != "reference")}
                          for k, v in PUBLISHED.items()],
                         [("data", "data", ""), ("reference", "published", ""), ("metrics", "numbers", "")])
    else:
        out += [*_where(full), ""]
        out += _md_table(_accuracy_rows(full), [("recipe", "recipe", ""), ("task", "task", ""), ("device", "device", ""),
                                                ("epochs", "epochs", "d"), ("imgsz", "imgsz", "d"),
                                                ("train_s", "train s", ".0f"), ("metrics", "validation", ""),
                                                ("published", "published", "")])
    return out


def _crossval(p: dict[str, Any] | None) -> list[str]:
    from benchmarks.crossval import rows

    out = ["## Cross-validation and test splits", ""]
    if p is None:
        return out + ["Not run yet: `nice -n 5 .venv/bin/python -m benchmarks.crossval`."]
    s = p["settings"]
    out += [*_where(p), "", f"Patient-wise {s['folds']}-fold cross-validation (`yolo_tools cv`), {s['epochs']} epochs at "
            f"imgsz {s['imgsz']} on {s['device']}, from scratch: mean ± SD over folds, each fold scored on its own "
            "held-out patients (the detector at its fold's F1-max confidence).", ""]
    out += _md_table(rows(p), [("recipe", "recipe", ""), ("task", "task", ""), ("folds", "folds", "d"),
                               ("images", "images", "d"), ("train_s", "train s (all folds)", ".0f"),
                               ("trained_now", "folds trained by this call", ""),
                               ("metrics", "mean ± SD over folds", ""), ("cli", "as a user runs it", "")])
    out += ["", "A cv resumes: folds already finished in the same cv folder (settings checked against its cv.json) "
            "are reused, not trained again; `train s` sums Ultralytics' own per-fold training time (results.csv).",
            ]
    return out


def _heldout(p: dict[str, Any] | None) -> list[str]:
    from benchmarks.heldout import rows

    out = ["### Val against a held-out test split", ""]
    if p is None:
        return out + ["Not run yet: `nice -n 5 .venv/bin/python -m benchmarks.heldout`."]
    s = p["settings"]
    out += [*_where(p), "", f"Each recipe as shipped plus `data.split.test: {s['test']}` (patients kept apart before "
            f"val is drawn), trained from scratch on {s['device']} at imgsz {s['imgsz']} ({', '.join(f'{r} {e} epochs' for r, e in s['epochs'].items())}); "
            "val chose the best epoch and the operating point, then the same weights were scored on val and on the "
            "test patients. Brackets: 95% bootstrap intervals over patients.", ""]
    out += _md_table(rows(p), [("recipe", "recipe", ""), ("split", "scored on", ""), ("patients", "patients", "d"),
                               ("images", "images", "d"), ("metrics", "figures [95% interval]", ""),
                               ("cli", "as a user runs it", "")])
    return out


INTRO = """# Benchmark results

Every number below is read from `benchmarks/results/*.json` by `python -m benchmarks.report`; the command
above each table reproduces it (`make bench` runs them all and rebuilds this file). The machines are noisy
(2 CPU cores, often shared with other work: the load average at the start of each run is given), so each
speed figure is a **ratio against a baseline timed in the same run**: the cases take turns within every
round, the first case of a round rotates, and the headline is the median over rounds of baseline time /
candidate time (> 1: the candidate is faster; the range shows the spread between rounds). Absolute times
are listed for context only. Beside it is the same ratio of CPU time (user + system, all threads): with
other work competing for the cores, wall time mostly measures the scheduler while CPU time still measures
the work done, so the "not slower" requirements (workbench vs plain Ultralytics, same engine underneath)
are judged on it, with a 5 % margin. Conversion and training cases each run in a fresh process, so their
peak memory is their own.
"""


BUDGET_COMMAND = "nice -n 5 .venv/bin/python -m benchmarks.budget --hours 0.25"


def _budget(p: dict[str, Any] | None) -> list[str]:
    """Recipe variants side by side, each trained for the same CPU time (benchmarks/budget.py)."""
    from benchmarks.budget import VARIANTS, headline

    out = ["## Quality within a CPU budget", ""]
    if p is None:
        return out + [f"Not run yet: `{BUDGET_COMMAND}` ranks the {len(VARIANTS)} variants (`--list`) at 15 minutes "
                      f"each (about {len(VARIANTS) * 0.25 + 0.5:g} hours with conversions and evaluations on 2 free cores); "
                      "then confirm the best with `--hours 2 --variants ...`."]
    hours = p["settings"]["hours"]
    out[0] += f": {hours * 60:g} minutes per variant"
    batches = ", then " in p["command"]  # later batches add rows; the machine line is the latest batch's
    out += [*_where(p, "The latest batch measured" if batches else "Measured"), "",
            f"Every variant trained for {hours * 60:g} minutes of wall time (`time={hours:g}`) on the CPU, then its best "
            "weights validated on the recipe's patient-wise val split; each row's own commands reproduce it. "
            "`CPU s` is the CPU time the variant's process got (training and evaluation, all its threads and the "
            "data workers that had ended) and `load` the machine's 1-minute load average before and after it: on 2 cores, a load "
            "above about 2 means the variant shared the machine; `cores` the cores it was pinned to (`-`: not recorded, "
            "an unpinned variant; the command line above says what trained beside it).", ""]
    rows = []
    for key, r in p["variants"].items():
        if "skipped" in r:
            rows.append({"variant": key, "metrics": f"skipped: {r['skipped'][:100]}"})
            continue
        load = r.get("load_avg_1m")
        rows.append({"variant": key, "started_from": r["started_from"], "epochs": r["epochs_reached"],
                     "train_s": r["train_s"], "cpu_s": r.get("cpu_s", float("nan")), "cores": r.get("cores", "-"),
                     "load": f"{load[0]:g} → {load[1]:g}" if load else "", "metrics": headline(r),
                     "commands": f"`{r['command']}`; `{r['evaluate_command']}`"})
    return out + _md_table(rows, [("variant", "variant", ""), ("started_from", "model", ""), ("epochs", "epochs reached", "d"),
                                  ("train_s", "train s", ".0f"), ("cpu_s", "CPU s", ".0f"), ("cores", "cores", ""), ("load", "load", ""),
                                  ("metrics", "val split", ""), ("commands", "commands", "")])


def _interval(scored: dict[str, Any], key: str, spec: str = ".3f") -> str:
    value, bounds = scored["metrics"].get(key), scored.get("intervals", {}).get(key)
    if value is None:
        return "-"
    return f"{value:{spec}}" + (f" [{bounds[0]:{spec}}, {bounds[1]:{spec}}]" if bounds else "")


def _gain(g: dict[str, Any] | None) -> str:
    if not g:
        return "-"
    bounds = g.get("interval")
    return f"{g['gain']:+.3f}" + (f" [{bounds[0]:+.3f}, {bounds[1]:+.3f}]" if bounds else "")


def _nnunet(p: dict[str, Any]) -> list[str]:
    """nnU-Net's lessons on one volumetric recipe (benchmarks/nnunet.py): variants at fixed epochs, gains paired per volume."""
    recipe = p["settings"]["recipe"]
    out = [f"## nnU-Net's lessons: {recipe}", "",
           "Volumes are scored in 3D (Dice per volume; HD95 in mm); a set of images per image (Dice, HD95 in pixels, the "
           "heart's box from its mask); a detector by how well its box fits (box IoU: each true box's IoU with the predicted "
           "box overlapping it most, 0 when none).",
           "Each variant trained for a fixed number of epochs on the CPU (seed 0, `val=False`: the last epoch's weights), "
           "then scored by `yolo_tools evaluate` per volume in 3D. `CPU s` is the training process's CPU time (user + "
           "system, all threads), which does not depend on how busy the machine was; wall time does. Gains are the mean "
           "per-volume difference of 3D Dice on the same volumes, with a 95% bootstrap interval over patients; mirroring "
           "is scored with the operating point chosen on plain val predictions; the largest component's gain on val is "
           "what val would decide from (in-sample), on test it is out-of-sample. Each row's `benchmark` command reproduces it.", ""]
    rows, tests = [], []
    for key, r in p["variants"].items():
        val = r["val"]
        plain = val["plain"]
        if "box_iou" in plain["metrics"] and "dice" not in plain["metrics"]:  # a detector: how well its box fits
            rows.append(_detector_row(key, r))
            if "test" in r:
                tests.append({"variant": key, "volumes": r["test"]["plain"]["volumes"], "patients": r["test"]["plain"]["patients"],
                              "way": "one box per film", "dice": f"box IoU {_interval(r['test']['plain'], 'box_iou')}"})
            continue
        dice, hd95 = ("dice_3d", "hd95_3d") if "dice_3d" in plain["metrics"] else ("dice", "hd95")
        names = [k[len(dice) + 1:] for k in plain["metrics"] if k.startswith(f"{dice}_")]
        per_class = ", ".join(f"{n} {plain['metrics'][f'{dice}_{n}']:.3f}" for n in names)
        per_class += "".join(f"; {n} box IoU {plain['metrics'][f'box_iou_{n}']:.3f}" for n in names[:1] if f"box_iou_{n}" in plain["metrics"])
        cost = r.get("prediction_cost", {})
        mirrored_cost = cost.get("mirrored")
        rows.append({
            "variant": key, "about": r["about"], "epochs": r["epochs"], "imgsz": r["imgsz"],
            "cpu_s": r["train"]["cpu_s"], "wall_s": r["train"]["wall_s"], "cpu": _cpu_of(r),
            "val": f"{_interval(plain, dice)} ({per_class}); HD95 {_interval(plain, hd95, '.2f')} {'mm' if dice == 'dice_3d' else 'px'}",
            "mirroring": _gain(val["gains"].get("mirroring dice")),
            "largest": _gain(val["gains"].get("largest component dice_" + names[0])) + " / " + _gain(val["gains"].get("largest component dice_" + names[-1])),
            "cost": f"{cost['plain']['cpu_s_per_image'] * 1000:.0f} → {mirrored_cost['cpu_s_per_image'] * 1000:.0f}" if mirrored_cost else
                    f"{cost.get('plain', {}).get('cpu_s_per_image', float('nan')) * 1000:.0f}",
            "command": _commands_cell(r),
        })
        if "test" in r:
            t = r["test"]
            final = t.get("recipe") or t["plain"]
            per_class = "; ".join(f"{n} {_interval(final, f'{dice}_{n}')}, HD95 {_interval(final, f'{hd95}_{n}', '.2f')}" for n in names)
            per_class += "".join(f"; {n} box IoU {_interval(final, f'box_iou_{n}')}" for n in names[:1] if f"box_iou_{n}" in final["metrics"])
            tests.append({"variant": key, "volumes": final["volumes"], "patients": final["patients"],
                          "way": f"flips {final['flips'] or 'none'}, largest component: {', '.join(final['postprocessing'] or []) or 'none'}",
                          "dice": _interval(final, dice), "per_class": per_class,
                          "plain": _interval(t["plain"], dice),
                          "mirroring": _gain(t["gains"].get("mirroring dice")),
                          "largest": " / ".join(_gain(t["gains"].get(f"largest component dice_{n}")) for n in names),
                          "recipe_gain": _gain(t["gains"].get("recipe's way dice")),
                          "cv": _cv_cell(r.get("cv"))})
    out += _md_table(rows, [("variant", "variant", ""), ("about", "what it changes", ""), ("epochs", "epochs", "d"),
                            ("imgsz", "imgsz", ""), ("cpu_s", "train CPU s", ".0f"), ("wall_s", "train wall s", ".0f"),
                            ("cpu", "on", ""), ("val", "val, plain: Dice [95%] (per class); HD95", ""), ("mirroring", "mirroring: Dice gain (val)", ""),
                            ("largest", "largest component: Dice gain per class (val)", ""),
                            ("cost", "prediction CPU ms/slice plain → mirrored", ""), ("command", "commands", "")])
    comparisons = [{"pair": f"{c['from']} → {c['to']}", "split": c["split"] + (" (reported, not used to choose)" if c["split"] != "val" else ""),
                    "dice": _gain(c["gains"].get("dice")),
                    "per_class": ", ".join(f"{k[len('dice_'):]} {_gain(g)}" for k, g in c["gains"].items() if k != "dice"),
                    "command": f"`{c['command']}`"} for c in p.get("comparisons", {}).values()]
    if comparisons:
        out += ["", "Variants against each other on the same volumes (plain predictions; the later minus the earlier, "
                "mean per-volume 3D Dice difference, 95% interval over patients):", ""]
        out += _md_table(comparisons, [("pair", "from → to", ""), ("split", "scored on", ""), ("dice", "Dice gain", ""), ("per_class", "per class", ""),
                                       ("command", "command", "")])
    if tests:
        out += ["", "On the held-out test patients (never used in training or in any choice):", ""]
        out += _md_table(tests, [("variant", "variant", ""), ("volumes", "volumes", "d"), ("patients", "patients", "d"),
                                 ("way", "as the recipe predicts", ""), ("dice", "3D Dice [95%]", ""), ("per_class", "per class", ""),
                                 ("plain", "plain 3D Dice", ""), ("mirroring", "mirroring gain", ""),
                                 ("largest", "largest component gain per class", ""), ("recipe_gain", "both, decided on val", ""),
                                 ("cv", "fold ensemble", "")])
    return out


def _detector_row(key: str, r: dict[str, Any]) -> dict[str, Any]:
    """A detector's variant in the nnU-Net table: its box IoU where a segmenter has Dice; no masks, no components."""
    return {"variant": key, "about": r["about"], "epochs": r["epochs"], "imgsz": r["imgsz"],
            "cpu_s": r["train"]["cpu_s"], "wall_s": r["train"]["wall_s"], "cpu": _cpu_of(r),
            "val": f"box IoU {_interval(r['val']['plain'], 'box_iou')}", "mirroring": "-", "largest": "-",
            "cost": f"{r['prediction_cost']['plain']['cpu_s_per_image'] * 1000:.0f}",
            "command": _commands_cell(r)}


def _cpu_of(r: dict[str, Any]) -> str:
    """The processor a variant trained on: CPU seconds of one make are not those of another."""
    return (r.get("machine") or {}).get("cpu") or "-"


def _commands_cell(r: dict[str, Any]) -> str:
    return f"`{r['command']}` (recipe `{r['recipe']}`, written by the benchmark); benchmark: `{r.get('benchmark_command', '')}`"


def _cv_cell(cv: dict[str, Any] | None) -> str:
    if not cv:
        return "-"
    return (f"{cv['folds']} folds ({cv['train_and_evaluate']['cpu_s']:.0f} CPU s): test 3D Dice {_interval(cv['ensemble_test'], 'dice_3d')}, "
            f"gain over the single model {_gain(cv['gains'].get('fold ensemble dice'))}; `{cv['command']}`")


def _mask_grid(p: dict[str, Any] | None) -> list[str]:
    out = ["### Hippocampus: how much Dice the mask prototypes' grid can hold", ""]
    if p is None:
        return out + ["Not run yet: `nice -n 5 .venv/bin/python -m benchmarks.mask_grid`."]
    rows = [{**r, "grid": f"{r['imgsz']} px, stride {r['stride']}" + (" (a P2 head)" if r["stride"] == 2 else ""),
             "anterior": f"{r['dice_Anterior']:.4f} (lowest {r['dice_Anterior_min']:.3f})",
             "posterior": f"{r['dice_Posterior']:.4f} (lowest {r['dice_Posterior_min']:.3f})"} for r in p["rows"].values()]
    out += [*_where(p), "", f"Ground truth of {p['data']}, each slice's mask per class averaged onto the prototypes' "
            "grid at the scale the model sees it and brought back (bilinear, cut at 0.5): the 3D Dice per volume no "
            "mask drawn on that grid can beat. A trained model's Dice below it is lost elsewhere.", ""]
    return out + _md_table(rows, [("grid", "input size, prototype stride", ""), ("cell_voxels_median", "cell (voxels, median)", ".2f"),
                                  ("volumes", "volumes", "d"), ("anterior", "Anterior: 3D Dice ceiling, mean", ""),
                                  ("posterior", "Posterior: 3D Dice ceiling, mean", "")])


def render(results_dir: Path | None = None) -> str:
    folder = Path(results_dir or common.RESULTS_DIR)
    loaded = {t: json.loads((folder / f"{t}.json").read_text()) for t in TOPICS if (folder / f"{t}.json").is_file()}
    parts = [INTRO]
    for topic, title, make in (("convert", "Conversion", _convert), ("inference", "Inference", _inference),
                               ("training", "Training", _training)):
        if topic in loaded:
            parts.append("\n".join(make(loaded[topic])) + "\n")
        else:
            parts.append(f"## {title}\n\nNot run yet: `nice -n 5 .venv/bin/python -m benchmarks.{topic}`.\n")
    if "accuracy" in loaded:
        parts.append("\n".join(_accuracy(loaded["accuracy"], loaded.get("accuracy-full"), loaded.get("gpu"))) + "\n")
    else:
        parts.append("## Accuracy\n\nNot run yet: `nice -n 5 .venv/bin/python -m benchmarks.accuracy`.\n")
    parts.append("\n".join(_crossval(loaded.get("crossval"))) + "\n")
    parts.append("\n".join(_heldout(loaded.get("heldout"))) + "\n")
    for path in sorted(folder.glob("nnunet-*.json")):
        parts.append("\n".join(_nnunet(json.loads(path.read_text()))) + "\n")
    parts.append("\n".join(_mask_grid(loaded.get("mask_grid"))) + "\n")
    budgets = sorted(folder.glob("budget-*min.json"), key=lambda f: float(f.stem.split("-")[1][:-3]))
    for path in budgets or [None]:
        parts.append("\n".join(_budget(json.loads(path.read_text()) if path else None)) + "\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=common.RESULTS_DIR)
    p.add_argument("--out", type=Path, default=RESULTS_MD)
    args = p.parse_args(argv)
    args.out.write_text(render(args.results))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A study's pages: study.html (self-contained) and study.md, model_card.md, claim.md and methods.md.

Every number on them is read from the study's `summary.json` (which `yolo_tools/training/study.py` gathers from the
steps' own files: the cv's summary, operating_point.json, the test evaluation, compute.json) and is only
formatted here, once, by the helpers below, so that the same number reads the same on every page.
`tests/test_study.py` checks the pages against each step's own summary.json.

The model card follows Mitchell et al., "Model Cards for Model Reporting" (FAT* 2019): model details,
intended use, factors, metrics, evaluation and training data, quantitative analyses, ethical
considerations, caveats. The checklist answers the 44 items of CLAIM's 2024 update (Tejani et al.,
Radiology: Artificial Intelligence 2024; 6(4): e240300) by number, from what the workbench knows
(`report/claim.py`); what only the authors know is marked so.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import markupsafe
import pandas as pd

from yolo_tools import __version__, evaluation, tasks
from yolo_tools.report import Figure, Table, _environment, _gallery, _table, figures
from yolo_tools.report.claim import ITEMS, Answer

PAGES = ("study.html", "study.md", "model_card.md", "claim.md", "methods.md")
FOR_AUTHORS = "for the authors"


def number(value: Any) -> str:
    """A metric as every page prints it: three decimals; a missing one as a dash."""
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    return f"{float(value):.3f}"


def with_interval(value: Any, bounds: list[float] | None) -> str:
    """A metric and its 95% interval: `0.912 [0.850, 0.960]`."""
    return number(value) + (f" [{number(bounds[0])}, {number(bounds[1])}]" if bounds else "")


def mean_sd(mean: Any, sd: Any) -> str:
    return f"{number(mean)} ± {number(sd)}"


def code_spans(text: str) -> markupsafe.Markup:
    """The HTML page's form of an answer written for Markdown: escaped, its `code` spans set as code."""
    return markupsafe.Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(markupsafe.escape(text))))


def seconds(value: float) -> str:
    """A wall time in words: `42 s`, `3.5 min`, `1.25 h`."""
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.2f} h"


@dataclass
class Study:
    """What the templates show, every number already formatted from summary.json."""

    s: dict[str, Any]  # summary.json as written
    meaning: dict[str, str]
    results: Table  # headline metrics: cv mean ± SD, test ensemble [95% CI], retrained [95% CI]
    folds: Table
    split: Table
    compute: Table
    f: dict[str, str]  # sentences every page shares
    tables: list[Table] = field(default_factory=list)  # per group, demographics
    figures: list[Figure] = field(default_factory=list)
    worst: list[Figure] = field(default_factory=list)
    claim: list[tuple[int, str, str, Answer]] = field(default_factory=list)
    answers: dict[int, Answer] = field(default_factory=dict)  # the same answers by item number
    gallery_note_html: markupsafe.Markup = field(default_factory=markupsafe.Markup)
    created: str = ""
    version: str = __version__


def _test_cell(test: dict[str, Any], name: str) -> str:
    if not test or name not in test.get("metrics", {}):
        return "—"
    return with_interval(test["metrics"][name], (test.get("intervals") or {}).get(name))


def _results(s: dict[str, Any], meaning: dict[str, str]) -> Table:
    cv, test, retrained = s["cv"], s["test"], (s["retrained"] or {}).get("test")
    columns = ["metric", f"cv: mean ± SD over {cv['folds']} folds", "test: fold ensemble [95% CI]"]
    columns += ["test: retrained model [95% CI]"] if retrained else []
    rows = []
    for name in s["headline"]:
        row = [name, mean_sd(cv["mean"].get(name), cv["sd"].get(name)), _test_cell(test, name)]
        rows.append(row + ([_test_cell(retrained, name)] if retrained else []) + [meaning.get(name, "")])
    boot = test.get("bootstrap") or {}
    note = (f"cv: each fold's model on its own held-out patients, deciding at the point chosen on those same patients, so its "
            f"figures at a threshold are optimistic (cv/cv/summary.json); test: {test['images']} images of "
            f"{boot.get('patients')} patients no model trained on, scored once (test/summary.json); 95% intervals: percentile "
            f"bootstrap over patients, {boot.get('n_boot')} resamples, seed {boot.get('seed')}")
    return Table("Headline numbers", [*columns, "what it means"], rows, note, [False, True, True] + [True] * bool(retrained) + [False])


def _folds(s: dict[str, Any]) -> Table:
    cv = s["cv"]
    names = list(cv["per_fold"])
    rows = []
    for fold, training in zip(names, cv["training"]):
        numbers = cv["per_fold"][fold]
        rows.append([fold, str(training["epochs"]), str(training["best_epoch"]), seconds(training["train_seconds"] or 0),
                     *(number(numbers.get(name)) for name in s["headline"])])
    return Table("Folds", ["fold", "epochs trained", "best epoch", "training time", *s["headline"]], rows,
                 "each fold scored on its own held-out patients (cv/fold<i>/eval/summary.json); the best epoch is the one "
                 "Ultralytics kept as best.pt", [False, True, True, True] + [True] * len(s["headline"]))


def _split(s: dict[str, Any]) -> Table:
    data = s["data"]
    rows = [[split, str(data["patients"].get(split, 0)), str(data["images"].get(split, 0)),
             "test: scored once, at the end" if split == "test" else f"pooled into the {s['cv']['folds']} cv folds"]
            for split in ("train", "val", "test")]
    return Table("Patients and images", ["split as converted", "patients", "images", "use in the study"], rows,
                 f"patients from the dataset card, images from its patients.csv ({data['dataset']}); the converter's val "
                 "split is pooled with train for the cv",
                 [False, True, True, False])


def _compute(s: dict[str, Any]) -> Table:
    compute = s["compute"]
    rows = [[step, seconds(value)] for step, value in compute.get("seconds", {}).items()]
    rows.append(["total", seconds(sum(compute.get("seconds", {}).values()))])
    note = (f"{', '.join(compute.get('devices', []))}; {compute.get('cores')} CPU cores ({compute.get('cpu')}); "
            "wall time summed over every session (compute.json)")
    return Table("Compute", ["step", "wall time"], rows, note, [False, True])


def _point_text(s: dict[str, Any]) -> str:
    point = s["operating_point"]
    where = f"on the pooled out-of-fold predictions of the {point['folds']} folds ({point['images']} images: {point['from']})"
    if "threshold" in point:
        return (f"{point['positive']} when its probability is at least {number(point['threshold'])}, chosen by {point['rule']} {where}; "
                f"there, sensitivity {number(point['sensitivity'])} and specificity {number(point['specificity'])}")
    if "class_conf" in point:
        classes = ", ".join(f"{name} {number(value)}" for name, value in point["class_conf"].items())
        return f"each class at its own confidence ({classes}), chosen by {point['rule']} {where}"
    return f"{point['rule']}"


def _point_shift(s: dict[str, Any]) -> str:
    """A classifier's rates at its threshold out of fold beside the test ensemble's: the point is chosen on single
    fold models' probabilities and the ensemble averages them, which can move where a threshold falls."""
    point, metrics = s["operating_point"], s["test"].get("metrics", {})
    if "threshold" not in point or "sensitivity" not in metrics:
        return ""
    return (f"at the threshold {number(point['threshold'])}, out of fold: sensitivity {number(point['sensitivity'])}, specificity "
            f"{number(point['specificity'])}; the test ensemble: sensitivity {number(metrics['sensitivity'])}, specificity "
            f"{number(metrics['specificity'])} (the ensemble averages the fold models' probabilities, which can move where "
            "a threshold falls)")


def _facts(s: dict[str, Any]) -> dict[str, str]:
    """Sentences every page shares, each number formatted once."""
    data, cv, test, point = s["data"], s["cv"], s["test"], s["operating_point"]
    split = data["split"] or {}
    test_rule = ("the published test split" if split.get("test") == "source"
                 else f"{float(split.get('test')):.0%} of the patients, drawn with seed {split.get('seed')}")
    wise = {True: "yes: no patient has images on two sides", False: "NO: some patients have images on two sides",
            None: "not known: nothing says which patient each image is of"}[data["patient_wise"]]
    boot = test.get("bootstrap") or {}
    headline = "; ".join(f"{name} {_test_cell(test, name)}" for name in s["headline"])
    retrained = s["retrained"]
    return {
        "test_rule": test_rule,
        "patient_wise": wise,
        "split_by": str(split.get("by")),
        "test_patients": str(data["patients"].get("test", 0)),
        "test_images": str(data["images"].get("test", 0)),
        "cv_patients": str(cv["patients"]),
        "cv_images": str(cv["images"]),
        "boot_patients": str(boot.get("patients")),
        "point": _point_text(s),
        "headline": headline,
        "cv_headline": "; ".join(f"{name} {mean_sd(cv['mean'].get(name), cv['sd'].get(name))}" for name in s["headline"]),
        "ensemble": f"the {cv['folds']} fold models as one ensemble ({tasks.get(s['recipe']['task']).fused_as})",
        "retrained": (f"one model retrained on all {cv['images']} train and val images for {retrained['epochs']} epoch(s) "
                      f"(the mean of the folds' best epochs, {', '.join(str(e) for e in retrained['best_epochs'])})") if retrained else "",
        "caveat": test.get("split_caveat") or "",
        "licence": data["licence"] or FOR_AUTHORS,
        "software": ", ".join(f"{name} {version}" for name, version in s["software"].items()),
        "total_time": seconds(sum(s["compute"].get("seconds", {}).values())),
        "calibration": (f"expected calibration error {number(s['calibration']['ece'])} over {s['calibration']['scores']} scores "
                        f"({s['calibration']['what']}, {len(s['calibration']['count'])} quantile bin(s))")
        if "ece" in s["calibration"] else (s["calibration"].get("note") or ""),
        "point_shift": _point_shift(s),
        "train_args": ", ".join(f"{k}={v}" for k, v in s["setup"]["train"].items()),
        "point_rule": point.get("rule", ""),
    }


def _group_table(root: Path) -> Table | None:
    path = root / "test" / evaluation.GROUPS_FILE
    if not path.is_file():
        return None
    frame = pd.read_csv(path, dtype={"field": str, "value": str})
    return _table("By patient fields, on the test split", frame,
                  "from test/per_group.csv (the recipe's data.metadata); numeric fields in quartiles")


def _demographics(s: dict[str, Any]) -> Table | None:
    rows = s["data"]["demographics"]
    if not rows:
        return None
    splits = [c for c in rows[0] if c not in ("field", "value")]
    cells = [[row["field"], row["value"], *(str(row.get(split, "")) for split in splits)] for row in rows]
    return Table("Patients per split by patient field", ["field", "value", *splits], cells,
                 "patients (not images) per split, from the dataset's metadata.csv", [False, False] + [True] * len(splits))


def _figures(root: Path, s: dict[str, Any]) -> list[Figure]:
    found = []
    runs = [Path(run) for run in json.loads((Path(s["cv"]["dir"]) / "summary.json").read_text())["fold_runs"]]
    curves = figures.fold_curves([(run.name, run / "results.csv") for run in runs], tasks.get(s["recipe"]["task"]).curve_metric,
                                 [row["best_epoch"] for row in s["cv"]["training"]])
    if curves:
        found.append(Figure("learning_curves", "Learning curves of the folds (each fold's results.csv)", curves))
    calibration = s["calibration"]
    if "ece" in calibration:
        score = tasks.get(s["recipe"]["task"]).score_name
        found.append(Figure("calibration", f"Calibration on the test split: {calibration['what']} (test/calibration.json)",
                            figures.reliability(calibration, score)))
    test = s["test"]
    matrix = test.get("metrics", {}).get("confusion_matrix")
    if matrix:
        found.append(Figure("confusion_matrix", "Confusion matrix on the test split (test/summary.json)",
                            figures.confusion_matrix(matrix["rows_truth_columns_predicted"], matrix["classes"])))
    if test.get("roc"):
        point = s["operating_point"] if "threshold" in s["operating_point"] else None
        found.append(Figure("roc", "ROC curve on the test split, the point chosen out of fold marked; calibration beside it",
                            figures.roc_and_calibration(test["roc"], point, test["classes"][1])))
    return found


def build(root: Path) -> Study:
    s = json.loads((root / "summary.json").read_text(encoding="utf-8"))
    meaning = tasks.get(s["recipe"]["task"]).meaning
    study = Study(s, meaning, _results(s, meaning), _folds(s), _split(s), _compute(s), _facts(s),
                  created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    study.tables = [t for t in (_group_table(root), _demographics(s)) if t is not None]
    study.figures = _figures(root, s)
    test_dir = root / "test"
    study.worst, _ = _gallery(pd.read_csv(test_dir / "per_image.csv"), s["test"], test_dir)
    study.claim = [(item.number, item.section, item.subject, item.answer(s, study.f)) for item in ITEMS]
    study.answers = {number: answer for number, _, _, answer in study.claim}
    study.gallery_note_html = markupsafe.Markup(tasks.get(s["recipe"]["task"]).gallery_note_html)  # the task's own text
    return study


def write_study(root: str | Path) -> list[Path]:
    """Write the study's pages into its folder (figures for the Markdown in figures/); returns their paths."""
    root = Path(root)
    study = build(root)
    shutil.rmtree(root / "figures", ignore_errors=True)
    (root / "figures").mkdir()
    for figure in [*study.figures, *study.worst]:
        (root / figure.file).write_bytes(figure.data)
    environment = _environment()
    environment.filters["code"] = code_spans
    written = []
    for page in PAGES:
        path = root / page
        evaluation.write_atomic(path, environment.get_template(f"study/{page}.j2").render(c=study))
        written.append(path)
    return written

"""A run's report: one self-contained HTML page and the same as Markdown, written to `<run>/report/`.

Every number comes from the files of `yolo_tools evaluate` (`<run>/eval/`), read back and only rounded
for display, so the report and the metric files cannot disagree. The page holds the recipe, the dataset
card, the headline and per-class numbers with what each means, training curves (Ultralytics'
results.csv), the confusion matrix and PR curve, and a gallery of the worst and best val images with the
ground truth and the prediction drawn side by side. Images are embedded as base64, so the HTML file can
be mailed or archived alone; the Markdown file links the same pictures from `report/figures/`. What
differs per task (what each metric means, which columns are counts, the captions, gallery notes and the
validator's plots) comes from the task's module (yolo_tools/tasks/); this module only lays it out.

Examples:
    >>> write_report(Path("runs/kidney/train"))   # after yolo_tools evaluate runs/kidney/train
    (PosixPath('runs/kidney/train/report/report.html'), PosixPath('runs/kidney/train/report/report.md'))
"""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import numpy as np
import pandas as pd
import yaml

from yolo_tools import __version__, evaluation, tasks
from yolo_tools.dataset import CARD_MD, Dataset, read_card
from yolo_tools.errors import UserError
from yolo_tools.report import figures

REPORT_DIR = "report"
GALLERY_SIZE = 4  # worst and best images shown each
TABLE_ROWS = 10  # rows of the worst-images table; per_image.csv has them all
PATIENT_ROWS = 50
DECIMALS = 3

@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""
    numeric: list[bool] = field(default_factory=list)  # per column: right-aligned in HTML


@dataclass
class Figure:
    name: str
    caption: str
    data: bytes
    kind: str = "png"

    @property
    def file(self) -> str:
        return f"figures/{self.name}.{'jpg' if self.kind == 'jpeg' else 'png'}"

    @property
    def uri(self) -> str:
        return f"data:image/{self.kind};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass
class Context:
    run_name: str
    summary: dict[str, Any]
    recipe_text: str
    description: str
    card: dict[str, Any]
    card_markdown: str
    card_table: Table | None
    headline: Table
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    worst: list[Figure] = field(default_factory=list)
    best: list[Figure] = field(default_factory=list)
    created: str = ""
    version: str = __version__
    decision: list[tuple[str, str]] = field(default_factory=list)  # how a finding or class is decided, for the facts
    gallery_note: str = ""  # how to read the gallery, from the task
    gallery_note_html: markupsafe.Markup = field(default_factory=markupsafe.Markup)
    locates: bool = False  # the task finds things in the image (boxes, masks) rather than naming its class


def fmt(value: Any, column: str = "") -> str:
    """How a number appears in the report: counts whole, everything else with DECIMALS places, missing as a dash."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    # Columns that hold counts (each task module names its own) print whole, like ints.
    if isinstance(value, (int, float)) and (re.match(tasks.count_columns(), column) or isinstance(value, int)):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.{DECIMALS}f}"
    return str(value)


def _table(title: str, frame: pd.DataFrame, note: str = "") -> Table:
    rows = [[fmt(value, column) for column, value in zip(frame.columns, row)] for row in frame.itertuples(index=False)]
    numeric = [pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype) for dtype in frame.dtypes]
    return Table(title, list(frame.columns), rows, note, numeric)


def _headline(summary: dict[str, Any]) -> Table:
    numbers = {**summary["validator"], **{k: v for k, v in summary["metrics"].items() if not isinstance(v, dict)}}
    intervals = summary.get("intervals") or {}

    def interval(name: str) -> str:
        bounds = intervals.get(name) if name not in summary["validator"] else None
        return f"{fmt(bounds[0], name)} – {fmt(bounds[1], name)}" if bounds else "—"

    meaning = tasks.get(summary["task"]).meaning
    rows = [[name, fmt(value, name), interval(name), meaning.get(name, "")] for name, value in numbers.items()]
    source = "Ultralytics' validator: " + ", ".join(summary["validator"]) + "; the rest: yolo_tools evaluate"
    boot = summary.get("bootstrap")
    if boot:
        over = f"{boot['patients']} patients (not images)" if boot["unit"] == "patient" else f"{boot['patients']} {boot['unit']}"
        source += f". 95% intervals: percentile bootstrap over {over}, {boot['n_boot']} resamples, seed {boot['seed']}"
    return Table("Headline numbers", ["metric", "value", "95% interval", "what it means"], rows, source, [False, True, True, False])


def _decision(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The decision rule in words: a classifier's threshold (when chosen), else the confidence findings need."""
    point = summary.get("operating_point")
    if tasks.get(summary["task"]).decides_by == "threshold":
        if not point:
            return []
        return [("decision", f"{point['positive']} when its probability is at least {point['threshold']:.3f} (chosen on val: {point['rule']})")]
    chosen = f"; chosen on val: {point['rule']}" if point else ""
    rows = [("confidence threshold", f"{summary['conf']} (findings below it are not counted{chosen})")]
    if summary.get("flips"):
        rows.append(("test-time mirroring", f"each image also predicted mirrored ({', '.join(summary['flips'])}), the findings fused"))
    kept = summary.get("postprocessing")
    if kept:
        classes = ", ".join(kept["largest_component"]) or "no class (it lowered every class's Dice)"
        where = "volume (3D)" if kept["dimensions"] == 3 else "image"
        rows.append(("post-processing", f"largest connected component per {where} kept for: {classes} (decided on {kept['decided_on']})"))
    return rows


def ranked(per_image: pd.DataFrame, summary: dict[str, Any], worst_first: bool = False) -> pd.DataFrame:
    """Images from best to worst (or worst to best) by the per-image metric; ties put images with more to find first."""
    column, higher = summary["per_image_metric"]["column"], summary["per_image_metric"]["higher_is_better"]
    findings = tasks.get(summary["task"]).findings_columns
    size = per_image.filter(regex=findings).sum(axis=1) if findings else 0
    keyed = per_image.assign(_size=size)
    ascending = [higher if worst_first else not higher, False]
    return keyed.sort_values([column, "_size"], ascending=ascending, kind="stable").drop(columns="_size")


def _gallery(per_image: pd.DataFrame, summary: dict[str, Any], eval_dir: Path) -> tuple[list[Figure], list[Figure]]:
    """Overlays of the worst images, and of the best among those with something to find."""
    task, classes = summary["task"], summary["classes"]
    spec = tasks.get(task)
    dataset = Dataset(Path(summary["dataset"]), task)
    split = summary.get("split", "val")
    worst = ranked(per_image, summary, worst_first=True).head(GALLERY_SIZE)
    rest = per_image.drop(index=worst.index)
    if spec.findings_columns:  # an empty image with nothing predicted scores perfectly but shows nothing
        with_findings = rest[rest.filter(regex=spec.findings_columns).sum(axis=1) > 0]
        rest = with_findings if len(with_findings) else rest
    best = ranked(rest, summary).head(GALLERY_SIZE)
    findings: dict[str, list[dict[str, Any]]] = {}
    predictions_json = eval_dir / "predictions.json"
    if spec.findings_columns and predictions_json.is_file():
        for record in json.loads(predictions_json.read_text()):
            findings.setdefault(record["image"], []).append(record)

    def draw(row: pd.Series, name: str) -> Figure:
        caption = spec.caption(row, classes, fmt)
        if not spec.findings_columns:  # nothing located: the image alone
            return Figure(name, caption, figures.classified(dataset.images(split) / row["image"]), "jpeg")
        stem = Path(row["image"]).stem
        data = figures.overlay(
            dataset.images(split) / row["image"],
            dataset.label_file(split, stem),
            findings.get(row["image"], []),
            classes,
            spec.saves_masks,
            eval_dir / evaluation.MASKS_DIR / f"{stem}.png",
        )
        return Figure(name, caption, data, "jpeg")

    return (
        [draw(row, f"worst_{i + 1}") for i, (_, row) in enumerate(worst.iterrows())],
        [draw(row, f"best_{i + 1}") for i, (_, row) in enumerate(best.iterrows())],
    )


def _ultralytics_plots(task: str, run_dir: Path, eval_dir: Path) -> list[Figure]:
    """The validator's confusion matrix and PR curve, from the evaluation (else from training)."""
    found = []
    for file, caption in tasks.get(task).validator_plots:
        for folder in (eval_dir, run_dir):
            if (folder / file).is_file():
                found.append(Figure(Path(file).stem, caption, (folder / file).read_bytes()))
                break
    return found


def _card(dataset: Path) -> tuple[dict[str, Any], str]:
    card_md = dataset / CARD_MD
    card = read_card(dataset) or {}
    text = card_md.read_text() if card_md.is_file() else "(no dataset card)"
    return card, re.sub(r"^#", "###", text, flags=re.MULTILINE)


def _card_table(card: dict[str, Any]) -> Table | None:
    counts = card.get("counts")
    if not counts:
        return None
    columns = sorted({k for split in counts.values() for k in split})
    rows = [[split] + [str(row.get(c, 0)) for c in columns] for split, row in counts.items()]
    return Table("Images and findings per split", ["split", *columns], rows, "", [False] + [True] * len(columns))


def build_context(run_dir: Path, eval_name: str = evaluation.EVAL_DIR) -> Context:
    """Everything the templates show, read from the run folder and one of its eval folders."""
    eval_dir = run_dir / eval_name
    summary_path = eval_dir / evaluation.SUMMARY_FILE
    if not summary_path.is_file():
        raise UserError(f"{run_dir}: no {summary_path.relative_to(run_dir)}; run yolo_tools evaluate {run_dir} first")
    summary = json.loads(summary_path.read_text())
    per_image = pd.read_csv(eval_dir / "per_image.csv")
    per_class = pd.read_csv(eval_dir / "per_class.csv")
    recipe_path = run_dir / "recipe.yaml"
    recipe_text = recipe_path.read_text() if recipe_path.is_file() else ""
    card, card_markdown = _card(Path(summary["dataset"]))
    recipe = yaml.safe_load(recipe_text) if recipe_text else {}
    spec = tasks.get(summary["task"])
    context = Context(
        run_name=run_dir.name,
        summary=summary,
        recipe_text=recipe_text,
        description=recipe.get("description", ""),
        card=card,
        card_markdown=card_markdown,
        card_table=_card_table(card),
        headline=_headline(summary),
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        decision=_decision(summary),
        gallery_note=spec.gallery_note,
        gallery_note_html=markupsafe.Markup(spec.gallery_note_html),  # the task's own text, not user input
        locates=bool(spec.findings_columns),
    )
    context.tables.append(_table("Per class", per_class, "from eval/per_class.csv"))
    patients_csv = eval_dir / "per_patient.csv"
    if patients_csv.is_file():
        per_patient = pd.read_csv(patients_csv, dtype={"patient": str, "volume": str})
        keep = [c for c in per_patient.columns if not re.match(r"^(true|pred)_voxels_|^iou_", c)]
        shown = per_patient[keep].head(PATIENT_ROWS)
        note = f"from eval/per_patient.csv ({len(per_patient)} volumes" + (
            f"; the first {PATIENT_ROWS} shown)" if len(per_patient) > PATIENT_ROWS else ")"
        )
        context.tables.append(_table("Per patient (3D, each volume's slices stacked)", shown, note))
    groups_csv = eval_dir / evaluation.GROUPS_FILE
    if groups_csv.is_file():
        per_group = pd.read_csv(groups_csv, dtype={"field": str, "value": str})
        note = (
            f"from eval/{evaluation.GROUPS_FILE}: patient fields joined from the recipe's data.metadata; "
            "numeric fields with many values in quartiles"
        )
        context.tables.append(_table("By patient fields", per_group, note))
    metric = summary["per_image_metric"]["column"]
    worst_rows = ranked(per_image, summary, worst_first=True).head(TABLE_ROWS)
    keep = [c for c in worst_rows.columns if not re.match(r"^(true|pred)_px_|^iou_", c)]
    context.tables.append(
        _table(
            f"Worst images by {metric}",
            worst_rows[keep],
            f"from eval/per_image.csv ({len(per_image)} images; {'higher' if summary['per_image_metric']['higher_is_better'] else 'lower'} is better)",
        )
    )
    curves = figures.training_curves(run_dir / "results.csv")
    if curves:
        context.figures.append(Figure("training_curves", "Training curves (Ultralytics' results.csv)", curves))
    matrix = summary["metrics"].get("confusion_matrix")
    if matrix:  # a classifier's, in summary.json (a detector's and a segmenter's are the validator's plots)
        data = figures.confusion_matrix(matrix["rows_truth_columns_predicted"], matrix["classes"])
        context.figures.append(Figure("confusion_matrix", "Confusion matrix (eval/summary.json)", data))
        if summary.get("roc"):
            point = summary.get("operating_point")
            data = figures.roc_and_calibration(summary["roc"], point, summary["classes"][1])
            chosen = f"; the point: {point['rule']} on val, threshold {point['threshold']:.3f}" if point else ""
            context.figures.append(Figure("roc_calibration", f"ROC curve and calibration (10 quantile bins) on this set{chosen}", data))
    context.figures.extend(_ultralytics_plots(summary["task"], run_dir, eval_dir))
    context.worst, context.best = _gallery(per_image, summary, eval_dir)
    return context


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("yolo_tools.report", "templates"),
        autoescape=jinja2.select_autoescape(["html.j2"]),  # the HTML page escapes; the Markdown does not
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def write_report(run_dir: str | Path, eval_name: str = evaluation.EVAL_DIR) -> tuple[Path, Path]:
    """Write `<run>/report/report.html` (self-contained) and `report.md` (+ `figures/`); returns both paths.

    Another evaluation (`eval-test`, `eval-outside-<set>`) is reported into `report-test/`, `report-outside-<set>/`.
    """
    run_dir = Path(run_dir)
    context = build_context(run_dir, eval_name)
    out = run_dir / (REPORT_DIR + eval_name.removeprefix(evaluation.EVAL_DIR))
    shutil.rmtree(out / "figures", ignore_errors=True)
    (out / "figures").mkdir(parents=True)
    for figure in [*context.figures, *context.worst, *context.best]:
        (out / figure.file).write_bytes(figure.data)
    environment = _environment()
    html_path, md_path = out / "report.html", out / "report.md"
    evaluation.write_atomic(html_path, environment.get_template("report.html.j2").render(c=context))
    evaluation.write_atomic(md_path, environment.get_template("report.md.j2").render(c=context))
    return html_path, md_path

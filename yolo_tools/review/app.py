"""`yolo_tools app`: a local web page to try a trained run on one image (PNG, JPEG or DICOM).

A clinician or reviewer wants to see what a model does on *their* image without a notebook: upload it,
pick a run, and see the overlay and the findings with confidences. Gradio serves the page on 127.0.0.1
only, with no share link, telemetry or browser run history, so images never leave the machine and the
page works offline. Gradio is touched only here, and imported only when the page is built.

An upload becomes the 8-bit BGR image the model was trained on by the converters' rules: DICOM through
`yolo_tools.imaging.dicom` (rescale slope/intercept, the run's `preprocess.intensity` or else the file's
window, MONOCHROME1 inverted); 16-bit or float files through the run's intensity spec. Each run's model
is loaded and warmed up once and then kept, so a request costs one forward pass.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from yolo_tools import engine, operating_point
from yolo_tools.errors import UserError
from yolo_tools.imaging.model_input import read_model_input
from yolo_tools.inference import ensemble, predictors
from yolo_tools.locations import runs_dir
from yolo_tools.prediction import CLASS_CONF, DEFAULT_CONF, Prediction
from yolo_tools.recipe import Recipe
from yolo_tools.runs import RECIPE_FILE, read_metrics, run_recipe
from yolo_tools.training import crossval

HOST = "127.0.0.1"
DEFAULT_PORT = 7860
WEIGHTS = Path("weights") / "best.pt"
BOX_COLUMNS = ["class", "confidence", "x1", "y1", "x2", "y2"]


def discover_runs(root: Path | None = None) -> dict[str, Path]:
    """Runs that can serve, as `recipe/name` → folder: `<root>/<recipe>/<name>/` with best.pt and recipe.yaml,
    and finished cross-validations (`<root>/<recipe>/<name>/cv.json`, every fold trained), served as one ensemble.

    Newest weights first, so the run a user has just trained is the one selected.
    """
    root = root or runs_dir()
    found = [path.parent for path in root.glob(f"*/*/{RECIPE_FILE}") if (path.parent / WEIGHTS).is_file()]
    for path in root.glob(f"*/*/{crossval.CV_FILE}"):
        try:
            folds = crossval.members(path.parent)
        except UserError:  # a cv still running: not offered until every fold is trained
            continue
        if folds:
            found.append(path.parent)
    found.sort(key=lambda run: _weights_of(run)[0].stat().st_mtime, reverse=True)
    return {f"{run.parent.name}/{run.name}": run for run in found}


def _weights_of(folder: Path) -> list[Path]:
    """A run's best weights, or each fold's for a cross-validation folder."""
    folds = crossval.members(folder)
    return [fold / WEIGHTS for fold in folds] if folds else [folder / WEIGHTS]


@dataclass(frozen=True)
class LoadedRun:
    recipe: Recipe
    model: Any  # one Ultralytics model, or a list of them (a cross-validation's folds, fused)
    device: str
    load_seconds: float  # reading the weights and one warm-up pass, paid once per run
    point: dict[str, Any] | None = None  # the operating point chosen on val (yolo_tools/operating_point.py)


class ModelCache:
    """Each run's model loaded once, on first use or at start-up, and kept for the server's lifetime."""

    def __init__(self) -> None:
        self._runs: dict[Path, LoadedRun] = {}
        self._lock = threading.Lock()

    def get(self, folder: Path) -> LoadedRun:
        folder = folder.resolve()
        with self._lock:
            if folder not in self._runs:
                self._runs[folder] = _load(folder)
            return self._runs[folder]


def _load(folder: Path) -> LoadedRun:
    weights = _weights_of(folder)
    first = weights[0].parent.parent
    recipe = run_recipe(first)
    if recipe is None or not all(w.is_file() for w in weights):
        raise UserError(f"{folder}: not a trained run (needs {RECIPE_FILE} and {WEIGHTS})")
    start = time.perf_counter()
    models = [engine.load_model(w) for w in weights]
    device = engine.pick_device()
    size = int(recipe.train.get("imgsz", 640))
    # The first forward pass builds the predictor and fuses layers, the first drawing loads the font; pay both
    # here, not on the first upload.
    for model in models:
        engine.predict_array(model, np.zeros((size, size, 3), np.uint8), {"device": device}, draw=True)
    point = operating_point.load(first) if len(models) == 1 else None  # folds chose their points on different sets
    model = models[0] if len(models) == 1 else models
    return LoadedRun(recipe, model, device, time.perf_counter() - start, point)


@dataclass(frozen=True)
class Analysis:
    overlay: np.ndarray  # RGB, for display
    findings: pd.DataFrame
    diagnosis: str  # Markdown
    seconds: float  # mapping the upload, the forward pass and drawing; not the model load
    notes: list[str]


def findings_table(prediction: Prediction, spacing: tuple[float, float] | None) -> pd.DataFrame:
    """Class probabilities (classify) or one row per finding, most confident first; mask areas for segment."""
    names = prediction.names
    if prediction.probabilities is not None:
        table = pd.DataFrame({"class": [names[i] for i in range(len(prediction.probabilities))]})
        table["probability"] = prediction.probabilities.astype(float).round(4)
        return table.sort_values("probability", ascending=False, ignore_index=True)
    table = pd.DataFrame(prediction.boxes.round().astype(int), columns=BOX_COLUMNS[2:])
    table.insert(0, "class", [names[int(c)] for c in prediction.classes])
    table.insert(1, "confidence", prediction.confidences.astype(float).round(4))
    if prediction.masks is not None and len(prediction.masks):
        table["area_px"] = prediction.masks.sum(axis=(1, 2))
        if spacing:
            table["area_mm2"] = (table["area_px"] * spacing[0] * spacing[1]).round(1)
    return table.sort_values("confidence", ascending=False, ignore_index=True)


def diagnosis(prediction: Prediction, conf: float, point: dict[str, Any] | None = None) -> str:
    """One line a reader takes in at a glance: the decided class (at the run's operating point), or the findings per class."""
    if prediction.probabilities is not None and point and "threshold" in point and len(prediction.probabilities) == 2:
        decided = operating_point.decide(prediction.probabilities, point)
        positive = prediction.names[1]
        return (
            f"**{prediction.names[decided]}** (p({positive}) {prediction.probabilities[1]:.1%}; called {positive} from "
            f"{point['threshold']:.1%}, the operating point chosen on val by {point['rule']})"
        )
    if prediction.probabilities is not None:
        order = np.argsort(prediction.probabilities)[::-1]
        top, rest = order[0], order[1:3]
        others = ", ".join(f"{prediction.names[i]} {prediction.probabilities[i]:.1%}" for i in rest)
        headline = f"**{prediction.names[top]}** ({prediction.probabilities[top]:.1%})"
        return headline + (f"; then {others}" if others else "")
    if not len(prediction.classes):
        return f"**No findings** at confidence ≥ {conf:.2f}"
    parts = []
    for class_id in np.unique(prediction.classes):
        chosen = prediction.confidences[prediction.classes == class_id]
        parts.append(f"{prediction.names[int(class_id)]} ×{len(chosen)} (best {chosen.max():.2f})")
    return f"**{len(prediction.classes)} finding{'s' * (len(prediction.classes) > 1)}**: " + ", ".join(parts)


SLIDER_STEP = 0.01  # of the confidence slider; within half a step of a run's stored conf, its per-class ones apply


def run_conf(folder: Path) -> float:
    """The confidence the page starts a run at: the one chosen on val when stored, else the workbench's default."""
    return float((operating_point.load(folder) or {}).get("conf", DEFAULT_CONF))


def analyse(run: LoadedRun, path: Path, conf: float = DEFAULT_CONF) -> Analysis:
    start = time.perf_counter()
    upload = read_model_input(path, run.recipe.preprocess)
    args = {**predictors.prediction_args(run.recipe.task, run.recipe, None, {}), "conf": conf, "device": run.device}  # max_det, full-size masks
    point = run.point or {}
    if point.get(CLASS_CONF) and abs(conf - point.get("conf", -1)) < SLIDER_STEP / 2:
        args[CLASS_CONF] = point[CLASS_CONF]  # the slider where the run left it: each class at its own, as predict
    if isinstance(run.model, list):  # a cross-validation's fold models, fused as `predict` fuses them
        prediction = ensemble.fuse_image(run.recipe.task, run.model, upload.image, args)
    else:
        prediction = engine.predict_array(run.model, upload.image, args, draw=True)
    findings = findings_table(prediction, upload.spacing)
    overlay = cv2.cvtColor(engine.draw(prediction), cv2.COLOR_BGR2RGB)
    return Analysis(overlay, findings, diagnosis(prediction, conf, run.point), time.perf_counter() - start, upload.notes)


def describe_run(folder: Path) -> str:
    """The run's task, classes, training size and stored validation metrics, as Markdown."""
    folds = crossval.members(folder)
    recipe = run_recipe(folds[0] if folds else folder)
    if recipe is None:
        return ""
    title = f"**{recipe.name}** ({recipe.task})" + (f": {recipe.description}" if recipe.description else "")
    lines = [title, f"classes: {', '.join(recipe.classes)} · trained at {recipe.train.get('imgsz', 640)} px"]
    if folds:
        lines.append(f"ensemble of the {len(folds)} fold models of a patient-wise cross-validation (fused per image)")
    val = read_metrics(folder).get("val", {})
    if val:
        lines.append("validation: " + ", ".join(f"{k} {v:.3f}" for k, v in val.items()))
    return "  \n".join(lines)


def _timing(run: LoadedRun, result: Analysis) -> str:
    device = "CPU" if run.device == "cpu" else f"GPU {run.device}"
    notes = "".join(f"\n- {note}" for note in result.notes)
    return (
        f"inference {result.seconds * 1000:.0f} ms on {device} (mapping, model, drawing; "
        f"the model was loaded once in {run.load_seconds:.1f} s){notes}"
    )


def build(root: Path, cache: ModelCache):
    """The page: a run picker, an upload box and a threshold on the left; overlay, diagnosis, table on the right."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read by Gradio at import and at launch
    import gradio as gr

    runs = discover_runs(root)
    empty = pd.DataFrame(columns=BOX_COLUMNS)

    def run_folder(label: str | None) -> Path:
        if not label or label not in discover_runs(root):
            raise gr.Error(f"no trained run '{label}' under {root}")
        return root / label

    def on_input(label: str | None, file: str | None, conf: float):
        if not file:
            return None, "", empty, ""
        try:
            run = cache.get(run_folder(label))
            result = analyse(run, Path(file), conf)
        except UserError as error:
            raise gr.Error(str(error)) from None
        return result.overlay, result.diagnosis, result.findings, _timing(run, result)

    def on_load(label: str | None):
        current = discover_runs(root)
        chosen = label if label in current else next(iter(current), None)
        return gr.Dropdown(choices=list(current), value=chosen), describe_run(root / chosen) if chosen else ""

    # Uploads and overlays are patient images: Gradio's copies go after an hour, and all of them at restart.
    with gr.Blocks(title="yolo-tools", analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        gr.Markdown(
            "## yolo-tools: try a trained run on one image\n"
            "Upload a PNG, JPEG or DICOM file. It is processed on this machine only."
        )
        with gr.Row():
            with gr.Column(scale=1):
                run = gr.Dropdown(choices=list(runs), value=next(iter(runs), None), label="Trained run", elem_id="run")
                about = gr.Markdown(describe_run(next(iter(runs.values()))) if runs else "", elem_id="run-info")
                upload = gr.File(label="Image (PNG, JPEG or DICOM)", type="filepath", elem_id="upload")
                conf = gr.Slider(
                    0.01, 1.0, value=DEFAULT_CONF, step=SLIDER_STEP, label="Confidence threshold (detect, segment)", elem_id="conf"
                )
            with gr.Column(scale=2):
                # PNG, not Gradio's default lossy WebP: the overlay shows the exact grey levels the model saw.
                overlay = gr.Image(label="Overlay", type="numpy", format="png", interactive=False, elem_id="overlay")
                verdict = gr.Markdown(elem_id="diagnosis")
                findings = gr.Dataframe(value=empty, label="Findings", interactive=False, elem_id="findings")
                timing = gr.Markdown(elem_id="timing")
        outputs = [overlay, verdict, findings, timing]
        # One request at a time: an Ultralytics predictor is not safe to share between threads.
        gr.on([upload.change, run.change, conf.release], on_input, [run, upload, conf], outputs, concurrency_limit=1)
        run.change(lambda label: describe_run(run_folder(label)) if label else "", run, about)
        run.change(lambda label: run_conf(run_folder(label)) if label else DEFAULT_CONF, run, conf)
        page.load(on_load, run, [run, about])
    return page


def serve(port: int = DEFAULT_PORT, root: str | Path | None = None) -> None:
    """Serve the page on 127.0.0.1:`port` until interrupted; the newest run is loaded before the page opens."""
    root = Path(root).expanduser().resolve() if root else runs_dir()
    runs = discover_runs(root)
    if not runs:
        raise UserError(
            f"{root}: no trained runs (folders <recipe>/<name>/ with {WEIGHTS} and {RECIPE_FILE}); "
            "train one first (yolo_tools demo, yolo_tools train RECIPE) or point --runs at another folder"
        )
    cache = ModelCache()
    newest = next(iter(runs))
    print(f"{len(runs)} run(s) under {root}; loading {newest}")
    cache.get(runs[newest])
    page = build(root, cache)
    try:
        page.launch(
            server_name=HOST,
            server_port=port,
            share=False,
            inbrowser=False,
            show_error=True,
            footer_links=[],
            run_history=False,
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
            enable_monitoring=False,
        )
    except OSError as error:
        raise UserError(f"cannot serve on {HOST}:{port}: {error}; choose another port with --port") from None

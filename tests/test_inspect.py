"""`yolo_tools inspect`: a real (short) run into FiftyOne, evaluated, tagged and ranked; the App in Chromium.

FiftyOne's database lives in a temporary folder (FIFTYONE_DATABASE_DIR), and HOME and FiftyOne's config
paths point there too, so a developer's ~/.fiftyone (or their own MongoDB) is never touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import RECIPES, isolate_fiftyone
from yolo_tools import engine, pipeline
from yolo_tools.conversion import dataset_dir, train_data
from yolo_tools.errors import UserError
from yolo_tools.locations import runs_dir
from yolo_tools.recipe import Recipe, load_recipe
from yolo_tools.review import fiftyone_inspect
from yolo_tools.runs import save_recipe

pytestmark = pytest.mark.slow

QUICK = {"epochs": 1, "batch": 8, "workers": 0, "plots": False}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module", autouse=True)
def fiftyone_home(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("fiftyone-home")
    with pytest.MonkeyPatch.context() as patch:
        isolate_fiftyone(patch, home)
        yield home


def _fiftyone():
    return fiftyone_inspect._fiftyone()


@pytest.fixture(scope="module")
def demo_run() -> Path:
    run_dir, _ = pipeline.train_recipe(RECIPES / "demo.yaml", QUICK, name="inspect")
    return run_dir


@pytest.fixture(scope="module")
def demo_report(demo_run: Path) -> dict:
    # conf=0.001: a one-epoch model is unsure of everything, so there are false findings to tag.
    return fiftyone_inspect.inspect_run(demo_run, {"conf": 0.001}, worst=5, app=False)


def _val_images(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def test_detect_run_becomes_an_evaluated_ranked_dataset(demo_run: Path, demo_report: dict) -> None:
    fo = _fiftyone()
    assert demo_report["dataset"] == "yolo-tools/demo/inspect"
    dataset = fo.load_dataset(demo_report["dataset"])
    val_images = _val_images(dataset_dir(load_recipe(RECIPES / "demo.yaml")) / "images" / "val")
    assert len(dataset) == demo_report["samples"] == val_images > 0
    assert dataset.persistent
    assert fo.config.database_validation is False  # the bundled MongoDB 6.0: FiftyOne's warning is off
    schema = dataset.get_field_schema()
    for field in ("ground_truth", "predictions", "eval_tp", "eval_fp", "eval_fn", "error_score", "mistakenness"):
        assert field in schema, field
    assert dataset.list_evaluations() == ["eval"]
    assert "mistakenness" in dataset.list_brain_runs()
    assert dataset.count("ground_truth.detections") > 0 and dataset.count("predictions.detections") > 0

    tags = dataset.count_sample_tags()
    assert tags.get("false_positive", 0) > 0
    assert tags.get("false_positive") == len(dataset.match(fo.ViewField("eval_fp") > 0))
    assert tags.get("missed", 0) == len(dataset.match(fo.ViewField("eval_fn") > 0))
    assert dataset.count_label_tags().get("false_positive") == dataset.sum("eval_fp")

    scores = fiftyone_inspect.ranked(dataset).values("error_score")
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert [row["score"] for row in demo_report["worst"]] == [round(s, 4) for s in scores[:5]]
    stored = json.loads((demo_run / "inspect.json").read_text())
    assert stored["samples"] == len(dataset) and len(stored["worst"]) == 5


def test_inspecting_again_replaces_the_dataset(demo_run: Path, demo_report: dict) -> None:
    fo = _fiftyone()
    report = fiftyone_inspect.inspect_run(demo_run, {"conf": 0.5}, worst=3, app=False)
    names = [name for name in fo.list_datasets() if name.startswith("yolo-tools/demo/")]
    assert names == ["yolo-tools/demo/inspect"]
    dataset = fo.load_dataset(report["dataset"])
    assert len(dataset) == demo_report["samples"]
    assert dataset.list_evaluations() == ["eval"] and dataset.list_saved_views() == ["worst first"]
    confidences = dataset.values("predictions.detections.confidence", unwind=True)
    assert all(c >= 0.5 for c in confidences)  # the new predictions, not the earlier ones added to them


def test_inspect_uses_the_confidence_chosen_on_val(demo_run: Path, demo_report: dict) -> None:
    """Like predict and evaluate: a run's stored operating point sets the threshold unless conf= is given."""
    from yolo_tools import operating_point

    stored = operating_point.save(demo_run, {"rule": "max F1 (test)", "conf": 0.6})
    try:
        report = fiftyone_inspect.inspect_run(demo_run, {}, worst=1, app=False)
        assert report["conf"] == 0.6
        assert fiftyone_inspect.inspect_run(demo_run, {"conf": 0.01}, worst=1, app=False)["conf"] == 0.01
    finally:
        stored.unlink()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_app(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Until inspect says the App is up (its session connected) and the server answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"inspect exited with {process.returncode} before serving the App:\n{log.read_text()[-3000:]}")
        if f"FiftyOne App: {url}" in log.read_text():
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
        time.sleep(1)
    pytest.fail(f"the App did not answer on {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _chromium(url: str, profile: Path, screenshot: Path) -> str:
    """The page's DOM after its scripts ran, and a screenshot of it, from one headless Chromium."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--window-size=1400,900", "--virtual-time-budget=15000",
        "--dump-dom", f"--screenshot={screenshot}", url,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120).stdout


def _page_text(dom: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<style.*?</style>|<[^>]+>", " ", dom, flags=re.S))


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (make system-deps installs it)")
def test_app_serves_the_samples_on_localhost(demo_run: Path, demo_report: dict, tmp_path: Path) -> None:
    samples, name = demo_report["samples"], demo_report["dataset"]
    port = _free_port()
    log = tmp_path / "inspect.log"
    command = [sys.executable, "-m", "yolo_tools", "inspect", str(demo_run), "conf=0.001", "--port", str(port)]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    shot = tmp_path / "app.png"
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_for_app(url, process, log)
        # The server answers before the App has its dataset; a page loaded too early is loaded again.
        for attempt in range(4):
            dom = _chromium(url, tmp_path / f"profile{attempt}", shot)
            if name in _page_text(dom) and dom.count('canvas-loaded="true"') == samples:
                break
    finally:
        process.send_signal(signal.SIGTERM)  # stops as cleanly as Ctrl-C would
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    (tmp_path / "app.html").write_text(dom)
    text = _page_text(dom)
    assert name in text, text[-2000:]
    assert re.search(rf"\b{samples} samples\b", text), text[-2000:]
    # Each grid tile is a canvas that is marked canvas-loaded once its image and labels are drawn.
    assert dom.count('canvas-loaded="true"') == samples
    assert shot.is_file() and shot.stat().st_size > 20_000
    print(f"App screenshot: {shot}")


# --- segment and classify, on tiny synthetic sets made here --------------------------------------------


def _blob_image(rng: np.random.Generator, size: int, blobs: int) -> tuple[np.ndarray, list[np.ndarray]]:
    image = rng.normal(60, 10, (size, size)).clip(0, 255).astype(np.uint8)
    outlines = []
    for _ in range(blobs):
        centre = rng.uniform(0.25, 0.75, 2) * size
        axes = rng.uniform(0.08, 0.16, 2) * size
        mask = np.zeros_like(image)
        cv2.ellipse(mask, tuple(int(v) for v in centre), tuple(int(v) for v in axes), 0, 0, 360, 255, -1)
        image[mask > 0] = 220
        contour = max(cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0], key=cv2.contourArea)
        outlines.append(contour.reshape(-1, 2) / size)
    return image, outlines


def _synthetic_recipe(name: str, task: str, classes: list[str], model: str) -> Recipe:
    return Recipe(
        name=name,
        task=task,
        data={"source": {"kind": "synthetic"}, "converter": "synthetic", "split": {"by": "file"}},
        classes=classes,
        model=model,
    )


def _write_segment_set(recipe: Recipe, size: int = 64) -> None:
    rng = np.random.default_rng(0)
    root = dataset_dir(recipe)
    for split, count in (("train", 16), ("val", 6)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, outlines = _blob_image(rng, size, blobs=1 + i % 2)
            cv2.imwrite(str(root / "images" / split / f"{split}_{i}.png"), image)
            lines = ["0 " + " ".join(f"{v:.4f}" for v in outline.ravel()) for outline in outlines]
            (root / "labels" / split / f"{split}_{i}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames:\n  0: blob\n")


def _write_classify_set(recipe: Recipe, size: int = 64) -> None:
    rng = np.random.default_rng(1)
    for split, count in (("train", 12), ("val", 4)):
        for index, name in enumerate(recipe.classes):
            folder = train_data(recipe) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                image, _ = _blob_image(rng, size, blobs=index)
                cv2.imwrite(str(folder / f"{name}_{i}.png"), image)


def _train_synthetic(recipe: Recipe) -> Path:
    run_dir = runs_dir() / recipe.name / "quick"
    args = {**QUICK, "imgsz": 64}
    save_recipe(recipe, run_dir, args)
    engine.train(recipe.model, train_data(recipe), run_dir, args)
    return run_dir


def test_segment_run_is_evaluated_with_masks() -> None:
    recipe = _synthetic_recipe("synthetic-seg", "segment", ["blob"], "yolov8n-seg.yaml")
    _write_segment_set(recipe)
    run_dir = _train_synthetic(recipe)
    report = fiftyone_inspect.inspect_run(run_dir, {"conf": 0.001}, worst=3, app=False)
    fo = _fiftyone()
    dataset = fo.load_dataset(report["dataset"])
    assert len(dataset) == 6
    truths = dataset.values("ground_truth.detections", unwind=True)
    assert truths and all(d.mask is not None for d in truths)
    predictions = dataset.values("predictions.detections", unwind=True)
    assert predictions and all(d.mask is not None for d in predictions)
    assert dataset.get_evaluation_info("eval").config.use_masks
    assert set(report["tags"]) <= {"false_positive", "missed"} and report["tags"]
    assert "error_score" in dataset.get_field_schema()


def test_classify_run_is_evaluated_tagged_and_ranked() -> None:
    recipe = _synthetic_recipe("synthetic-cls", "classify", ["clear", "blob"], "yolov8n-cls.yaml")
    _write_classify_set(recipe)
    run_dir = _train_synthetic(recipe)
    report = fiftyone_inspect.inspect_run(run_dir, {}, worst=3, app=False)
    fo = _fiftyone()
    dataset = fo.load_dataset(report["dataset"])
    assert len(dataset) == 8
    assert set(dataset.distinct("ground_truth.label")) == {"clear", "blob"}
    assert dataset.count("predictions") == 8
    wrong = len(dataset.match(fo.ViewField("eval") == False))  # noqa: E712 (a query)
    assert report["summary"]["misclassified"] == wrong == report["tags"].get("misclassified", 0)
    schema = dataset.get_field_schema()
    assert {"eval", "error_score", "mistakenness", "hardness"} <= set(schema)
    probabilities = np.exp(np.array(dataset.values("predictions.logits")))
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-3)
    scores = fiftyone_inspect.ranked(dataset).values("error_score")
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


def test_inspect_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="neither a run folder"):
        fiftyone_inspect.inspect_run(tmp_path / "nope", app=False)
    recipe = _synthetic_recipe("synthetic-gone", "detect", ["blob"], "yolov8n.yaml")
    run_dir = runs_dir() / recipe.name / "quick"
    (run_dir / "weights").mkdir(parents=True)
    (run_dir / "weights" / "best.pt").write_bytes(b"")
    save_recipe(recipe, run_dir, {})
    with pytest.raises(UserError, match="not an Ultralytics"):
        fiftyone_inspect.inspect_run(run_dir, {"confidence": 0.5}, app=False)
    with pytest.raises(UserError, match="yolo_tools convert"):
        fiftyone_inspect.inspect_run(run_dir, app=False)


def test_a_users_own_database_and_settings_are_left_alone(tmp_path: Path) -> None:
    code = (
        "from yolo_tools.review.fiftyone_inspect import _fiftyone; import os; fo = _fiftyone(); "
        "print(fo.config.database_uri, fo.config.database_validation, fo.config.do_not_track, "
        "os.environ.get('FIFTYONE_DATABASE_VALIDATION'))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIFTYONE_")}
    env["FIFTYONE_DATABASE_URI"] = "mongodb://127.0.0.1:9/"
    env["FIFTYONE_CONFIG_PATH"] = str(tmp_path / "config.json")
    (tmp_path / "config.json").write_text('{"do_not_track": false}')
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["mongodb://127.0.0.1:9/", "True", "False", "None"], done.stderr[-2000:]


# --- a busy machine: FiftyOne's services slow to start ---------------------------------------------------

# Runs `yolo_tools ARGS` with FiftyOne's mongod started through a script that sleeps first, FiftyOne's fixed
# 60 s wait for a service shortened to 2 s and the workbench's second wait set, so a slow start is seconds.
SLOW_DATABASE = """
import os, sys
import fiftyone.core.service as fos
import fiftyone.service.util as fosu
from yolo_tools.cli import main
from yolo_tools.review import fiftyone_inspect

wrapper, delay, patience, *argv = sys.argv[1:]
real = fos.DatabaseService.find_mongod()
with open(wrapper, "w") as out:
    out.write(f'#!/bin/sh\\nsleep {delay}\\nexec "{real}" "$@"\\n')
os.chmod(wrapper, 0o755)
fos.DatabaseService.find_mongod = staticmethod(lambda: wrapper)
fosu.find_processes_by_args = lambda args: []  # never join the database of another process (the test session's)
wait = fos.Service._wait_for_child_port
fos.Service._wait_for_child_port = lambda self, port=None, timeout=60: wait(self, port, 2 if timeout == 60 else timeout)
fiftyone_inspect.SERVICE_WAIT_S = int(patience)
sys.exit(main(argv))
"""


@pytest.mark.parametrize("delay, patience", [(6, 30), (120, 2)], ids=["slow-start", "never-starts"])
def test_a_slow_database_is_waited_for_once_more_else_one_message(demo_run: Path, tmp_path: Path, delay: int, patience: int) -> None:
    run = shutil.copytree(demo_run, tmp_path / "runs" / "demo" / "busy", ignore=shutil.ignore_patterns("*.png", "*.jpg"))
    env = {k: v for k, v in os.environ.items() if k != "FIFTYONE_PRIVATE_DATABASE_PORT"}  # the session's database
    env["FIFTYONE_DATABASE_DIR"] = str(tmp_path / "db")
    command = [sys.executable, "-c", SLOW_DATABASE, str(tmp_path / "mongod"), str(delay), str(patience),
               "inspect", str(run), "--no-app", "--worst", "2"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    shown = done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in shown and "ServiceListenTimeout" not in shown, shown
    assert "FiftyOne's database did not start within 60 s; waiting up to" in done.stderr, shown
    if patience > delay:
        assert done.returncode == 0 and "FiftyOne dataset 'yolo-tools/demo/busy'" in done.stdout, shown
    else:
        assert done.returncode == 2 and done.stderr.count("error:") == 1, shown
        assert re.search(r"error: FiftyOne's database \(MongoDB, in .*db\) did not start within 62 s; the machine may "
                         r"be busy: run inspect again when it is quieter \(its log: .*mongo\.log\)", done.stderr), shown


def test_an_app_server_slow_to_start_is_launched_once_more_else_one_message() -> None:
    import fiftyone.core.service as fos

    calls = []

    def launch_app(**kwargs):
        calls.append(kwargs)
        if len(calls) <= failures:
            raise fos.ServiceListenTimeout("ServerService", kwargs["port"])
        return "session"

    fake = type("FiftyOne", (), {"launch_app": staticmethod(launch_app)})
    view = type("View", (), {"dataset_name": "yolo-tools/demo/inspect"})()
    failures = 1
    assert fiftyone_inspect._launch(fake, view, 5199, True) == "session" and len(calls) == 2
    calls.clear()
    failures = 2
    with pytest.raises(UserError) as error:
        fiftyone_inspect._launch(fake, view, 5199, True)
    assert len(calls) == 2
    assert str(error.value) == (
        "the FiftyOne App server did not start on 127.0.0.1:5199 within 2 x 60 s; the machine may be busy. The dataset "
        "is saved: open it later with `fiftyone app launch yolo-tools/demo/inspect`, or run inspect again"
    )


def test_fiftyones_welcome_banner_is_left_out_and_its_app_messages_kept() -> None:
    import logging

    import fiftyone.constants as foc
    import fiftyone.core.session.session as fos

    _fiftyone()
    log = logging.getLogger(fos.__name__)

    def record(message: str) -> logging.LogRecord:
        return log.makeRecord(log.name, logging.INFO, "session.py", 1, message, None, None)

    assert not log.filter(record(fos._WELCOME_MESSAGE.format(foc.VERSION)))  # the logo and links
    assert log.filter(record(fos._REMOTE_INSTRUCTIONS.strip().format(5151)))  # how to reach a remote App: kept

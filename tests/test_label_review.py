"""The review loop against a real Label Studio: a run's worst images in, a reviewer's edits back as corrections,
the corrected dataset version, the run scored on it, a retrained run, and the two compared on the same patients.

The reviewer is played through Label Studio's REST API, as their browser calls it: the pre-annotation the
workbench sent is taken as the start of an annotation, one label is deleted, one moved, one model finding
accepted (relabelled to its class), and the annotation submitted. A browser test opens a task in headless
Chromium and keeps a screenshot in docs/.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from bad_input import train_tiny_run
from conftest import ROOT, isolate_fiftyone
from yolo_tools import evaluation, pipeline
from yolo_tools.convert import corrections
from yolo_tools.convert.corrections import same_line
from yolo_tools.dataset import Dataset, fingerprint_at, home, version_folder
from yolo_tools.evaluation import compare
from yolo_tools.review import label_review, label_studio
from yolo_tools.runs import run_fingerprint

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = ROOT / "docs" / "label-studio-review.png"


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory, label_studio):
    """A tiny trained run, FiftyOne and Label Studio set up for it; corrections in a folder of their own."""
    folder = tmp_path_factory.mktemp("review")
    with pytest.MonkeyPatch.context() as patch:
        isolate_fiftyone(patch, folder / "fiftyone")
        patch.setenv("YOLO_TOOLS_DATASETS", str(folder / "datasets"))
        patch.setenv("YOLO_TOOLS_RUNS", str(folder / "runs"))
        patch.setenv("YOLO_TOOLS_CORRECTIONS", str(folder / "corrections"))
        patch.setenv("LABEL_STUDIO_URL", label_studio.url)
        patch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
        run = train_tiny_run(folder)
        yield folder, run, label_studio


@pytest.fixture(scope="module")
def review(loop):
    folder, run, server = loop
    # conf=0.001: a one-epoch model is unsure of everything, so there are false findings to show
    record = label_review.annotate(run, {"conf": 0.001, "device": "cpu"}, worst=3)
    return record


def _tasks(server, project: int) -> list[dict]:
    return server.api("GET", "/api/tasks", params={"project": project, "fields": "all"})["tasks"]


def test_annotate_makes_a_project_with_labels_and_findings_as_pre_annotations(loop, review) -> None:
    folder, run, server = loop
    assert review["status"] == "open" and len(review["tasks"]) == 3
    assert server.token not in json.dumps(review) and server.legacy_token not in json.dumps(review)
    tasks = _tasks(server, review["project"])
    assert sorted(str(t["id"]) for t in tasks) == sorted(review["tasks"])
    converted = Dataset(home("demo"), "detect")
    for task in tasks:
        sent = review["tasks"][str(task["id"])]
        assert task["data"]["yolo_tools_image"] == sent["image"] and task["data"]["image"].startswith("/data/upload/")
        regions = task["predictions"][0]["result"]
        truth = [r for r in regions if r["id"].startswith("t")]
        found = [r for r in regions if r["id"].startswith("m")]
        lines = converted.label_file("val", sent["image"]).read_text().splitlines()
        assert len(truth) == len(lines) == len(sent["truth"])  # every label, as it is in the run's dataset
        assert all(r["value"]["rectanglelabels"] == ["finding"] for r in truth)
        assert all(r["value"]["rectanglelabels"] == ["model: finding"] for r in found)
        # the region's box is the label line's box, in Label Studio's percent of the image
        x, y, w, h = (float(v) for v in lines[0].split()[1:])
        value = next(r for r in truth if r["id"] == "t0")["value"]
        assert value["x"] == pytest.approx((x - w / 2) * 100) and value["width"] == pytest.approx(w * 100)
    project = server.api("GET", f"/api/projects/{review['project']}")
    assert project["model_version"] == review["key"] and project["show_collab_predictions"]
    assert "model: finding" in project["label_config"]


@pytest.fixture(scope="module")
def reviewed(loop, review):
    """The reviewer's work, through the REST API as the browser sends it: in the first task a label deleted and
    another moved; in the second a model finding accepted; the third left alone."""
    folder, run, server = loop
    tasks = sorted(_tasks(server, review["project"]), key=lambda t: t["id"])
    expected = []
    edited = [t for t in tasks if len([r for r in t["predictions"][0]["result"] if r["id"].startswith("t")]) >= 2][0]
    accepted = next(t for t in tasks if t is not edited and any(r["id"].startswith("m") for r in t["predictions"][0]["result"]))
    result = copy.deepcopy(edited["predictions"][0]["result"])
    result = [r for r in result if r["id"] != "t0"]
    moved = next(r for r in result if r["id"] == "t1")
    moved["value"]["x"] = moved["value"]["x"] + 1.5
    server.api("POST", f"/api/tasks/{edited['id']}/annotations", json={"result": result, "lead_time": 4.2})
    expected += [("removed", edited["id"]), ("changed", edited["id"])]
    result = copy.deepcopy(accepted["predictions"][0]["result"])
    finding = next(r for r in result if r["id"].startswith("m"))
    finding["value"]["rectanglelabels"] = ["finding"]
    server.api("POST", f"/api/tasks/{accepted['id']}/annotations", json={"result": result, "lead_time": 2.0})
    expected.append(("added", accepted["id"]))
    path = label_review.load(run, review["key"])
    return path, expected, edited, finding


def test_load_writes_what_changed_who_and_when(loop, review, reviewed) -> None:
    folder, run, server = loop
    path, expected, edited, finding = reviewed
    assert path == folder / "corrections" / "demo" / f"{review['key']}.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted((r["action"], r["task"]) for r in records) == sorted(expected)
    sent = review["tasks"][str(edited["id"])]["truth"]
    removed = next(r for r in records if r["action"] == "removed")
    assert removed["old"] == sent["t0"] and removed["new"] is None and removed["image"] == review["tasks"][str(edited["id"])]["image"]
    changed = next(r for r in records if r["action"] == "changed")
    assert changed["old"] == sent["t1"] and not same_line(changed["new"], sent["t1"])
    assert float(changed["new"].split()[1]) == pytest.approx(float(sent["t1"].split()[1]) + 0.015, abs=1e-5)
    added = next(r for r in records if r["action"] == "added")
    box = finding["value"]
    assert float(added["new"].split()[3]) == pytest.approx(box["width"] / 100, abs=1e-5)
    assert all(r["who"] == server.user and re.match(r"\d{4}-\d\d-\d\dT", r["when"]) for r in records)
    stored = json.loads((folder / "corrections" / "demo" / "reviews" / f"{review['key']}.json").read_text())
    assert stored["status"] == "loaded" and stored["counts"] == {"changed": 1, "added": 1, "removed": 1}
    with pytest.raises(Exception, match="loaded already"):
        label_review.load(run, review["key"])


def test_the_corrected_set_is_a_new_version_and_the_old_run_keeps_its_own(loop, reviewed) -> None:
    folder, run, server = loop
    path, expected, edited, finding = reviewed
    old = run_fingerprint(run)
    recipe_path = folder / "demo.yaml"
    data = pipeline.convert(recipe_path)
    card = json.loads((data.parent / "card.json").read_text())
    assert card["fingerprint"] != old
    assert card["corrections"]["files"] == [{"file": path.name, "sha256": corrections.digest(path)}]
    assert (card["corrections"]["changed"], card["corrections"]["added"], card["corrections"]["removed"]) == (1, 1, 1)
    assert "1 labels changed, 1 added, 1 removed" in (data.parent / "card.md").read_text()
    assert fingerprint_at(version_folder("demo", old)) == old  # the run's version, set aside, not rewritten
    image = json.loads(path.read_text().splitlines()[0])["image"]
    before = Dataset(version_folder("demo", old), "detect").label_file("val", image).read_text().splitlines()
    after = Dataset(home("demo"), "detect").label_file("val", image).read_text().splitlines()
    assert len(after) == len(before) - 1  # one removed, one moved


def test_evaluate_corrected_and_compare_a_retrained_run(loop, reviewed) -> None:
    folder, run, server = loop
    out = pipeline.evaluate(run, {"conf": 0.001, "device": "cpu"}, corrected=True)
    assert out.name == evaluation.CORRECTED_DIR
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset_fingerprint"] == fingerprint_at(home("demo")) != run_fingerprint(run)
    mistakes = summary["label_mistakes"]
    assert mistakes["false_positives_before"] >= mistakes["false_positives_after"]
    assert mistakes["false_positives_that_were_missing_labels"] >= 1  # the accepted finding is a finding now
    again, _ = pipeline.train_recipe(folder / "demo.yaml", {"device": "cpu"}, name="corrected")
    assert run_fingerprint(again) == fingerprint_at(home("demo"))
    result = compare.compare_runs(run, again, {"conf": 0.001, "device": "cpu"})
    stored = json.loads((result / "summary.json").read_text())
    assert stored["dataset_fingerprint"] == run_fingerprint(again) and stored["bootstrap"]["paired"]
    assert stored["versions_trained_on"] == [run_fingerprint(run), run_fingerprint(again)]
    assert {row["metric"] for row in stored["metrics"]} >= {"recall_at_conf", "false_positives_per_image"}
    for row in stored["metrics"]:
        assert row["change"] == pytest.approx(row["other"] - row["run"])
    assert (result / "summary.md").read_text().count("|") > 10


@pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="no chromium to drive (make system-deps installs it)")
def test_a_task_in_the_browser_shows_the_pre_annotations(loop, review) -> None:
    """Log in as the reviewer, open the first task the workbench made, and keep a screenshot of the editor."""
    folder, run, server = loop
    sync_api = pytest.importorskip("playwright.sync_api")
    task = min(int(t) for t in review["tasks"])
    shot = folder / "task.png"
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = chromium.new_page(viewport={"width": 1400, "height": 900})
        page.goto(server.url + "/user/login/")
        page.fill("input[name=email]", server.user)
        page.fill("input[name=password]", server.password)
        with page.expect_navigation(timeout=120_000):
            page.click("button[type=submit]")
        page.goto(label_studio.task_page(label_studio.Server(server.url, None, ""), review["project"], task), timeout=120_000)
        try:
            assert "/user/login" not in page.url, "the login was refused"
            page.wait_for_function("() => document.body.innerText.includes('model: finding')", timeout=180_000)
            page.wait_for_selector("canvas", timeout=60_000)
            page.wait_for_timeout(5000)  # the image and its regions drawn
        finally:
            page.screenshot(path=str(shot))
        text = page.inner_text("body")
        chromium.close()
    assert "finding" in text and "model: finding" in text
    assert shot.stat().st_size > 20_000
    if os.environ.get("YOLO_TOOLS_KEEP_SCREENSHOT"):  # refresh the committed picture: docs/label-studio-review.png
        shutil.copyfile(shot, SCREENSHOT)


def test_a_view_saved_in_the_app_is_sent_whole_and_unreviewed_tasks_change_nothing(loop, reviewed) -> None:
    """After the first review is loaded, a second may start: every sample of a saved view, no new predictions."""
    folder, run, server = loop
    from yolo_tools.review import fiftyone_inspect
    from yolo_tools.runs import run_recipe

    fo = fiftyone_inspect._fiftyone()
    dataset = fo.load_dataset(fiftyone_inspect.dataset_name(run_recipe(run), run))
    dataset.save_view("two to look at", dataset.sort_by("filepath").limit(2), overwrite=True)
    record = label_review.annotate(run, {}, view="two to look at")
    assert sorted(t["image"] for t in record["tasks"].values()) == sorted(Path(p).stem for p in dataset.sort_by("filepath").limit(2).values("filepath"))
    assert label_review.load(run, record["key"]) is None  # nobody annotated: nothing changed, no file
    stored = json.loads((folder / "corrections" / "demo" / "reviews" / f"{record['key']}.json").read_text())
    assert stored["status"] == "loaded" and stored["unreviewed"] == 2 and stored["corrections"] is None


def test_a_review_of_the_training_images_corrects_what_the_next_run_learns(loop, reviewed) -> None:
    """--split train: the images the run learnt from go to Label Studio, and a label the reviewer deletes is gone
    from the train split of the next version (a review of val changes only what runs are scored against)."""
    folder, run, server = loop
    record = label_review.annotate(run, {"conf": 0.001, "device": "cpu"}, worst=2, split="train")
    trained_on = Dataset(version_folder("demo", run_fingerprint(run)), "detect")
    images = [sent["image"] for sent in record["tasks"].values()]
    assert {sent["split"] for sent in record["tasks"].values()} == {"train"}
    assert all(trained_on.label_file("train", image).is_file() and not trained_on.label_file("val", image).is_file() for image in images)
    task = next(t for t in sorted(_tasks(server, record["project"]), key=lambda t: t["id"]) if any(r["id"] == "t0" for r in t["predictions"][0]["result"]))
    result = [r for r in task["predictions"][0]["result"] if r["id"] != "t0"]
    server.api("POST", f"/api/tasks/{task['id']}/annotations", json={"result": result, "lead_time": 1.0})
    path = label_review.load(run, record["key"])
    [correction] = [json.loads(line) for line in path.read_text().splitlines()]
    assert (correction["split"], correction["action"], correction["image"]) == ("train", "removed", record["tasks"][str(task["id"])]["image"])
    pipeline.convert(folder / "demo.yaml")
    before = trained_on.label_file("train", correction["image"]).read_text().splitlines()
    after = Dataset(home("demo"), "detect").label_file("train", correction["image"]).read_text().splitlines()
    assert correction["old"] in before and len(after) == len(before) - 1

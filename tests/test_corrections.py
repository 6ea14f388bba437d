"""Label corrections without a server: the overlay as a dataset version, labels to Label Studio regions and back,
what a review's diff says, and the paired bootstrap that compares two runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from bad_input import TINY_RECIPE
from yolo_tools import pipeline
from yolo_tools.convert import corrections
from yolo_tools.convert.checks import check
from yolo_tools.dataset import Dataset, home
from yolo_tools.errors import UserError
from yolo_tools.metrics.bootstrap import Bootstrap
from yolo_tools.recipe import load_recipe
from yolo_tools.review import fiftyone_inspect, label_review


@pytest.fixture
def recipe_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("YOLO_TOOLS_DATASETS", str(tmp_path / "datasets"))
    monkeypatch.setenv("YOLO_TOOLS_CORRECTIONS", str(tmp_path / "corrections"))
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(TINY_RECIPE, sort_keys=False))
    return path


def _record(image: str, action: str, old: str | None, new: str | None) -> dict:
    return {"image": image, "split": "val", "action": action, "old": old, "new": new, "who": "r@x", "when": "2026-01-01T00:00:00Z", "review": "k", "task": 1}


def test_corrections_make_a_new_version_counted_on_the_card(recipe_file: Path) -> None:
    published = check(load_recipe(recipe_file))
    assert published.data.corrections is None  # nothing to attach yet: the published version, as before
    first = pipeline.convert(recipe_file).parent
    card = json.loads((first / "card.json").read_text())
    assert card["fingerprint"] == published.fingerprint() and "corrections" not in card
    label = sorted((first / "labels" / "val").glob("*.txt"))[0]
    lines = label.read_text().splitlines()
    moved = "0 0.500000 0.500000 0.100000 0.100000"
    path = corrections.write("demo", "ls-1", [
        _record(label.stem, "changed", lines[0], moved), _record(label.stem, "added", None, "0 0.2 0.2 0.05 0.05"),
        *([_record(label.stem, "removed", lines[1], None)] if len(lines) > 1 else []),
    ])  # fmt: skip
    with pytest.raises(UserError, match="never rewritten"):
        corrections.write("demo", "ls-1", [])
    now = check(load_recipe(recipe_file))
    assert [entry.file for entry in now.data.corrections] == [path.name] and now.fingerprint() != published.fingerprint()
    assert corrections.without(now).fingerprint() == published.fingerprint()  # data.corrections: [] = published labels
    second = pipeline.convert(recipe_file).parent
    card = json.loads((second / "card.json").read_text())
    assert card["fingerprint"] == now.fingerprint()
    assert card["corrections"] == {"files": [{"file": path.name, "sha256": corrections.digest(path)}], "images": 1,
                                   "changed": 1, "added": 1, "removed": int(len(lines) > 1)}  # fmt: skip
    after = Dataset(home("demo"), "detect").label_file("val", label.stem).read_text().splitlines()
    assert after == [moved, *lines[2:], "0 0.2 0.2 0.05 0.05"]
    assert "1 labels changed, 1 added" in (second / "card.md").read_text()


def test_a_corrections_file_changed_after_use_is_refused(recipe_file: Path) -> None:
    corrections.write("demo", "ls-1", [_record("synthetic_0000", "added", None, "0 0.5 0.5 0.1 0.1")])
    listed = check(load_recipe(recipe_file))
    path = corrections.folder("demo") / "ls-1.jsonl"
    path.write_text(path.read_text().replace("0.1 0.1", "0.2 0.2"))
    with pytest.raises(UserError, match="changed since this dataset version was made"):
        corrections.read("demo", listed.data.corrections[0])


def test_corrections_are_never_written_inside_the_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YOLO_TOOLS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("YOLO_TOOLS_CORRECTIONS", str(tmp_path / "data" / "corrections"))
    with pytest.raises(UserError, match="inside the data root"):
        corrections.write("demo", "ls-1", [])
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "task, labels",
    [
        ("detect", ["0 0.25 0.5 0.1 0.2", "1 0.7 0.3 0.05 0.04"]),
        ("segment", ["0 0.1 0.1 0.4 0.1 0.3 0.35", "1 0.5 0.5 0.8 0.5 0.8 0.9 0.5 0.9"]),
        ("classify", "pneumonia"),
    ],
)
def test_labels_go_to_label_studio_and_back_unchanged(task: str, labels) -> None:
    classes = ["normal", "pneumonia"] if task == "classify" else ["stone", "cyst"]
    regions = fiftyone_inspect.truth_regions(task, labels, classes, 640, 480)
    sent = {r["id"]: line for r, line in zip(regions, labels if isinstance(labels, list) else [labels])}
    back = fiftyone_inspect.labels_from_results(task, regions, classes)
    assert label_review._diff(task, sent, back, {}) == []  # a task submitted as it was sent changes nothing
    if task == "classify":
        regions[0]["value"]["choices"] = ["normal"]
        assert [r["action"] for r in label_review._diff(task, sent, fiftyone_inspect.labels_from_results(task, regions, classes), {})] == ["changed"]
        regions[0]["value"]["choices"] = ["kidney"]
    else:
        kind = regions[0]["type"]
        regions[1]["value"][kind] = ["stone"]  # was cyst: relabelled
        extra = dict(regions[0], id="new1")
        found = label_review._diff(task, sent, fiftyone_inspect.labels_from_results(task, regions[1:] + [extra], classes), {})
        assert sorted(r["action"] for r in found) == ["added", "changed", "removed"]
        regions[0]["value"][kind] = ["kidney"]
    with pytest.raises(ValueError, match="kidney"):
        fiftyone_inspect.labels_from_results(task, regions, classes)


def test_model_findings_left_as_findings_are_not_labels() -> None:
    finding = fiftyone_inspect.truth_regions("detect", ["0 0.5 0.5 0.1 0.1"], ["stone"], 640, 640)[0]
    finding = dict(finding, id="m0", value=dict(finding["value"], rectanglelabels=["model: stone"]))
    assert fiftyone_inspect.labels_from_results("detect", [finding], ["stone"]) == {}
    finding["value"]["rectanglelabels"] = ["stone"]
    assert fiftyone_inspect.labels_from_results("detect", [finding], ["stone"]) == {"m0": "0 0.500000 0.500000 0.100000 0.100000"}


def test_paired_bootstrap_sees_a_shared_change_that_separate_intervals_hide() -> None:
    rng = np.random.default_rng(0)
    patients = [f"p{i // 3}" for i in range(300)]
    hard = rng.uniform(0.2, 0.9, 300)  # how easy each image is, shared by both runs
    first = (rng.uniform(size=300) < hard).astype(float)
    second = np.maximum(first, (rng.uniform(size=300) < 0.1).astype(float))  # the same, plus a few more right
    ones = np.ones(300)
    boot = Bootstrap(patients)
    assert boot.paired_difference((first, ones), (first, ones)) == (0.0, 0.0)
    low, high = boot.paired_difference((first, ones), (second, ones))
    assert 0 < low < high  # every draw sees the second run at least as good
    separate = boot.ratio(first, ones), boot.ratio(second, ones)
    assert separate[0][1] > separate[1][0]  # the two separate intervals overlap

"""A dataset folder is never rewritten under a run trained on another version of it (yolo_tools/dataset.py).

Run A is trained, the recipe's data section changes, run B is trained; evaluating, validating or
inspecting A then finds A's own version (kept aside, or converted again into `datasets/<name>@<fp>/`)
and leaves B's `datasets/<name>/` untouched.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from yolo_tools import dataset, evaluation, pipeline
from yolo_tools.codecs.label_lines import read_labels
from yolo_tools.conversion import prepare_dataset
from yolo_tools.dataset import Dataset
from yolo_tools.errors import UserError
from yolo_tools.review import fiftyone_inspect
from yolo_tools.runs import DATASET_FILE, run_fingerprint, run_recipe

QUICK = {"epochs": 1, "imgsz": 64, "batch": 8, "workers": 0, "plots": False, "device": "cpu"}
NAME = "versions"


def _recipe(path: Path, images: int) -> Path:
    spec = {
        "name": NAME,
        "task": "detect",
        "data": {"source": {"kind": "synthetic"}, "converter": "synthetic", "options": {"images": images, "size": 64},
                 "split": {"by": "file", "val": 0.25, "seed": 0}},
        "classes": ["finding"],
        "model": "yolov8n.yaml",
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def two_runs(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    recipes = tmp_path_factory.mktemp("recipes")
    run_a, _ = pipeline.train_recipe(_recipe(recipes / "a.yaml", 16), QUICK, name="a")
    run_b, _ = pipeline.train_recipe(_recipe(recipes / "b.yaml", 20), QUICK, name="b")
    return run_a, run_b


def _images(folder: Path) -> int:
    card = json.loads((folder / "card.json").read_text())
    return sum(split["images"] for split in card["counts"].values())


def test_runs_record_their_version_and_the_older_one_is_kept_aside(two_runs, workspace: Path) -> None:
    run_a, run_b = two_runs
    version_a, version_b = run_fingerprint(run_a), run_fingerprint(run_b)
    assert version_a and version_b and version_a != version_b
    assert version_a == run_recipe(run_a).fingerprint()
    home = workspace / "datasets" / NAME
    assert dataset.fingerprint_at(home) == version_b and _images(home) == 20
    kept = workspace / "datasets" / f"{NAME}@{version_a}"
    assert dataset.fingerprint_at(kept) == version_a and _images(kept) == 16  # moved, not converted again


def test_evaluating_the_older_run_leaves_the_newer_dataset_alone(two_runs, workspace: Path) -> None:
    run_a, run_b = two_runs
    home = workspace / "datasets" / NAME
    kept = workspace / "datasets" / f"{NAME}@{run_fingerprint(run_a)}"
    shutil.rmtree(kept)  # A's version gone: it must be converted again, into its own folder
    before = _snapshot(home)
    summary = json.loads((evaluation.evaluate(run_a, {"imgsz": 64, "batch": 8}) / evaluation.SUMMARY_FILE).read_text())
    assert _snapshot(home) == before  # B's dataset: not a byte, not a timestamp changed
    assert summary["dataset"] == str(kept) and summary["dataset_fingerprint"] == run_fingerprint(run_a)
    assert summary["images"] == 4  # A's val split (16 scenes, val 0.25), not B's 5
    summary_b = json.loads((evaluation.evaluate(run_b, {"imgsz": 64, "batch": 8}) / evaluation.SUMMARY_FILE).read_text())
    assert summary_b["dataset"] == str(home) and summary_b["images"] == 5
    assert _snapshot(home) == before


def test_a_run_without_a_recorded_version_uses_its_recipe_and_says_so(two_runs, caplog) -> None:
    run_a, _ = two_runs
    record = run_a / DATASET_FILE
    saved = record.read_text()
    record.unlink()
    try:
        with caplog.at_level(logging.WARNING):
            found = prepare_dataset(run_recipe(run_a), run_dir=run_a)
        assert found.fingerprint == json.loads(saved)["fingerprint"]
        assert "records no dataset version" in caplog.text
    finally:
        record.write_text(saved)


def test_inspect_refuses_another_version(two_runs, workspace: Path) -> None:
    run_a, run_b = two_runs
    kept = workspace / "datasets" / f"{NAME}@{run_fingerprint(run_a)}"
    shutil.rmtree(kept, ignore_errors=True)
    with pytest.raises(UserError, match=r"holds another version.*yolo_tools convert"):
        fiftyone_inspect._run_dataset(run_recipe(run_a), run_a)
    assert fiftyone_inspect._run_dataset(run_recipe(run_b), run_b).root == workspace / "datasets" / NAME


def test_the_one_label_reader_and_the_layout(tmp_path: Path) -> None:
    root = tmp_path / "set"
    data = Dataset(root, "segment")
    data.label_folder("val").mkdir(parents=True)
    data.label_file("val", "a").write_text("0 0.5 0.5 0.2 0.2\n\n1 0.1 0.1 0.3 0.1 0.2 0.4\n")
    rows = data.labels("val", "a")
    assert [c for c, _ in rows] == [0, 1]
    np.testing.assert_allclose(rows[1][1], [0.1, 0.1, 0.3, 0.1, 0.2, 0.4])
    assert read_labels(root / "missing.txt") == []
    assert data.images("val") == root / "images" / "val" and data.data_arg == root / "data.yaml"
    assert Dataset(root, "classify").image_source("train") == str(root / "train" / "*" / "*")
    assert data.patients() is None and data.spacing() == {} and data.card == {}


def test_a_cv_fold_of_another_version_is_refused(tmp_path: Path) -> None:
    from yolo_tools.runs import run_dataset, save_run_dataset

    fold, run_dir = tmp_path / "fold1", tmp_path / "run"
    save_run_dataset(run_dir, "aaaa", fold)
    with pytest.raises(UserError, match="is gone"):
        run_dataset(run_dir)
    fold.mkdir()
    (fold / "card.json").write_text(json.dumps({"written_by": "yolo_tools", "fingerprint": "bbbb"}))
    with pytest.raises(UserError, match=r"another version of the dataset \(bbbb"):
        run_dataset(run_dir)
    (fold / "card.json").write_text(json.dumps({"written_by": "yolo_tools", "fingerprint": "aaaa"}))
    assert run_dataset(run_dir) == fold
    save_run_dataset(run_dir, "aaaa")
    assert run_dataset(run_dir) is None and run_fingerprint(run_dir) == "aaaa"


def test_resume_refuses_a_start_folder_that_now_holds_another_version(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "args.yaml").write_text(yaml.safe_dump({"data": str(tmp_path / "datasets" / NAME / "data.yaml")}))
    pipeline._check_resume_data(run_dir, tmp_path / "datasets" / NAME / "data.yaml")  # the same folder: resumed
    with pytest.raises(UserError, match=r"now holds another version.*model=.*last\.pt"):
        pipeline._check_resume_data(run_dir, tmp_path / "datasets" / f"{NAME}@abc" / "data.yaml")


def test_a_version_no_run_was_trained_on_is_replaced_in_place(tmp_path: Path, workspace: Path) -> None:
    from yolo_tools.recipe import load_recipe

    spec = yaml.safe_load(_recipe(tmp_path / "r.yaml", 8).read_text()) | {"name": "unused-versions"}
    first = tmp_path / "first.yaml"
    first.write_text(yaml.safe_dump(spec))
    spec["data"]["options"]["images"] = 10
    second = tmp_path / "second.yaml"
    second.write_text(yaml.safe_dump(spec))
    assert prepare_dataset(load_recipe(first)).root == workspace / "datasets" / "unused-versions"
    assert prepare_dataset(load_recipe(second)).root == workspace / "datasets" / "unused-versions"
    assert _images(workspace / "datasets" / "unused-versions") == 10
    assert not list((workspace / "datasets").glob("unused-versions@*"))  # nothing kept that no run needs

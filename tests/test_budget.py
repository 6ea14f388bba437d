"""The budget benchmark's code path, at a budget of seconds: variants trained for the same time, validated,
evaluated, a transfer from one variant to the next, and the table RESULTS.md shows. No real budget runs here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import budget, report
from yolo_tools.recipe import load_recipe

SECONDS = 4


@pytest.mark.slow
def test_variants_train_for_the_same_time_and_land_in_the_table(tmp_path: Path) -> None:
    variants = {
        "demo/v8n-64": budget.Variant("demo", "yolov8n.yaml", {"imgsz": 64, "workers": 0}),
        "demo/transfer-64": budget.Variant("demo", "yolov8n.yaml", {"imgsz": 64, "workers": 0}, pretrained_from="demo/v8n-64"),
        "demo/32-then-64": budget.Variant("demo", "yolov8n.yaml", {"imgsz": 64, "workers": 0}, first_imgsz=32),
    }
    payload = budget.run(["demo/transfer-64", "demo/v8n-64", "demo/32-then-64"], SECONDS / 3600, tmp_path,
                         variants=variants, isolated=False)
    assert list(payload["variants"]) == ["demo/v8n-64", "demo/transfer-64", "demo/32-then-64"]  # the transfer's source first
    progressive = payload["variants"].pop("demo/32-then-64")
    first, second = progressive["command"].split(" && ")
    assert "imgsz=32" in first and f"time={SECONDS / 3600 / 2}" in first and "--name budget-32-then-64-first" in first
    assert "imgsz=64" in second and "pretrained=" in second and "budget-32-then-64-first/weights/best.pt" in second
    assert progressive["epochs_reached"] >= 2, "both stages' epochs are counted"
    for key, result in payload["variants"].items():
        assert "skipped" not in result, result
        assert result["hours"] == SECONDS / 3600 and result["epochs_reached"] >= 1
        assert set(result["validator"]) >= {"precision", "recall", "mAP50"}
        assert "recall_at_conf" in result["evaluate"] and result["started_from"] == "yolov8n.yaml"
        assert f"time={SECONDS / 3600}" in result["command"] and "imgsz=64" in result["command"]
    first = payload["variants"]["demo/v8n-64"]["run"]
    assert f"pretrained={first}/weights/best.pt" in payload["variants"]["demo/transfer-64"]["command"]
    saved = json.loads((tmp_path / f"{budget.topic(SECONDS / 3600)}.json").read_text())
    text = "\n".join(report._budget(saved))
    assert "| demo/transfer-64 | yolov8n.yaml |" in text and "yolo_tools evaluate" in text
    again = budget.run(["demo/transfer-64"], SECONDS / 3600, tmp_path, variants=variants, isolated=False)
    assert again["variants"] == saved["variants"], "a rerun at the same budget keeps what was trained"
    assert set(saved["variants"]) == {"demo/v8n-64", "demo/transfer-64", "demo/32-then-64"}
    assert again["command"].count("benchmarks.budget") == 2, "the commands of both batches are named"


def test_every_variant_names_a_recipe_and_a_model_of_its_task(tmp_path: Path) -> None:
    from yolo_tools.convert.checks import check

    for key, variant in budget.VARIANTS.items():
        recipe = check(load_recipe(budget._recipe_file(variant, key, tmp_path)))
        updated = recipe.model_copy(update={"model": variant.model}) if variant.model else recipe
        type(recipe).model_validate(updated.model_dump())  # the model fits the task (-seg, -cls)
        assert variant.pretrained_from is None or variant.pretrained_from in budget.VARIANTS
    assert "Not run yet" in "\n".join(report._budget(None))


def test_a_variant_on_another_split_converts_its_own_dataset(tmp_path: Path) -> None:
    """The published-split kidney variant must not reuse (or overwrite) the patient-wise dataset."""
    key = "kidney/v8n-160-then-320-published-split"
    recipe = load_recipe(budget._recipe_file(budget.VARIANTS[key], key, tmp_path))
    bundled = load_recipe(Path(budget.common.ROOT) / "recipes" / "kidney.yaml")
    assert recipe.data.split.by == "source" and bundled.data.split.by == "acquisition_session"
    assert recipe.name != bundled.name and recipe.fingerprint() != bundled.fingerprint()


def test_side_by_side_variants_train_at_once_on_cores_of_their_own(tmp_path: Path, monkeypatch) -> None:
    """Two lanes of one core each: a pair trains at once, a transfer waits for its source's weights, and
    every row is saved as its variant ends. The trainings are stand-ins that record when and where they ran."""
    import os
    import threading
    import time

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores")
    ran: dict[str, tuple[float, float, set[int] | None, str | None]] = {}
    lock = threading.Lock()

    def stand_in(target: str, kwargs: dict, cpus: set[int] | None = None) -> dict:
        started = time.perf_counter()
        time.sleep(0.3)
        with lock:
            ran[kwargs["key"]] = (started, time.perf_counter(), cpus, kwargs["pretrained"])
        return {"task": "detect", "epochs_reached": 1, "train_s": 0.3, "validator": {}, "evaluate": {},
                "run": str(tmp_path / kwargs["key"].replace("/", "-"))}

    monkeypatch.setattr(budget.common, "in_subprocess", stand_in)
    variants = {"demo/a": budget.Variant("demo"), "demo/b": budget.Variant("demo"),
                "demo/from-a": budget.Variant("demo", pretrained_from="demo/a")}
    payload = budget.run(["demo/from-a", "demo/b"], 1 / 3600, tmp_path, variants=variants, side_by_side=2)
    assert set(payload["variants"]) == {"demo/a", "demo/b", "demo/from-a"}
    (a0, a1, a_cores, _), (b0, b1, b_cores, _), (t0, _, _, pretrained) = ran["demo/a"], ran["demo/b"], ran["demo/from-a"]
    assert a0 < b1 and b0 < a1, "the pair ran at the same time"
    assert len(a_cores) == len(b_cores) == len(os.sched_getaffinity(0)) // 2 and not a_cores & b_cores
    assert t0 >= a1 and pretrained == str(tmp_path / "demo-a" / "weights" / "best.pt"), "the transfer waited for its source"
    saved = json.loads((tmp_path / f"{budget.topic(1 / 3600)}.json").read_text())
    assert set(saved["variants"]) == set(payload["variants"])


def test_a_pinned_case_sees_only_its_cores() -> None:
    import os

    core = min(os.sched_getaffinity(0))
    assert budget.common.in_subprocess("benchmarks.common:machine", {"probe_gpu": False}, cpus={core})["cpu_cores"] == 1
    assert budget.lanes(1) == [None]

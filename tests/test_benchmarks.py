"""Smoke test of the benchmarks' own machinery on minimal inputs, so the scripts do not rot.

The benchmarks themselves are not part of the suite (`make bench`); this checks that their helpers still
run, that the plain-Python baselines do the same work as the workbench's converters (otherwise a ratio
compares different things), and that RESULTS.md is what `benchmarks.report` renders from the stored JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from benchmarks import accuracy, common, convert, naive, report, training
from yolo_tools.codecs import rle


def test_interleave_rotates_and_summaries_pair_rounds() -> None:
    calls: list[str] = []

    def case(name: str, seconds: float):
        def run() -> dict:
            calls.append(name)
            return {"seconds": seconds, "items": 10}
        return run

    samples = common.interleave({"a": case("a", 2.0), "b": case("b", 1.0)}, repeats=3, warmup=1, log=lambda _: None)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then the first case rotates
    summary = common.summarize(samples["b"], items=10, unit="slices")
    assert summary["median_s"] == 1.0 and summary["per_s"] == 10.0 and summary["repeats"] == 3
    compared = common.comparison("b", "a", samples, "b vs a")
    assert compared["ratio"] == 2.0 and compared["rounds"] == 3
    assert "cpu_ratio" not in compared and "met" not in compared
    text = common.ratio_rows([compared])
    assert "b vs a" in text and "2.00" in text
    timed = [common.timed(lambda: sum(range(10_000))) for _ in range(2)]
    judged = common.comparison("x", "y", {"x": timed, "y": timed}, "x vs y", not_slower=True)
    assert judged["cpu_ratio"] > 0 and "CPU-time" in judged["requirement"] and isinstance(judged["met"], bool)


def test_a_case_runs_in_its_own_process_with_its_own_peak_memory(tmp_path: Path) -> None:
    export = _tiny_export(tmp_path / "export")
    result = common.in_subprocess("benchmarks.naive:kidney_export", {"src": str(export), "dst": str(tmp_path / "out")},
                                  imports=("numpy",))
    assert result["items"] == 6 and result["seconds"] > 0
    assert result["peak_rss_mb"] >= result["peak_increase_mb"] >= 0 and result["import_s"] >= 0
    assert result["cpu_s"] > 0
    with pytest.raises(RuntimeError, match="failed"):
        common.in_subprocess("benchmarks.naive:kidney_export", {"src": str(tmp_path / "nowhere"), "dst": str(tmp_path)})


def _tiny_export(root: Path) -> Path:
    """A Roboflow-style export: 6 slices of 3 examinations (time stamps hours apart), one box each."""
    rng = np.random.default_rng(0)
    for split, folder in (("train", "train"), ("val", "valid")):
        (root / folder / "images").mkdir(parents=True)
        (root / folder / "labels").mkdir(parents=True)
    for i in range(6):
        tick = 637007007498655107 + (i // 2) * 10**12 + i * 10**7  # study i // 2; slices a second apart
        stem = f"1-3-46-670589-33-1-{tick}00001-50621812020008198{i:02d}_png_jpg.rf.{i:032x}"
        folder = "train" if i < 4 else "valid"
        cv2.imwrite(str(root / folder / "images" / f"{stem}.jpg"), rng.integers(0, 255, (32, 32), dtype=np.uint8))
        (root / folder / "labels" / f"{stem}.txt").write_text(f"0 0.5 0.5 0.{i + 1} 0.2\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"names": ["Tas_Var"], "nc": 1, "train": "../train/images",
                                                    "val": "../valid/images"}))
    return root


def _converted(root: Path) -> dict[str, str]:
    return {p.stem: p.read_text() for p in root.glob("labels/*/*.txt")}


def test_kidney_baseline_does_the_converters_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    export = _tiny_export(tmp_path / "export")
    naive.kidney_export(str(export), str(tmp_path / "naive"))
    recipe = yaml.safe_load((common.ROOT / "recipes" / "kidney.yaml").read_text())
    recipe["data"]["source"] = {"kind": "local", "path": str(export)}
    recipe["data"]["split"]["val"] = 0.34
    (tmp_path / "kidney.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.setenv("YOLO_TOOLS_DATASETS", str(tmp_path / "datasets"))
    # Train arguments play no part in a conversion; skipping their check spares importing Ultralytics here.
    monkeypatch.setattr("yolo_tools.recipe.check_train_args", lambda *args, **kwargs: None)
    from yolo_tools.conversion import prepare
    from yolo_tools.recipe import load_recipe

    prepare(load_recipe(tmp_path / "kidney.yaml"))
    workbench = _converted(tmp_path / "datasets" / "kidney")
    assert len(workbench) == 6 and workbench == _converted(tmp_path / "naive")
    assert sorted(p.name for p in (tmp_path / "naive").glob("images/*/*")) == \
        sorted(p.name for p in (tmp_path / "datasets" / "kidney").glob("images/*/*"))
    naive.kidney_export(str(export), str(tmp_path / "checked"), check_images=True)  # the same work, checked
    assert _converted(tmp_path / "checked") == workbench
    for image in (tmp_path / "naive").glob("images/*/*"):
        assert (tmp_path / "checked" / image.relative_to(tmp_path / "naive")).read_bytes() == image.read_bytes()
    next(export.glob("train/images/*.jpg")).write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(Exception):
        naive.kidney_export(str(export), str(tmp_path / "checked-again"), check_images=True)


def test_mask_baselines_keep_the_masks_the_workbench_keeps(tmp_path: Path) -> None:
    """The 16-bit layout of the stored masks (bit c = class c) reads back with the workbench's reader."""
    from yolo_tools.codecs import mask_png

    masks = [np.zeros((12, 16), bool) for _ in range(3)]
    masks[0][2:5, 3:9] = True
    masks[2][6:10, 1:4] = True
    masks[1][4:7, 5:7] = True  # overlaps class 0
    naive._save_masks(masks, tmp_path / "m.png")
    assert (mask_png.load(tmp_path / "m.png", 3) == np.stack(masks)).all()


def test_rle_baselines_agree_with_the_workbench() -> None:
    rng = np.random.default_rng(1)
    shapes = [(7, 9), (5, 5), (6, 4)]
    masks = [(rng.random(shape) > 0.6).astype(np.uint8) for shape in shapes] + [np.zeros((3, 3), np.uint8)]
    shapes.append((3, 3))
    strings = [rle.encode(m) for m in masks]
    for mask, string, shape in zip(masks, strings, shapes):
        assert naive.rle_encode_per_pixel(mask) == naive.rle_encode_kaggle(mask) == string
        assert (naive.rle_decode_per_run(string, shape) == mask).all()
        assert (naive.rle_decode_kaggle(string, shape) == mask).all()
    ids = [f"case1_day1_slice_{i:04d}" for i in range(len(strings))]
    for impl in ("workbench", "per_pixel", "notebook"):
        assert convert._codec(impl)(strings, shapes, ids) == 0
    assert convert._codec("notebook")(["1 2"], [(2, 2)], ["x"]) == 0
    assert convert._codec("workbench")(["1 2"], [(2, 2)], ["x"]) == 0


def test_epoch_seconds_read_ultralytics_results_csv(tmp_path: Path) -> None:
    (tmp_path / "results.csv").write_text("epoch,time,train/box_loss\n1,2.0,1\n2,5.0,1\n3,12.0,1\n")
    out = training.epoch_seconds(tmp_path)
    assert out["epoch_s"] == [2.0, 3.0, 7.0] and out["s_per_epoch"] == 2.5 and out["train_time_s"] == 12.0


def test_accuracy_covers_every_recipe_and_task() -> None:
    names = [p.stem for p in accuracy.recipes(None)]
    assert "kidney" in names and "demo" in names
    tasks = {yaml.safe_load(p.read_text())["task"] for p in accuracy.recipes(None)}
    assert tasks <= set(accuracy.SHOWN)
    line = accuracy._metrics_line({"task": "detect", "validator": {"precision": 0.5}, "train_losses": {"box_loss": 1.0}})
    assert line.startswith("P 0.500  R -") and line.endswith("loss 1.00")


def test_report_renders_and_results_md_is_current(tmp_path: Path) -> None:
    samples = {"x": [{"seconds": 1.0, "images": 4}], "y": [{"seconds": 2.0, "images": 4}]}
    payload = common.header("inference", [], {"images": 4, "imgsz": 64, "device": "cpu", "weights": "w"},
                            probe_gpu=False)
    payload["cases"] = {k: common.summarize(v, 4, "images") for k, v in samples.items()}
    payload["comparisons"] = [common.comparison("x", "y", samples, "x vs y")]
    common.save("inference", payload, tmp_path)
    text = report.render(tmp_path)
    assert "| x vs y | **2.00** |" in text and "## Conversion\n\nNot run yet" in text
    # RESULTS.md is generated: it must be exactly what the stored JSON renders to.
    if (common.RESULTS_DIR / "convert.json").is_file():
        assert report.RESULTS_MD.read_text() == report.render(), "rebuild it: python -m benchmarks.report"
    json.loads((tmp_path / "inference.json").read_text())


def test_stage_walk_folds_a_per_image_loop_and_counts_revisits() -> None:
    """The stage walk counts the code's walk, not the dataset's size: a stage asked once per image is one visit."""
    from benchmarks.stage_walk import fold, revisits, render

    per_image = [("dataset", "dataset.label_file"), ("conversion", "back from label_file")] * 5
    steps = [("recipe", "recipe.load"), ("conversion", "conversion.prepare"), *per_image, ("engine", "engine.train")]
    folded = fold(steps)
    assert [render(item) for item in folded] == ["recipe", "conversion", "(dataset → conversion) ×5", "engine"]
    assert revisits(steps[:4]) == ["conversion (entered by back from label_file)"]


def test_stage_walk_follows_the_workbench_frames_only(tmp_path: Path) -> None:
    """Calls into the traced package change the stage; the standard library's frames in between are skipped."""
    import sys

    from benchmarks.stage_walk import StageWalk

    package = tmp_path / "pkg"
    (package / "recipe.py").parent.mkdir()
    (package / "recipe.py").write_text("def fingerprint():\n    return 'f'\n")
    (package / "conversion.py").write_text(
        "import json\nfrom pkg import dataset, recipe\n\ndef prepare():\n"
        "    json.dumps({})\n    recipe.fingerprint()\n    dataset.place()\n    return recipe.fingerprint()\n"
    )
    (package / "dataset.py").write_text("def place():\n    return 'd'\n")
    sys.path.insert(0, str(tmp_path))
    try:
        from pkg import conversion

        walk = StageWalk(package)
        sys.settrace(walk.trace)
        try:
            conversion.prepare()
        finally:
            sys.settrace(None)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "pkg" or m.startswith("pkg.")]:
            del sys.modules[name]
    result = walk.summary()
    assert result["walk"] == ["conversion", "recipe", "conversion", "dataset", "conversion", "recipe", "conversion"]
    assert result["transitions"] == 6 and len(result["revisits"]) == 4


def test_the_sheet_of_a_rule_review_draws_each_added_box_and_refuses_what_does_not_fit(tmp_path: Path) -> None:
    """benchmarks.label_rule --sheet: one tile per added box, orange where the box was added; a wrong dataset
    version or a label that is no box gets a message naming the file, not a traceback."""
    from benchmarks import label_rule

    for split in ("images/train", "labels/train"):
        (tmp_path / "d" / split).mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "d" / "images" / "train" / "a.png"), np.full((400, 400, 3), 90, np.uint8))
    (tmp_path / "d" / "labels" / "train" / "a.txt").write_text("0 0.2 0.2 0.05 0.05\n")
    record = {"image": "a", "split": "train", "action": "added", "old": None, "new": "0 0.5 0.5 0.1 0.1"}
    review = tmp_path / "review.jsonl"
    review.write_text(json.dumps(record) + "\n" + json.dumps({**record, "action": "removed", "old": "0 0.2 0.2 0.05 0.05", "new": None}) + "\n")
    out = tmp_path / "sheet.png"
    assert label_rule.sheet(review, tmp_path / "d", out, side=200) == 1
    tile = cv2.imread(str(out))[:, :200]
    assert tile.shape[0] == 200 and (tile[80, 100:120] == [0, 140, 255]).all()  # the added box's top edge, BGR orange
    for bad, says in [({**record, "image": "gone"}, "no image gone in its train split"), ({**record, "new": "stone"}, "is no box")]:
        review.write_text(json.dumps(bad) + "\n")
        with pytest.raises(SystemExit, match=f"review.jsonl: .*{says}.*dataset version the review saw"):
            label_rule.sheet(review, tmp_path / "d", out)
    review.write_text("{not json\n")
    with pytest.raises(SystemExit, match="review.jsonl: not a corrections file"):
        label_rule.sheet(review, tmp_path / "d", out)


def test_the_nnunet_benchmark_refuses_dice_only_steps_for_a_detector(capsys: pytest.CaptureFixture[str]) -> None:
    """--cv and --compare score masks by Dice: on the heart detector they stop with one line, before any training."""
    from benchmarks import nnunet

    for extra in (["--cv", "5"], ["--compare", "a:b"]):
        with pytest.raises(SystemExit) as stopped:
            nnunet.main(["--recipe", "heart", "--variants", "shipped-512", *extra])
        assert stopped.value.code == 2
        assert "heart is a detect recipe: run its variants without them" in capsys.readouterr().err


def test_the_mask_grid_ceiling_keeps_what_a_grid_can_draw_and_loses_what_it_cannot() -> None:
    """A structure many cells across survives the grid almost whole; one thinner than a cell is lost: the ceiling
    can fall, so a Dice near 1 in RESULTS.md is a measurement, not the formula's floor."""
    from benchmarks import mask_grid

    labels = np.zeros((48, 48, 3), np.int16)
    labels[8:40, 8:40, :] = 1  # a 32-voxel square: 8 cells of 4 voxels across
    labels[20, 20:24, 1] = 2  # one voxel thick: a quarter of a cell
    fine = mask_grid.ceiling(labels, imgsz=48, stride=1)
    coarse = mask_grid.ceiling(labels, imgsz=48, stride=4)
    assert fine == {"Anterior": 1.0, "Posterior": 1.0}
    assert 0.97 < coarse["Anterior"] < 1.0
    assert coarse["Posterior"] == 0.0


def test_the_nnunet_comparison_names_a_bad_pair_or_a_missing_evaluation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--compare reads two runs' kept evaluations: a pair without a colon, or a run never scored on that split (on test
    only when it was trained with --test), stops with the pair and the missing folder named, nothing written."""
    from benchmarks import nnunet

    monkeypatch.setenv("YOLO_TOOLS_RUNS", str(tmp_path / "runs"))
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "nnunet-hippocampus.json").write_text('{"variants": {}}')
    with pytest.raises(SystemExit, match="--compare 128-e10: give two scored runs as A:B"):
        nnunet.compare("hippocampus", ["128-e10"], tmp_path / "results", [])
    scored = tmp_path / "runs" / "hippocampus" / "128-e10" / "bench-test-plain"
    scored.mkdir(parents=True)
    with pytest.raises(SystemExit, match="s-128-e10/bench-test-plain is missing; .*with --test makes it"):
        nnunet.compare("hippocampus", ["128-e10:s-128-e10"], tmp_path / "results", [], "test")
    assert json.loads((tmp_path / "results" / "nnunet-hippocampus.json").read_text()) == {"variants": {}}

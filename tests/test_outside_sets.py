"""Outside sets (`evaluate RUN --data SRC`): every task, every reader `convert` knows, scored whole, never over a result.

The fast tests check the tables and rules without a model. The slow ones train one tiny run per kind
(a classifier from recipes/pneumonia.yaml, a detector from heart.yaml, a 2D segmenter from heart-seg.yaml, a
2.5D volume segmenter from hippocampus.yaml: 1 epoch on a few real images or volumes from ../shared/data,
copied into tmp) and score small outside sets of each published layout on them, the docs' own examples among
them (docs/publishing.md), run from the page's text so the two cannot drift apart.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import RECIPES, SHARED_DATA, needs_data
from yolo_tools.convert.options import read_pairs
from yolo_tools.convert.registry import converter
from yolo_tools.convert.samples import Sample
from yolo_tools.errors import UserError
from yolo_tools.evaluation import eval_dir_name
from yolo_tools.evaluation import outside_data
from yolo_tools.recipe import load_recipe

PUBLISHING = Path(__file__).resolve().parent.parent / "docs" / "publishing.md"
HEART = SHARED_DATA / "heart-cxr-jsrt"
PNEUMONIA = SHARED_DATA / "pneumonia-cxr-kermany" / "train"
TINY = {"epochs": 1, "batch": 8, "workers": 0, "plots": False, "device": "cpu"}
# A one-epoch segmenter finds its best Dice at the lowest confidences, and hundreds of weak masks per image
# make scoring slow; a fixed confidence keeps these tests about reading sets, not choosing operating points.
SCORE = {"imgsz": 64, "conf": 0.25}


# --- the tables and rules, without a model -----------------------------------------------------------------


def test_every_format_convert_knows_is_an_outside_reader_with_its_tasks() -> None:
    from yolo_tools.cli import OUTSIDE_FORMATS
    from yolo_tools.conversion import FORMATS

    assert set(FORMATS) <= set(outside_data.READERS), "every converter `convert FORMAT` knows reads an outside set"
    assert set(OUTSIDE_FORMATS) == set(outside_data.READERS) == set(outside_data.READER_TASKS)
    for fmt, (_, task) in FORMATS.items():
        assert task in outside_data.READER_TASKS[fmt]


def test_the_options_read_afresh_are_options_of_their_converter() -> None:
    for name, keys in outside_data.REREAD.items():
        fields = converter(name).Options.model_fields
        assert set(keys) <= set(fields), f"{name}: {set(keys) - set(fields)} are no options of it"
    assert converter("class_folders").Options.model_fields["duplicates"] and converter("hdf5_volumes").Options.model_fields["empty"]


def test_option_pairs_are_read_as_yaml_values() -> None:
    assert read_pairs(["layout=folders", "label_values=[1, [2,3]]", "slice_axis=2", "segments={Liver: liver}"]) == {
        "layout": "folders", "label_values": [1, [2, 3]], "slice_axis": 2, "segments": {"Liver": "liver"},
    }
    with pytest.raises(UserError, match="--option layout: give KEY=VALUE"):
        read_pairs(["layout"])


def test_an_outside_set_is_named_apart_from_every_split_and_from_another_folder_of_its_name(tmp_path: Path) -> None:
    assert eval_dir_name("test", "test") == "eval-outside-test" != eval_dir_name("test")
    assert eval_dir_name("test", "test", ensemble_of=True) == "eval-ensemble-outside-test" != eval_dir_name("test", ensemble_of=True)
    recipe = load_recipe(RECIPES / "pneumonia.yaml")
    (tmp_path / "a" / "test").mkdir(parents=True)
    (tmp_path / "b" / "test").mkdir(parents=True)
    first = outside_data.plan(recipe, tmp_path / "a" / "test", "class-folders")
    assert first.name == "test" and first.recipe.name == "pneumonia--test"
    same = outside_data.plan(recipe, tmp_path / "a" / "test", "class-folders", scored_as=lambda name: str(tmp_path / "a" / "test"))
    assert same.name == "test", "the same folder scored again keeps its name"
    other = outside_data.plan(recipe, tmp_path / "b" / "test", "class-folders", scored_as=lambda name: str(tmp_path / "a" / "test"))
    assert re.fullmatch(r"test-[0-9a-f]{6}", other.name), other.name


def test_a_training_recipe_read_as_an_outside_set_keeps_every_image(tmp_path: Path) -> None:
    """pneumonia.yaml drops copies and reads `train/`: an outside folder is read where it is, copies kept."""
    (tmp_path / "test").mkdir()
    planned = outside_data.plan(load_recipe(RECIPES / "pneumonia.yaml"), tmp_path / "test")
    assert planned.recipe.data.options == {"duplicates": "keep"}
    hippocampus = outside_data.plan(load_recipe(RECIPES / "hippocampus.yaml"), tmp_path / "test", options={"min_area": 3})
    assert hippocampus.recipe.data.options == {"slice_axis": "auto", "min_area": 3}, "layout read afresh, --option wins"
    explicit = outside_data.plan(load_recipe(RECIPES / "pneumonia.yaml"), tmp_path / "test", options={"duplicates": "drop"})
    assert explicit.recipe.data.options["duplicates"] == "drop", "an explicit --option is honoured"


def test_duplicates_are_grouped_with_their_classes(tmp_path: Path) -> None:
    for name, data in (("a.png", b"one"), ("b.png", b"one"), ("c.png", b"two"), ("d.png", b"one")):
        (tmp_path / name).write_bytes(data)
    found = [Sample(n, tmp_path / f"{n}.png", category=c, source=f"{c}/{n}.png") for n, c in (("a", "x"), ("b", "x"), ("c", "x"), ("d", "y"))]
    assert outside_data.duplicates(found) == [{"files": ["x/a.png", "x/b.png", "y/d.png"], "classes": ["x", "y"], "conflict": True}]


@needs_data("pneumonia-cxr-kermany")
def test_a_class_folder_set_keeps_its_copies_and_its_patients(tmp_path: Path, caplog) -> None:
    """Converted without a model: every file written (the copy too), patients by the recipe's rule where it fits."""
    recipe = load_recipe(RECIPES / "pneumonia.yaml")
    source = tmp_path / "published" / "test"
    for image in sorted((PNEUMONIA / "PNEUMONIA").glob("person1*_bacteria_*.jpeg"))[:4]:
        _copy(image, source / "PNEUMONIA" / image.name)
    first = sorted((source / "PNEUMONIA").iterdir())[0]
    _copy(first, source / "NORMAL" / "IM-0001-0001.jpeg")  # the same film under the other class: a conflict
    converted = outside_data.convert(outside_data.plan(recipe, source, "class-folders"))
    patients = converted.patients()
    assert len(patients) == 5 and converted.card["counts"]["test"] == {"normal": 1, "pneumonia": 4}
    by_image = dict(zip(patients["image"], patients["patient"]))
    assert not any("bacteria" in patient for patient in by_image.values()), "patients by the recipe's rule, not per file"
    assert by_image["IM-0001-0001.jpeg"] == by_image[first.name], "a copy is its original's patient"
    assert [group["conflict"] for group in converted.card["duplicates"]] == [True]
    assert "lie under two or more classes" in caplog.text

    unnamed = tmp_path / "unnamed"
    for index, image in enumerate(sorted((PNEUMONIA / "NORMAL").glob("*.jpeg"))[:2]):
        _copy(image, unnamed / "NORMAL" / f"scan{index}.jpeg")
    converted = outside_data.convert(outside_data.plan(recipe, unnamed, "class-folders"))
    assert sorted(converted.patients()["patient"]) == ["scan0", "scan1"]
    assert "the recipe's patient rule does not fit" in caplog.text


def test_a_cv_that_never_trained_a_fold_does_not_block_corrected_settings(tmp_path: Path) -> None:
    from yolo_tools.training import crossval

    root = tmp_path / "cv"
    crossval._check_same(root, {"folds": 2, "train": {"device": "cuda:0"}})
    crossval._check_same(root, {"folds": 2, "train": {"device": "cpu"}})  # nothing trained under the first: replaced
    assert json.loads((root / crossval.CV_FILE).read_text())["train"] == {"device": "cpu"}
    (root / "fold1").mkdir()
    (root / "fold1" / "metrics.json").write_text("{}")
    with pytest.raises(UserError, match="a cv with other settings \\(train\\)"):
        crossval._check_same(root, {"folds": 2, "train": {"device": "0"}})


def test_a_run_that_holds_cv_folds_is_neither_read_as_a_cv_nor_as_a_run_silently(tmp_path: Path) -> None:
    """Made by `cv --name <run>` before it was refused: `predict` would have used the fold models quietly."""
    from yolo_tools.training import crossval

    run = tmp_path / "train"
    (run / "weights").mkdir(parents=True)
    (run / "recipe.yaml").write_text("name: x\n")
    (run / crossval.CV_FILE).write_text(json.dumps({"folds": 2}))
    with pytest.raises(UserError, match="both a training run and a cv's folds"):
        crossval.members(run)


# --- tiny runs of each kind, trained once for the module ----------------------------------------------------


def _recipe(tmp: Path, shipped: str, name: str, source: Path, **options) -> Path:
    """A shipped recipe, renamed, reading `source` and starting from scratch (no download in tests)."""
    body = yaml.safe_load((RECIPES / shipped).read_text())
    body["name"], body["data"]["source"]["path"] = name, str(source)
    body["data"]["options"] = {**(body["data"].get("options") or {}), **options}
    body["model"] = {"segment": "yolov8n-seg.yaml", "classify": "yolov8n-cls.yaml"}.get(body["task"], "yolov8n.yaml")
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def _train(recipe: Path, **train) -> Path:
    from yolo_tools import pipeline

    run, _ = pipeline.train_recipe(recipe, {**TINY, **train}, name="t")
    return run


def _copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


HEART_FILMS = sorted(p.stem for p in (HEART / "images").glob("*.png"))
TRAIN_FILMS, OUTSIDE_FILMS = HEART_FILMS[:10], HEART_FILMS[20:24]


def _heart_rows(names) -> list[list[str]]:
    table = [line.split(",") for line in (HEART / "heart_boxes.csv").read_text().splitlines()]
    return [table[0]] + [row for row in table[1:] if row[5] in names]


def _box_csv(root: Path, names, csv_name: str = "heart_boxes.csv") -> Path:
    for name in names:
        _copy(HEART / "images" / f"{name}.png", root / "images" / f"{name}.png")
    (root / csv_name).write_text("\n".join(",".join(row) for row in _heart_rows(names)) + "\n")
    return root


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("detector")
    source = _box_csv(tmp / "jsrt", TRAIN_FILMS)
    return _train(_recipe(tmp, "heart.yaml", "outside-heart", source), imgsz=64)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("classifier")
    for folder in ("NORMAL", "PNEUMONIA"):
        for image in sorted((PNEUMONIA / folder).glob("*.jpeg"))[:8]:
            _copy(image, tmp / "kermany" / "train" / folder / image.name)
    return _train(_recipe(tmp, "pneumonia.yaml", "outside-pneumonia", tmp / "kermany"), imgsz=32)


# --- classify: the docs' own example, a folder named test, copies kept -------------------------------------


def _class_folder_test_split(root: Path) -> Path:
    """A published test split: three films per class folder that the run never saw, and one byte-identical copy."""
    for folder in ("NORMAL", "PNEUMONIA"):
        for image in sorted((PNEUMONIA / folder).glob("*.jpeg"))[-3:]:
            _copy(image, root / folder / image.name)
    first = sorted((root / "NORMAL").iterdir())[0]
    shutil.copyfile(first, root / "NORMAL" / "IM-9999-0001.jpeg")  # published twice under two names
    return root


def _docs_line(pattern: str) -> list[str]:
    """docs/publishing.md's command that matches `pattern`, as argv after `yolo_tools` (its comment left out)."""
    for line in PUBLISHING.read_text(encoding="utf-8").splitlines():
        if re.search(pattern, line):
            return shlex.split(line.split("#", 1)[0])[1:]
    raise AssertionError(f"docs/publishing.md: no command matching {pattern!r}")


@pytest.mark.slow
@needs_data("pneumonia-cxr-kermany")
def test_the_docs_class_folder_example_scores_the_whole_test_split(classifier: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    """`evaluate runs/pneumonia/train --data ~/chest_xray/test --format class-folders`, as docs/publishing.md writes it."""
    from yolo_tools.cli import main

    home = tmp_path / "home"
    source = _class_folder_test_split(home / "chest_xray" / "test")
    monkeypatch.setenv("HOME", str(home))
    (classifier / "eval-test").mkdir()
    (classifier / "eval-test" / "summary.json").write_text('{"split": "test", "the run\'s own": true}')
    before = {p: p.read_bytes() for p in source.rglob("*") if p.is_file()}

    argv = _docs_line(r"yolo_tools evaluate runs/pneumonia/train --data \S+ --format class-folders")
    assert argv[1] == "runs/pneumonia/train" and argv[3] == "~/chest_xray/test"
    argv[1] = str(classifier)
    assert main([*argv, "imgsz=32", "device=cpu"]) == 0
    err = caplog.text

    out = classifier / "eval-outside-test"
    summary = _summary(out)
    assert summary["images"] == 7 == len(pd.read_csv(out / "per_image.csv")), "every image scored, the copy too"
    assert summary["outside_source"] == str(source.resolve()) and summary["validator"] == {}
    assert [len(group["files"]) for group in summary["duplicates"]] == [2] and not summary["duplicates"][0]["conflict"]
    assert "byte-identical copies of others" in err and "kept and scored as published" in err
    card = json.loads((Path(summary["dataset"]) / "card.json").read_text())
    assert card["counts"]["test"] == {"normal": 4, "pneumonia": 3} and card["duplicates"] == summary["duplicates"]
    assert json.loads((classifier / "eval-test" / "summary.json").read_text())["the run's own"], "eval-test replaced"
    assert not summary["seen_in_training"] and summary["split_caveat"] is None
    assert summary["bootstrap"]["patients"] < summary["images"], "resampled by patient (personNNN, IM-NNNN), not by file"
    assert {p: p.read_bytes() for p in source.rglob("*") if p.is_file()} == before, "the source was written to"

    # Another folder that is also called `test`: its own evaluation, the first one left as it was.
    other = _class_folder_test_split(tmp_path / "hospital-b" / "test")
    assert main(["evaluate", str(classifier), "--data", str(other), "--format", "class-folders", "imgsz=32", "device=cpu"]) == 0
    second = [p for p in classifier.glob("eval-outside-test-*")]
    assert len(second) == 1 and _summary(second[0])["outside_source"] == str(other.resolve())
    assert _summary(out)["outside_source"] == str(source.resolve())


# --- detect: box CSV (the recipe's own reader, laid out differently), COCO, a YOLO export with a test split ---


def _coco(root: Path, names) -> Path:
    rows = _heart_rows(names)[1:]
    data: dict = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "heart"}]}
    for index, row in enumerate(rows, 1):
        _copy(HEART / "images" / f"{row[5]}.png", root / "images" / f"{row[5]}.png")
        data["images"].append({"id": index, "file_name": f"{row[5]}.png", "width": 512, "height": 512})
        x, y, w, h = map(float, row[1:5])
        data["annotations"].append({"id": index, "image_id": index, "category_id": 1, "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
    (root / "annotations.json").write_text(json.dumps(data))
    return root


def _yolo_export(root: Path, names) -> Path:
    """A Roboflow-style export whose films are spread over train, valid and test: all of it is the outside set."""
    for split, chunk in zip(("train", "valid", "test"), (names[:2], names[2:3], names[3:])):
        for row in _heart_rows(chunk)[1:]:
            _copy(HEART / "images" / f"{row[5]}.png", root / split / "images" / f"{row[5]}.png")
            x, y, w, h = map(float, row[1:5])
            label = root / split / "labels" / f"{row[5]}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(f"0 {(x + w / 2) / 512:.6f} {(y + h / 2) / 512:.6f} {w / 512:.6f} {h / 512:.6f}\n")
    (root / "data.yaml").write_text("names: [heart]\ntrain: ../train/images\nval: ../valid/images\ntest: ../test/images\n")
    return root


@pytest.mark.slow
@needs_data("heart-cxr-jsrt")
def test_a_detector_scores_box_csv_coco_and_yolo_sets_whole(detector: Path, tmp_path: Path, caplog) -> None:
    from yolo_tools import pipeline

    sets = {
        "csv-recipe-reader": (_box_csv(tmp_path / "csv-recipe-reader", OUTSIDE_FILMS, "boxes.csv"), None),  # not heart_boxes.csv
        "csv-format": (_box_csv(tmp_path / "csv-format", OUTSIDE_FILMS, "boxes.csv"), "box-csv"),
        "coco": (_coco(tmp_path / "coco", OUTSIDE_FILMS), "coco"),
        "yolo": (_yolo_export(tmp_path / "yolo", OUTSIDE_FILMS), "yolo"),
    }
    found = {}
    for name, (source, fmt) in sets.items():
        out = pipeline.evaluate(detector, {"imgsz": 64}, data=source, data_format=fmt)
        summary = _summary(out)
        per_image = pd.read_csv(out / "per_image.csv")
        assert out.name == f"eval-outside-{name}" and summary["images"] == len(OUTSIDE_FILMS), name
        assert per_image["boxes_true"].sum() == len(OUTSIDE_FILMS), f"{name}: every film's heart is its truth"
        assert not summary["seen_in_training"], name
        found[name] = sorted(per_image["image"].map(lambda image: Path(image).stem))
    assert all(names == sorted(OUTSIDE_FILMS) for names in found.values()), found

    # The run's own source given as an "outside" set: scored, and said to be no independent test.
    own = Path(yaml.safe_load((detector / "recipe.yaml").read_text())["data"]["source"]["path"])
    out = pipeline.evaluate(detector, {"imgsz": 64}, data=own)
    summary = _summary(out)
    seen = summary["seen_in_training"]
    assert sum(map(len, seen.values())) == summary["images"] == len(TRAIN_FILMS) and set(seen) == {"train", "val"}
    assert "no independent test" in summary["split_caveat"] and "no independent test" in caplog.text


# --- segment: masks, COCO polygons and a YOLO-seg set on a 2D segmenter; NIfTI and DICOM volumes on a 2.5D one --


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("segmenter")
    source = _masks(tmp / "jsrt-seg", TRAIN_FILMS)
    return _train(_recipe(tmp, "heart-seg.yaml", "outside-heart-seg", source), imgsz=64)


def _masks(root: Path, names) -> Path:
    for name in names:
        _copy(HEART / "images" / f"{name}.png", root / "images" / f"{name}.png")
        for organ in ("heart", "left_lung", "right_lung"):
            _copy(HEART / "masks" / organ / f"{name}.png", root / "masks" / organ / f"{name}.png")
    return root


def _coco_polygons(root: Path, yolo: Path) -> Path:
    """The YOLO-seg polygons of a converted set, as a COCO segmentation file beside the same images."""
    data: dict = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": n} for i, n in enumerate(("heart", "left_lung", "right_lung"))]}
    for index, image in enumerate(sorted((yolo / "images").glob("*/*")), 1):
        _copy(image, root / "images" / image.name)
        data["images"].append({"id": index, "file_name": image.name, "width": 512, "height": 512})
        for line in (yolo / "labels" / image.parent.name / f"{image.stem}.txt").read_text().splitlines():
            values = line.split()
            points = (np.array(values[1:], float) * 512).round(1).tolist()
            xs, ys = points[0::2], points[1::2]
            box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
            data["annotations"].append({"id": len(data["annotations"]) + 1, "image_id": index, "category_id": int(values[0]) + 1,
                                        "segmentation": [points], "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    (root / "annotations.json").write_text(json.dumps(data))
    return root


@pytest.mark.slow
@needs_data("heart-cxr-jsrt")
def test_a_segmenter_scores_masks_coco_and_yolo_seg_sets(segmenter: Path, tmp_path: Path) -> None:
    from yolo_tools import pipeline
    from yolo_tools.conversion import convert_folder

    masks = _masks(tmp_path / "masks", OUTSIDE_FILMS)
    yolo = tmp_path / "yolo-seg"  # the masks as YOLO-seg polygons, in Ultralytics' images/<split> + labels/<split> layout
    convert_folder("masks", masks, yolo, val=0.25)  # train and val: an outside set is all of it
    coco = _coco_polygons(tmp_path / "coco-seg", yolo)
    for source, fmt in ((masks, "masks"), (masks, None), (coco, "coco"), (yolo, "yolo")):
        out = pipeline.evaluate(segmenter, SCORE, data=source, data_format=fmt)
        summary = _summary(out)
        per_class = pd.read_csv(out / "per_class.csv")
        assert summary["images"] == len(OUTSIDE_FILMS) and summary["task"] == "segment", (source, fmt)
        assert list(per_class["class"]) == ["heart", "left_lung", "right_lung"], (source, fmt)
        assert 0 <= summary["metrics"]["dice"] <= 1, (source, fmt)


@pytest.fixture(scope="module")
def volumes_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hospital_data import CASES, decathlon

    tmp = tmp_path_factory.mktemp("volumes")
    source = decathlon(tmp / "msd", CASES[:3])
    return _train(_recipe(tmp, "hippocampus.yaml", "outside-hippocampus", source), imgsz=64, batch=16)


def _dicom_series_with_label(root: Path) -> Path:
    """The 40-slice MR crop as a DICOM series, with a NIfTI label of values 1 and 2 in labels/ (no SEG)."""
    import nibabel as nib

    from hospital_data import MR_CROP
    from yolo_tools.imaging import dicom_series

    for path in MR_CROP.glob("*.dcm"):
        _copy(path, root / "mr" / path.name)
    series = next(iter(dicom_series.find(root / "mr").series))
    pixels, geometry = dicom_series.load(series)
    label = np.zeros(pixels.shape, np.uint8)
    label[pixels > np.percentile(pixels, 95)] = 1
    label[(pixels > np.percentile(pixels, 85)) & (label == 0)] = 2
    (root / "labels").mkdir()
    nib.save(nib.Nifti1Image(label.transpose(2, 1, 0), geometry.affine[:, [2, 1, 0, 3]]), root / "labels" / "mr.nii.gz")
    return root


@pytest.mark.slow
@needs_data("hippocampus-mri-msd")
def test_volumes_without_dataset_json_and_a_dicom_series_are_scored_with_the_recipes_classes(
    volumes_run: Path, tmp_path: Path, monkeypatch
) -> None:
    from hospital_data import CASES, HIPPOCAMPUS
    from yolo_tools import pipeline
    from yolo_tools.cli import main

    plain = tmp_path / "home" / "other_mri"  # imagesTr/ + labelsTr/ as published, without dataset.json
    for case in CASES[3:5]:
        for folder in ("imagesTr", "labelsTr"):
            _copy(HIPPOCAMPUS / folder / f"{case}.nii.gz", plain / folder / f"{case}.nii.gz")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    argv = _docs_line(r"yolo_tools evaluate runs/hippocampus/train --data \S+ --format nifti --option layout=folders")
    assert argv[1] == "runs/hippocampus/train" and argv[3] == "~/other_mri"
    argv[1] = str(volumes_run)
    for fmt, options in (("docs", None), (None, None), ("nifti", {"label_values": [1, 2]})):
        if fmt == "docs":
            assert main([*argv, *(f"{k}={v}" for k, v in SCORE.items()), "device=cpu"]) == 0
            out = volumes_run / "eval-outside-other_mri"
        else:
            out = pipeline.evaluate(volumes_run, SCORE, data=plain, data_format=fmt, data_options=options)
        summary = _summary(out)
        card = json.loads((Path(summary["dataset"]) / "card.json").read_text())
        assert card["classes"] == ["Anterior", "Posterior"] and card["counts"]["test"]["Anterior"] > 0 and card["counts"]["test"]["Posterior"] > 0
        assert summary["images"] == card["counts"]["test"]["images"] and not card["skipped"]
        assert len(pd.read_csv(out / "per_patient.csv")) == 2, "3D Dice per outside volume"
    with pytest.raises(UserError, match=r"dataset\.json: missing; layout 'decathlon' needs it(.|\n)*--option"):
        pipeline.evaluate(volumes_run, SCORE, data=plain, data_options={"layout": "decathlon"})

    series = _dicom_series_with_label(tmp_path / "dicom")
    out = pipeline.evaluate(volumes_run, SCORE, data=series, data_format="dicom")
    summary = _summary(out)
    card = json.loads((Path(summary["dataset"]) / "card.json").read_text())
    assert summary["images"] == card["counts"]["test"]["images"] > 0 and card["counts"]["test"]["Posterior"] > 0

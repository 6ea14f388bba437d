"""The converted layout is spelled in `yolo_tools/dataset.py` only: the writer and cv ask a `Dataset` for it."""

from __future__ import annotations

from pathlib import Path

import yaml

from yolo_tools.dataset import DATA_YAML, PATIENTS_CSV, Dataset


def test_paths_and_folders_per_layout(tmp_path: Path) -> None:
    boxes, folders = Dataset(tmp_path / "d", "detect"), Dataset(tmp_path / "c", "classify")
    assert boxes.image_path("val", "a.png", "ignored") == tmp_path / "d" / "images" / "val" / "a.png"
    assert folders.image_path("val", "a.png", "normal") == tmp_path / "c" / "val" / "normal" / "a.png"
    boxes.make_folders(["train", "test"], ["stone"])
    folders.make_folders(["train"], ["normal", "pneumonia"])
    made = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_dir())
    assert made == ["c", "c/train", "c/train/normal", "c/train/pneumonia", "d", "d/images", "d/images/test",
                    "d/images/train", "d/labels", "d/labels/test", "d/labels/train"]
    folders.make_folders(["train"], ["normal", "pneumonia"], exist_ok=True)  # cv makes them again over its links


def test_data_yaml_is_what_ultralytics_reads(tmp_path: Path) -> None:
    Dataset(tmp_path, "segment").write_data_yaml(["train", "val", "test"], ["lung", "heart"])
    spec = yaml.safe_load((tmp_path / DATA_YAML).read_text())
    assert spec == {"train": "images/train", "val": "images/val", "test": "images/test", "names": {0: "lung", 1: "heart"}}
    assert list(spec) == ["train", "val", "test", "names"]
    Dataset(tmp_path / "c", "classify").write_data_yaml(["train"], ["a"])
    assert not (tmp_path / "c").exists()  # classify: the class folders are the spec


def test_listing_has_a_class_only_where_the_layout_has_class_folders(tmp_path: Path) -> None:
    rows = "image,split,patient\nb.png,val,p2\na.png,train,p1\nt.png,test,p3\n"
    for task in ("detect", "classify"):
        data = Dataset(tmp_path / task, task)
        data.make_folders(["train", "val"], ["x", "y"])
        for image, split, category in (("a.png", "train", "x"), ("b.png", "val", "y")):
            data.image_path(split, image, category).write_bytes(b"")
        (data.root / PATIENTS_CSV).write_text(rows)
        table = data.listing()
        assert table["image"].tolist() == ["b.png", "a.png"]  # patients.csv's order, test left out
        assert table["path"].tolist() == [data.image_path("val", "b.png", "y"), data.image_path("train", "a.png", "x")]
        assert ("class" in table) == (task == "classify")
    assert Dataset(tmp_path / "none", "detect").listing() is None

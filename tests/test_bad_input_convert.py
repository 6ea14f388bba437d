"""Where conversions write, what a recipe's converter options may say, and splits drawn after skipping.

- `yolo_tools convert FORMAT SRC DST` and recipe conversions only ever replace a folder the workbench
  wrote itself: a destination that is, contains or lies inside the source (or the data root), a file, a
  link, or a folder of someone else's files is refused with what to do, and the inputs stay as they were;
  an empty folder or an older dataset of the workbench is replaced, and stale partial folders of a killed
  conversion are cleaned.
- Every converter's `data.options` has a schema: an unknown key or a wrong type is refused when the recipe
  is read, naming the recipe file and the key, before any data is located (the sources here do not exist).
- The split is drawn over the samples that survived; a rule that leaves one patient, or none, is refused.
- `convert FORMAT`'s `--option KEY=VALUE` is checked against the reader's schema as a recipe's options are.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from bad_input import Case, parametrize, run_case
from bad_input_sources import (
    cards,
    convert_recipe,
    heart_boxes,
    heart_masks,
    latin1,
    pneumonia_folders,
    recipe,
    skipped_on_card,
    text_file,
)

Setup = Callable[[Path], None]


def folders(dst: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    """`convert class-folders <inputs>/pneumonia DST`."""
    return lambda inputs: ["convert", "class-folders", str(inputs / "pneumonia"), str(dst(inputs))]


def with_films(edit: Setup = lambda inputs: None) -> Setup:
    def setup(inputs: Path) -> None:
        pneumonia_folders(inputs)
        edit(inputs)

    return setup


def outputs(inputs: Path) -> Path:
    """A destination beside the inputs (the case's own datasets folder)."""
    return inputs.parent / "datasets" / "films"


def _folder_with(name: str, files: dict[str, bytes]) -> Setup:
    def edit(inputs: Path) -> None:
        folder = outputs(inputs) if name == "outputs" else inputs / name
        folder.mkdir(parents=True, exist_ok=True)
        for file, data in files.items():
            (folder / file).write_bytes(data)

    return with_films(edit)


def written_at(where: Callable[[Path], Path], *gone: str) -> Callable[[Path, str], None]:
    """A case check: a dataset card with the workbench's marker at `where`, and none of `gone` left there."""

    def check(root: Path, stderr: str) -> None:
        folder = where(root / "in")
        card = json.loads((folder / "card.json").read_text())
        assert card["written_by"] == "yolo_tools" and card["counts"], card
        assert not [name for name in gone if (folder / name).exists()], f"{folder} kept {gone}"

    return check


def _broken_link(inputs: Path) -> None:
    pneumonia_folders(inputs)
    (inputs / "link").symlink_to(inputs / "nowhere")


OWN_CARD = json.dumps({"written_by": "yolo_tools", "recipe": "films"}).encode()
LEGACY_CARD = json.dumps({"recipe": "films", "fingerprint": "0", "converter": "class_folders", "counts": {},
                          "skipped": []}).encode()
MARKED = {".yolo_tools-partial": b""}
DEAD_PID = 999_999_999  # above any pid_max: no such process

DESTINATIONS = [
    Case("dst-is-the-source", folders(lambda i: i / "pneumonia"), (r"pneumonia: the dataset folder is the source",
         "Give a destination outside the source"), with_films()),
    Case("dst-inside-the-source", folders(lambda i: i / "pneumonia" / "yolo"), (r"lies inside the source",), with_films()),
    Case("dst-contains-the-source", folders(lambda i: i), (r"contains the source",), with_films()),
    Case("dst-foreign-folder", folders(lambda i: i / "notes"), (r"notes: this folder holds files yolo_tools did not write",
         "new or empty folder"), _folder_with("notes", {"todo.txt": b"buy milk\n"})),
    Case("dst-foreign-card", folders(lambda i: i / "notes"), ("did not write",),
         _folder_with("notes", {"card.json": b'{"hello": 1}', "todo.txt": b"x"})),
    Case("dst-card-not-json", folders(lambda i: i / "notes"), ("did not write",),
         _folder_with("notes", {"card.json": "Müller".encode("latin-1")})),
    Case("dst-is-a-file", folders(lambda i: i / "notes.txt"), (r"notes.txt: a file is there", "move it away"),
         with_films(lambda i: (i / "notes.txt").write_text("keep me\n"))),
    Case("dst-under-a-file", folders(lambda i: i / "notes.txt" / "films"), (r"notes.txt is a file, not a folder",),
         with_films(lambda i: (i / "notes.txt").write_text("keep me\n"))),
    Case("dst-is-a-link", folders(lambda i: i / "link"), (r"link: is a link",), _broken_link),
    Case("dst-source-missing", lambda i: ["convert", "class-folders", str(i / "absent"), str(outputs(i))],
         (r"absent: no such folder",)),
    Case("dst-format-unknown", lambda i: ["convert", "nrrd", str(i / "pneumonia"), str(outputs(i))],
         (r"format 'nrrd' is unknown; allowed: coco, masks, box-csv, class-folders, nifti, dicom",), with_films()),
    Case("dst-missing", lambda i: ["convert", "class-folders", str(i / "pneumonia")],
         (r"takes a source and a destination folder",), with_films()),
    # a flag's value at fault is named as the flag, never as a recipe key the user has no file for
    Case("split-by-leaves-one-patient", lambda i: [*folders(outputs)(i), "--split-by", r".*?(1)"],  # a 1 in every name
         (r"one patient or study \(as the class_folders reader found them; --split-by is '\.\*\?\(1\)'\)",),
         with_films(), check=lambda root, err: _no_recipe_keys(err)),

    Case("class-folders-differing-only-in-case", folders(outputs),
         (r"convert class-folders: .*pneumonia: the classes it names \(NORMAL, PNEUMONIA, normal\)", r"'NORMAL' and 'normal' differ only in case",
          r"rename or merge"),
         with_films(lambda i: shutil.copytree(i / "pneumonia" / "NORMAL", i / "pneumonia" / "normal"))),
    Case("dst-empty-folder-is-used", folders(outputs), (r"hash pneumonia",), _folder_with("outputs", {}), code=0,
         check=written_at(outputs)),
    Case("dst-own-dataset-is-replaced", folders(outputs), (r"convert films",),
         _folder_with("outputs", {"card.json": OWN_CARD, "old.txt": b"x"}), code=0,
         check=written_at(outputs, "old.txt")),
    Case("dst-own-older-dataset-is-replaced", folders(outputs), (r"convert films",),
         _folder_with("outputs", {"card.json": LEGACY_CARD, "old.txt": b"x"}), code=0,
         check=written_at(outputs, "old.txt")),
    Case("dst-stale-partial-is-cleaned", folders(outputs), (r"convert films",),
         with_films(lambda i: _stale(i, f".films.partial-{DEAD_PID}", MARKED)), code=0, check=written_at(outputs)),
    Case("dst-stale-old-is-cleaned", folders(outputs), (r"convert films",),
         with_films(lambda i: _stale(i, f".other.old-{DEAD_PID}", {"card.json": OWN_CARD})), code=0,
         check=written_at(outputs)),
]


def _no_recipe_keys(err: str) -> None:
    assert "data.split" not in err and "data.options" not in err, err


def _stale(inputs: Path, name: str, files: dict[str, bytes]) -> None:
    folder = outputs(inputs).parent / name
    (folder / "images").mkdir(parents=True)
    for file, data in files.items():
        (folder / file).write_bytes(data)


# ------------------------------------------------------------------- recipe conversions and the data root


def heart_recipe(edit: Setup = lambda inputs: None, **fields) -> Setup:
    def setup(inputs: Path) -> None:
        heart_boxes(inputs)
        if fields:
            recipe(inputs, "box_csv", "heart", "detect", ["heart"], options={"csv": "boxes.csv"}, **fields)
        edit(inputs)

    return setup


def _datasets(root_relative: str) -> dict[str, str]:
    return {"YOLO_TOOLS_DATASETS": root_relative}


def _dataset_folder(files: dict[str, bytes]) -> Setup:
    def edit(inputs: Path) -> None:
        folder = inputs.parent / "datasets" / "case"
        folder.mkdir(parents=True)
        for file, data in files.items():
            (folder / file).write_bytes(data)

    return heart_recipe(edit)


def _groups_count_written_only(root: Path, stderr: str) -> None:
    card = cards(root)[0]
    written = sum(split["images"] for split in card["counts"].values())
    assert sum(card["groups"].values()) == written == 5, card


RECIPE_DESTINATIONS = [
    Case("recipe-datasets-are-the-data-root", convert_recipe, (r"inside the data root", "YOLO_TOOLS_DATASETS"),
         heart_recipe(), env=_datasets("{inputs}")),
    Case("recipe-datasets-inside-the-data-root", convert_recipe, (r"inside the data root",), heart_recipe(),
         env=_datasets("{inputs}/converted")),
    Case("recipe-datasets-inside-the-source", convert_recipe, (r"inside the data root|lies inside the source",),
         heart_recipe(), env=_datasets("{inputs}/heart/yolo")),
    Case("recipe-foreign-folder-at-the-dataset", convert_recipe, (r"datasets/case: this folder holds files",),
         _dataset_folder({"thesis.docx": b"x"}), may_write=("datasets",)),
    Case("recipe-own-dataset-is-replaced", lambda i: [*convert_recipe(i), "--force"], (r"convert case",),
         _dataset_folder({"card.json": OWN_CARD, "old.txt": b"x"}), code=0,
         check=written_at(lambda i: i.parent / "datasets" / "case", "old.txt")),
    Case("recipe-skipped-patients-not-counted", convert_recipe, (r"skipped .*JPCLN001.png: not an image file",),
         heart_recipe(lambda i: text_file(i / "heart" / "images" / "JPCLN001.png")), code=0,
         check=_groups_count_written_only),
]


# ------------------------------------------------------------------- converter option schemas


def options(converter: str, values: dict, task: str = "detect", classes: tuple[str, ...] = ("a",)) -> Setup:
    """A recipe for `converter` with `values` as its options; its data folder does not exist."""
    return lambda inputs: recipe(inputs, converter, "absent", task, list(classes), options=values)


def schema(id: str, setup: Setup, key: str, *says: str, verb: str = "convert") -> Case:
    return Case(id, lambda i: [verb, str(i / "case.yaml")], ("case.yaml: invalid recipe", rf"data\.{re.escape(key)}: ", *says),
                setup)


SEG = {"task": "segment", "classes": ("heart",)}
CROPS = {"recipe": "pneumonia.yaml", "regions": "runs/none"}

OPTION_SCHEMAS = [
    schema("options-yolo-export-unknown", options("yolo_export", {"min_aera": 5000}), "options.min_aera",
           "unknown key; yolo_export takes: tiles"),
    schema("options-box-csv-typo", options("box_csv", {"image": "pics"}), "options.image", "takes: csv, images"),
    schema("options-box-csv-number-for-folder", options("box_csv", {"images": 5}), "options.images", "valid string"),
    schema("options-masks-min-area-words", options("mask_images", {"min_area": "ten"}, **SEG), "options.min_area",
           "valid integer", "'ten'"),
    schema("options-masks-min-aera", options("mask_images", {"min_aera": 5000}, **SEG), "options.min_aera",
           "takes: images, masks, layout, min_area"),
    schema("options-masks-layout", options("mask_images", {"layout": "stacked"}, **SEG), "options.layout",
           "'per_class', 'label_map' or 'colours'"),
    schema("options-masks-holes", options("mask_images", {"holes": "maybe"}, **SEG), "options.holes", "valid boolean"),
    schema("options-masks-folders-a-list", options("mask_images", {"folders": ["heart"]}, **SEG), "options.folders",
           "valid dictionary"),
    schema("options-masks-negative-epsilon", options("mask_images", {"epsilon": -1}, **SEG), "options.epsilon",
           "greater than or equal to 0"),
    schema("options-class-folders-duplicates", options("class_folders", {"duplicates": "sometimes"}, "classify"),
           "options.duplicates", "'drop' or 'keep'"),
    schema("options-class-folders-folder-null", options("class_folders", {"folder": None}, "classify"),
           "options.folder", "valid string"),
    schema("options-coco-annotations-list", options("coco", {"annotations": ["a.json"]}), "options.annotations",
           "valid string"),
    schema("options-rle-empty", options("uw_madison_gi", {"empty": 3}, **SEG), "options.empty", "'keep' or 'drop'"),
    schema("options-rle-typo", options("uw_madison_gi", {"scan": "train"}, **SEG), "options.scan", "takes: csv, scans"),
    schema("options-hdf5-slice-axis", options("hdf5_volumes", {"slice_axis": 5}, **SEG), "options.slice_axis",
           "less than or equal to 2"),
    schema("options-hdf5-label-values-words", options("hdf5_volumes", {"label_values": ["rv"]}, **SEG),
           "options.label_values.0", "valid integer"),
    schema("options-hdf5-scope", options("hdf5_volumes", {"intensity_scope": "global"}, **SEG),
           "options.intensity_scope", "'volume' or 'slice'"),
    schema("options-synthetic-one-image", options("synthetic", {"images": 1}), "options.images", "greater than or equal to 2"),
    schema("options-synthetic-size-words", options("synthetic", {"size": "big"}), "options.size", "valid integer"),
    schema("options-crops-margin", options("region_crops", {**CROPS, "margin": 2}, "classify"), "options.margin",
           "less than or equal to 1"),
    schema("options-crops-unknown", options("region_crops", {**CROPS, "colour": 1}, "classify"), "options.colour",
           "region_crops takes: recipe, regions, classes, margin"),
    schema("options-crops-no-regions", options("region_crops", {"recipe": "pneumonia.yaml"}, "classify"),
           "options.regions", "Field required"),
    schema("options-converter-unknown", options("dicom2yolo", {}), "converter", "'dicom2yolo' is unknown", "allowed: "),
    schema("options-on-train", options("box_csv", {"min_aera": 1}), "options.min_aera", "takes: csv, images",
           verb="train"),
    schema("options-on-pull", options("box_csv", {"cvs": "a.csv"}), "options.cvs", "takes: csv, images", verb="pull"),
]


# ------------------------------------------------------------------- splits drawn after skipping


SPLITS = [
    Case("split-source-but-none-published", convert_recipe, (r"split.by is 'source' but the source gives no train/val",),
         with_films(lambda i: recipe(i, "class_folders", "pneumonia", "classify", ["normal", "pneumonia"],
                                     split={"by": "source"}))),
    Case("split-regex-finds-no-patient", convert_recipe, (r"split regex '\^person' finds no patient id",),
         with_films(lambda i: recipe(i, "class_folders", "pneumonia", "classify", ["normal", "pneumonia"],
                                     split={"by": "^person"}))),
    Case("split-two-left-after-skipping", convert_recipe, (r"skipped .*not an image file",),
         heart_recipe(lambda i: [text_file(i / "heart" / "images" / f"JPCLN00{n}.png") for n in (1, 2, 3, 4)]),
         code=0, check=skipped_on_card("JPCLN004.png: not an image file", written=2)),
    Case("split-one-left-after-skipping", convert_recipe, (r"usable samples belong to one patient or study",
         "at least two"), heart_recipe(lambda i: [text_file(p) for p in sorted((i / "heart" / "images").iterdir())[1:]])),
    Case("split-metadata-not-utf8", convert_recipe, (r"patients.csv: not a readable CSV",),
         heart_recipe(lambda i: latin1(i / "heart" / "patients.csv", "patient,age\nJPCLN001,50\n"),
                      metadata={"path": "patients.csv"})),
]


# `convert FORMAT SRC DST --option KEY=VALUE`: a FORMAT's reader options from the command line, checked as a recipe's are.
COMMAND_LINE_OPTIONS = [
    Case("format-option-unknown", lambda i: ["convert", "nifti", str(i / "vols"), str(outputs(i)), "--option", "lay=folders"],
         (r"--option lay: unknown key; nifti takes: layout, images, labels",), lambda i: (i / "vols").mkdir()),
    Case("format-option-wrong-kind", lambda i: ["convert", "masks", str(i / "heart-seg"), str(outputs(i)), "--option", "min_area=big"],
         (r"--option min_area: .*integer",), lambda i: heart_masks(i)),
    Case("recipe-with-an-option", lambda i: [*convert_recipe(i), "--option", "layout=folders"],
         (r"--option layout=folders: a recipe sets its reader's options in data\.options",), heart_recipe()),
]

CASES = DESTINATIONS + RECIPE_DESTINATIONS + OPTION_SCHEMAS + SPLITS + COMMAND_LINE_OPTIONS


@parametrize(CASES)
def test_case(case, tmp_path, monkeypatch, capfd):
    run_case(case, tmp_path, monkeypatch, capfd)

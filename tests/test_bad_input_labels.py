"""Bad images and labels, converter by converter: skipped with the file and reason, or refused with a message.

A broken sample is skipped, named with its reason in a warning on stderr and on the dataset card, and the
rest of the set converts (exit 0). A broken table, annotation file or layout refuses the conversion (exit
2) with a message naming the file and what to do, writing nothing. Inputs are a handful of real files
from ../shared/data (tests/bad_input_sources.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from bad_input import Case, parametrize, run_case
from bad_input_sources import (
    cards,
    acdc_volumes,
    bomb,
    convert_recipe,
    edit_volume,
    gi_competition,
    gi_scans,
    heart_boxes,
    heart_coco,
    heart_masks,
    gif_file,
    kidney_export,
    kidney_files,
    bytes_after_end,
    latin1,
    no_end_marker,
    pneumonia_folders,
    recipe,
    skipped_on_card,
    text_file,
    tiny,
    truncated,
    zero_bytes,
)

Setup = Callable[[Path], None]


def skipped(id: str, setup: Setup, reason: str, written: int | None = None) -> Case:
    """A case whose bad sample is skipped: exit 0, the reason in a warning and on the card."""
    return Case(id, convert_recipe, (rf"skipped .*{reason}",), setup, code=0,
                check=skipped_on_card(reason, written=written))


def refused(id: str, setup: Setup, *says: str) -> Case:
    return Case(id, convert_recipe, says, setup)


# ----------------------------------------------------------------------------------- yolo_export


def kidney(edit: Callable[[Path], None] = lambda inputs: None, **sizes) -> Setup:
    def setup(inputs: Path) -> None:
        kidney_export(inputs, **sizes)
        edit(inputs)

    return setup


def kidney_image(damage: Callable[[Path], None], split: str = "train") -> Setup:
    return kidney(lambda inputs: damage(kidney_files(inputs, split)[0][0]))


def kidney_label(text: str, encoding: str = "utf-8") -> Setup:
    return kidney(lambda inputs: kidney_files(inputs)[1][0].write_bytes(text.encode(encoding)))


def _retitle(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(inputs: Path) -> None:
        path = inputs / "kidney" / "data.yaml"
        spec = yaml.safe_load(path.read_text())
        edit(spec)
        path.write_text(yaml.safe_dump(spec))

    return apply


def _all_val_broken(inputs: Path) -> None:
    for image in kidney_files(inputs, "val")[0]:
        text_file(image)


def _every_image_broken(inputs: Path) -> None:
    for split in ("train", "val"):
        for image in kidney_files(inputs, split)[0]:
            zero_bytes(image)


def _same_name_in_both_splits(inputs: Path) -> None:
    image, label = kidney_files(inputs)[0][0], kidney_files(inputs)[1][0]
    folder = inputs / "kidney" / "valid"
    (folder / "images" / image.name).write_bytes(image.read_bytes())
    (folder / "labels" / label.name).write_bytes(label.read_bytes())


def _segment_recipe(inputs: Path) -> None:
    recipe(inputs, "yolo_export", "kidney", "segment", ["stone"], split={"by": "source"})
    kidney_files(inputs)[1][0].write_text("0 0.1 0.1 0.2 0.2 0.3\n")  # five coordinates


YOLO_EXPORT = [
    skipped("yolo-export-text-named-jpg", kidney_image(text_file), "not an image file", written=5),
    skipped("yolo-export-gif-named-jpg", kidney_image(gif_file), "a GIF image, which Ultralytics does not train on", written=5),
    skipped("yolo-export-truncated-jpeg", kidney_image(truncated), "JPEG .*end-of-image marker .*truncated", written=5),
    skipped("yolo-export-jpeg-without-end-marker", kidney_image(no_end_marker), "end-of-image marker", written=5),
    skipped("yolo-export-jpeg-with-bytes-after-the-end", kidney_image(bytes_after_end), "end-of-image marker", written=5),
    skipped("yolo-export-zero-byte-image", kidney_image(zero_bytes), "empty image file", written=5),
    skipped("yolo-export-decompression-bomb", kidney_image(bomb), "decompression bomb", written=5),
    skipped("yolo-export-tiny-image", kidney_image(tiny), "at least 10 a side", written=5),
    skipped("yolo-export-val-image-broken", kidney_image(truncated, "val"), "end-of-image marker", written=5),
    skipped("yolo-export-nan-coordinate", kidney_label("0 nan 0.5 0.1 0.1\n"), "not finite"),
    skipped("yolo-export-inf-coordinate", kidney_label("0 0.5 0.5 inf 0.1\n"), "not finite"),
    skipped("yolo-export-coordinate-above-one", kidney_label("0 1.5 0.5 0.1 0.1\n"), "outside the image"),
    skipped("yolo-export-negative-coordinate", kidney_label("0 0.5 -0.2 0.1 0.1\n"), "outside the image"),
    skipped("yolo-export-zero-width-box", kidney_label("0 0.5 0.5 0 0.1\n"), "zero-size box"),
    skipped("yolo-export-unknown-class", kidney_label("3 0.5 0.5 0.1 0.1\n"), "class 3 is not one of"),
    skipped("yolo-export-words-in-label", kidney_label("stone 0.5 0.5 0.1 0.1\n"), "not a class number"),
    skipped("yolo-export-three-coordinates", kidney_label("0 0.5 0.5 0.1\n"), "3 coordinates"),
    skipped("yolo-export-good-line-then-bad", kidney_label("0 0.5 0.5 0.1 0.1\n0 0.5 nan 0.1 0.1\n"),
            r"line 2 .*not finite"),
    skipped("yolo-export-label-not-utf8", kidney_label("0 0.5 0.5 0.1 0.1 # Müller\n", "latin-1"), "not UTF-8"),
    skipped("yolo-export-label-missing", kidney(lambda i: kidney_files(i)[1][0].unlink()), "no label file"),
    skipped("yolo-export-orphan-label", kidney(lambda i: kidney_files(i)[0][0].unlink()), "is missing"),
    skipped("yolo-export-same-name-in-both-splits", kidney(_same_name_in_both_splits), "a second image named"),
    skipped("yolo-export-segment-odd-coordinates", kidney(_segment_recipe), "5 coordinates"),
    refused("yolo-export-every-val-image-broken", kidney(_all_val_broken),
            r"val split would be empty", "Nothing was written", "data.split"),
    refused("yolo-export-every-image-broken", kidney(_every_image_broken),
            r"every one of the 6 samples was skipped", "nothing was\\s+written"),
    refused("yolo-export-data-yaml-not-utf8", kidney(lambda i: latin1(i / "kidney" / "data.yaml", "names: [a]\n")),
            r"kidney/data.yaml: not readable as YAML text", "re-export"),
    refused("yolo-export-data-yaml-broken", kidney(lambda i: (i / "kidney" / "data.yaml").write_text("names: [a\n")),
            r"data.yaml: not readable as YAML"),
    refused("yolo-export-data-yaml-a-list", kidney(lambda i: (i / "kidney" / "data.yaml").write_text("- a\n")),
            r"data.yaml: not a YOLO data.yaml"),
    refused("yolo-export-no-val-split", kidney(_retitle(lambda spec: spec.pop("val"))), r"data.yaml: no 'val' split"),
    refused("yolo-export-class-count-differs", kidney(_retitle(lambda spec: spec.update(names=["a", "b"]))),
            r"2 classes .* lists 1", "one recipe class name per source class"),
    refused("yolo-export-split-folder-missing", kidney(_retitle(lambda spec: spec.update(val="../nowhere/images"))),
            r"split folder '../nowhere/images' not found"),
]


# ----------------------------------------------------------------------------------- box_csv


def heart(edit: Callable[[Path], None] = lambda inputs: None, rows: list[str] | None = None) -> Setup:
    def setup(inputs: Path) -> None:
        heart_boxes(inputs, rows)
        edit(inputs)

    return setup


def heart_row(row: str) -> Setup:
    """The CSV's row for JPCLN001 replaced by `row`."""

    def edit(inputs: Path) -> None:
        path = inputs / "heart" / "boxes.csv"
        lines = [line for line in path.read_text().splitlines() if ",JPCLN001," not in line]
        path.write_text("\n".join([*lines, row]) + "\n")

    return heart(edit)


def heart_image(damage: Callable[[Path], None]) -> Setup:
    return heart(lambda inputs: damage(inputs / "heart" / "images" / "JPCLN001.png"))


BOX_CSV = [
    skipped("box-csv-nan-x0", heart_row("heart,nan,209,184,176,JPCLN001,512,512,1"), r"line \d+: box is not finite"),
    skipped("box-csv-inf-width", heart_row("heart,213,209,inf,176,JPCLN001,512,512,1"), "box is not finite"),
    skipped("box-csv-zero-width", heart_row("heart,213,209,0,176,JPCLN001,512,512,1"), "w=0 .* outside"),
    skipped("box-csv-negative-width", heart_row("heart,213,209,-50,176,JPCLN001,512,512,1"), "w=-50"),
    skipped("box-csv-off-the-edge", heart_row("heart,400,209,184,176,JPCLN001,512,512,1"), "outside the 512x512"),
    skipped("box-csv-words-for-numbers", heart_row("heart,left,209,184,176,JPCLN001,512,512,1"), "box is not numbers"),
    skipped("box-csv-unknown-class", heart_row("liver,213,209,184,176,JPCLN001,512,512,1"), "class 'liver' is not"),
    skipped("box-csv-size-differs", heart_row("heart,213,209,184,176,JPCLN001,512,300,1"), "boxes are for a 512x300"),
    skipped("box-csv-size-not-numbers", heart_row("heart,213,209,184,176,JPCLN001,big,512,1"), "img_shape_x"),
    skipped("box-csv-row-without-image", heart(rows=["heart,10,10,50,50,JPCLN999,512,512,0"]), "JPCLN999.png not found"),
    skipped("box-csv-image-without-row", heart_row("heart,213,209,184,176,JPCLN005X,512,512,1"), "no row for 'JPCLN001'"),
    skipped("box-csv-text-named-png", heart_image(text_file), "not an image file", written=5),
    skipped("box-csv-zero-byte-png", heart_image(zero_bytes), "empty image file", written=5),
    skipped("box-csv-truncated-png", heart_image(truncated), "damaged image", written=5),
    skipped("box-csv-decompression-bomb", heart_image(bomb), "decompression bomb", written=5),
    refused("box-csv-not-utf8", heart(lambda i: latin1(i / "heart" / "boxes.csv", "label,x0,y0,w,h,name\n")),
            r"heart/boxes.csv: not UTF-8 text", "save the CSV as UTF-8"),
    refused("box-csv-missing-columns", heart(lambda i: (i / "heart" / "boxes.csv").write_text("label,x,y\nheart,1,2\n")),
            r"boxes.csv: missing columns \['x0', 'y0', 'w', 'h', 'name'\]", "expected label, x0"),
    refused("box-csv-ragged-row", heart(rows=["heart,1,2,3,4,JPCLN001,512,512,1,extra,more"]),
            r"boxes.csv line \d+: .*columns expected"),
    refused("box-csv-no-image-folder", heart(lambda i: (i / "heart" / "images").rename(i / "heart" / "pictures")),
            r"heart/images: image folder not found", "data.options.images"),
    refused("box-csv-every-box-bad", heart(lambda i: (i / "heart" / "boxes.csv").write_text(
        "label,x0,y0,w,h,name\n" + "".join(f"heart,0,0,0,0,{n}\n" for n in ("JPCLN001", "JPCLN002", "JPCLN003",
                                                                         "JPCLN004", "JPCLN006", "JPCLN007")))),
            "every one of the 6 samples was skipped"),
]


# ----------------------------------------------------------------------------------- mask_images


def masks(edit: Callable[[Path], None], layout: str = "per_class") -> Setup:
    def setup(inputs: Path) -> None:
        heart_masks(inputs, layout)
        edit(inputs)

    return setup


def mask_file(damage: Callable[[Path], None], organ: str = "heart") -> Setup:
    return masks(lambda inputs: damage(inputs / "heart-seg" / "masks" / organ / "JPCLN002.png"))


def _small_mask(inputs: Path) -> None:
    import cv2

    path = inputs / "heart-seg" / "masks" / "left_lung" / "JPCLN002.png"
    small = cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (256, 256))
    path.unlink()
    cv2.imwrite(str(path), small)


MASK_IMAGES = [
    skipped("masks-text-named-png", mask_file(text_file), "mask .*JPCLN002.png: not an image file", written=5),
    skipped("masks-zero-byte-mask", mask_file(zero_bytes, "right_lung"), "empty image file"),
    skipped("masks-decompression-bomb-mask", mask_file(bomb), "decompression bomb"),
    skipped("masks-truncated-mask", mask_file(truncated, "left_lung"), "mask .*JPCLN002.png: damaged image"),
    skipped("masks-mask-of-other-size", masks(_small_mask), "is 256x256 but its image is 512x512"),
    skipped("masks-mask-missing", mask_file(lambda p: p.unlink()), "no mask heart/JPCLN002"),
    skipped("masks-image-missing", masks(lambda i: (i / "heart-seg" / "images" / "JPCLN003.png").unlink()),
            "has no image"),
    skipped("masks-image-text", masks(lambda i: text_file(i / "heart-seg" / "images" / "JPCLN003.png")),
            "not an image file"),
    skipped("masks-image-truncated", masks(lambda i: truncated(i / "heart-seg" / "images" / "JPCLN003.png")),
            "damaged image"),
    skipped("masks-label-map-text", masks(lambda i: text_file(i / "heart-seg" / "masks" / "JPCLN004.png"), "label_map"),
            "mask .*JPCLN004.png: not an image file"),
    skipped("masks-label-map-bomb", masks(lambda i: bomb(i / "heart-seg" / "masks" / "JPCLN004.png"), "label_map"),
            "decompression bomb"),
    refused("masks-class-folder-missing", masks(lambda i: (i / "heart-seg" / "masks" / "heart").rename(
        i / "heart-seg" / "masks" / "hart")), r"no mask folder for \['heart'\]", "data.options.folders"),
    refused("masks-mask-folder-missing", masks(lambda i: (i / "heart-seg" / "masks").rename(i / "heart-seg" / "m")),
            r"heart-seg/masks: folder not found", "data.options.masks"),
]


# ----------------------------------------------------------------------------------- class_folders


def films(edit: Callable[[Path], None], **kwargs) -> Setup:
    def setup(inputs: Path) -> None:
        pneumonia_folders(inputs, **kwargs)
        edit(inputs)

    return setup


def film(damage: Callable[[Path], None]) -> Setup:
    return films(lambda inputs: damage(sorted((inputs / "pneumonia" / "NORMAL").iterdir())[0]))


def _copy_in_skipped_folder(inputs: Path) -> None:
    """A byte-identical copy of a NORMAL film in a folder that is no class ('BACKUP' sorts first)."""
    original = sorted((inputs / "pneumonia" / "NORMAL").iterdir())[0]
    (inputs / "pneumonia" / "BACKUP").mkdir()
    (inputs / "pneumonia" / "BACKUP" / original.name).write_bytes(original.read_bytes())


def _filed_under_both(inputs: Path) -> None:
    """A NORMAL film also filed under PNEUMONIA (another name): a conflicting label, no duplicate; neither copy is kept."""
    original = sorted((inputs / "pneumonia" / "NORMAL").iterdir())[0]
    (inputs / "pneumonia" / "PNEUMONIA" / "filed-twice.jpeg").write_bytes(original.read_bytes())


def _conflict_on_card(root: Path, stderr: str) -> None:
    """Both copies are left out and named on the card, each with the class it conflicts with; the other 5 films convert."""
    skipped_on_card("conflicting labels", written=5)(root, stderr)
    skipped = "\n".join(cards(root)[0]["skipped"])
    assert re.search(r"NORMAL/.*conflicting labels: .*also filed as 'pneumonia'", skipped), skipped
    assert re.search(r"PNEUMONIA/filed-twice\.jpeg: conflicting labels: .*also filed as 'normal'", skipped), skipped


def _all_normal_broken(inputs: Path) -> None:
    for path in (inputs / "pneumonia" / "NORMAL").iterdir():
        truncated(path)
    for path in (inputs / "pneumonia" / "PNEUMONIA").iterdir():
        zero_bytes(path)


def _one_patient(inputs: Path) -> None:
    recipe(inputs, "class_folders", "pneumonia", "classify", ["normal", "pneumonia"], split={"by": "^()"})


CLASS_FOLDERS = [
    skipped("class-folders-text-named-jpeg", film(text_file), "not an image file", written=5),
    skipped("class-folders-truncated-jpeg", film(truncated), "end-of-image marker", written=5),
    skipped("class-folders-jpeg-without-end-marker", film(no_end_marker), "end-of-image marker", written=5),
    skipped("class-folders-zero-byte", film(zero_bytes), "empty image file", written=5),
    skipped("class-folders-decompression-bomb", film(bomb), "decompression bomb", written=5),
    skipped("class-folders-copy-in-skipped-folder", films(_copy_in_skipped_folder),
            r"BACKUP/.*class 'BACKUP' is not in the recipe's classes", written=6),
    skipped("class-folders-duplicate-kept-once", films(lambda i: (i / "pneumonia" / "NORMAL" / "copy.jpeg").write_bytes(
        sorted((i / "pneumonia" / "NORMAL").iterdir())[0].read_bytes())), "byte-identical duplicate of", written=6),
    Case("class-folders-one-film-under-two-classes", convert_recipe, (r"skipped .*conflicting labels: the same picture",),
         films(_filed_under_both), code=0, check=_conflict_on_card),
    refused("class-folders-every-film-broken", films(_all_normal_broken), "every one of the 6 samples was skipped"),
    refused("class-folders-one-patient", films(_one_patient), "belong to one patient or study", "at least two"),
    refused("class-folders-no-class-folders", films(lambda i: _flatten(i)), r"pneumonia: no class folders inside"),
    refused("class-folders-no-images", films(lambda i: [p.rename(p.with_suffix(".txt"))
                                                        for p in (i / "pneumonia").rglob("*.jpeg")]),
            r"pneumonia: no images in the class folders"),
]


def _flatten(inputs: Path) -> None:
    for folder in ("NORMAL", "PNEUMONIA"):
        for path in (inputs / "pneumonia" / folder).iterdir():
            path.rename(inputs / "pneumonia" / path.name)
        (inputs / "pneumonia" / folder).rmdir()


# ----------------------------------------------------------------------------------- coco


def coco(edit: Callable[[dict], None] | None = None, after: Callable[[Path], None] = lambda inputs: None) -> Setup:
    def setup(inputs: Path) -> None:
        heart_coco(inputs, edit)
        after(inputs)

    return setup


def _annotation(key: str, value) -> Callable[[dict], None]:
    return lambda data: data["annotations"][0].update({key: value})


def _image(key: str, value) -> Callable[[dict], None]:
    return lambda data: data["images"][0].update({key: value})


COCO = [
    skipped("coco-negative-width", coco(_annotation("bbox", [213, 209, -184, 176])), "no positive width"),
    skipped("coco-zero-height", coco(_annotation("bbox", [213, 209, 184, 0])), "no positive width and height"),
    skipped("coco-nan-box", coco(_annotation("bbox", [float("nan"), 209, 184, 176])), "not finite"),
    skipped("coco-box-of-words", coco(_annotation("bbox", ["a", "b", "c", "d"])), "is not numbers"),
    skipped("coco-box-of-three", coco(_annotation("bbox", [1, 2, 3])), r"is not \[x, y, width, height\]"),
    skipped("coco-box-off-the-image", coco(_annotation("bbox", [400, 209, 184, 176])), "outside the 512x512 image"),
    skipped("coco-unknown-category", coco(lambda d: d["categories"].append({"id": 2, "name": "liver"}) or
                                          d["annotations"][0].update(category_id=2)), "category 'liver' is not"),
    skipped("coco-image-file-missing", coco(after=lambda i: (i / "coco" / "images" / "JPCLN001.png").unlink()),
            "is missing"),
    skipped("coco-image-text", coco(after=lambda i: text_file(i / "coco" / "images" / "JPCLN001.png")),
            "not an image file"),
    skipped("coco-image-bomb", coco(after=lambda i: bomb(i / "coco" / "images" / "JPCLN001.png")), "decompression bomb"),
    refused("coco-annotation-names-missing-image", coco(_annotation("image_id", 99)),
            r"annotations.json: annotation 1 names image_id 99, which is not in 'images'", "remove those annotations"),
    refused("coco-image-without-size", coco(lambda d: d["images"][0].pop("width")), r"images\[0\] lacks \['width'\]"),
    refused("coco-image-id-a-string", coco(_image("id", "one")), r"images\[0\] has \{'id': 'one'\}", "integers"),
    refused("coco-annotation-without-box", coco(lambda d: d["annotations"][0].pop("bbox")),
            r"annotations\[0\] lacks \['bbox'\]"),
    refused("coco-not-utf8", coco(after=lambda i: latin1(i / "coco" / "annotations.json", "{}")),
            r"annotations.json: not UTF-8 text", "save the JSON as UTF-8"),
    refused("coco-not-json", coco(after=lambda i: (i / "coco" / "annotations.json").write_text("{images: [")),
            r"annotations.json: not readable as JSON"),
    refused("coco-a-list", coco(after=lambda i: (i / "coco" / "annotations.json").write_text("[]")),
            r"annotations.json: not a COCO annotation file"),
    refused("coco-no-images-list", coco(lambda d: d.pop("images")), r"no 'images' list"),
]


# ----------------------------------------------------------------------------------- hdf5_volumes


def volumes(edit: Callable[[Path], None], count: int = 4) -> Setup:
    def setup(inputs: Path) -> None:
        acdc_volumes(inputs, count)
        edit(inputs)

    return setup


def volume(edit: Callable[[dict], None]) -> Setup:
    return volumes(lambda inputs: edit_volume(sorted((inputs / "acdc" / "volumes").iterdir())[0], edit))


def _nan_voxel(contents: dict) -> None:
    contents["image"][0, 10, 10] = np.nan


def _every_volume_nan(inputs: Path) -> None:
    for path in (inputs / "acdc" / "volumes").iterdir():
        edit_volume(path, _nan_voxel)


HDF5_VOLUMES = [
    skipped("hdf5-one-nan-voxel", volume(_nan_voxel), "1 NaN or infinite voxels", written=6),
    skipped("hdf5-inf-voxel", volume(lambda c: c["image"].__setitem__((1, 3, 3), np.inf)), "NaN or infinite voxels"),
    skipped("hdf5-not-hdf5", volumes(lambda i: text_file(sorted((i / "acdc" / "volumes").iterdir())[0])),
            "cannot be read as HDF5"),
    skipped("hdf5-label-missing", volume(lambda c: c.pop("label")), r"no dataset 'label'"),
    skipped("hdf5-shapes-differ", volume(lambda c: c.update(label=c["label"][:, :-1])), "differ in shape"),
    skipped("hdf5-stray-label-value", volume(lambda c: c["label"].__setitem__((0, 5, 5), 9)),
            r"label values \[9\] are not classes"),
    skipped("hdf5-two-axes", volume(lambda c: c.update(image=c["image"][0], label=c["label"][0])), "a volume has 3 axes"),
    refused("hdf5-every-volume-nan", volumes(_every_volume_nan), "every one of the 8 samples was skipped"),
    refused("hdf5-no-files", volumes(lambda i: [p.rename(p.with_suffix(".hdf")) for p in (i / "acdc" / "volumes").iterdir()]),
            r"no files match 'volumes/\*.h5'", "data.options.files"),
]


# ----------------------------------------------------------------------------------- uw_madison_gi


def gi(edit: Callable[[Path], None]) -> Setup:
    def setup(inputs: Path) -> None:
        gi_competition(inputs)
        edit(inputs)

    return setup


def _csv_lines(edit: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def apply(inputs: Path) -> None:
        path = inputs / "gi" / "train.csv"
        path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")

    return apply


def _bad_runs(lines: list[str]) -> list[str]:
    for number, line in enumerate(lines):
        if line.endswith(",stomach") is False and ",stomach," in line:
            lines[number] = line.split(",stomach,")[0] + ",stomach,5 abc"
            break
    return lines


UW_MADISON_GI = [
    skipped("gi-scan-text", gi(lambda i: text_file(gi_scans(i)[0])), "scan .*: not an image file"),
    skipped("gi-scan-bomb", gi(lambda i: bomb(gi_scans(i)[0])), "decompression bomb"),
    skipped("gi-malformed-runs", gi(_csv_lines(_bad_runs)), r"train.csv line \d+"),
    refused("gi-csv-not-utf8", gi(lambda i: latin1(i / "gi" / "train.csv", "id,class,segmentation\n")),
            r"gi/train.csv: not UTF-8 text", "save the CSV as UTF-8"),
    refused("gi-csv-wrong-columns", gi(_csv_lines(lambda lines: ["id,organ,rle", *lines[1:]])),
            r"train.csv: columns are \['id', 'organ', 'rle'\]"),
    refused("gi-unknown-organ", gi(_csv_lines(lambda lines: [*lines, "case1_day1_slice_0001,liver,"])),
            r"train.csv line \d+ .*class 'liver' is not in the recipe's classes"),
]


CASES = YOLO_EXPORT + BOX_CSV + MASK_IMAGES + CLASS_FOLDERS + COCO + HDF5_VOLUMES + UW_MADISON_GI


@parametrize(CASES)
def test_case(case, tmp_path, monkeypatch, capfd):
    run_case(case, tmp_path, monkeypatch, capfd)


def test_cases_cover_every_file_converter() -> None:
    from yolo_tools.convert.registry import CONVERTERS

    # synthetic and region_crops have no files to break (see test_bad_input_convert); nifti and dicom have
    # their own table (test_bad_input_hospital)
    converters = set(CONVERTERS) - {"synthetic", "region_crops", "nifti", "dicom"}
    tables = {"yolo_export": YOLO_EXPORT, "box_csv": BOX_CSV, "mask_images": MASK_IMAGES,
              "class_folders": CLASS_FOLDERS, "coco": COCO, "hdf5_volumes": HDF5_VOLUMES, "uw_madison_gi": UW_MADISON_GI}
    assert set(tables) == converters
    assert all(len(table) >= 5 for table in tables.values())

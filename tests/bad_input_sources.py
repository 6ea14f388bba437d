"""Small sources for the conversion bad-input tables, built from a few real files in ../shared/data.

Each builder writes one published layout under a case's inputs folder (a handful of files, never a whole
set) and returns its folder; `recipe` writes the recipe that converts it. The bad files themselves (a
text file named .jpg, a truncated JPEG, a decompression-bomb header, ...) are made by the helpers below,
so the tables read as: which source, what is broken, what the user must see.
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import yaml

from conftest import SHARED_DATA

KIDNEY = SHARED_DATA / "kidney-stones-ct"
HEART = SHARED_DATA / "heart-cxr-jsrt"
PNEUMONIA = SHARED_DATA / "pneumonia-cxr-kermany" / "train"
CARDIAC = SHARED_DATA / "cardiac-mri-acdc" / "volumes"
GI = SHARED_DATA / "gi-tract-mri-uwmadison" / "train"

HEART_NAMES = ("JPCLN001", "JPCLN002", "JPCLN003", "JPCLN004", "JPCLN006", "JPCLN007")


# ------------------------------------------------------------------------------------------ bad files


def text_file(path: Path) -> None:
    """A text file with an image's name."""
    path.write_text("this is a note, not an image\n")


def gif_file(path: Path) -> None:
    """A real GIF image with a JPEG's or PNG's name: a format Ultralytics does not train on."""
    from PIL import Image

    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(path, format="GIF")


def zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def truncated(path: Path) -> None:
    """The first half of the file: a JPEG loses its end marker, a PNG its last chunks."""
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[: len(data) // 2])


def no_end_marker(path: Path) -> None:
    """A JPEG whose last two bytes (the end-of-image marker) are cut off: it still decodes, greyed at the end."""
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[:-2])


def bytes_after_end(path: Path) -> None:
    """A whole JPEG with bytes after its end marker, which Ultralytics re-saves ("restores") when training."""
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data + b"\0" * 16)


def bomb(path: Path, side: int = 100_000) -> None:
    """A valid PNG header claiming `side` x `side` pixels (100,000: a decompression bomb Pillow refuses;
    10,000: one it only warns about, between one and two times its limit)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    if path.exists():
        path.unlink()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def tiny(path: Path) -> None:
    """A real image of 5 x 5 pixels (Ultralytics needs 10 a side)."""
    if path.exists():
        path.unlink()
    cv2.imwrite(str(path), np.full((5, 5), 128, np.uint8))


def latin1(path: Path, text: str) -> None:
    """`text` saved as Latin-1 with a non-ASCII character, so it is not UTF-8."""
    if path.exists():
        path.unlink()
    path.write_bytes(("# patient Müller\n" + text).encode("latin-1"))


def _copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


# ------------------------------------------------------------------------------------------ recipes


def recipe(inputs: Path, converter: str, folder: str, task: str, classes: list[str], options: dict | None = None,
           split: dict | None = None, name: str = "case", metadata: dict | None = None, **extra) -> Path:
    """A recipe converting `inputs/folder` (the data root is `inputs`); returns its path."""
    model = {"segment": "yolov8n-seg.yaml", "classify": "yolov8n-cls.yaml"}.get(task, "yolov8n.yaml")
    data = {"source": {"kind": "local", "path": folder}, "converter": converter, "options": options or {},
            "split": split or {"by": "file", "val": 0.4, "seed": 0}}
    if metadata:
        data["metadata"] = metadata
    body = {"name": name, "task": task, "data": data, "classes": classes, "model": model, **extra}
    path = inputs / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def convert_recipe(inputs: Path) -> list[str]:
    return ["convert", str(inputs / "case.yaml")]


# ------------------------------------------------------------------------------------------ sources


def kidney_export(inputs: Path, train: int = 4, val: int = 2) -> Path:
    """A YOLO export as Roboflow publishes it: data.yaml, train/ and valid/ with images and labels."""
    root = inputs / "kidney"
    for split, folder, count in (("train", "train", train), ("val", "valid", val)):
        labels = sorted((KIDNEY / folder / "labels").glob("*.txt"))
        chosen = [p for p in labels if p.read_text().strip()][:count]
        for label in chosen:
            image = KIDNEY / folder / "images" / f"{label.stem}.jpg"
            _copy(image, root / folder / "images" / image.name)
            _copy(label, root / folder / "labels" / label.name)
    spec = {"names": ["Tas_Var"], "nc": 1, "train": "../train/images", "val": "../valid/images"}
    (root / "data.yaml").write_text(yaml.safe_dump(spec))
    recipe(inputs, "yolo_export", "kidney", "detect", ["stone"], split={"by": "source"})
    return root


def kidney_files(inputs: Path, split: str = "train") -> tuple[list[Path], list[Path]]:
    """The export's images and label files of one split, sorted (built by `kidney_export`)."""
    folder = inputs / "kidney" / ("valid" if split == "val" else split)
    return sorted((folder / "images").iterdir()), sorted((folder / "labels").iterdir())


def heart_boxes(inputs: Path, rows: list[str] | None = None) -> Path:
    """Six JSRT images and a box CSV with one heart box each (pixels, RSNA style)."""
    root = inputs / "heart"
    table = (HEART / "heart_boxes.csv").read_text().splitlines()
    for name in HEART_NAMES:
        _copy(HEART / "images" / f"{name}.png", root / "images" / f"{name}.png")
    kept = [table[0]] + [line for line in table[1:] if line.split(",")[5] in HEART_NAMES]
    (root / "boxes.csv").write_text("\n".join(kept + (rows or [])) + "\n")
    recipe(inputs, "box_csv", "heart", "detect", ["heart"], options={"csv": "boxes.csv"})
    return root


def heart_masks(inputs: Path, layout: str = "per_class") -> Path:
    """Six JSRT images with their heart and lung masks (per-class folders, or one label map each)."""
    root = inputs / "heart-seg"
    organs = ["heart", "left_lung", "right_lung"]
    for name in HEART_NAMES:
        _copy(HEART / "images" / f"{name}.png", root / "images" / f"{name}.png")
        if layout == "per_class":
            for organ in organs:
                _copy(HEART / "masks" / organ / f"{name}.png", root / "masks" / organ / f"{name}.png")
        else:
            label_map = np.zeros((512, 512), np.uint8)
            for value, organ in enumerate(organs, 1):
                label_map[cv2.imread(str(HEART / "masks" / organ / f"{name}.png"), cv2.IMREAD_GRAYSCALE) > 0] = value
            (root / "masks").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "masks" / f"{name}.png"), label_map)
    options = {"min_area": 50} if layout == "per_class" else {"layout": "label_map"}
    recipe(inputs, "mask_images", "heart-seg", "segment", organs, options=options)
    return root


def pneumonia_folders(inputs: Path, per_class: int = 3) -> Path:
    """A few chest films per class folder (NORMAL, PNEUMONIA), as the Kermany set is published."""
    root = inputs / "pneumonia"
    for folder in ("NORMAL", "PNEUMONIA"):
        for image in sorted((PNEUMONIA / folder).glob("*.jpeg"))[:per_class]:
            _copy(image, root / folder / image.name)
    recipe(inputs, "class_folders", "pneumonia", "classify", ["normal", "pneumonia"])
    return root


def heart_coco(inputs: Path, edit: Callable[[dict], None] | None = None) -> Path:
    """Four JSRT images with their heart boxes as a COCO detection file (`annotations.json`)."""
    root = inputs / "coco"
    table = [line.split(",") for line in (HEART / "heart_boxes.csv").read_text().splitlines()[1:]]
    boxes = {row[5]: [float(v) for v in row[1:5]] for row in table}
    data: dict = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "heart"}]}
    for number, name in enumerate(HEART_NAMES[:4], 1):
        _copy(HEART / "images" / f"{name}.png", root / "images" / f"{name}.png")
        data["images"].append({"id": number, "file_name": f"{name}.png", "width": 512, "height": 512})
        data["annotations"].append({"id": number, "image_id": number, "category_id": 1, "bbox": boxes[name],
                                    "area": boxes[name][2] * boxes[name][3], "iscrowd": 0})
    if edit:
        edit(data)
    (root / "annotations.json").write_text(json.dumps(data))
    recipe(inputs, "coco", "coco", "detect", ["heart"])
    return root


def acdc_volumes(inputs: Path, count: int = 4, slices: int = 2) -> Path:
    """A few ACDC volumes cut down to `slices` slices each (HDF5: image float32, label uint8)."""
    import h5py

    root = inputs / "acdc" / "volumes"
    root.mkdir(parents=True)
    for path in sorted(CARDIAC.glob("*_frame01.h5"))[:count]:
        with h5py.File(path, "r") as source, h5py.File(root / path.name, "w") as target:
            middle = source["image"].shape[0] // 2
            for key in ("image", "label"):
                target[key] = source[key][middle : middle + slices]
    recipe(inputs, "hdf5_volumes", "acdc", "segment", ["right_ventricle", "myocardium", "left_ventricle"],
           options={"files": "volumes/*.h5"}, split={"by": r"^(patient\d+)_", "val": 0.25, "seed": 0})
    return root


def edit_volume(path: Path, edit: Callable[[dict], None]) -> None:
    """Rewrite an HDF5 volume with `edit` applied to its {key: array} contents."""
    import h5py

    with h5py.File(path, "r") as handle:
        contents = {key: np.asarray(handle[key]) for key in handle}
    edit(contents)
    path.unlink()
    with h5py.File(path, "w") as handle:
        for key, value in contents.items():
            handle[key] = value


def gi_competition(inputs: Path, cases: int = 4) -> Path:
    """Real UW-Madison scans (16-bit; this copy has two, used in turn) as `cases` patients, a 'stomach' square each."""
    from yolo_tools.convert.uw_madison_gi import GISlice, write

    root = inputs / "gi"
    scans = sorted(GI.glob("case*/case*_day*/scans/*.png"))
    slices = []
    for number in range(cases):
        scan = scans[number % len(scans)]
        pixels = cv2.imread(str(scan), cv2.IMREAD_UNCHANGED)
        mask = np.zeros(pixels.shape[:2], np.uint8)
        mask[40:90, 50:110] = 1
        slices.append(GISlice(f"case{number + 1}_day1_slice_0001", pixels, {"stomach": mask}))
    write(root, slices)
    recipe(inputs, "uw_madison_gi", "gi", "segment", ["large_bowel", "small_bowel", "stomach"],
           split={"by": r"^(case\d+)_", "val": 0.25, "seed": 0})
    return root


def gi_scans(inputs: Path) -> list[Path]:
    return sorted((inputs / "gi" / "train").glob("case*/case*_day*/scans/*.png"))


# ------------------------------------------------------------------------------------------ checks


def cards(root: Path) -> list[dict]:
    """Every dataset card the case wrote (under datasets/ or a convert destination)."""
    return [json.loads(p.read_text()) for p in sorted(root.rglob("card.json")) if "in" not in p.relative_to(root).parts[:1]]


def skipped_on_card(*patterns: str, written: int | None = None) -> Callable[[Path, str], None]:
    """A case check: the card lists a skip matching each pattern (and `written` images, when given)."""
    import re

    def check(root: Path, stderr: str) -> None:
        found = cards(root)
        assert len(found) == 1, f"expected one dataset card, found {len(found)}"
        skipped = "\n".join(found[0]["skipped"])
        for pattern in patterns:
            assert re.search(pattern, skipped, re.IGNORECASE), f"/{pattern}/ not on the card's skips:\n{skipped}"
        if written is not None:
            counts = found[0]["counts"]
            total = sum(split.get("images", 0) for split in counts.values()) if "images" in str(counts) else sum(
                sum(split.values()) for split in counts.values())
            assert total == written, f"{total} images written, expected {written}: {counts}"

    return check

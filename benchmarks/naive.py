"""Straightforward reference implementations, timed as the baselines of the conversion benchmarks.

Each does the same job as the workbench's converter the way a short, plain script would: per file, per
label line, per run or per pixel, in Python. They are deliberately not tuned. The kidney and run-length
baselines are checked for the same output as the workbench in the smoke test (tests/test_benchmarks.py);
the heart box baseline gave the same label lines and pixels as `box_csv` when checked by hand (the
workbench stores the grey image as 3 equal channels, the script as one); the mask and volume baselines
trace outer outlines only (the workbench also keeps holes as keyhole cuts), so their labels can differ in
those details while the work is the same in kind. Where the workbench does more than the bare script
(checks every image, keeps the published masks for scoring), a second baseline does that too, so the
benchmark shows both what the extra work costs and how the same work compares.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import yaml

# ------------------------------------------------------------------ kidney: Roboflow YOLOv8 export


def _checked_bytes(image: Path) -> bytes:
    """An image file's bytes after the checks Ultralytics' dataset check makes (PIL verify, at least 10 px
    a side, a JPEG's end-of-image marker), the way a careful plain script would add them."""
    import io

    from PIL import Image

    data = image.read_bytes()
    with Image.open(io.BytesIO(data)) as opened:
        size, kind = opened.size, opened.format
        opened.verify()
    if min(size) < 10 or (kind == "JPEG" and not data.endswith(b"\xff\xd9")):
        raise ValueError(f"{image}: unusable image")
    return data


def kidney_export(src: str, dst: str, val: float = 0.2, seed: int = 0, gap_minutes: float = 10.0,
                  check_images: bool = False) -> dict:
    """What `yolo_tools convert recipes/kidney.yaml` does, as a plain script: read data.yaml, parse and
    check every label line, group slices into examinations by the scanner time stamp in the DICOM-UID file
    name (a new examination after a gap of `gap_minutes`), send a seeded 20 % of examinations to val, copy
    the images and write the labels in YOLO layout with a data.yaml. `check_images`: each image checked
    as the workbench checks it (`_checked_bytes`) and written from the bytes read."""
    src_path, dst_path = Path(src), Path(dst)
    spec = yaml.safe_load((src_path / "data.yaml").read_text())
    names = spec["names"]
    n_classes = len(names)
    items = []  # (image path, stem, suffix, label lines)
    for key in ("train", "val"):
        images = src_path / spec[key].removeprefix("../")
        labels = images.parent / "labels"
        for file_name in sorted(os.listdir(images)):
            stem, suffix = os.path.splitext(file_name)
            lines = []
            label_file = labels / (stem + ".txt")
            if not label_file.is_file():
                continue
            with open(label_file) as handle:
                for line in handle:
                    parts = line.split()
                    if not parts:
                        continue
                    class_id = int(parts[0])
                    coords = [float(p) for p in parts[1:]]
                    if not 0 <= class_id < n_classes or len(coords) != 4 or min(coords) < 0 or max(coords) > 1:
                        raise ValueError(f"{label_file}: bad label line {line!r}")
                    lines.append(line.strip())
            items.append((images / file_name, stem, suffix.lower(), lines))

    stamped = sorted((int(re.split(r"[-.]", item[1])[6][:18]), index) for index, item in enumerate(items))
    study_of, study, previous = {}, 0, None
    for tick, index in stamped:
        if previous is not None and tick - previous > gap_minutes * 60 * 10**7:
            study += 1
        study_of[index] = study
        previous = tick
    studies = sorted(set(study_of.values()))
    random.Random(seed).shuffle(studies)
    val_studies = set(studies[: round(len(studies) * val)])

    for split in ("train", "val"):
        (dst_path / "images" / split).mkdir(parents=True, exist_ok=True)
        (dst_path / "labels" / split).mkdir(parents=True, exist_ok=True)
    for index, (image, stem, suffix, lines) in enumerate(items):
        split = "val" if study_of[index] in val_studies else "train"
        if check_images:
            (dst_path / "images" / split / (stem + suffix)).write_bytes(_checked_bytes(image))
        else:
            shutil.copyfile(image, dst_path / "images" / split / (stem + suffix))
        with open(dst_path / "labels" / split / (stem + ".txt"), "w") as handle:
            handle.write("".join(line + "\n" for line in lines))
    data_yaml = {"train": "images/train", "val": "images/val", "names": dict(enumerate(names))}
    (dst_path / "data.yaml").write_text(yaml.safe_dump(data_yaml, sort_keys=False))
    return {"items": len(items)}


# ------------------------------------------------------------------------- run-length (Kaggle) masks


def rle_decode_per_run(rle: str, shape: tuple[int, int]) -> np.ndarray:
    """Pure Python: split the string, set the pixels of each run one by one, then make an array."""
    height, width = shape
    pixels = [0] * (height * width)
    values = rle.split()
    for start, length in zip(values[0::2], values[1::2]):
        first = int(start) - 1
        for pixel in range(first, first + int(length)):
            pixels[pixel] = 1
    return np.array(pixels, dtype=np.uint8).reshape(height, width)


def rle_encode_per_pixel(mask: np.ndarray) -> str:
    """Pure Python: walk the pixels in row-major order and write `start length` at each run's end."""
    out = []
    start = None
    pixels = mask.ravel().tolist()
    for index, value in enumerate(pixels):
        if value and start is None:
            start = index
        elif not value and start is not None:
            out += [str(start + 1), str(index - start)]
            start = None
    if start is not None:
        out += [str(start + 1), str(len(pixels) - start)]
    return " ".join(out)


def rle_decode_kaggle(rle: str, shape: tuple[int, int]) -> np.ndarray:
    """The decoder most competition notebooks copy: NumPy arrays, one slice assignment per run."""
    height, width = shape
    values = rle.split()
    starts, lengths = (np.asarray(x, dtype=int) for x in (values[0:][::2], values[1:][::2]))
    starts -= 1
    ends = starts + lengths
    image = np.zeros(height * width, dtype=np.uint8)
    for lo, hi in zip(starts, ends):
        image[lo:hi] = 1
    return image.reshape(height, width)


def rle_encode_kaggle(mask: np.ndarray) -> str:
    """The encoder most competition notebooks copy: NumPy run edges."""
    pixels = np.concatenate([[0], mask.ravel(), [0]])
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    return " ".join(str(x) for x in runs)


# ------------------------------------------------------------- other published formats (one recipe each)


def _val_groups(groups: list[str], val: float, seed: int) -> set[str]:
    """A seeded `val` share of the distinct groups (patients, or files when nothing better is known)."""
    distinct = sorted(set(groups))
    random.Random(seed).shuffle(distinct)
    return set(distinct[: max(1, round(len(distinct) * val))])


def _yolo_layout(dst: Path, names: list[str]) -> None:
    for split in ("train", "val"):
        (dst / "images" / split).mkdir(parents=True, exist_ok=True)
        (dst / "labels" / split).mkdir(parents=True, exist_ok=True)
    data_yaml = {"train": "images/train", "val": "images/val", "names": dict(enumerate(names))}
    (dst / "data.yaml").write_text(yaml.safe_dump(data_yaml, sort_keys=False))


def _percentile_png(image: Path, target: Path, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Decode an image, stretch its grey values between two of its percentiles to 0-255 and write it as
    PNG (what the heart recipes' `preprocess.intensity: percentile` asks for); returns the decoded pixels."""
    import cv2

    pixels = cv2.imread(str(image), cv2.IMREAD_UNCHANGED)
    grey = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY) if pixels.ndim == 3 else pixels
    lo, hi = np.percentile(grey, (low, high))
    scaled = (grey.astype(np.float32) - lo) * (255.0 / max(float(hi - lo), 1e-6))
    cv2.imwrite(str(target), np.clip(scaled, 0, 255).round().astype(np.uint8))
    return pixels


def heart_boxes(src: str, dst: str, val: float = 0.2, seed: int = 0) -> dict:
    """recipes/heart.yaml (box_csv) as a plain script: read the pixel boxes of heart_boxes.csv, decode each
    image (its size scales the boxes), stretch it between its 0.5th and 99.5th percentiles and write it
    as PNG, turn the boxes into normalised YOLO lines, split by file."""
    import csv

    src_path, dst_path = Path(src), Path(dst)
    rows: dict[str, list[dict]] = {}
    with open(src_path / "heart_boxes.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            rows.setdefault(row["name"], []).append(row)
    images = sorted(p for p in (src_path / "images").iterdir() if p.suffix.lower() == ".png")
    val_names = _val_groups([p.stem for p in images], val, seed)
    _yolo_layout(dst_path, ["heart"])
    for image in images:
        split = "val" if image.stem in val_names else "train"
        pixels = _percentile_png(image, dst_path / "images" / split / f"{image.stem}.png")
        height, width = pixels.shape[:2]
        lines = []
        for row in rows[image.stem]:
            x0, y0, w, h = (float(row[k]) for k in ("x0", "y0", "w", "h"))
            sx, sy = float(row["img_shape_x"]) / width, float(row["img_shape_y"]) / height
            box_w, box_h = width * sx, height * sy
            if w <= 0 or h <= 0 or x0 < 0 or y0 < 0 or x0 + w > box_w or y0 + h > box_h:
                raise ValueError(f"{image.stem}: box outside the image")
            lines.append(f"0 {(x0 + w / 2) / box_w:.6f} {(y0 + h / 2) / box_h:.6f} {w / box_w:.6f} {h / box_h:.6f}")
        (dst_path / "labels" / split / f"{image.stem}.txt").write_text("".join(f"{line}\n" for line in lines))
    return {"items": len(images)}


def pneumonia_folders(src: str, dst: str, pattern: str = r"^(person\d+|IM-\d+|NORMAL2-IM-\d+)",
                      val: float = 0.2, seed: int = 0) -> dict:
    """recipes/pneumonia.yaml (class_folders) as a plain script: hash every file to drop byte-identical
    copies, check it decodes, group by patient number, split patients, copy into <split>/<class>/."""
    import hashlib

    import cv2

    root = Path(src) / "train"
    seen: set[str] = set()
    kept = []  # (path, class, patient)
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) is None:
                continue
            kept.append((path, folder.name.lower(), re.search(pattern, path.stem).group(1)))
    val_patients = _val_groups([patient for _, _, patient in kept], val, seed)
    dst_path = Path(dst)
    for split in ("train", "val"):
        for name in ("normal", "pneumonia"):
            (dst_path / split / name).mkdir(parents=True, exist_ok=True)
    for path, name, patient in kept:
        split = "val" if patient in val_patients else "train"
        shutil.copyfile(path, dst_path / split / name / path.name)
    return {"items": len(kept)}


def _outline_lines(mask: np.ndarray, class_id: int, min_area: float) -> list[str]:
    """One YOLO-seg line per outer outline of a binary mask (cv2.findContours), specks dropped."""
    import cv2

    height, width = mask.shape
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    lines = []
    for contour in contours:
        if len(contour) < 3 or cv2.contourArea(contour) < min_area:
            continue
        points = contour[:, 0, :] / np.array([width, height], dtype=np.float64)
        lines.append(f"{class_id} " + " ".join(f"{v:.6f}" for v in points.ravel()))
    return lines


def _save_masks(masks: list[np.ndarray], target: Path) -> None:
    """Per-class masks as one 16-bit PNG, bit c set where class c is (the layout the workbench keeps for scoring)."""
    import cv2

    target.parent.mkdir(parents=True, exist_ok=True)
    packed = np.zeros(masks[0].shape, np.uint16)
    for class_id, mask in enumerate(masks):
        packed |= mask.astype(np.uint16) << class_id
    cv2.imwrite(str(target), packed)


def heart_masks(src: str, dst: str, classes: tuple[str, ...] = ("heart", "left_lung", "right_lung"),
                min_area: float = 50, val: float = 0.2, seed: int = 0, keep_masks: bool = False) -> dict:
    """recipes/heart-seg.yaml (mask_images) as a plain script: for each image read one 0/255 mask per
    class, trace its outlines with cv2.findContours, split by file, write the image percentile-stretched
    as PNG (as heart_boxes) and the lines. `keep_masks`: the masks also stored for scoring (`_save_masks`)."""
    import cv2

    src_path, dst_path = Path(src), Path(dst)
    images = sorted((src_path / "images").glob("*.png"))
    val_names = _val_groups([p.stem for p in images], val, seed)
    _yolo_layout(dst_path, list(classes))
    for image in images:
        lines, masks = [], []
        for class_id, name in enumerate(classes):
            mask = cv2.imread(str(src_path / "masks" / name / image.name), cv2.IMREAD_GRAYSCALE) > 0
            lines += _outline_lines(mask, class_id, min_area)
            masks.append(mask)
        split = "val" if image.stem in val_names else "train"
        if keep_masks:
            _save_masks(masks, dst_path / "masks" / split / f"{image.stem}.png")
        _percentile_png(image, dst_path / "images" / split / f"{image.stem}.png")
        (dst_path / "labels" / split / f"{image.stem}.txt").write_text("".join(f"{line}\n" for line in lines))
    return {"items": len(images)}


def cardiac_volumes(src: str, dst: str, label_values: tuple[int, ...] = (1, 2, 3), min_area: float = 4,
                    low: float = 0.5, high: float = 99.5, val: float = 0.2, seed: int = 0,
                    keep_masks: bool = False) -> dict:
    """recipes/cardiac.yaml (hdf5_volumes) as a plain script: read each volume, map it to 8 bits between
    its 0.5th and 99.5th percentiles, write every slice as PNG with the outlines of each label value.
    `keep_masks`: each slice's label masks also stored for scoring (`_save_masks`)."""
    import cv2
    import h5py

    src_path, dst_path = Path(src), Path(dst)
    files = sorted((src_path / "volumes").glob("*.h5"))
    val_patients = _val_groups([f.stem.split("_")[0] for f in files], val, seed)
    _yolo_layout(dst_path, [str(v) for v in label_values])
    count = 0
    for path in files:
        with h5py.File(path, "r") as handle:
            image, label = np.asarray(handle["image"]), np.asarray(handle["label"])
        lo, hi = np.percentile(image, (low, high))
        pixels = np.clip((image - lo) / max(hi - lo, 1e-12) * 255, 0, 255).astype(np.uint8)
        split = "val" if path.stem.split("_")[0] in val_patients else "train"
        for index in range(image.shape[0]):
            name = f"{path.stem}_s{index:03d}"
            cv2.imwrite(str(dst_path / "images" / split / f"{name}.png"), pixels[index])
            lines, masks = [], []
            for class_id, value in enumerate(label_values):
                masks.append(label[index] == value)
                lines += _outline_lines(masks[-1], class_id, min_area)
            if keep_masks:
                _save_masks(masks, dst_path / "masks" / split / f"{name}.png")
            (dst_path / "labels" / split / f"{name}.txt").write_text("".join(f"{line}\n" for line in lines))
            count += 1
    return {"items": count}

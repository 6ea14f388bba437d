"""Straightforward reference implementations, timed as the baselines of the conversion benchmarks.

Each does the same job as the workbench's converter the way a short, plain script would: per file, per
label line, per run or per pixel, in Python. They are deliberately not tuned, and they are checked for
the same output in the smoke test (tests/test_benchmarks.py), so a ratio compares equal work.
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


def kidney_export(src: str, dst: str, val: float = 0.2, seed: int = 0, gap_minutes: float = 10.0) -> dict:
    """What `yolo_tools convert recipes/kidney.yaml` does, as a plain script: read data.yaml, parse and
    check every label line, group slices into examinations by the scanner time stamp in the DICOM-UID file
    name (a new examination after a gap of `gap_minutes`), send a seeded 20 % of examinations to val, copy
    the images and write the labels in YOLO layout with a data.yaml."""
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

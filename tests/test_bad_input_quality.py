"""Bad input to colour-coded masks, tiles, sliced inference and official weights: one clear message each."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from bad_input import Case, parametrize, run_case

COLOURS = "name: organs\ntask: segment\ndata:\n  source: {kind: local, path: organs}\n  converter: mask_images\n  options: {layout: colours, colours: %s}\n  split: {by: file, val: 0.5}\nclasses: [bowel, stomach]\nmodel: %s\n"
EXPORT = "name: stones\ntask: %s\ndata:\n  source: {kind: local, path: export}\n  converter: yolo_export\n  options: {tiles: %s}\n  split: {by: file, val: 0.5}\nclasses: [stone]\nmodel: %s\n"


def _organs(colours: str, model: str = "yolov8n-seg.yaml", extra: str = ""):
    def setup(inputs: Path) -> None:
        for folder in ("images", "masks"):
            (inputs / "organs" / folder).mkdir(parents=True)
        cv2.imwrite(str(inputs / "organs" / "images" / "a.png"), np.zeros((32, 32), np.uint8))
        cv2.imwrite(str(inputs / "organs" / "masks" / "a.png"), np.zeros((32, 32, 3), np.uint8))
        (inputs / "organs.yaml").write_text(COLOURS % (colours, model) + extra)

    return setup


def _export(task: str, tiles: str, model: str):
    def setup(inputs: Path) -> None:
        for split in ("train", "valid"):
            (inputs / "export" / split / "images").mkdir(parents=True)
            (inputs / "export" / split / "labels").mkdir(parents=True)
            for index in range(2):
                cv2.imwrite(str(inputs / "export" / split / "images" / f"{split}{index}.png"), np.zeros((64, 64), np.uint8))
                (inputs / "export" / split / "labels" / f"{split}{index}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
        (inputs / "export" / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnames: [stone]\n")
        (inputs / "stones.yaml").write_text(EXPORT % (task, tiles, model))

    return setup


CASES: list[Case] = [
    Case(
        "colours-missing-a-class",
        lambda i: ["convert", str(i / "organs.yaml")],
        ("organs.yaml", r"data\.options\.colours", r"missing \['stomach'\]", r"one \[R, G, B\] per class"),
        _organs("{bowel: [255, 255, 0]}"),
    ),
    Case(
        "colours-channel-out-of-range",
        lambda i: ["convert", str(i / "organs.yaml")],
        ("organs.yaml", r"data\.options\.colours\.stomach\.1", "less than or equal to 255"),
        _organs("{bowel: [255, 255, 0], stomach: [255, 300, 0]}"),
    ),
    Case(
        "official-weights-of-another-task",
        lambda i: ["convert", str(i / "organs.yaml")],
        ("organs.yaml", "model", "yolov8n.pt", "does not fit task 'segment'", "-seg"),
        _organs("{bowel: [255, 255, 0], stomach: [255, 0, 0]}", "yolov8n.pt"),
    ),
    Case(
        "model-fallback-not-a-yes-or-no",
        lambda i: ["convert", str(i / "organs.yaml")],
        ("organs.yaml", "model_fallback", "boolean"),
        _organs("{bowel: [255, 255, 0], stomach: [255, 0, 0]}", "yolov8n-seg.pt", "model_fallback: sometimes\n"),
    ),
    Case(
        "tiles-overlap-out-of-range",
        lambda i: ["convert", str(i / "stones.yaml")],
        ("stones.yaml", r"data\.options\.tiles\.overlap", "less than 1"),
        _export("detect", "{size: 320, overlap: 1.5}", "yolov8n.yaml"),
    ),
    Case(
        "tiles-for-segmentation",
        lambda i: ["convert", str(i / "stones.yaml")],
        ("stones.yaml", r"data\.options\.tiles cuts detection boxes", "remove it"),
        _export("segment", "{size: 320}", "yolov8n-seg.yaml"),
    ),
    Case(
        "tiles-larger-than-the-images",
        lambda i: ["convert", str(i / "stones.yaml")],
        ("stones.yaml", r"data\.options\.tiles\.size 320 is larger than the training image .*\(64 x 64 px\)", "at most 64"),
        _export("detect", "{size: 320}", "yolov8n.yaml"),
    ),
    Case(
        "tiles-size-zero",
        lambda i: ["convert", str(i / "stones.yaml")],
        ("stones.yaml", r"data\.options\.tiles\.size", "greater than or equal to 32"),
        _export("detect", "{size: 0}", "yolov8n.yaml"),
    ),
    Case(
        "slice-zero",
        lambda i: ["predict", str(i / "run"), str(i), "slice=0"],
        ("slice=0", "at least 32 pixels"),
    ),
    Case(
        "slice-overlap-one",
        lambda i: ["evaluate", str(i / "run"), "slice=320", "slice_overlap=1"],
        ("slice_overlap=1", r"up to \(not including\) 1"),
    ),
    Case(
        "slice-overlap-without-slice",
        lambda i: ["evaluate", str(i / "run"), "slice_overlap=0.3"],
        ("slice_overlap=0.3", "only sliced inference uses it", "slice=SIZE"),
    ),
    Case(
        "slice-too-small",
        lambda i: ["evaluate", str(i / "run"), "slice=8"],
        ("slice=8", "at least 32 pixels"),
    ),
    Case(
        "slice-overlap-not-a-number",
        lambda i: ["predict", str(i / "run"), str(i), "slice=320", "slice_overlap=lots"],
        ("slice_overlap=lots", "a fraction"),
    ),
]


@parametrize(CASES)
def test_case(case, tmp_path, monkeypatch, capfd):
    run_case(case, tmp_path, monkeypatch, capfd)

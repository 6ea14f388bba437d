"""Inference: images/s of the workbench's predict against plain Ultralytics on the same images and weights,
and of ONNX Runtime against PyTorch on CPU; batch sizes 1 and 16.

    nice -n 5 .venv/bin/python -m benchmarks.inference                 # imgsz 320, 32 real kidney slices
    nice -n 5 .venv/bin/python -m benchmarks.inference --imgsz 640 --images 64

Weights: a YOLOv8n trained here from scratch (yolov8n.yaml, 1 epoch on a slice of the kidney set; speed does
not depend on accuracy, and nothing is downloaded), kept under the benchmark work folder. Images: the first
validation slices of the converted kidney set (640 x 640 JPEG). Every case loads the model, predicts every
image and consumes the results; the cases take turns within each round, after one warm-up round.

Comparisons (baseline / candidate; > 1 means the candidate is faster):
- model path: `yolo_tools.engine.predict` (what `yolo_tools predict` streams) vs `YOLO(w).predict(stream=True)`;
- command: `pipeline.predict` (annotated images + predictions.csv + predictions.json) vs
  `YOLO(w).predict(save=True)` (annotated images only), i.e. the whole `yolo_tools predict` command;
- ONNX Runtime (weights exported by `yolo_tools export format=onnx`, one static export per batch size) vs
  PyTorch, both through the workbench's predict path on CPU.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from benchmarks import common

TOPIC = "inference"
TINY_TRAIN = {"epochs": 1, "imgsz": 160, "fraction": 0.02, "batch": 8, "workers": 0, "plots": False,
              "val": False, "device": "cpu"}


def train_tiny(name: str) -> dict[str, Any]:
    """Child case: a YOLOv8n from scratch, one epoch on ~19 kidney slices; returns where best.pt is."""
    from yolo_tools import pipeline

    run_dir, _ = pipeline.train_recipe(common.ROOT / "recipes" / "kidney.yaml", dict(TINY_TRAIN), name=name)
    return {"weights": str(run_dir / "weights" / "best.pt")}


def tiny_weights(work: Path) -> Path:
    """The benchmark's own weights, trained once and reused (runs under the work folder)."""
    weights = work / "runs" / "kidney" / "bench-tiny" / "weights" / "best.pt"
    if not weights.is_file():
        print("training tiny weights (yolov8n.yaml, 1 epoch, imgsz 160) ...")
        shutil.rmtree(weights.parent.parent, ignore_errors=True)
        common.in_subprocess("benchmarks.inference:train_tiny", {"name": "bench-tiny"})
    return weights


def bench_images(work: Path, count: int) -> Path:
    """The first `count` validation slices of the converted kidney set, copied into their own folder."""
    from yolo_tools.conversion import dataset_dir
    from yolo_tools.recipe import load_recipe

    source = dataset_dir(load_recipe(common.ROOT / "recipes" / "kidney.yaml")) / "images" / "val"
    images = sorted(source.iterdir())[:count]
    if len(images) < count:
        raise RuntimeError(f"{source}: {len(images)} images, {count} wanted")
    folder = work / "inference" / f"images-{count}"
    if sorted(p.name for p in folder.glob("*")) != [p.name for p in images]:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for image in images:
            shutil.copyfile(image, folder / image.name)
    return folder


def onnx_weights(weights: Path, imgsz: int, batch: int) -> Path:
    """`yolo_tools export <weights> format=onnx imgsz=.. batch=..`, kept as bench-b<batch>-<imgsz>.onnx."""
    target = weights.with_name(f"bench-b{batch}-{imgsz}.onnx")
    if not target.is_file():
        from yolo_tools import pipeline

        exported = pipeline.export(weights, {"format": "onnx", "imgsz": imgsz, "batch": batch})
        exported.rename(target)
    return target


def _workbench_stream(weights: Path, images: Path, batch: int, imgsz: int) -> dict[str, Any]:
    from yolo_tools import engine

    count = sum(1 for _ in engine.predict(weights, str(images), {"batch": batch, "imgsz": imgsz, "device": "cpu"}))
    return {"images": count}


def _plain_stream(weights: Path, images: Path, batch: int, imgsz: int) -> dict[str, Any]:
    from ultralytics import YOLO

    results = YOLO(str(weights)).predict(str(images), batch=batch, imgsz=imgsz, device="cpu", stream=True,
                                         verbose=False)
    return {"images": sum(1 for _ in results)}


def _workbench_command(weights: Path, images: Path, batch: int, imgsz: int, out: Path) -> dict[str, Any]:
    from yolo_tools import pipeline

    shutil.rmtree(out, ignore_errors=True)
    _, _, count = pipeline.predict(weights, str(images), out, {"batch": batch, "imgsz": imgsz, "device": "cpu"})
    return {"images": count}


def _plain_command(weights: Path, images: Path, batch: int, imgsz: int, out: Path) -> dict[str, Any]:
    from ultralytics import YOLO

    shutil.rmtree(out, ignore_errors=True)
    results = YOLO(str(weights)).predict(str(images), batch=batch, imgsz=imgsz, device="cpu", save=True,
                                         project=str(out.parent), name=out.name, exist_ok=True, verbose=False)
    return {"images": len(results)}


def run(repeats: int | None = None, quick: bool = False, imgsz: int = 320, count: int = 32,
        batches: tuple[int, ...] = (1, 16), results: Path | None = None, argv: list[str] | None = None) -> dict:
    repeats = repeats or (1 if quick else 5)
    if quick:
        count, batches = min(count, 4), tuple(min(b, 4) for b in batches)
    work = common.work_dir()
    common.isolate_outputs(work)
    from yolo_tools.conversion import prepare
    from yolo_tools.recipe import load_recipe

    prepare(load_recipe(common.ROOT / "recipes" / "kidney.yaml"))
    weights = tiny_weights(work)
    images = bench_images(work, count)
    out = work / "inference" / "out"
    payload = common.header(TOPIC, argv, {"repeats": repeats, "imgsz": imgsz, "images": count,
                                          "batches": list(batches), "weights": "yolov8n.yaml trained 1 epoch here",
                                          "device": "cpu", "quick": quick})
    cases, comparisons = {}, []
    for batch in batches:
        onnx = onnx_weights(weights, imgsz, batch)
        names = {
            "stream": (f"workbench predict path, batch {batch}", f"plain YOLO.predict(stream), batch {batch}"),
            "command": (f"yolo_tools predict command, batch {batch}", f"plain YOLO.predict(save), batch {batch}"),
            # PyTorch through the workbench's predict path is the baseline of the ONNX Runtime case.
            "onnx": (f"ONNX Runtime CPU, batch {batch}", f"workbench predict path, batch {batch}"),
        }
        group = {
            names["stream"][0]: lambda b=batch: common.timed(lambda: _workbench_stream(weights, images, b, imgsz)),
            names["stream"][1]: lambda b=batch: common.timed(lambda: _plain_stream(weights, images, b, imgsz)),
            names["command"][0]: lambda b=batch: common.timed(
                lambda: _workbench_command(weights, images, b, imgsz, out / "workbench")),
            names["command"][1]: lambda b=batch: common.timed(
                lambda: _plain_command(weights, images, b, imgsz, out / "plain")),
            names["onnx"][0]: lambda b=batch: common.timed(lambda: _workbench_stream(onnx, images, b, imgsz)),
        }
        print(f"\n== batch {batch} ({count} images, imgsz {imgsz})")
        samples = common.interleave(group, repeats, warmup=0 if quick else 1)
        for name, s in samples.items():
            cases[name] = common.summarize(s, s[0]["images"], "images")
        comparisons += [
            common.comparison(names["stream"][0], names["stream"][1], samples,
                              f"predict path vs plain Ultralytics, batch {batch}", not_slower=True),
            common.comparison(names["command"][0], names["command"][1], samples,
                              f"yolo_tools predict (+CSV/JSON) vs plain predict(save=True), batch {batch}",
                              not_slower=True),
            common.comparison(names["onnx"][0], names["onnx"][1], samples,
                              f"ONNX Runtime vs PyTorch (same predict path) on CPU, batch {batch}"),
        ]
    shutil.rmtree(out, ignore_errors=True)
    payload["cases"], payload["comparisons"] = cases, comparisons
    print_report(payload)
    common.save(TOPIC, payload, results)
    return payload


def print_report(payload: dict[str, Any]) -> None:
    common.print_cases(payload, [("items", "images", "d"), ("median_s", "median s", ".3f"), ("per_s", "images/s", ".1f"),
                                 ("min_s", "min s", ".3f"), ("max_s", "max s", ".3f")])


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--images", type=int, default=32, help="how many kidney val slices to predict on")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    args = p.parse_args(argv)
    run(args.repeats, args.quick, args.imgsz, args.images, tuple(args.batches), args.results, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
